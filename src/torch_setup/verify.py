"""Verify: run smoke.py in the target interpreter with fresh Inductor and Triton caches.

`start` begins it early (install: as soon as torch is in, so torch is imported while the system packages finish);
`Pending.finish` lets it compile and reads its result. `verify` does both at once."""
from __future__ import annotations

import json
import pkgutil
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from torch_setup.system import System

SMOKE = pkgutil.get_data("torch_setup", "smoke.py").decode()  # sent with -c: a zipapp has no files
IMPORTS = "data/compile_imports.txt"  # what the smoke check imports, for its bytecode helpers


@dataclass
class Verification:
    ok: bool
    python: str
    torch: Optional[str] = None
    seconds: float = 0.0
    results: List[dict] = field(default_factory=list)
    error: Optional[str] = None  # the traceback or the runner's own message
    compiler_lines: List[str] = field(default_factory=list)  # the compiler's own error lines
    output: str = ""  # everything the smoke run printed, for diagnosis

    def to_dict(self) -> dict:
        return {"ok": self.ok, "python": self.python, "torch": self.torch, "seconds": self.seconds,
                "results": self.results, "error": self.error, "compiler_lines": self.compiler_lines}


def parse_smoke(python: str, rc: int, stdout: str, stderr: str) -> Verification:
    """Pure: read the JSON line smoke.py printed last; anything else is a crash before it could."""
    data = None
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
            break
        except ValueError:
            continue
    output = stdout + stderr
    lines = [ln.strip() for ln in stderr.splitlines()
             if ("error" in ln.lower() and (".cpp:" in ln or ".c:" in ln or "fatal" in ln.lower()))
             or "InvalidCxxCompiler" in ln]
    if not isinstance(data, dict):
        return Verification(False, python, error=(stderr or stdout).strip()[-4000:] or f"exit status {rc}",
                            compiler_lines=lines[:8], output=output)
    return Verification(
        ok=bool(data.get("ok")) and rc == 0, python=python, torch=data.get("torch"),
        seconds=float(data.get("seconds") or 0), results=list(data.get("results") or []),
        error=data.get("error"), compiler_lines=list(dict.fromkeys(lines))[:8], output=output,
    )


class Pending:
    """A verification started: torch imported (or importing), waiting for "go" before it compiles."""

    def __init__(self, python: str, job, cache: str):
        self.python, self.job, self.cache = python, job, cache

    def finish(self, timeout: float = 900) -> Verification:
        try:
            res = self.job.finish("go", timeout=timeout)
        finally:
            shutil.rmtree(self.cache, ignore_errors=True)
        if res.rc == 127:
            return Verification(False, self.python, error=f"{self.python}: not found")
        return parse_smoke(self.python, res.rc, res.stdout, res.stderr)

    def cancel(self) -> None:
        self.job.cancel()
        shutil.rmtree(self.cache, ignore_errors=True)


def start(system: System, python: str, env=None) -> Pending:
    cache = tempfile.mkdtemp(prefix="torch-setup-verify-")
    # Nothing from an earlier compile may count: fresh caches, a fresh TMPDIR (torch keeps some state under
    # tempfile.gettempdir()), and no precompiled header, which is built once and then reused from /tmp.
    env = dict(env or {}, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=str(Path(cache) / "triton"),
               TMPDIR=cache, TORCHINDUCTOR_FX_GRAPH_CACHE="0", TORCHINDUCTOR_AUTOGRAD_CACHE="0",
               TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS="0")
    argv = [python, "-c", SMOKE]
    listing = str(Path(cache) / "imports.txt")
    if system.write_text(listing, pkgutil.get_data("torch_setup", IMPORTS).decode()):
        argv += ["--imports", listing]
    return Pending(python, system.start(argv + ["--wait"], env=env), cache)


def verify(system: System, python: str, timeout: float = 900, env=None) -> Verification:
    return start(system, python, env).finish(timeout)
