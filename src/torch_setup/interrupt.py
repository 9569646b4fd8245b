"""SIGINT, SIGTERM and SIGHUP: what `timeout`, CI cancels, systemd and a closed terminal send. The handler stops
every child's process group (host/children.py), then raises `Interrupted` in the main thread; the runner removes
what this run made (as after a failed step) and records what it kept; the CLI prints one line saying so and exits
128 + the signal's number (130, 143, 129; README, "What happens when it is interrupted")."""
from __future__ import annotations

import signal
from typing import Dict, List

from torch_setup.host import children

SIGNALS: Dict[int, str] = {int(signal.SIGINT): "SIGINT", int(signal.SIGTERM): "SIGTERM"}
if hasattr(signal, "SIGHUP"):
    SIGNALS[int(signal.SIGHUP)] = "SIGHUP"


class Interrupted(BaseException):
    """A signal stopped the run. BaseException, as KeyboardInterrupt: no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(SIGNALS.get(signum, str(signum)))
        self.signum = signum
        self.during: List[str] = []  # steps that were running: "torch (torch==2.5.0)"
        self.removed: List[str] = []  # what this run made and removed
        self.kept: List[str] = []  # steps that had ended well: their changes stay

    @property
    def code(self) -> int:
        return 128 + int(self.signum)

    @property
    def name(self) -> str:
        return SIGNALS.get(self.signum, f"signal {self.signum}")

    def line(self) -> str:
        """The one line printed."""
        what = f"interrupted by {self.name}"
        what += f" during {', '.join(self.during)}" if self.during else " before any step ran"
        removed = f"; removed {', '.join(self.removed)} (made by this run)" if self.removed else ""
        kept = f"; kept: {', '.join(self.kept)} (done; a rerun skips it)" if self.kept else "; nothing else changed"
        return what + removed + kept + "; run it again to finish"


_seen = False


def _handler(signum, frame):
    global _seen
    if _seen:  # a second signal while the first is handled: the cleanup goes on
        return
    _seen = True
    children.stop_all()
    raise Interrupted(signum)


def stopping() -> bool:
    """A signal is being handled: a child that ends now was stopped, it did not fail."""
    return _seen


def install() -> None:
    """In the main thread, before a command runs."""
    global _seen
    _seen = False
    for sig in SIGNALS:
        try:
            signal.signal(sig, _handler)
        except (ValueError, OSError):  # not the main thread, or a signal this platform lacks
            pass
