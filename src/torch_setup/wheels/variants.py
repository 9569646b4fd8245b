"""The torch build variants (cpu, cu130, rocm7.2, ...): the table of what each needs and serves
(data/torch_variants.toml, every row with its source), and which of them this machine wants.

An NVIDIA driver runs CUDA builds up to the major its version allows (the driver is the fact that matters, not a
CUDA toolkit on the box), and a build only helps a GPU it has kernels for (a driver-only rule hands pre-Turing GPUs
kernel-less cu128/cu130 wheels: astral-sh/uv#14742). A Docker build sees no GPU, so TORCH_SETUP_TORCH_BACKEND
names the variant there.
"""
from __future__ import annotations

import functools
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from torch_setup.errors import UnsupportedError
from torch_setup.wheels.tags import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

BACKEND_ENV = "TORCH_SETUP_TORCH_BACKEND"
DATA = "data/torch_variants.toml"  # package data: read with pkgutil, which also reads inside the zipapp
_BACKEND = re.compile(r"^(auto|cpu|xpu|cu\d{2,3}|rocm\d+(\.\d+)+)$")

# ------------------------------------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # cpu, cuda, rocm, xpu
    cuda: Optional[Version] = None
    driver_linux: Optional[str] = None  # as NVIDIA writes it ("450.80.02"; Version() would print 450.80.2)
    driver_windows: Optional[str] = None
    gfx: Tuple[str, ...] = ()
    torch: SpecifierSet = SpecifierSet("")
    platforms: Tuple[str, ...] = ()
    source: str = ""
    known: bool = True  # False: named by the user, not in the table

    def driver_text(self, system: str) -> Optional[str]:
        return self.driver_windows if system == "windows" else self.driver_linux

    def driver_for(self, system: str) -> Optional[Version]:
        text = self.driver_text(system)
        return Version(text) if text else None


@dataclass(frozen=True)
class Kernels:
    variant: str
    torch: SpecifierSet
    arch: str
    sm: Tuple[Tuple[int, int], ...]
    ptx: Optional[Tuple[int, int]]

    def covers(self, cc: Tuple[int, int]) -> bool:
        """A cubin for X.z runs on X.y with y >= z; PTX for P runs (JIT) on any capability >= P."""
        return any(m == cc[0] and n <= cc[1] for m, n in self.sm) or (self.ptx is not None and self.ptx <= cc)


@dataclass(frozen=True)
class Table:
    variants: Tuple[Variant, ...]
    kernels: Tuple[Kernels, ...]
    pypi_builds: Tuple[Tuple[str, SpecifierSet, str], ...]  # (platform, torch range, variant)
    companions: Dict[str, Dict[str, str]]  # "2.14" -> {"torchvision": "0.29", "torchaudio": "2.11.1"}
    download_gb: float
    installed_gb: float
    download_by_platform: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # platform -> (GB, GB)
    jetson: Tuple["JetsonIndex", ...] = ()

    def cuda_size(self, platform: str) -> Tuple[float, float]:
        """(download GB, installed GB) of PyPI's CUDA torch with its CUDA libraries on `platform`."""
        return self.download_by_platform.get(platform, (self.download_gb, self.installed_gb))

    def jetson_index(self, l4t: Optional[str]) -> Optional["JetsonIndex"]:
        major = (l4t or "").split(".")[0]
        return next((j for j in self.jetson if j.l4t == major), None)

    def variant(self, name: str) -> Optional[Variant]:
        return next((v for v in self.variants if v.name == name), None)

    def kernels_for(self, variant: str, torch: Optional[Version], arch: str) -> List[Kernels]:
        return [k for k in self.kernels if k.variant == variant and k.arch == arch
                and (torch is None or k.torch.contains(torch, prereleases=True))]

    def pypi_build(self, platform: str, torch: Version) -> Optional[str]:
        return next((v for p, spec, v in self.pypi_builds if p == platform and spec.contains(torch, prereleases=True)),
                    None)


@dataclass(frozen=True)
class JetsonIndex:
    """NVIDIA's torch index for one Jetson Linux (L4T) major release: its builds run on that release's CUDA."""
    l4t: str  # "36"
    jetpack: str  # "6"
    cuda: str  # "12.6"
    name: str  # the variant name its wheels get: "jp6-cu126"
    index: str  # the PEP 503 URL


def _cc(text: str) -> Tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


