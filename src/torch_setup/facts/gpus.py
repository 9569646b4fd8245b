"""Every physical GPU on the box, from the PCI bus, whatever the drivers and CUDA_VISIBLE_DEVICES say.

`/sys/bus/pci/devices/*/{class,vendor,device}` lists each display (0x0300 VGA, 0x0302 3D, 0x0380 other) controller
of NVIDIA (0x10de), AMD (0x1002) and Intel (0x8086), bound to a driver or not -- the approach of uv's Intel XPU
detection (astral-sh/uv#14386) and torchruntime's, which works without the vendor's tools. The kernel driver bound
to a device is the name its `driver` link points at (nvidia, nouveau, amdgpu, i915, xe; none: no driver loaded).

Vendor tools add what the bus cannot say: nvidia-smi the compute capability and name of each NVIDIA GPU, matched to
the PCI device by its `pci.bus_id` (not by order: nvidia-smi's index "is not guaranteed to be consistent between
reboots", NVIDIA's nvidia-smi(1) says of it, and a card it cannot open, or one bound to vfio-pci, is missing
from its rows), KFD's topology the gfx target of each AMD GPU (`/sys/class/kfd/kfd/topology/nodes/*/properties`:
`gfx_target_version 90402` is gfx942, major*10000 + minor*100 + stepping, the stepping in hex; ROCm/rocm-cli#343),
so no ROCm userspace (`rocm_agent_enumerator`) is needed.
Neither the bus nor NVML honours CUDA_VISIBLE_DEVICES, which hides GPUs from CUDA programs only: the torch that is
installed must have kernels for every card, not for the ones this shell shows.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from torch_setup.facts.model import GpuDevice
from torch_setup.host.system import System

PCI_DEVICES = "/sys/bus/pci/devices"
KFD_NODES = "/sys/class/kfd/kfd/topology/nodes"
GPU_CLASSES = ("0x0300", "0x0302", "0x0380")  # PCI base class 03 (display): VGA, 3D, other display controller
VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
# Intel GPUs that torch's XPU build runs on (discrete Arc A/B, Data Center GPU Flex/Max), by PCI device id family,
# as the Linux kernel's drm/intel lists them (include/drm/intel/pciids.h: INTEL_DG2_IDS 0x56xx, INTEL_BMG_IDS
# 0xe20x/0xe21x, INTEL_PVC_IDS 0x0bdx). Integrated graphics (most other 0x8086 display devices) are not counted:
# https://docs.pytorch.org/docs/stable/notes/get_start_xpu.html lists the supported Intel GPUs.
XPU_DEVICE = re.compile(r"^0x(56[0-9a-f]{2}|e2[0-9a-f]{2}|0bd[0-9a-f])$")


def scan_pci(system: System) -> List[GpuDevice]:
    """The GPUs on the PCI bus, in bus order."""
    out = []
    for class_file in sorted(system.glob(PCI_DEVICES + "/*/class")):
        base = os.path.dirname(class_file)
        cls = (system.read_text(class_file) or "").strip().lower()
        vendor = VENDORS.get((system.read_text(base + "/vendor") or "").strip().lower())
        if vendor is None or not any(cls.startswith(c) for c in GPU_CLASSES):
            continue
        link = base + "/driver"
        target = system.realpath(link)
        out.append(GpuDevice(vendor=vendor, pci=os.path.basename(base), pci_class=cls,
                             device_id=(system.read_text(base + "/device") or "").strip().lower(),
                             kernel_driver=os.path.basename(target) if target != link else None))
    return out


SMI_QUERY = "--query-gpu=pci.bus_id,driver_version,compute_cap,name"
BUS_ID = re.compile(r"^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
DRIVER_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")


def normalise_bus_id(text: str) -> Optional[str]:
    """nvidia-smi's `00000000:0A:00.0` (8 hex digits of domain, upper case) or sysfs's `0000:0a:00.0` (at least 4,
    lower case) -> `0000:0a:00.0`; None when it is not a PCI address."""
    m = BUS_ID.match(text.strip())
    if not m:
        return None
    return f"{int(m.group(1), 16):04x}:{m.group(2).lower()}:{m.group(3).lower()}.{m.group(4)}"


def parse_smi_rows(text: str) -> List[Tuple[Optional[str], Optional[str], str, Optional[str]]]:
    """`nvidia-smi --query-gpu=pci.bus_id,driver_version,compute_cap,name --format=csv,noheader`:
    (driver, cc, name, PCI address) per GPU. The bus id, driver and capability columns are each optional (rows of
    `driver_version,compute_cap,name`, or `pci.bus_id,name`, parse too); a header line and nvidia-smi's own
    complaints ("Unable to determine the device handle for GPU3: ...") are no rows."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        bus = normalise_bus_id(parts[0]) if parts else None
        rest = parts[1:] if bus else parts
        driver = rest.pop(0) if rest and DRIVER_VERSION.match(rest[0]) else None
        if bus is None and driver is None:
            continue
        cc = rest.pop(0) if rest and re.match(r"^\d+\.\d+$", rest[0]) else None
        if cc is None and len(rest) > 1 and rest[0] in ("[N/A]", "N/A"):
            rest.pop(0)  # a capability the driver does not report
        rows.append((driver, cc, ", ".join(rest), bus))
    return rows


