"""How a run shows itself: plain lines without a terminal (Docker builds, CI, Ansible), a live status on one.

Progress goes to stderr so that `--json` output on stdout stays one clean object.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO

from torch_setup.masking import mask_text


class Reporter:
    """Plain lines: one per step, command and output line. Also the base for the terminal variant."""

    def __init__(self, stream: Optional[TextIO] = None, quiet_output: bool = False):
        self.stream = stream or sys.stderr
        self.quiet_output = quiet_output
        self.lock = threading.Lock()  # steps run side by side
        self.started = time.monotonic()  # each step's end is shown on one time line from here

    def _print(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def step_start(self, step) -> None:
        self._print(f"==> {step.title}" + (f"  ({step.why})" if step.why else ""))

    def command(self, text: str, step=None) -> None:
        self._print(f"[{step.id}] $ {text}" if step else f"$ {text}")

    def output(self, line: str, step=None) -> None:
        if not self.quiet_output:
            self._print(f"[{step.id}]   {mask_text(line)}" if step else "    " + mask_text(line))

    def step_end(self, step, ok: bool, seconds: float) -> None:
        done = time.monotonic() - self.started
        self._print(f"{'ok' if ok else 'FAILED'}: {step.id} ({seconds:.1f} s, done at +{done:.1f} s)")

    def line(self, text: str) -> None:
        self._print(text)


class TerminalReporter(Reporter):
    """A spinner per step with its time and the command's latest line (pip's and apt's own progress)."""

    def __init__(self):
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = None
        self.running = {}  # step id -> [title, started, latest line]

    def _refresh(self) -> None:
        now = time.monotonic()
        text = "\n".join(f"[bold]{t}[/bold] [dim]{now - s:4.0f} s  {ln[:90]}[/dim]"
                         for t, s, ln in self.running.values())
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def step_start(self, step) -> None:
        with self.lock:
            self.running[step.id] = [step.title, time.monotonic(), ""]
            self._refresh()

    def command(self, text: str, step=None) -> None:
        self.console.print(f"[dim]$ {text}[/dim]", highlight=False)

    def output(self, line: str, step=None) -> None:
        with self.lock:
            if step and step.id in self.running and line.strip():
                self.running[step.id][2] = mask_text(line.strip())
                self._refresh()

    def step_end(self, step, ok: bool, seconds: float) -> None:
        with self.lock:
            self.running.pop(step.id, None)
            if not self.running and self.status is not None:
                self.status.stop()
                self.status = None
            elif self.running:
                self._refresh()
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        self.console.print(f"{mark} {step.title} [dim]({seconds:.1f} s)[/dim]", highlight=False)

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)


def reporter_for(json_mode: bool) -> Reporter:
    if json_mode or not sys.stderr.isatty():
        return Reporter()
    return TerminalReporter()