@functools.lru_cache(maxsize=4)
def load_table(path: Optional[str] = None) -> Table:
    """Parse data/torch_variants.toml (cached; read on first use, never at import)."""
    text = Path(path).read_text() if path else pkgutil.get_data("torch_setup", DATA).decode()
    data = tomllib.loads(text)
    variants = tuple(Variant(
        name=v["name"], kind=v["kind"], cuda=Version(v["cuda"]) if "cuda" in v else None,
        driver_linux=v.get("driver_linux"), driver_windows=v.get("driver_windows"),
        gfx=tuple(v.get("gfx", ())), torch=SpecifierSet(v.get("torch", "")), platforms=tuple(v["platforms"]),
        source=v["source"]) for v in data["variant"])
    kernels = tuple(Kernels(k["variant"], SpecifierSet(k.get("torch", "")), k["arch"],
                            tuple(_cc(s) for s in k["sm"]), _cc(k["ptx"]) if k.get("ptx") else None)
                    for k in data["kernels"])
    pypi = tuple((b["platform"], SpecifierSet(b.get("torch", "")), b["variant"]) for b in data["pypi_build"])
    companions = {c["torch"]: {k: c[k] for k in ("torchvision", "torchaudio") if k in c} for c in data["companion"]}
    dl = data["download"]
    by_platform = {d["platform"]: (float(d["cuda_gb"]), float(d["cuda_installed_gb"]))
                   for d in data.get("download_platform", ())}
    jetson = tuple(JetsonIndex(j["l4t"], j["jetpack"], j["cuda"], j["name"], j["index"])
                   for j in data.get("jetson", ()))
    return Table(variants, kernels, pypi, companions, float(dl["cuda_gb"]), float(dl["cuda_installed_gb"]),
                 by_platform, jetson)


# ------------------------------------------------------------------------------------------------ the variant


