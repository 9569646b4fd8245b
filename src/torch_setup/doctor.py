"""doctor: every requirement of torch.compile checked from the facts, in about a second, without compiling.

Each check is ok, a problem (with the plan step and commands that fix it on this host), a warning, or not
applicable. Only problems block torch.compile, and make the exit code non-zero.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from packaging.version import InvalidVersion, Version

from torch_setup import guard
from torch_setup.facts.model import Facts
from torch_setup.planning.steps import Plan
from torch_setup.planning.make import torch_usable
from torch_setup.recipes.load import Recipes

OK, PROBLEM, WARN, NA = "ok", "problem", "warn", "n/a"
TORCH_DISK_GB = 6.0  # a CUDA torch 2.14.1 venv is ~5.3 GB (measured on Debian 12 x86_64); a CPU one ~1 GB


@dataclass(frozen=True)
class Check:
    id: str
    status: str
    message: str
    fix: Optional[str] = None  # the plan step that fixes it
    commands: Tuple[str, ...] = ()  # that step's commands, for display
    advice: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "message": self.message, "fix": self.fix,
                "commands": list(self.commands), "advice": self.advice}


@dataclass
class Extras:
    """What doctor asks of the host beyond the facts (gathered by `gather_extras`)."""

    disk_free_gb: Optional[float] = None
    disk_path: Optional[str] = None
    index_url: Optional[str] = None  # masked
    index_error: Optional[str] = None  # None: it answered
    cache_dir: Optional[str] = None
    cache_mtime: Optional[float] = None
    torch_mtime: Optional[float] = None
    notes: List[str] = field(default_factory=list)
    verified_at: Optional[float] = None  # the last passed verification of this Python on this box
    verified_holds: Optional[bool] = None  # ... and whether nothing it depends on changed since
    verified_torch: Optional[str] = None  # the torch that verification ran with
    torch_now: Optional[str] = None  # the torch installed now
    # (cache, its path, the filesystem type holding it, that mount's point) for Inductor's and Triton's caches;
    # None where /proc/self/mountinfo could not be read
    cache_mounts: Optional[List[Tuple[str, str, str, str]]] = None
    cache_inodes: List[Tuple[str, str, int, int]] = field(default_factory=list)  # (cache, path, free, total)
    guard_pins: Optional[str] = None  # the venv's torch-setup-constraints.txt (guard.py), None: none


def _step(plan: Optional[Plan], need: str) -> Tuple[Optional[str], Tuple[str, ...]]:
    """The plan's step that provides `need`, and its commands: the fix doctor shows is install's own step."""
    step = plan.step_for(need) if plan else None
    return (step.id, tuple(c.display() for c in step.commands)) if step else (None, ())


def driver_floor(cuda: str) -> Optional[Version]:
    """The oldest Linux driver that runs torch built for this CUDA version (data/torch_variants.toml)."""
    from torch_setup.wheels.variants import load_table

    try:
        major, minor = (cuda.split(".") + ["0"])[:2]
        table = load_table()
        variant = table.variant(f"cu{major}{minor}") or max(
            (v for v in table.variants if v.cuda is not None and v.cuda.major == int(major) and v.driver_linux),
            key=lambda v: v.cuda, default=None)  # a minor with no row of its own: its major's floor
        return Version(variant.driver_linux) if variant and variant.driver_linux else None
    except (ValueError, InvalidVersion):
        return None


def checks(facts: Facts, recipes: Recipes, plan: Optional[Plan], extras: Extras,
           plan_error: str = "") -> List[Check]:
    py, cc, acc, torch = facts.python, facts.compiler, facts.accelerator, facts.torch
    out: List[Check] = []
    nvidia = acc.kind in ("nvidia", "jetson")  # a Jetson's GPU: Triton needs the same C compiler and libcuda

    if not py.found:
        python_fix = _step(plan, "python")
        return [Check("python", PROBLEM, f"no Python {py.absent or 'interpreter'} on this host", *python_fix,
                      advice="" if python_fix[0] else plan_error)]
    row = recipes.torch_for(py.minor or "", py.free_threaded)
    label = f"{py.version}{'t' if py.free_threaded else ''}"
    out.append(Check("python", OK if row and not plan_error else PROBLEM,
                     f"Python {label} ({py.source}) at {py.executable}" if row and not plan_error
                     else (plan_error or f"no torch release supports torch.compile on Python {label}")))
    out.append(Check("headers", OK if py.has_headers else PROBLEM,
                     f"Python.h in {py.include_dir}" if py.has_headers else f"Python.h missing from {py.include_dir}",
                     *(_step(plan, "headers") if not py.has_headers else (None, ()))))
    if cc.ok:
        out.append(Check("cxx", OK, f"{cc.cxx} {cc.version or ''} builds C++20 with OpenMP and Python.h".strip()))
    elif cc.toolchain_ok:
        out.append(Check("cxx", OK, f"{cc.cxx} {cc.version or ''} builds C++20 with OpenMP (Python.h: see headers)"))
    else:
        out.append(Check("cxx", PROBLEM, cc.error or f"{cc.cxx} does not build C++20 with OpenMP", *_step(plan, "cxx")))
    if nvidia:
        cfix = _step(plan, "c-compiler") if not cc.cc else (None, ())
        out.append(Check("c-compiler", OK if cc.cc else PROBLEM,
                         f"Triton's C compiler: {cc.cc}" if cc.cc else "no C compiler for Triton ($CC, gcc, clang)",
                         *cfix, advice="" if cc.cc or cfix[0] else "install gcc (or clang), or set CC to a C compiler"))
        out.append(Check("libcuda", OK if acc.libcuda else PROBLEM,
                         "libcuda.so listed by ldconfig -p" if acc.libcuda else
                         "libcuda.so is not listed by `ldconfig -p`: Triton cannot launch kernels",
                         advice="" if acc.libcuda else "install the NVIDIA driver's user-space libraries (or run "
                         "the container with the NVIDIA container toolkit), then `ldconfig`; or set "
                         "TRITON_LIBCUDA_PATH"))
    else:
        out.append(Check("c-compiler", NA, "only Triton (GPU) needs a C compiler"))
        out.append(Check("libcuda", NA, "no NVIDIA GPU"))
    broken = facts.host.interrupted_packages
    repair_step = next((s for s in plan.todo if s.id == "package-repair"), None) if plan else None
    out.append(Check("packages", PROBLEM if broken else OK,
                     f"{len(broken)} package(s) half-installed by a stopped package manager: {', '.join(broken[:8])}"
                     if broken else "no package half-installed (dpkg --audit clean)" if facts.package_manager == "apt"
                     else "no half-installed package known",
                     repair_step.id if repair_step else None,
                     tuple(c.display() for c in repair_step.commands) if repair_step else ()))
    out.append(Check("ca", OK if facts.host.ca_bundle else PROBLEM,
                     "system CA bundle present" if facts.host.ca_bundle else
                     "no system CA bundle: pip in a venv of the system Python cannot verify HTTPS",
                     *(_step(plan, "ca") if not facts.host.ca_bundle else (None, ()))))
    out.append(_openssl_check(facts, recipes, plan))
    venv_step = next((s for s in (plan.todo if plan else ()) if "environment" in s.provides), None)
    # ensurepip is needed when the plan makes the venv with `python -m venv`: then a package step provides it
    ensure = next((s for s in plan.todo if "venv" in s.provides and s is not venv_step), None) if plan else None
    if venv_step and not py.venv_ok and not ensure:
        out.append(Check("venv", OK, "uv makes the venv (no ensurepip needed)"))
    elif venv_step:
        out.append(Check("venv", OK if py.venv_ok else PROBLEM,
                         "venv with ensurepip works" if py.venv_ok else "`python -m venv` fails: no ensurepip",
                         *((ensure.id, tuple(c.display() for c in ensure.commands)) if ensure and not py.venv_ok
                           else (None, ()))))
    else:
        out.append(Check("venv", OK if py.venv_ok or py.in_venv else NA,
                         "in a venv" if py.in_venv else ("venv works" if py.venv_ok else "no venv needed")))
    if torch_usable(facts, recipes):
        out.append(Check("torch", OK, f"torch {torch.version} supports torch.compile on Python {py.minor}"))
    else:
        msg = (f"torch {torch.version} does not support torch.compile on Python {py.minor}" if torch.version
               else "torch is not installed in this interpreter")
        out.append(Check("torch", PROBLEM, msg, *_step(plan, "torch")))
    out.append(_cuda_check(torch.cuda, acc))
    out += _gpu_checks(facts, plan)
    out.append(Check("torch-guard", *guard.check(facts, extras.guard_pins, plan)))
    out.append(_disk_check(torch.version, extras))
    if extras.index_url is None:
        out.append(Check("index", NA, "not checked"))
    elif extras.index_error and extras.index_error.startswith("TLS"):
        from torch_setup.wheels.trust import Trust, fix_hint

        out.append(Check("index", WARN if torch.version else PROBLEM, f"{extras.index_url}: {extras.index_error}",
                         advice=fix_hint(Trust()).split("; now trusted")[0]))
    elif extras.index_error:
        out.append(Check("index", WARN if torch.version else PROBLEM,
                         f"{extras.index_url} does not answer: {extras.index_error}",
                         advice="set PIP_INDEX_URL to a mirror that answers, or use --find-links DIR"))
    else:
        out.append(Check("index", OK, f"{extras.index_url} answers"))
    stale = (extras.cache_mtime is not None and extras.torch_mtime is not None
             and extras.cache_mtime < extras.torch_mtime)
    out.append(Check("inductor-cache", WARN if stale else (OK if extras.cache_dir else NA),
                     f"{extras.cache_dir} predates the installed torch: kernels built by another torch or "
                     "toolchain may load from it" if stale else (f"{extras.cache_dir}" if extras.cache_dir
                                                                else "no Inductor cache yet"),
                     advice=f"rm -rf {extras.cache_dir}" if stale else ""))
    out.append(_cache_fs_check(extras))
    out.append(_verified_check(extras))
    return out


INODES_MIN, INODES_MIN_SHARE = 20_000, 0.02  # fewer free inodes than this (or 2%) is near the quota
CACHE_ADVICE = ("use a node-local disk, one directory per job: export TORCHINDUCTOR_CACHE_DIR="
                "${TMPDIR:-/tmp}/torchinductor-$USER${SLURM_JOB_ID:+-$SLURM_JOB_ID} TRITON_CACHE_DIR="
                "${TMPDIR:-/tmp}/triton-$USER${SLURM_JOB_ID:+-$SLURM_JOB_ID}")


def _cache_fs_check(extras: Extras) -> Check:
    """Inductor's and Triton's caches on a network filesystem (NFS, Lustre, GPFS...) are shared by every node and
    job: slow compiles, and ranks racing on the same files (stale file handles, busy or half-written modules)."""
    from torch_setup.mounts import is_network

    few = [(name, path, free, total) for name, path, free, total in extras.cache_inodes
           if free < max(INODES_MIN, total * INODES_MIN_SHARE)]
    if few:
        where = "; ".join(f"{name} cache {path}: {free} of {total} inodes left" for name, path, free, total in few)
        return Check("cache-fs", WARN, f"{where}: every compiled kernel is several files, and Inductor fails with "
                     "'No space left on device' when they run out", advice=CACHE_ADVICE)
    if extras.cache_mounts is None:
        return Check("cache-fs", NA, "mounts not known (no /proc/self/mountinfo)")
    remote = [m for m in extras.cache_mounts if is_network(m[2])]
    if remote:
        where = "; ".join(f"{name} cache {path} is on {fstype} ({point})" for name, path, fstype, point in remote)
        return Check("cache-fs", WARN, f"{where}: a network filesystem that every node and job shares, where "
                     "compiles are slow and parallel ranks race on the same files", advice=CACHE_ADVICE)
    kinds = sorted({m[2] for m in extras.cache_mounts})
    return Check("cache-fs", OK, f"Inductor and Triton caches on local filesystems ({', '.join(kinds) or '?'})")


def _verified_check(extras: Extras) -> Check:
    if extras.verified_at is None:
        return Check("verified", NA, "torch.compile not verified on this box yet",
                     advice="`torch-setup verify` (or install) compiles and records it")
    import time

    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(extras.verified_at))
    if extras.verified_holds:
        return Check("verified", OK, f"torch.compile passed here at {when}; nothing it depends on changed since")
    if extras.verified_torch and extras.torch_now and extras.verified_torch != extras.torch_now:
        return Check("verified", WARN, f"torch.compile passed here at {when} with torch {extras.verified_torch}; "
                     f"torch is {extras.torch_now} now: something replaced it since (a later pip install or uv "
                     "sync)", advice="`torch-setup install` puts back a build for this box and compiles afresh")
    return Check("verified", WARN, f"torch.compile passed here at {when}, but something it depends on changed since "
                 "(interpreter, headers, torch, compiler, openssl, settings or the box)",
                 advice="`torch-setup install` (or verify) compiles afresh")


def _openssl_check(facts: Facts, recipes: Recipes, plan: Optional[Plan]) -> Check:
    """Inductor (torch >= 2.8) checksums its precompiled header with the `openssl` program, found on PATH."""
    kept = torch_usable(facts, recipes)
    version = facts.torch.version if kept else ((plan.torch or {}).get("version") if plan else None)
    if facts.host.openssl:
        return Check("openssl", OK, f"openssl at {facts.host.openssl}")
    if not recipes.torch_runs("openssl", version):
        return Check("openssl", NA, f"torch {version} does not run openssl")
    what = f"torch {version}" if version else "the newest torch"
    pkg = _step(plan, "openssl")
    return Check("openssl", PROBLEM, f"no openssl on PATH: {what} checksums its precompiled header with it, and "
                 "torch.compile fails with \"No such file or directory: 'openssl'\"", *pkg,
                 advice="" if pkg[0] else "install the openssl program (or put it on PATH)")


def _gpu_checks(facts: Facts, plan: Optional[Plan]) -> List[Check]:
    """The GPU driver (present, absent, too old) and the installed torch's build against every GPU on the box
    (torchbuild.py): a CPU build on a GPU box or kernels missing for a GPU is a problem, fixed by the plan's
    torch step (the build that covers every GPU, the previous venv kept)."""
    from torch_setup import torchbuild

    out = []
    state = torchbuild.driver_state(facts)
    if state.status == "none":
        out.append(Check("gpu-driver", NA, "no NVIDIA GPU"))
    else:
        out.append(Check("gpu-driver", OK if state.status == "present" else WARN, state.message, advice=state.advice))
    verdict = torchbuild.judge(facts)
    if verdict is None:
        out.append(Check("torch-gpu", NA, "no torch, or no GPU to judge it against"))
    elif verdict.ok:
        out.append(Check("torch-gpu", OK, verdict.message))
    else:
        fix = _step(plan, "torch")
        rollback = next((s for s in plan.todo if s.id == "torch-rollback"), None) if plan else None
        # Not the offline plan's command: which build has kernels for every GPU is install's question to the
        # indexes (a bare `pip install torch` would keep the wrong build, or fetch another without the kernels).
        advice = "`torch-setup install` replaces it with the newest build that has kernels for every GPU"
        out.append(Check("torch-gpu", PROBLEM, verdict.message, fix[0], (),
                         advice=advice + (f"; {rollback.why}" if rollback else "")))
    return out


def _cuda_check(cuda: Optional[str], acc) -> Check:
    if not cuda:
        return Check("torch-cuda", NA, "no CUDA build of torch")
    if acc.kind != "nvidia":
        return Check("torch-cuda", OK, f"CUDA {cuda} build of torch, no NVIDIA GPU: it runs on the CPU")
    if acc.driver_state == "absent":
        return Check("torch-cuda", WARN, f"CUDA {cuda} build of torch; no NVIDIA driver is loaded, so it runs on the "
                     "CPU until one is installed (see gpu-driver)")
    if not acc.driver_version:
        return Check("torch-cuda", WARN, f"CUDA {cuda} build of torch; the NVIDIA driver version is unknown",
                     advice="set TORCH_SETUP_CUDA_DRIVER to the driver version to check it")
    floor = driver_floor(cuda)
    try:
        too_old = floor is not None and Version(acc.driver_version) < floor
    except InvalidVersion:
        too_old = False
    if too_old:
        return Check("torch-cuda", PROBLEM, f"torch is built for CUDA {cuda}, which needs driver >= {floor}; "
                     f"this box has {acc.driver_version}", advice="install a torch built for an older CUDA "
                     "(torch-setup install --torch-backend auto) or upgrade the driver")
    return Check("torch-cuda", OK, f"CUDA {cuda} build runs on driver {acc.driver_version}")


def _disk_check(torch_version: Optional[str], extras: Extras) -> Check:
    if torch_version or extras.disk_free_gb is None:
        return Check("disk", NA, "torch is installed" if torch_version else "not checked")
    if extras.disk_free_gb < TORCH_DISK_GB:
        return Check("disk", WARN, f"{extras.disk_free_gb:.1f} GB free in {extras.disk_path}; a CUDA torch needs "
                     f"about {TORCH_DISK_GB:.0f} GB (a CPU one about 1 GB)")
    return Check("disk", OK, f"{extras.disk_free_gb:.1f} GB free in {extras.disk_path}")


def blocking(results: Sequence[Check]) -> bool:
    return any(c.status == PROBLEM for c in results)


def _cache_paths(system, facts: Facts, inductor: Optional[str], tmp: str) -> List[Tuple[str, str]]:
    """Where Inductor's and Triton's caches are, or will be made."""
    home = system.env.get("HOME") or facts.host.home or "/root"
    triton = system.env.get("TRITON_CACHE_DIR") or os.path.join(home, ".triton", "cache")
    return [("Inductor", inductor or os.path.join(tmp, "torchinductor_")), ("Triton", triton)]


def _cache_inodes(system, facts: Facts, inductor: Optional[str], tmp: str) -> List[Tuple[str, str, int, int]]:
    """The free and total inodes of the filesystem each cache is (or will be) on: the nearest existing directory."""
    out = []
    for name, path in _cache_paths(system, facts, inductor, tmp):
        where = path
        while where not in ("", "/") and not system.exists(where):
            where = os.path.dirname(where)
        counts = system.inodes_free(where or "/")
        if counts:
            out.append((name, path, counts[0], counts[1]))
    return out


def _cache_mounts(system, facts: Facts, inductor: Optional[str], tmp: str):
    """Where Inductor's and Triton's caches are (or will be made), and the filesystem holding each."""
    from torch_setup import mounts

    text = system.read_text("/proc/self/mountinfo")
    if not text:
        return None
    table = mounts.parse(text)
    out = []
    for name, path in _cache_paths(system, facts, inductor, tmp):
        m = mounts.holding(system.realpath(path), table)
        if m is not None:
            out.append((name, path, m.fstype, m.point))
    return out


def gather_extras(system, facts: Facts, venv: str, check_index: bool = True, env=None) -> Extras:
    """The IO doctor needs beyond facts: free disk, whether the index answers, the Inductor cache's age, the last
    passed verification (`env`: what the plan sets for the compile, CXX/CC of a newer compiler)."""
    ex = Extras()
    home = facts.host.home or "/"
    path = os.path.abspath(home + venv[1:] if venv == "~" or venv.startswith("~/") else venv)
    while path not in ("", "/") and not system.exists(path):
        path = os.path.dirname(path)
    ex.disk_path = path or "/"
    ex.disk_free_gb = system.disk_free_gb(ex.disk_path)
    user = system.env.get("USER") or system.env.get("LOGNAME") or ("root" if facts.host.is_root else "")
    tmp = system.env.get("TMPDIR") or "/tmp"  # torch: tempfile.gettempdir()/torchinductor_USER
    cache = system.env.get("TORCHINDUCTOR_CACHE_DIR") or (os.path.join(tmp, f"torchinductor_{user}") if user else None)
    ex.cache_mounts = _cache_mounts(system, facts, cache, tmp)
    ex.cache_inodes = _cache_inodes(system, facts, cache, tmp)
    if cache and system.exists(cache):
        ex.cache_dir, ex.cache_mtime = cache, system.mtime(cache)
        if facts.torch.location:
            ex.torch_mtime = system.mtime(os.path.join(facts.torch.location, "torch", "version.py"))
    if facts.python.executable:
        from torch_setup import record

        last = record.last(system, facts, facts.python.executable)
        if last:
            ex.verified_at = last.get("when")
            ex.verified_torch, ex.torch_now = last.get("torch"), facts.torch.version
            ex.verified_holds = record.lookup(system, facts, facts.python.executable, env or {}) is not None
    if facts.python.in_venv and facts.python.prefix:
        ex.guard_pins = system.read_text(guard.constraints_path(facts.python.prefix))
    if check_index and not facts.torch.version:
        from torch_setup.wheels.indexes import PYPI, configured, mask
        from torch_setup.wheels.trust import from_config

        conf = configured(env=system.env, pip_config=facts.config.pip)  # the index install would ask first
        url = conf.index.url if conf.index else PYPI
        ex.index_url = mask(url)
        trust = from_config(system.env, facts.config.pip)  # the certificates install would trust
        ex.index_error = system.http_error(url.rstrip("/") + "/torch/", timeout=3, trust=trust)
    return ex
