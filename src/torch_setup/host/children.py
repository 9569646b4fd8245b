"""The child processes this run started and that still run: each leads its own process group (System starts them
with a new session), so stopping one stops what it started too (uv's and apt's own children). The CLI's signal
handler stops them all before the run cleans up: no child keeps installing after torch-setup has gone."""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Set

_LIVE: Set = set()  # subprocess.Popen objects
_LOCK = threading.Lock()
_KEPT: Set[int] = set()  # lock file descriptors every child inherits (lock.py)


def keep(fd: int) -> None:
    """Every command started from now on inherits fd (a held lock.py lock): the kernel then keeps the lock held
    while any of them runs, even after torch-setup itself was killed (SIGKILL can not be handled: a bare `kill -9`
    leaves apt and uv running in their own process groups). A rerun waits for them instead of running apt or uv
    beside them (dpkg's "frontend lock was locked by apt-get", two uv installs into one venv)."""
    with _LOCK:
        _KEPT.add(fd)


def release(fd: int) -> None:
    with _LOCK:
        _KEPT.discard(fd)


def kept() -> tuple:
    """The fds for Popen's pass_fds."""
    with _LOCK:
        return tuple(sorted(_KEPT))


def register(proc) -> None:
    with _LOCK:
        _LIVE.add(proc)


def unregister(proc) -> None:
    with _LOCK:
        _LIVE.discard(proc)


def _signal_group(proc, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child leads its group (start_new_session)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)  # a child of sudo as root: its group may not be ours to signal
        except (ProcessLookupError, OSError):
            pass


def kill_group(proc) -> None:
    """SIGKILL to a child's whole process group."""
    _signal_group(proc, signal.SIGKILL)


def stop_all(grace: float = 5.0) -> int:
    """SIGTERM to every live child's process group, SIGKILL to those still there after `grace` seconds; the
    number of children that were running."""
    with _LOCK:
        procs = [p for p in _LIVE if p.poll() is None]
    for p in procs:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            _signal_group(p, signal.SIGKILL)
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001 - best effort: the group was sent SIGKILL
                pass
        else:
            _signal_group(p, signal.SIGKILL)  # the leader is gone: its group's stragglers go too
    return len(procs)
