"""Gather all facts through a `System`: the only place in facts/ that asks the host anything."""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Optional, Tuple

from torch_setup.errors import PythonNotFoundError
from torch_setup.facts import accelerator, compiler, config, host, python
from torch_setup.facts.model import Facts, LibcFacts, PythonFacts, TorchFacts
from torch_setup.request import PythonRequest
from torch_setup.host.system import System


class Probes:
    """The subprocesses of detection, running: the target Python's probe and the accelerator's tools (nvidia-smi
    takes ~0.1 s). Started first, they run while the caller reads the OS and the host (and imports the rest)."""

    def __init__(self, system: System, request: PythonRequest, system_name: Optional[str] = None,
                 machine: Optional[str] = None):
        self.request = request
        self.system_name = system_name or system.platform()[0]
        self.machine = machine or system.platform()[1]
        self.python = _Background(python.find, system, request)
        self.accelerator = _Background(accelerator.detect, system, self.machine, self.system_name)


def gather(system: System, request: PythonRequest = PythonRequest(),
           managers: Callable[[], Iterable[Tuple[str, str]]] = tuple, system_name: Optional[str] = None,
           machine: Optional[str] = None, with_compiler: bool = True, probes: Optional[Probes] = None) -> Facts:
    """Probe the host and the Python the request names.

    A version request that no interpreter answers (`--python 3.13` on a box without 3.13) gives
    `python.found = False, python.absent = "3.13"`, and the box's default python3 as `host_python` (a plan can
    then provide 3.13); any other request that finds nothing raises PythonNotFoundError. managers() names the OS
    package managers to look for; it is called once the probes run, so reading the recipes takes no time of its
    own.
    """
    probes = probes or Probes(system, request, system_name, machine)
    system_name, machine = probes.system_name, probes.machine
    os_facts = host.detect_os(system, system_name)
    host_facts, package_manager = host.detect_host(system, managers())
    host_python = None
    try:
        py, torch, arch, libc = probes.python.result()
    except PythonNotFoundError:
        if not request.is_version:
            raise
        py, torch = PythonFacts(absent=request.label), TorchFacts()
        try:
            host_python, _, arch, libc = python.find(system, PythonRequest())
        except PythonNotFoundError:
            arch = machine
            libc = LibcFacts(*python.parse_libc(system.glibc(), list(system.platform()[2]), system_name))
    shown = py if py.found else host_python
    cc = compiler.probe(system, system_name, shown.include_dir if shown else None,
                        bool(shown and shown.has_headers)) if with_compiler else Facts().compiler
    return Facts(os=os_facts, arch=arch, libc=libc, package_manager=package_manager, host=host_facts, python=py,
                 compiler=cc, accelerator=probes.accelerator.result(), torch=torch, host_python=host_python,
                 config=config.gather(system, host_facts.home or "/", py.prefix if py.found else None))


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
