"""The torch that is there, against every GPU on the box: does its build have kernels for each of them?

The build's arch list is what `torch._C._cuda_getArchFlags()` returns (the `sm_XY` cubins and `compute_XY` PTX it
was compiled with, or `gfxNNN` for ROCm), read from the installed `libtorch_python.so` by the probe without
importing torch (facts.torch.arch_list); where it could not be read, the kernels table of
data/torch_variants.toml for the build's variant stands in, and the message says so.

Coverage follows NVIDIA's compatibility rules (CUDA C++ Programming Guide, "Binary Compatibility" and
"Application Compatibility", https://docs.nvidia.com/cuda/cuda-c-programming-guide/#binary-compatibility): a
cubin for X.y runs on X.z with z >= y and never on another major; PTX for compute_XY is JIT-compiled for any
capability >= X.Y; architecture-specific targets (sm_90a, compute_90a) run only on X.Y itself, family-specific
ones (sm_100f) on X.z with z >= y. torch's own warning ("... with CUDA capability sm_XX is not compatible with
the current PyTorch installation", torch/cuda/__init__.py `_check_cubins`) asks only for a cubin of the same major;
this check also asks for its minor (a cubin for 8.9 does not run on 8.6). The string lists the cubins; a build
records its PTX there as compute_XY where it has one (PyPI's 2.9-2.15 x86_64 builds list none).

Problems, each with its fix in the plan (a torch that covers every GPU, reinstalled with the previous environment
kept): a CPU build on a GPU box (often a later `pip install -r requirements.txt` that pulled PyPI's CPU torch),
kernels missing for a GPU, a ROCm build without the GPU's gfx.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from packaging.version import InvalidVersion, Version

from torch_setup.facts import gpus as gpu_facts
from torch_setup.facts.model import Facts, GpuDevice

_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([af]?)$")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    problem: str = ""  # cpu-build, kernels-missing, rocm-gfx-missing, wrong-build
    missing: Tuple[str, ...] = ()  # the GPUs (described) the build has no kernels for
    from_table: bool = False  # the arch list came from data/torch_variants.toml, not from the build


def parse_arch(entry: str) -> Optional[Tuple[str, int, int, str]]:
    """'sm_61' -> ('sm', 6, 1, ''), 'compute_120' -> ('compute', 12, 0, ''), 'sm_90a' -> ('sm', 9, 0, 'a')."""
    m = _ARCH.match(entry.strip())
    return (m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)) if m else None


def covers(arch_list: Sequence[str], cc: Tuple[int, int]) -> bool:
    """Does a build with these arch entries run kernels on a GPU of compute capability `cc`?"""
    for entry in arch_list:
        parsed = parse_arch(entry)
        if parsed is None:
            continue
        kind, major, minor, suffix = parsed
        if suffix == "a":
            if (major, minor) == cc:
                return True
        elif kind == "sm" or suffix == "f":
            if major == cc[0] and minor <= cc[1]:
                return True
        elif (major, minor) <= cc:  # PTX: JIT-compiled for any capability at or above it
            return True
    return False


def _cc(text: str) -> Tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def nvidia_devices(facts: Facts) -> List[GpuDevice]:
    acc = facts.accelerator
    devices = [d for d in acc.devices if d.vendor == "nvidia"]
    if not devices and acc.compute_capability:  # facts without a device list (an older detect, an override)
        devices = [GpuDevice("nvidia", name=", ".join(acc.gpus) or "NVIDIA GPU",
                             compute_capability=acc.compute_capability)]
    return devices


def table_arch_list(variant: str, version: str, arch: str) -> Optional[List[str]]:
    """The arch list data/torch_variants.toml states for a build, as get_arch_list() would print it."""
    from torch_setup.wheels.variants import load_table

    try:
        public = Version(Version(version).public)
    except InvalidVersion:
        return None
    rows = load_table().kernels_for(variant, public, arch)
    if not rows:
        return None
    out = [f"sm_{m}{n}" for m, n in rows[0].sm]
    if rows[0].ptx:
        out.append(f"compute_{rows[0].ptx[0]}{rows[0].ptx[1]}")
    return out


def variant_of(facts: Facts) -> str:
    """cu132, rocm7.2, xpu or cpu: the installed build, from its local label or torch/version.py."""
    t = facts.torch
    label = Version(t.version).local if t.version and _valid(t.version) else None
    if label:
        return str(label)
    if t.cuda:
        return "cu" + t.cuda.replace(".", "")[:3]
    if t.hip:
        return "rocm" + ".".join(t.hip.split(".")[:2])
    return "xpu" if t.xpu else "cpu"


def _valid(v: str) -> bool:
    try:
        Version(v)
        return True
    except InvalidVersion:
        return False


def judge(facts: Facts) -> Optional[Verdict]:
    """The installed torch against the box's GPUs; None where there is nothing to judge (no torch, no GPU)."""
    t, acc = facts.torch, facts.accelerator
    if not t.version:
        return None
    build = variant_of(facts)
    if acc.kind == "nvidia":
        devices = nvidia_devices(facts)
        shown = ", ".join(gpu_facts.describe(d) for d in devices) or "NVIDIA GPU"
        if not t.cuda:
            what = "a CPU build" if build == "cpu" else f"a {build} build"
            return Verdict(False, f"torch {t.version} is {what}: it cannot use the NVIDIA GPU(s) here ({shown}); a "
                           "later `pip install` (a requirements file, `uv sync`) often swaps a CUDA torch for "
                           "PyPI's or another index's CPU one", "cpu-build" if build == "cpu" else "wrong-build")
        arch_list, from_table = t.arch_list, False
        if not arch_list:
            arch_list, from_table = table_arch_list(build, t.version, facts.arch or "x86_64"), True
        if not arch_list:
            return Verdict(True, f"torch {t.version}: its arch list could not be read, and no table row covers "
                           f"{build} for {facts.arch}", from_table=True)
        where = "data/torch_variants.toml" if from_table else "the installed build"
        known = [d for d in devices if d.compute_capability]
        missing = tuple(gpu_facts.describe(d) for d in known if not covers(arch_list, _cc(d.compute_capability or "")))
        listed = " ".join(arch_list)
        if missing:
            return Verdict(False, f"torch {t.version} has no kernels for {', '.join(missing)}: its build lists "
                           f"{listed} ({where}); CUDA fails with \"no kernel image is available for execution on "
                           "the device\"", "kernels-missing", missing, from_table)
        if not known:
            return Verdict(True, f"torch {t.version} lists {listed} ({where}); the GPUs' compute capability is "
                           "unknown (no nvidia-smi)", from_table=from_table)
        return Verdict(True, f"torch {t.version} has kernels for every GPU ({shown}): {listed} ({where})",
                       from_table=from_table)
    if acc.kind == "rocm":
        amd = [d for d in acc.devices if d.vendor == "amd" and d.gfx] or \
            ([GpuDevice("amd", gfx=acc.gfx)] if acc.gfx else [])
        if not t.hip and not build.startswith("rocm"):
            return Verdict(False, f"torch {t.version} is a {build} build: it cannot use the AMD GPU(s) here "
                           f"({', '.join(gpu_facts.describe(d) for d in amd) or 'AMD GPU'})",
                           "cpu-build" if build == "cpu" else "wrong-build")
        if t.arch_list:
            missing = tuple(gpu_facts.describe(d) for d in amd if d.gfx not in {a.split(":")[0] for a in t.arch_list})
            if missing:
                return Verdict(False, f"torch {t.version} has no kernels for {', '.join(missing)}: its build lists "
                               f"{' '.join(t.arch_list)}", "rocm-gfx-missing", missing)
        return Verdict(True, f"torch {t.version} ({build}) for the AMD GPU(s)")
    if acc.kind == "xpu" and not t.xpu and build != "xpu":
        return Verdict(False, f"torch {t.version} is a {build} build: it cannot use the Intel GPU(s) here",
                       "cpu-build" if build == "cpu" else "wrong-build")
    return None


