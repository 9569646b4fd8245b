"""Gather all facts through a `System`: the only place in facts/ that asks the host anything."""
from __future__ import annotations

import platform
import threading
from typing import Iterable, Optional, Tuple

from torch_setup.facts import accelerator, compiler, host, python
from torch_setup.facts.model import Facts, LibcFacts, PythonFacts, TorchFacts
from torch_setup.errors import PythonNotFoundError
from torch_setup.system import System


def gather(system: System, spec: str = "", managers: Iterable[Tuple[str, str]] = (),
           system_name: Optional[str] = None, machine: Optional[str] = None,
           with_compiler: bool = True, python_required: bool = True) -> Facts:
    """Probe the host and the Python that SPEC names.

    With python_required=False, a SPEC that names no interpreter gives `python.found = False` (the plan can then
    provide one) instead of an error.
    """
    system_name = system_name or platform.system()
    machine = machine or platform.machine()
    facts = Facts()
    # The Python probe and the accelerator's tools (nvidia-smi takes ~0.1 s) are subprocesses: they run while
    # this thread reads the OS and the host.
    probe = _Background(python.find, system, spec)
    accel = _Background(accelerator.detect, system, machine, system_name)
    facts.os = host.detect_os(system, system_name)
    facts.host, facts.package_manager = host.detect_host(system, managers)
    try:
        facts.python, facts.torch, facts.arch, facts.libc = probe.result()
    except PythonNotFoundError:
        if python_required:
            raise
        facts.python, facts.torch = PythonFacts(spec=spec), TorchFacts()
        facts.arch = machine
        name, version = python.parse_libc(_glibc(), list(platform.libc_ver()), system_name)
        facts.libc = LibcFacts(name, version)
    if with_compiler:
        facts.compiler = compiler.probe(system, system_name, facts.python.include_dir, facts.python.has_headers)
    facts.accelerator = accel.result()
    return facts


class _Background(threading.Thread):
    """fn(*args) on a thread; result() joins and returns its value or raises its exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.value, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # handed to the caller by result()
            self.error = e

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def _glibc() -> Optional[str]:
    try:
        import os

        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
