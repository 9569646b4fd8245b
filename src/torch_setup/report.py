"""How a run shows itself: plain lines without a terminal (Docker builds, CI, Ansible), a live status on one.

Progress goes to stderr so that `--json` output on stdout stays one clean object.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Reporter:
    """Plain lines: one per step, command and output line. Also the base for the terminal variant."""

    def __init__(self, stream: Optional[TextIO] = None, quiet_output: bool = False):
        self.stream = stream or sys.stderr
        self.quiet_output = quiet_output

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def step_start(self, step) -> None:
        self._print(f"==> {step.title}" + (f"  ({step.why})" if step.why else ""))

    def command(self, text: str) -> None:
        self._print(f"$ {text}")

    def output(self, line: str) -> None:
        if not self.quiet_output:
            self._print("    " + line)

    def step_end(self, step, ok: bool, seconds: float) -> None:
        self._print(f"{'ok' if ok else 'FAILED'}: {step.id} ({seconds:.1f} s)")

    def line(self, text: str) -> None:
        self._print(text)


class TerminalReporter(Reporter):
    """A spinner per step with its time and the command's latest line (pip's and apt's own progress)."""

    def __init__(self):
        super().__init__()
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = None
        self.started = 0.0
        self.title = ""

    def step_start(self, step) -> None:
        self.title, self.started = step.title, time.monotonic()
        self.status = self.console.status(f"[bold]{step.title}")
        self.status.start()

    def command(self, text: str) -> None:
        self.console.print(f"[dim]$ {text}[/dim]", highlight=False)

    def output(self, line: str) -> None:
        if self.status and line.strip():
            elapsed = time.monotonic() - self.started
            self.status.update(f"[bold]{self.title}[/bold] [dim]{elapsed:4.0f} s  {line.strip()[:100]}[/dim]")

    def step_end(self, step, ok: bool, seconds: float) -> None:
        if self.status:
            self.status.stop()
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        self.console.print(f"{mark} {step.title} [dim]({seconds:.1f} s)[/dim]", highlight=False)

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)


def reporter_for(json_mode: bool) -> Reporter:
    if json_mode or not sys.stderr.isatty():
        return Reporter()
    return TerminalReporter()
