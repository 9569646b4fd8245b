"""The target Python: find it from a SPEC, probe it in a subprocess, parse what the probe printed."""
from __future__ import annotations

import dataclasses
import json
import os
import pkgutil
import re
from typing import Dict, List, Mapping, Optional, Tuple

from torch_setup.errors import FactsError, PythonNotFoundError
from torch_setup.facts.model import LibcFacts, PythonFacts, TorchFacts
from torch_setup.request import PythonRequest
from torch_setup.host.system import System

# Sent with -c: the package may live inside a zipapp, where the script is no file a subprocess can open.
PROBE = pkgutil.get_data("torch_setup.facts", "probe_python.py").decode()
def parse_probe(text: str, env: Mapping[str, str]) -> Tuple[PythonFacts, TorchFacts, str, LibcFacts]:
    """Parse the probe's JSON into (python, torch, arch, libc) facts."""
    try:
        raw = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise FactsError(f"the Python probe printed no JSON ({e}): {text[:200]!r}") from None
    if not isinstance(raw, dict) or raw.get("probe") != 1:
        raise FactsError("the Python probe printed an unexpected object")
    em_text = raw.get("externally_managed")
    prefix, base = raw["prefix"], raw["base_prefix"]
    cfg = parse_pyvenv_cfg(raw.get("pyvenv_cfg") or "")
    in_venv = prefix != base or bool(cfg)
    return _with_source(PythonFacts(
        found=True,
        executable=raw["executable"],
        version=raw["version"],
        implementation=raw["implementation"],
        free_threaded=bool(raw.get("gil_disabled")),
        prefix=prefix,
        base_prefix=base,
        in_venv=in_venv,
        base_executable=cfg.get("home") and os.path.join(cfg["home"], "python3"),
        include_dir=raw.get("include"),
        has_headers=bool(raw.get("has_python_h")),
        # A venv is not externally managed even when its base is (PEP 668 exempts virtual environments).
        externally_managed=bool(em_text) and not in_venv,
        venv_ok=bool(raw.get("ensurepip")),
        user_site=raw.get("user_site"),
    ), raw, env, em_text)


def _with_source(py: PythonFacts, raw: dict, env: Mapping[str, str], em_text: Optional[str]):
    torch = parse_torch(raw.get("torch"), py.user_site)
    libc_name, libc_version = parse_libc(raw.get("gnu_libc_version"), raw.get("libc") or ["", ""], raw.get("system"))
    py = dataclasses.replace(py, source=python_source(raw, env, em_text))
    return py, torch, raw.get("machine", ""), LibcFacts(libc_name, libc_version)


def parse_pyvenv_cfg(text: str) -> Dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def python_source(raw: dict, env: Mapping[str, str], em_text: Optional[str]) -> str:
    """Where the base interpreter comes from, by the fingerprints of [S6][S22][S23][S30] (docs/sources.md)."""
    base = raw["base_prefix"].rstrip("/")
    real = raw.get("realpath") or raw["executable"]
    where = f"{base}/ {real}"
    if raw.get("conda_meta") or "conda-forge" in raw.get("version_string", ""):
        return "conda"
    if "/uv/python/" in where or (em_text and "managed by uv" in em_text.lower()):
        return "uv"
    pyenv_root = env.get("PYENV_ROOT", "").rstrip("/")
    if "/.pyenv/versions/" in where or (pyenv_root and where.startswith(pyenv_root + "/versions/")):
        return "pyenv"
    if "/Cellar/python@" in where or "/homebrew/" in where or "/linuxbrew/" in where:
        return "homebrew"
    if base in ("/usr", "/System/Library/Frameworks/Python.framework/Versions/" + raw["version"][:4]):
        return "system"
    if base == "/usr/local" or (raw.get("config_args") or "").find("--prefix=/usr/local") >= 0:
        return "built-from-source"  # official python: images and `make install`
    if base.startswith("/Library/Frameworks/Python.framework"):
        return "python.org"
    return "unknown"


def parse_torch(raw: Optional[dict], user_site: Optional[str]) -> TorchFacts:
    if not raw:
        return TorchFacts()
    # torch/version.py has the local version (2.15.0+cu132) that the wheel metadata may lack.
    version_py = raw.get("version_py") or ""
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    version = m.group(1) if m else raw.get("version")
    m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", version_py, re.M)
    cuda = m.group(1) if m else None
    m = re.search(r"^hip\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    hip = m.group(1) if m else None
    m = re.search(r"^xpu\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", version_py, re.M)
    xpu = m.group(1) if m else None
    flags = raw.get("arch_flags")
    location = raw.get("location")
    return TorchFacts(
        version=version,
        cuda=cuda,
        location=location,
        in_user_site=bool(user_site and location and os.path.normpath(location) == os.path.normpath(user_site)),
        triton=raw.get("triton"),
        hip=hip,
        xpu=xpu,
        arch_list=flags.split() if isinstance(flags, str) and flags.strip() else None,
    )


def parse_libc(gnu: Optional[str], libc_ver: List[str], system: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """'glibc 2.41' from os.confstr, else platform.libc_ver(); musl reports nothing on either."""
    if gnu:
        name, _, version = gnu.partition(" ")
        return ("glibc" if name.lower() == "glibc" else name), version or None
    if libc_ver and libc_ver[0]:
        return libc_ver[0], libc_ver[1] or None
    if system == "Linux":
        return "musl", None
    return None, None


def find(system: System, request: PythonRequest) -> Tuple[PythonFacts, TorchFacts, str, LibcFacts]:
    """Probe the first candidate for the request that runs and matches; PythonNotFoundError if none does."""
    tried = []
    for cand in request.candidates(system.env):
        for exe in _expand(system, cand):
            res = system.run([exe, "-c", PROBE], timeout=60)
            if not res.ok or not res.stdout.strip():
                _refuse_old_python(system, exe)
                why = (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"rc {res.rc}, printed nothing"]
                tried.append(f"{exe}: not a Python 3 that runs ({why[0]})")
                continue
            try:
                py, torch, arch, libc = parse_probe(res.stdout, system.env)
            except (FactsError, KeyError, TypeError) as e:
                _refuse_old_python(system, exe)
                tried.append(f"{exe}: not a Python this probe understands ({getattr(e, 'message', e)})")
                continue
            if request.accepts(py.version, py.free_threaded):
                return py, torch, arch, libc
            tried.append(f"{exe}: is Python {py.version}{'t' if py.free_threaded else ''}")
    raise PythonNotFoundError(
        f"no Python interpreter matches --python {request.label}",
        hint="give a version such as 3.13, or the path of an interpreter",
        details="\n".join(tried),
    )


_OLD = "import sys; print('%d.%d' % sys.version_info[:2])"  # runs on Python 2 as well


def _refuse_old_python(system: System, exe: str) -> None:
    """A probe that failed on a Python 2 (or 3.0-3.5, where its syntax is new): 'not supported', exit 5."""
    from torch_setup.errors import UnsupportedError

    res = system.run([exe, "-c", _OLD], timeout=30)
    m = re.match(r"^(\d+)\.(\d+)$", res.stdout.strip()) if res.ok else None
    if m and (int(m.group(1)), int(m.group(2))) < (3, 6):
        raise UnsupportedError(f"{exe} is Python {m.group(0)}: not supported; torch.compile needs Python 3",
                               hint="give a Python 3 (--python 3.13 provides one)")


def _expand(system: System, cand: str) -> List[str]:
    if "*" in cand:
        return sorted(system.glob(cand), reverse=True)
    if os.sep in cand:
        return [cand] if system.exists(cand) else []
    path = system.which(cand)
    return [path] if path else []