@dataclass
class Policy:
    """Which builds are wanted, best first, and why."""

    kind: str  # cpu, cuda, rocm, xpu, mps
    preferred: Tuple[str, ...]
    any_build_runs: bool = False  # a CPU target can run any build (a CUDA one is just big)
    skip_pytorch_index: bool = False  # macOS: PyPI's wheels are the ones (with MPS)
    index: Optional[Tuple[str, str]] = None  # (url, display): the platform's own index, asked first (Jetson)
    check_kernels: bool = False
    cc: Optional[Tuple[int, int]] = None
    ccs: Tuple[Tuple[int, int], ...] = ()  # every GPU's capability: a build must have kernels for each
    reasons: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _cc_text(cc: Tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def _covers_any(table: Table, v: Variant, cc, arch: str) -> bool:
    """Some torch of this variant has kernels for `cc` (one capability, or a tuple of them: for all)."""
    ccs = cc if cc and isinstance(cc[0], tuple) else (cc,)
    rows = table.kernels_for(v.name, None, arch)
    return not rows or any(all(k.covers(c) for c in ccs) for k in rows)


def _all_ccs(acc) -> Tuple[Tuple[int, int], ...]:
    caps = {d.compute_capability for d in getattr(acc, "devices", ()) if d.vendor == "nvidia" and d.compute_capability}
    if acc.compute_capability:
        caps.add(acc.compute_capability)
    return tuple(sorted(_cc(c) for c in caps))


def wanted(facts, table: Table, target: Target, backend: str, env: Mapping[str, str]) -> Policy:
    """The builds this machine wants, best first: from --torch-backend, TORCH_SETUP_TORCH_BACKEND, or (auto) the
    accelerator the facts show."""
    origin = "--torch-backend"
    if backend == "auto" and env.get(BACKEND_ENV, "").strip():
        backend, origin = env[BACKEND_ENV].strip().lower(), BACKEND_ENV
    if not _BACKEND.match(backend):
        raise UnsupportedError(f"unknown torch backend {backend!r} ({origin})",
                               hint="use auto, cpu, xpu, cuXYZ (cu130) or rocmX.Y (rocm7.2)")
    acc = facts.accelerator
    cc = _cc(acc.compute_capability) if acc.compute_capability else None
    if backend == "auto":
        return _auto(facts, table, target, cc)
    p = _explicit(table, target, backend, cc, acc)
    p.reasons.insert(0, f"{origin} {backend} chosen by the user" if origin != BACKEND_ENV
                     else f"{BACKEND_ENV}={backend} names the variant (as in a Docker build, where no GPU is seen)")
    return p


def _cpu(reason: str, target: Target, warning: str = "") -> Policy:
    p = Policy("mps" if target.platform_key == "darwin-arm64" else "cpu", ("cpu",),
               any_build_runs=target.system != "darwin", skip_pytorch_index=target.system == "darwin", reasons=[reason])
    if warning:
        p.warnings.append(warning)
    return p


def _auto(facts, table: Table, target: Target, cc) -> Policy:
    acc = facts.accelerator
    if target.system == "darwin":
        return _cpu("macOS: PyPI's torch is the build to use (on Apple silicon it includes the MPS backend)", target)
    if acc.kind == "nvidia" and (acc.driver_state == "absent" or not acc.driver_version) and \
            any(d.vendor == "nvidia" for d in getattr(acc, "devices", ())):
        return _no_driver(table, target, acc)
    if acc.kind == "nvidia":
        return _auto_nvidia(table, target, acc, cc)
    if acc.kind == "xpu":
        xpu = table.variant("xpu")
        if xpu is not None and target.platform_key in xpu.platforms:
            return Policy("xpu", ("xpu",), reasons=[f"Intel GPU ({acc.source or 'detected'}): the XPU build "
                                                    "(https://download.pytorch.org/whl/xpu)"])
    if acc.kind == "jetson":
        return _auto_jetson(table, target, acc)
    if acc.kind == "rocm" and acc.gfx:
        gfxs = sorted({d.gfx for d in getattr(acc, "devices", ()) if d.vendor == "amd" and d.gfx} | {acc.gfx})
        fits = [v for v in table.variants  # kernels for every AMD GPU on the box
                if v.kind == "rocm" and all(g in v.gfx for g in gfxs) and target.platform_key in v.platforms]
        if not fits:
            return _cpu("ROCm GPU seen, but no ROCm build on file runs on it", target,
                        f"no ROCm torch build lists {', '.join(gfxs)} (or none for {target.platform_name}); chose "
                        "cpu -- name one with --torch-backend rocmX.Y to try anyway")
        return Policy("rocm", tuple(v.name for v in fits), reasons=[
            f"AMD GPU {', '.join(gfxs)} ({acc.source or 'detected'}): ROCm builds with kernels for "
            f"{'it' if len(gfxs) == 1 else 'each'}: "
            + ", ".join(v.name for v in fits)])
    hint = ""
    if facts.host.container:
        hint = (f"; inside a container ({facts.host.container}) a GPU is often not visible -- set "
                f"{BACKEND_ENV}=cu130 (or another variant) to choose a GPU build")
    return _cpu("no GPU seen (no NVIDIA driver, no ROCm agent): the CPU build" + hint, target)


def _auto_nvidia(table: Table, target: Target, acc, cc) -> Policy:
    try:
        driver = Version(acc.driver_version or "")
    except InvalidVersion:
        return _cpu("NVIDIA GPU seen without a readable driver version", target,
                    f"NVIDIA driver version {acc.driver_version!r} not understood: chose cpu -- "
                    "name a variant with --torch-backend cuXYZ")
    shown = acc.driver_version  # as the driver reports it: Version() would print 580.159.03 as 580.159.3
    cudas = sorted((v for v in table.variants if v.kind == "cuda" and target.platform_key in v.platforms),
                   key=lambda v: v.cuda, reverse=True)
    runnable = [v for v in cudas if v.driver_for(target.system) and driver >= v.driver_for(target.system)]
    if not runnable:
        oldest = min((v for v in cudas if v.driver_for(target.system)), key=lambda v: v.driver_for(target.system),
                     default=None)
        oldest = oldest.driver_text(target.system) if oldest else None
        return _cpu(f"NVIDIA driver {shown} is older than any CUDA build on file needs", target,
                    f"NVIDIA driver {shown} runs no CUDA torch build (the oldest needs {oldest}): chose cpu")
    reasons = [f"NVIDIA driver {shown} ({acc.source or 'detected'}) runs CUDA builds up to {runnable[0].name} "
               f"(CUDA {runnable[0].cuda.major}.x needs driver >= {runnable[0].driver_text(target.system)}: NVIDIA "
               "CUDA release notes, Table 2)"]
    fits = runnable
    ccs = _all_ccs(acc)
    if cc is not None:
        fits = [v for v in runnable if _covers_any(table, v, ccs or (cc,), target.arch)]
        shown = ", ".join(_cc_text(c) for c in ccs) if len(ccs) > 1 else _cc_text(cc)
        gpus = f" (the lowest of {len(acc.gpus)} GPUs)" if len(acc.gpus) > 1 and len(ccs) <= 1 else ""
        what = f"compute capabilities {shown} (every GPU)" if len(ccs) > 1 else f"compute capability {shown}{gpus}"
        dropped = [v.name for v in runnable if v not in fits]
        if not fits:
            return _cpu(f"GPU {what} has kernels in no CUDA build this driver runs",
                        target, f"no CUDA torch build has kernels for {what}: chose cpu")
        text = f"{what} has kernels in {', '.join(v.name for v in fits)}"
        reasons.append(text + (f"; not in {', '.join(dropped)}" if dropped else ""))
    return Policy("cuda", tuple(v.name for v in fits), check_kernels=cc is not None, cc=cc, ccs=ccs or
                  ((cc,) if cc else ()), reasons=reasons)


def _no_driver(table: Table, target: Target, acc) -> Policy:
    """An NVIDIA card with no driver loaded: torch-setup installs no driver. The plan takes the CUDA builds a
    current driver (>= 580, what one installs today) runs, so torch uses the GPU once the driver is in; without
    one it runs on the CPU meanwhile. The capability is unknown without the driver (nvidia-smi): a card older
    than Turing (sm_75) needs --torch-backend cu126."""
    cudas = sorted((v for v in table.variants if v.kind == "cuda" and target.platform_key in v.platforms),
                   key=lambda v: v.cuda, reverse=True)
    floors = [f for f in (v.driver_for(target.system) for v in cudas) if f is not None]
    newest_floor = max(floors) if floors else None
    fits = [v for v in cudas if v.driver_for(target.system) == newest_floor]
    cards = [d for d in acc.devices if d.vendor == "nvidia"]
    where = ", ".join(f"{d.pci} ({d.device_id})" if d.pci else d.device_id for d in cards)
    reason = (f"NVIDIA GPU(s) on the PCI bus ({where}) with no NVIDIA driver loaded: the CUDA builds a current "
              f"driver (>= {newest_floor}) runs ({', '.join(v.name for v in fits)}), so torch uses the GPU once the "
              "driver is installed; until then it runs on the CPU")
    warning = (f"NVIDIA GPU at {where} has no driver loaded. torch-setup installs no GPU driver: install NVIDIA's "
               f"driver (>= {newest_floor}; Debian/Ubuntu: nvidia-driver or nvidia-open) and reboot. Its compute "
               "capability is unknown until then: for a card older than Turing (sm_75) use --torch-backend cu126")
    p = Policy("cuda", tuple(v.name for v in fits), reasons=[reason])
    p.warnings.append(warning)
    return p


def _auto_jetson(table: Table, target: Target, acc) -> Policy:
    """A Jetson: NVIDIA's index for its L4T release (PyPI's and the PyTorch index's aarch64 CUDA builds are made for
    server GPUs and the desktop driver; on L4T 36 they cannot use the integrated GPU)."""
    gpu = (acc.gpus or ["Jetson"])[0]
    row = table.jetson_index(acc.l4t)
    if row is None:
        return _cpu(f"{gpu}, Jetson Linux {acc.l4t or '(release unknown)'}: no torch index on file for it", target,
                    f"no torch index on file for Jetson Linux {acc.l4t or '(release unknown)'}: chose cpu -- name "
                    "NVIDIA's index for this JetPack with --index-url")
    p = Policy("jetson", (row.name,), skip_pytorch_index=True, index=(row.index, f"the Jetson AI Lab index for "
                                                                            f"JetPack {row.jetpack} ({row.name})"))
    p.reasons.append(f"{gpu}, Jetson Linux {acc.l4t} (JetPack {row.jetpack}, CUDA {row.cuda}): torch from NVIDIA's "
                     f"Jetson AI Lab index {row.index}; PyPI's aarch64 torch is a CPU or CUDA 13 build, which "
                     f"cannot use the Jetson GPU on L4T {row.l4t}")
    return p


def _explicit(table: Table, target: Target, name: str, cc, acc) -> Policy:
    if name == "cpu":
        p = _cpu("the CPU build", target)
        p.reasons = []
        return p
    v = table.variant(name)
    warnings = []
    if v is None:
        warnings.append(f"{name} is not in torch-setup's variant table: asking its index anyway")
        kind = "cuda" if name.startswith("cu") else "rocm" if name.startswith("rocm") else "xpu"
        v = Variant(name, kind, known=False)
    elif target.platform_key not in v.platforms:
        warnings.append(f"{name} has no builds for {target.platform_name} on file")
    if v.kind == "cuda" and acc.kind == "nvidia" and acc.driver_version and v.driver_for(target.system):
        try:
            if Version(acc.driver_version) < v.driver_for(target.system):
                warnings.append(f"NVIDIA driver {acc.driver_version} is older than {name} needs "
                                f"({v.driver_text(target.system)}): torch will not see the GPU")
        except InvalidVersion:
            pass
    if v.kind == "cuda" and cc is not None and v.known and not _covers_any(table, v, cc, target.arch):
        warnings.append(f"{name} has no kernels for compute capability {_cc_text(cc)}")
    if v.kind == "rocm" and acc.gfx and v.known and acc.gfx not in v.gfx:
        warnings.append(f"{name} does not list {acc.gfx} among its GPU architectures")
    return Policy(v.kind, (name,), warnings=warnings)
