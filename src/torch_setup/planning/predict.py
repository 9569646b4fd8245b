"""The facts as a plan predicts them once its steps ran: the interpreter it provides (never run while planning),
a compiler that works, the CA bundle and openssl in place. Shared by the providers and the compiler fix."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Dict, Optional, Tuple

from torch_setup.facts.model import Facts, PythonFacts, TorchFacts
from torch_setup.recipes.load import Manager, Platform, Recipes


def predicted(*, executable: str, version: str, prefix: str, source: str, base_prefix: Optional[str] = None,
              include_dir: Optional[str] = None, free_threaded: bool = False, in_venv: bool = False,
              externally_managed: bool = False) -> PythonFacts:
    """The one constructor of an interpreter a plan provides: predicted, with headers and venv support (every
    provider brings them), and never run while planning."""
    return PythonFacts(found=True, predicted=True, executable=executable, version=version, implementation="cpython",
                       free_threaded=free_threaded, prefix=prefix, base_prefix=base_prefix, in_venv=in_venv,
                       source=source, include_dir=include_dir, has_headers=True,
                       externally_managed=externally_managed, venv_ok=True)


def box_python(facts: Facts) -> Optional[PythonFacts]:
    """The interpreter the box has now, to run the bootstrap scripts with and to tell the active source by."""
    return facts.python if facts.python.found and not facts.python.predicted else facts.host_python


def facts_after(facts: Facts, python: PythonFacts, cxx: bool, ca: bool, cxx_env: Optional[Dict[str, str]] = None,
           keep_torch: bool = False, openssl: bool = False) -> Facts:
    """The facts once the steps ran: this Python (no torch in a new one), a working compiler / CA bundle where
    they were installed."""
    compiler = facts.compiler
    if cxx:
        env = cxx_env or {}
        compiler = replace(compiler, cxx=env.get("CXX", compiler.cxx), path=env.get("CXX", compiler.path),
                           family=compiler.family if "CXX" not in env else "gcc", version=None if "CXX" in env
                           else compiler.version, toolchain_ok=True, ok=python.has_headers, error=None,
                           cc=env.get("CC", compiler.cc))
    host = replace(facts.host, ca_bundle=facts.host.ca_bundle or ca,
                   openssl=facts.host.openssl or ("openssl" if openssl else None))  # predicted: on PATH
    box = box_python(facts) if python is not facts.python else facts.host_python
    return replace(facts, python=python, compiler=compiler, host=host, host_python=box,
                   torch=facts.torch if keep_torch else TorchFacts())


def show_env(env: Dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def env_manager(recipes: Recipes, platform: Platform, path: str) -> Manager:
    """conda, mamba or micromamba by the binary's name; argv[0] becomes the path found on PATH."""
    name = os.path.basename(path)
    manager = next((m for m in recipes.managers.values() if m.kind == "env" and m.binary == name),
                   recipes.managers[platform.manager])

    def swap(argv: Tuple[str, ...]) -> Tuple[str, ...]:
        return (path,) + tuple(argv[1:]) if argv else argv

    return replace(manager, install=swap(manager.install), create=swap(manager.create))
