"""The interpreter torch is for, as wheel tags: built from the target's facts (version, free-threading, OS, arch,
libc), not from this process, which may be another Python on another host."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import FrozenSet, List, Optional, Sequence, Tuple

from packaging import tags as ptags

from torch_setup.errors import UnsupportedError

@dataclass(frozen=True)
class Target:
    """The interpreter torch is for: version, ABI and platform tags, built from facts, not from this process."""

    major: int
    minor: int
    micro: Optional[int]
    free_threaded: bool
    system: str  # linux, darwin, windows
    arch: str  # x86_64, aarch64 (Linux), arm64 (macOS), amd64 (Windows)
    platforms: Tuple[str, ...]  # platform tags, best first
    tags: FrozenSet[ptags.Tag]

    @property
    def minor_str(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def label(self) -> str:  # "3.13t"
        return self.minor_str + ("t" if self.free_threaded else "")

    @property
    def full(self) -> str:
        return f"{self.minor_str}.{self.micro}" if self.micro is not None else self.minor_str

    @property
    def abi(self) -> str:
        return f"cp{self.major}{self.minor}" + ("t" if self.free_threaded else "")

    @property
    def platform_key(self) -> str:
        return f"{self.system}-{self.arch}"

    @property
    def platform_name(self) -> str:
        return {"linux": "Linux", "darwin": "macOS", "windows": "Windows"}[self.system] + " " + self.arch


def _linux_platforms(arch: str, libc: Optional[str], version: Optional[str]) -> List[str]:
    """manylinux_2_N down to the oldest glibc manylinux knows (with the legacy aliases), or musllinux_1_N."""
    nums = [int(x) for x in re.findall(r"\d+", version or "")][:2]
    if libc == "musl" and len(nums) == 2:
        return [f"musllinux_{nums[0]}_{m}_{arch}" for m in range(nums[1], -1, -1)] + [f"linux_{arch}"]
    glibc_minor = nums[1] if len(nums) == 2 else 28
    lowest = 5 if arch in ("x86_64", "i686") else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    out = []
    for m in range(glibc_minor, lowest - 1, -1):
        out.append(f"manylinux_2_{m}_{arch}")
        if m in legacy and (m == 17 or arch in ("x86_64", "i686")):
            out.append(f"{legacy[m]}_{arch}")
    return out + [f"linux_{arch}"]


def _tags(major: int, minor: int, ft: bool, platforms: Sequence[str]) -> FrozenSet[ptags.Tag]:
    """CPython tags for the target: cpXY-cpXY[t]-plat, abi3 (not for free-threaded builds), none, py3X."""
    interp = f"cp{major}{minor}"
    out = {ptags.Tag(interp, interp + ("t" if ft else ""), p) for p in platforms}
    if not ft:
        out |= {ptags.Tag(f"cp{major}{m}", "abi3", p) for m in range(2, minor + 1) for p in platforms}
    out |= {ptags.Tag(interp, "none", p) for p in platforms}
    out |= set(ptags.compatible_tags((major, minor), interp, list(platforms)))
    return frozenset(out)


def target_from(facts) -> Tuple[Target, List[str]]:
    """The Target for facts.python: found, or predicted (a Python the plan provides: its version is the minor,
    or the floor torch needs, and its micro unknown)."""
    warnings: List[str] = []
    py = facts.python
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", py.version or "")
    ft = bool(py.free_threaded)
    if not m:
        raise UnsupportedError("the target Python's version is not known",
                               hint="name it with --python 3.13 (or a path to the interpreter)")
    major, minor = int(m.group(1)), int(m.group(2))
    micro = int(m.group(3)) if m.group(3) else None
    system = (facts.os.system or "Linux").lower()
    raw = (facts.arch or "x86_64").lower()
    if system == "darwin":
        arch = "arm64" if raw in ("arm64", "aarch64") else "x86_64"
        nums = [int(x) for x in re.findall(r"\d+", facts.os.version or "")][:2]
        if not nums:
            nums = [14, 0]
            warnings.append("macOS version unknown: assumed 14.0")
        platforms = list(ptags.mac_platforms((nums[0], nums[1] if len(nums) > 1 else 0), arch))
    elif system == "windows":
        arch = "arm64" if raw in ("arm64", "aarch64") else "amd64"
        platforms = [f"win_{arch}"]
    else:
        system = "linux"
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(raw, raw)
        libc = facts.libc.name
        if libc != "musl" and not facts.libc.version:
            warnings.append("glibc version unknown: assumed 2.28 (what current torch wheels need)")
        platforms = _linux_platforms(arch, libc, facts.libc.version)
    return Target(major, minor, micro, ft, system, arch, tuple(platforms), _tags(major, minor, ft, platforms)), warnings
