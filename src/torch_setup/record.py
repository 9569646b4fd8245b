"""The record of a verification that passed on this box, so a re-run with nothing to do proves torch.compile still
works without compiling again.

A record is kept under a key made of everything that compile depended on: the box itself (its boot id and machine
id: a Docker layer or a venv copied to another host, or the same host after a reboot, is not this box), the
interpreter and its `Python.h`, torch's version and the files Inductor runs from, the C++ and C compilers and their
versions, the `openssl` program, the environment variables Inductor, Triton and the compilers read, and the CPU's
flags (Inductor picks vector ISAs by them). Anything changed gives another key: the record does not hold, and the
check compiles afresh. Where the box cannot be told (no boot id), there is no key and nothing is trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Mapping, Optional

from torch_setup.facts.model import Facts
from torch_setup.host.system import System

RECORD = ".cache/torch-setup/verified.json"  # under the user's HOME
ENV_PREFIXES = ("TORCHINDUCTOR_", "TRITON_", "TORCHDYNAMO_", "TORCH_COMPILE_")
ENV_NAMES = ("CXX", "CC", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "CPATH", "C_INCLUDE_PATH",
             "CPLUS_INCLUDE_PATH", "LIBRARY_PATH", "LD_LIBRARY_PATH")  # PATH counts through the compilers found
TORCH_FILES = ("torch/version.py", "torch/_inductor/codecache.py", "torch/_inductor/cpp_builder.py",
               "torch/_inductor/config.py")


def key(system: System, facts: Facts, python: str, env: Mapping[str, str]) -> Optional[str]:
    """The key of a verification of `python` on this box as the facts describe it, with `env` on top of the
    user's environment; None where the box cannot be told apart from another."""
    boot = (system.read_text("/proc/sys/kernel/random/boot_id") or "").strip()
    if not boot:
        return None

    def stamp(path: Optional[str]):
        return [path, system.mtime(system.realpath(path)) if path else None]

    merged = dict(system.env, **env)
    py, cc, torch = facts.python, facts.compiler, facts.torch
    parts = {
        "box": [boot, (system.read_text("/etc/machine-id") or "").strip()],
        "python": stamp(python) + [py.version, py.free_threaded],
        "headers": stamp(os.path.join(py.include_dir, "Python.h") if py.include_dir else None),
        "torch": [torch.version] + [stamp(os.path.join(torch.location, f)) if torch.location else None
                                    for f in TORCH_FILES],
        "cxx": stamp(cc.path) + [cc.version, cc.toolchain_ok], "cc": stamp(cc.cc),
        "openssl": stamp(facts.host.openssl),
        "env": {k: v for k, v in sorted(merged.items()) if k.startswith(ENV_PREFIXES) or k in ENV_NAMES},
        "cpu": hashlib.sha256("\n".join(ln for ln in (system.read_text("/proc/cpuinfo") or "").splitlines()
                                        if ln.startswith(("flags", "Features"))).encode()).hexdigest(),
    }
    if torch.version is None or parts["python"][1] is None:
        return None  # no torch, or an interpreter that is not there: nothing to vouch for
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _path(facts: Facts) -> str:
    return os.path.join(facts.host.home or "/", RECORD)


def _load(system: System, facts: Facts) -> Dict[str, dict]:
    try:
        data = json.loads(system.read_text(_path(facts)) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def lookup(system: System, facts: Facts, python: str, env: Mapping[str, str]) -> Optional[dict]:
    """The record of a passed verification that still holds, if there is one: {"when", "torch", "seconds",
    "results"}."""
    k = key(system, facts, python, env)
    hit = _load(system, facts).get(k) if k else None
    return hit if isinstance(hit, dict) and hit.get("python") == python else None


def last(system: System, facts: Facts, python: str) -> Optional[dict]:
    """The newest record for this interpreter, whether it still holds or not (doctor says which)."""
    hits = [r for r in _load(system, facts).values() if isinstance(r, dict) and r.get("python") == python]
    return max(hits, key=lambda r: r.get("when") or 0, default=None)


def save(system: System, facts: Facts, python: str, env: Mapping[str, str], verification) -> bool:
    """Keep a passed verification under its key (only this interpreter's newest record is kept)."""
    k = key(system, facts, python, env)
    if not k or not verification.ok:
        return False
    data = {h: r for h, r in _load(system, facts).items() if isinstance(r, dict) and r.get("python") != python}
    data[k] = {"python": python, "when": system.now(), "torch": verification.torch,
               "seconds": verification.seconds, "results": verification.results}
    return system.write_text(_path(facts), json.dumps(data, indent=1, sort_keys=True))