@dataclass(frozen=True)
class DriverState:
    status: str  # present, absent, too-old, none
    message: str
    advice: str = ""
    devices: Tuple[str, ...] = field(default_factory=tuple)


DRIVER_ADVICE = ("torch-setup installs no GPU driver: install NVIDIA's driver (580 or newer runs every CUDA build "
                 "of current torch; Debian/Ubuntu: the distribution's nvidia-driver or nvidia-open packages, or "
                 "NVIDIA's CUDA repository, https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/), "
                 "reboot, then run torch-setup again")


def driver_state(facts: Facts) -> DriverState:
    """present / absent / too-old (no CUDA build on file runs on it) / none (no NVIDIA GPU)."""
    acc = facts.accelerator
    devices = tuple(gpu_facts.describe(d) for d in nvidia_devices(facts))
    if acc.kind != "nvidia":
        return DriverState("none", "no NVIDIA GPU")
    if acc.driver_state == "absent" or not acc.driver_version:
        return DriverState("absent", f"NVIDIA GPU(s) on the PCI bus ({', '.join(devices)}), but no NVIDIA driver is "
                           f"loaded ({acc.source or 'no driver version'}): torch cannot use them", DRIVER_ADVICE,
                           devices)
    from torch_setup.wheels.variants import load_table

    floors = [Version(v.driver_linux) for v in load_table().variants if v.kind == "cuda" and v.driver_linux]
    try:
        too_old = bool(floors) and Version(acc.driver_version) < min(floors)
    except InvalidVersion:
        too_old = False
    if too_old:
        return DriverState("too-old", f"NVIDIA driver {acc.driver_version} is older than any CUDA build of torch on "
                           f"file needs (>= {min(floors)})", DRIVER_ADVICE.replace("install", "upgrade to", 1),
                           devices)
    return DriverState("present", f"NVIDIA driver {acc.driver_version} for {len(devices) or 'the'} GPU(s)"
                       + (f": {', '.join(devices)}" if devices else ""), devices=devices)
