"""NVIDIA Jetson (L4T): told apart from server aarch64 by its own files, not by an NVIDIA driver version.

A Jetson runs Jetson Linux (L4T): `/etc/nv_tegra_release` names the release ("# R36 (release), REVISION: 4.3, ...",
JetPack 6.2 = L4T 36.4.3) and the device tree's `compatible` list names the Tegra chip ("nvidia,tegra234" = Orin).
Its integrated GPU is driven by nvgpu, not by the desktop driver whose version decides which CUDA builds run; PyPI's
aarch64 CUDA builds (CUDA 13) cannot use it on L4T 36. Sources: docs/sources.md [S91] (the index), [S92] (the files).
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

from torch_setup.facts.model import AcceleratorFacts

RELEASE = "/etc/nv_tegra_release"
COMPATIBLE = "/proc/device-tree/compatible"

# Tegra chip (device-tree compatible) -> (module family, CUDA compute capability): NVIDIA's CUDA GPU table
# (https://developer.nvidia.com/cuda-gpus, "Jetson" rows).
CHIPS = {
    "tegra210": ("Nano/TX1", "5.3"),
    "tegra186": ("TX2", "6.2"),
    "tegra194": ("Xavier", "7.2"),
    "tegra234": ("Orin", "8.7"),
    "tegra264": ("Thor", "11.0"),
}


def parse_nv_tegra_release(text: str) -> Optional[str]:
    """'# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ...' -> '36.4.3'."""
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)", text or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_compatible(text: str) -> Optional[str]:
    """The device tree's NUL-separated `compatible` list -> the Tegra chip ('tegra234'), if any."""
    for entry in (text or "").replace("\x00", "\n").split():
        m = re.match(r"^nvidia,(tegra\d+)$", entry.strip())
        if m:
            return m.group(1)
    return None


def chip_info(chip: Optional[str]) -> Tuple[str, Optional[str]]:
    family, cc = CHIPS.get(chip or "", ("", None))
    return family, cc


def detect(system) -> Optional[AcceleratorFacts]:
    """A Jetson's facts (kind "jetson", its L4T release, the chip's compute capability), or None off a Jetson."""
    release = parse_nv_tegra_release(system.read_text(RELEASE) or "")
    chip = parse_compatible(system.read_text(COMPATIBLE) or "")
    if release is None and chip is None:
        return None
    family, cc = chip_info(chip)
    name = f"Jetson {family}" if family else "Jetson"
    gpus = [f"{name} ({chip})" if chip else name]
    return AcceleratorFacts(kind="jetson", source=RELEASE if release else COMPATIBLE, gpus=gpus,
                            compute_capability=cc, l4t=release)