def gfx_of_target_version(value: int) -> Optional[str]:
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) as a gfx name: 90402 -> gfx942, 90010 ->
    gfx90a, 110000 -> gfx1100; 0 (a CPU node) -> None."""
    if value < 10000:
        return None
    major, minor, stepping = value // 10000, (value // 100) % 100, value % 100
    if minor > 9 or stepping > 15:
        return None
    return f"gfx{major}{minor}{stepping:x}"


def parse_kfd_properties(text: str) -> Tuple[Optional[str], Optional[int], Optional[int]]:
    """(gfx, location_id, domain) of one KFD topology node's `properties` file; gfx None for a CPU node."""
    values: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return gfx_of_target_version(values.get("gfx_target_version", 0)), values.get("location_id"), \
        values.get("domain")


def kfd_gfx(system: System) -> List[Tuple[str, Optional[str]]]:
    """(gfx, PCI address or None) of each GPU node of AMD's kernel driver (KFD), without ROCm userspace."""
    out = []
    for path in sorted(system.glob(KFD_NODES + "/*/properties")):
        gfx, location, domain = parse_kfd_properties(system.read_text(path) or "")
        if gfx is None:
            continue
        pci = None
        if location is not None:  # location_id = bus << 8 | device << 3 | function
            pci = f"{domain or 0:04x}:{location >> 8:02x}:{(location >> 3) & 0x1f:02x}.{location & 7}"
        out.append((gfx, pci))
    return out


def merge(devices: Sequence[GpuDevice], smi: Sequence[Tuple[str, Optional[str], str]],
          kfd: Sequence[Tuple[str, Optional[str]]], rocm_gfx: Optional[str] = None) -> List[GpuDevice]:
    """The PCI devices with what nvidia-smi and KFD add, each matched by PCI address (else in order). A GPU the
    tools list that the bus scan missed (no /sys in a container) is added on its own."""
    out = list(devices)
    nvidia = [i for i, d in enumerate(out) if d.vendor == "nvidia"]
    at_bus = {normalise_bus_id(out[i].pci): i for i in nvidia if out[i].pci}
    filled, in_order = set(), []
    for row in smi:  # by PCI address: a card nvidia-smi cannot list (no handle, vfio-pci) shifts no other
        driver, cc, name, bus = row
        i = at_bus.get(bus) if bus else None
        if i is None:
            in_order.append(row)
        else:
            out[i] = replace(out[i], compute_capability=cc, name=name)
            filled.add(i)
    free = [i for i in nvidia if i not in filled]
    for driver, cc, name, bus in in_order:  # no address, or one the bus scan did not see (no /sys in a container)
        if free and bus is None:
            i = free.pop(0)
            out[i] = replace(out[i], compute_capability=cc, name=name)
        else:
            out.append(GpuDevice("nvidia", pci=bus or "", compute_capability=cc, name=name))
    amd = [i for i, d in enumerate(out) if d.vendor == "amd"]
    unplaced = []
    for gfx, pci in kfd:
        at = next((i for i in amd if out[i].pci == pci), None) if pci else None
        if at is None:
            unplaced.append(gfx)
        else:
            out[at] = replace(out[at], gfx=gfx)
    free = [i for i in amd if out[i].gfx is None]
    for gfx in unplaced:
        if free:
            i = free.pop(0)
            out[i] = replace(out[i], gfx=gfx)
        else:
            out.append(GpuDevice("amd", gfx=gfx))
    if rocm_gfx:  # rocm_agent_enumerator names no bus address: only for AMD GPUs KFD did not describe
        out = [replace(d, gfx=rocm_gfx) if d.vendor == "amd" and d.gfx is None else d for d in out]
        if not any(d.vendor == "amd" for d in out):
            out.append(GpuDevice("amd", gfx=rocm_gfx))
    return out


def lowest_cc(devices: Sequence[GpuDevice]) -> Optional[str]:
    caps = [d.compute_capability for d in devices if d.vendor == "nvidia" and d.compute_capability]
    return min(caps, key=lambda c: tuple(int(x) for x in c.split("."))) if caps else None


def is_xpu(device: GpuDevice) -> bool:
    """An Intel GPU torch's XPU build runs on (a discrete or data-center one, not integrated graphics)."""
    return device.vendor == "intel" and bool(XPU_DEVICE.match(device.device_id))


def describe(device: GpuDevice) -> str:
    """'NVIDIA GeForce GTX 1080 (sm_61) at 0000:01:00.0', for messages."""
    vendor = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}.get(device.vendor, device.vendor)
    what = device.name or f"{vendor} GPU {device.device_id}".strip()
    arch = f"sm_{device.compute_capability.replace('.', '')}" if device.compute_capability else device.gfx
    return what + (f" ({arch})" if arch else "") + (f" at {device.pci}" if device.pci else "")
