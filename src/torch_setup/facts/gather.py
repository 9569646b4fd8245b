"""Gather all facts through a `System`: the only place in facts/ that asks the host anything."""
from __future__ import annotations

import platform
import threading
from typing import Callable, Iterable, Optional, Tuple

from torch_setup.facts import accelerator, compiler, host, python
from torch_setup.facts.model import Facts, LibcFacts, PythonFacts, TorchFacts
from torch_setup.errors import PythonNotFoundError
from torch_setup.system import System


class Probes:
    """The subprocesses of detection, running: the target Python's probe and the accelerator's tools (nvidia-smi
    takes ~0.1 s). Started first, they run while the caller reads the OS and the host (and imports the rest)."""

    def __init__(self, system: System, spec: str, system_name: Optional[str] = None, machine: Optional[str] = None):
        self.system_name = system_name or platform.system()
        self.machine = machine or platform.machine()
        self.python = _Background(python.find, system, spec)
        self.accelerator = _Background(accelerator.detect, system, self.machine, self.system_name)


def gather(system: System, spec: str = "", managers: Callable[[], Iterable[Tuple[str, str]]] = tuple,
           system_name: Optional[str] = None, machine: Optional[str] = None,
           with_compiler: bool = True, python_required: bool = True, probes: Optional[Probes] = None) -> Facts:
    """Probe the host and the Python that SPEC names.

    With python_required=False, a SPEC that names no interpreter gives `python.found = False` (the plan can then
    provide one) instead of an error. managers() names the OS package managers to look for; it is called once the
    probes run, so reading the recipes takes no time of its own.
    """
    probes = probes or Probes(system, spec, system_name, machine)
    system_name, machine = probes.system_name, probes.machine
    facts = Facts()
    facts.os = host.detect_os(system, system_name)
    facts.host, facts.package_manager = host.detect_host(system, managers())
    try:
        facts.python, facts.torch, facts.arch, facts.libc = probes.python.result()
    except PythonNotFoundError:
        if python_required:
            raise
        facts.python, facts.torch = PythonFacts(spec=spec), TorchFacts()
        facts.arch = machine
        name, version = python.parse_libc(_glibc(), list(platform.libc_ver()), system_name)
        facts.libc = LibcFacts(name, version)
    if with_compiler:
        facts.compiler = compiler.probe(system, system_name, facts.python.include_dir, facts.python.has_headers)
    facts.accelerator = probes.accelerator.result()
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
