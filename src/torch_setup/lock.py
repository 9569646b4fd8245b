"""One torch-setup at a time per target, and one at a time around package-manager steps on a host.

`fcntl.flock` locks (https://man7.org/linux/man-pages/man2/flock.2.html): the kernel drops a lock when its holder
dies and every command it started has ended (each inherits the lock's descriptor: a lock outlives a killed
torch-setup while its apt or uv still runs, so a rerun waits for those instead of running beside them); a stale lock
file is taken over, never trusted. The file says who holds it (pid, since when) for the message. A second run waits
up to $TORCH_SETUP_LOCK_TIMEOUT seconds (default 600), saying once that it waits, then fails with BusyError
(exit 13).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Optional

from torch_setup.errors import BusyError
from torch_setup.host import children

TIMEOUT_ENV = "TORCH_SETUP_LOCK_TIMEOUT"
RECORD_WAIT = 2.0  # seconds a waiter gives a new holder to write its record (pid, since when)
DIR_ENV = "TORCH_SETUP_LOCK_DIR"
DEFAULT_TIMEOUT = 600.0

try:
    import fcntl
except ImportError:  # not POSIX: no locks (torch-setup runs on Linux and macOS)
    fcntl = None  # type: ignore[assignment]


def lock_dir(env: Mapping[str, str]) -> str:
    """$TORCH_SETUP_LOCK_DIR, else /run/lock (every user may write there, so root and a user share it), else
    the temporary directory."""
    if env.get(DIR_ENV):
        return env[DIR_ENV]
    for d in ("/run/lock", "/var/lock"):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    import tempfile
    return tempfile.gettempdir()


def target_path(env: Mapping[str, str], target: str) -> str:
    digest = hashlib.sha256(os.path.abspath(target).encode()).hexdigest()[:16]
    return os.path.join(lock_dir(env), f"torch-setup-{digest}.lock")


def packages_path(env: Mapping[str, str]) -> str:
    return os.path.join(lock_dir(env), "torch-setup-packages.lock")


def timeout_of(env: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))
    except ValueError:
        from torch_setup.errors import UsageError
        raise UsageError(f"{TIMEOUT_ENV}={env[TIMEOUT_ENV]!r} is not a number of seconds") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it runs
        pass
    return True


def _holder(fd: int) -> Optional[str]:
    """Who holds the lock, from the record its holder writes; None while there is none (yet)."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
        pid, since = int(text[0]), float(text[1])
    except (OSError, ValueError, IndexError):
        return None
    started = time.strftime('%H:%M:%S', time.localtime(since))
    if not _alive(pid):  # killed; the commands it started hold the lock till they end (host/children.py)
        return f"pid {pid}, since {started}, has ended; a command it started still runs"
    return f"pid {pid}, since {started}"


@contextmanager
def hold(path: str, what: str, *, timeout: float, say: Callable[[str], object] = lambda text: None) -> Iterator[None]:
    """Hold the lock at path while the block runs; `what` names it in messages ("/root/.venvs/torch")."""
    if fcntl is None:
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(path, flags, 0o666)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))  # another user's file: locking reads
    except OSError as e:  # a read-only or odd lock folder: run without the lock, and say so
        say(f"note: no lock at {path} ({e.strerror}): nothing keeps a second torch-setup off {what}")
        yield
        return
    try:
        try:
            os.fchmod(fd, 0o666)  # root and users share the host-wide lock
        except OSError:
            pass
        first_try = time.monotonic()
        deadline = first_try + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Its holder writes who it is just after taking the lock: a run started at the same moment
                # gives it RECORD_WAIT seconds to, before it says it does not know.
                holder, now = _holder(fd), time.monotonic()
                who = holder or "pid unknown"
                if now >= deadline:
                    raise BusyError(f"another torch-setup is running on {what} ({who})",
                                    hint=f"wait for it, or raise {TIMEOUT_ENV} (waited {timeout:g} s)") from None
                if not said and (holder or now >= first_try + RECORD_WAIT):
                    say(f"another torch-setup is running on {what} ({who}): waiting up to {timeout:g} s")
                    said = True
                time.sleep(0.05 if holder is None else 0.2)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
        except OSError:
            pass
        children.keep(fd)  # the commands this run starts hold it too, should torch-setup be killed
        try:
            yield
        finally:
            children.release(fd)
            try:
                os.ftruncate(fd, 0)  # no record of a run that ended for the next holder's first moment
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class HostLock:
    """The host-wide package-manager lock, held while any package step of this run runs (steps run side by side:
    the first takes it, the last gives it back)."""

    def __init__(self, env: Mapping[str, str], say: Callable[[str], object] = lambda text: None):
        self.env, self.say = env, say
        self._count, self._mutex, self._held = 0, threading.Lock(), None

    @contextmanager
    def step(self) -> Iterator[None]:
        with self._mutex:
            if self._count == 0:
                cm = hold(packages_path(self.env), "this host's package manager", timeout=timeout_of(self.env),
                          say=self.say)
                cm.__enter__()
                self._held = cm
            self._count += 1
        try:
            yield
        finally:
            with self._mutex:
                self._count -= 1
                if self._count == 0 and self._held is not None:
                    held, self._held = self._held, None
                    held.__exit__(None, None, None)


def target_lock(env: Mapping[str, str], target: str, say: Callable[[str], object] = lambda text: None,
                timeout: Optional[float] = None):
    return hold(target_path(env, target), target, timeout=timeout_of(env) if timeout is None else timeout, say=say)
