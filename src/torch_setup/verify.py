"""Verify: run smoke.py in the target interpreter with fresh Inductor and Triton caches.

The check compiles the way the user's own first torch.compile does: the torch release's default Inductor
configuration (precompiled header, graph caches and all), the user's environment (CXX, TORCHINDUCTOR_* ...,
passed through untouched and shown in the report). Only what makes it honest is changed: fresh cache directories
and a fresh TMPDIR, so nothing built earlier can be hit. No switch that turns a default code path off is set.

`start` begins it early (install: as soon as torch is in, so torch is imported while the system packages finish);
`Pending.finish` lets it compile and reads its result. `verify` does both at once."""
from __future__ import annotations

import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from torch_setup.host.system import System

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
    env: Dict[str, str] = field(default_factory=dict)  # the user's compile settings it ran with (`settings`)
    recorded: Optional[float] = None  # not compiled now: the time of the passed verification that still holds
    cuda: Optional[str] = None  # the CUDA version torch was built for (None: a CPU or ROCm build, or unknown)
    gpu: Optional[dict] = None  # --gpu: the GPU it compiled on (device, name, capability, visible)
    no_gpu: Optional[str] = None  # --gpu: why torch sees no GPU, one line

    @property
    def gpu_requested(self) -> bool:
        return self.gpu is not None or self.no_gpu is not None

    def to_dict(self) -> dict:
        return {"ok": self.ok, "python": self.python, "torch": self.torch, "seconds": self.seconds,
                "results": self.results, "error": self.error, "compiler_lines": self.compiler_lines,
                "env": self.env, "recorded": self.recorded,
                **({"gpu": self.gpu, "no_gpu": self.no_gpu} if self.gpu_requested else {})}


SETTINGS = ("CXX", "CC")  # ... and every variable starting with one of PREFIXES
PREFIXES = ("TORCHINDUCTOR_", "TRITON_", "TORCHDYNAMO_", "TORCH_COMPILE_")
FRESH = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TMPDIR")  # replaced by fresh directories


def settings(env: Mapping[str, str]) -> Dict[str, str]:
    """The variables of env that steer torch.compile and pass through to the check as they are (the fresh
    directories are the check's own)."""
    return {k: v for k, v in sorted(env.items())
            if (k in SETTINGS or k.startswith(PREFIXES)) and k not in FRESH}


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
        cuda=data.get("cuda"), gpu=data.get("gpu"), no_gpu=data.get("no_gpu"),
    )


TIMEOUT_ENV = "TORCH_SETUP_VERIFY_TIMEOUT"
DEFAULT_TIMEOUT = 900.0  # a first torch.compile takes 15-30 s on a server; a slow box (a small ARM board, an emulated
# root: 15-25 min under qemu-user on 2 loaded cores) needs more, and says so with TORCH_SETUP_VERIFY_TIMEOUT


def timeout_of(env: Mapping[str, str]) -> float:
    """How long the verification may take, in seconds: $TORCH_SETUP_VERIFY_TIMEOUT, else 900."""
    try:
        value = float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        value = -1.0
    if not value > 0:
        from torch_setup.errors import UsageError
        raise UsageError(f"{TIMEOUT_ENV}={env[TIMEOUT_ENV]!r} is not a positive number of seconds")
    return value


class Pending:
    """A verification started: torch imported (or importing), waiting for "go" before it compiles."""

    def __init__(self, system: System, python: str, job, cache: str, env: Optional[Dict[str, str]] = None):
        self.system, self.python, self.job, self.cache, self.env = system, python, job, cache, dict(env or {})

    def finish(self, timeout: Optional[float] = None) -> Verification:
        timeout = timeout_of(self.system.env) if timeout is None else timeout
        try:
            res = self.job.finish("go", timeout=timeout)
        finally:
            self.system.remove_tree(self.cache)
        if res.rc == 127:
            v = Verification(False, self.python, error=f"{self.python}: not found")
        else:
            v = parse_smoke(self.python, res.rc, res.stdout, res.stderr)
        v.env = dict(self.env)
        return v

    def cancel(self) -> None:
        self.job.cancel()
        self.system.remove_tree(self.cache)


def start(system: System, python: str, env=None, gpu: bool = False) -> Pending:
    """`env`: what the plan sets on top of the user's environment (CXX/CC of a newer compiler). `gpu`: the same
    check on the first GPU only, failing where torch sees none (`verify --gpu`)."""
    cache = system.temp_dir("torch-setup-verify-")
    shown = settings(dict(system.env, **(env or {})))
    # Nothing from an earlier compile may count: fresh caches (the precompiled header, the FX graph and autograd
    # caches live there too, so they are built afresh, on the path the user's first compile takes) and a fresh
    # TMPDIR (torch keeps some state under tempfile.gettempdir()). Nothing else is changed.
    env = dict(env or {}, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=str(Path(cache) / "triton"), TMPDIR=cache)
    argv = [python, "-c", SMOKE]
    listing = str(Path(cache) / "imports.txt")
    if system.write_text(listing, pkgutil.get_data("torch_setup", IMPORTS).decode()):
        argv += ["--imports", listing]
    argv += ["--gpu"] if gpu else []
    return Pending(system, python, system.start(argv + ["--wait"], env=env), cache, shown)


def verify(system: System, python: str, timeout: Optional[float] = None, env=None, gpu: bool = False) -> Verification:
    return start(system, python, env, gpu).finish(timeout)
