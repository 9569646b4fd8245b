"""The accelerator, as an ordered chain of sources, overrides first (the order uv's accelerator.rs uses).

The NVIDIA *driver* version is what decides which CUDA builds can run; a CUDA toolkit on the box is a different
fact and is not looked at.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import List, Optional, Tuple

from torch_setup.facts import gpus
from torch_setup.facts.model import AcceleratorFacts, GpuDevice
from torch_setup.host.system import System

DRIVER = re.compile(r"^\d+\.\d+(\.\d+)?$")


def parse_sys_module_version(text: str) -> Optional[str]:
    """/sys/module/nvidia/version: '580.95.05'."""
    v = text.strip()
    return v if DRIVER.match(v) else None


def parse_proc_driver_version(text: str) -> Optional[str]:
    """/proc/driver/nvidia/version: 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  Thu ...'."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            m = re.search(r"\s(\d+\.\d+(?:\.\d+)?)\s", line + " ")
            if m:
                return m.group(1)
    return None


def parse_nvidia_smi_csv(text: str) -> Tuple[Optional[str], List[str], Optional[str]]:
    """`nvidia-smi --query-gpu=[pci.bus_id,]driver_version,compute_cap,name --format=csv,noheader`: one line per GPU.

    Returns (driver, gpu names, lowest compute capability): the lowest one decides which builds have kernels
    for every GPU on the box.
    """
    drivers, names, caps = [], [], []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts and gpus.normalise_bus_id(parts[0]):
            parts = parts[1:]  # the row's pci.bus_id (facts/gpus.py matches rows to PCI devices by it)
        if not parts or not DRIVER.match(parts[0]):
            continue
        drivers.append(parts[0])
        if len(parts) > 1 and re.match(r"^\d+\.\d+$", parts[1]):
            caps.append(parts[1])
        if len(parts) > 2:
            names.append(", ".join(parts[2:]))
    if not drivers:
        return None, [], None
    cap = min(caps, key=lambda c: tuple(int(x) for x in c.split("."))) if caps else None
    return drivers[0], names, cap


def parse_rocm_agents(text: str) -> Optional[str]:
    """`rocm_agent_enumerator`: gfx names, one a line; gfx000 is the CPU agent. Lowest GPU arch wins."""
    archs = sorted({ln.strip() for ln in text.splitlines() if re.match(r"^gfx[0-9a-f]+$", ln.strip())} - {"gfx000"})
    return archs[0] if archs else None


def parse_ldconfig_libcuda(text: str) -> bool:
    return any(re.search(r"\blibcuda\.so(\.1)?\s", ln) for ln in text.splitlines())


CAPABILITY_ENV = "TORCH_SETUP_CUDA_CAPABILITY"  # "6.1" or "6.1,9.0": the GPUs' capabilities, declared


def detect(system: System, machine: str, system_name: str) -> AcceleratorFacts:
    """The accelerator and every physical GPU (facts/gpus.py). An NVIDIA card without a driver is kind nvidia
    with driver_state "absent": the plan says what that means, rather than planning a CPU box silently.
    TORCH_SETUP_CUDA_CAPABILITY declares the GPUs' compute capabilities (one per GPU, in bus order), beside
    TORCH_SETUP_CUDA_DRIVER, where no GPU can be asked (a Docker build for a given GPU)."""
    facts = _detect(system, machine, system_name)
    declared = [c.strip() for c in system.env.get(CAPABILITY_ENV, "").split(",") if c.strip()]
    if not declared or not all(re.match(r"^\d+\.\d+$", c) for c in declared):
        return facts
    nvidia = [d for d in facts.devices if d.vendor == "nvidia"]
    others = [d for d in facts.devices if d.vendor != "nvidia"]
    if len(nvidia) == len(declared):
        nvidia = [replace(d, compute_capability=c) for d, c in zip(nvidia, declared)]
    else:
        nvidia = [GpuDevice("nvidia", name=f"declared by {CAPABILITY_ENV}", compute_capability=c) for c in declared]
    devices = nvidia + others
    kind = facts.kind if facts.kind == "nvidia" else "nvidia"
    return replace(facts, kind=kind, devices=devices, compute_capability=gpus.lowest_cc(devices),
                   driver_state=facts.driver_state or ("present" if facts.driver_version else "absent"))


def _detect(system: System, machine: str, system_name: str) -> AcceleratorFacts:
    env = system.env
    devices = gpus.scan_pci(system) if system_name == "Linux" else []
    override = env.get("TORCH_SETUP_CUDA_DRIVER")
    if override:
        return AcceleratorFacts(kind="nvidia", driver_version=override, source="TORCH_SETUP_CUDA_DRIVER",
                                devices=devices, driver_state="present",
                                compute_capability=gpus.lowest_cc(devices),
                                gpus=[d.name for d in devices if d.vendor == "nvidia" and d.name])
    if env.get("TORCH_SETUP_ROCM_GFX"):
        return AcceleratorFacts(kind="rocm", gfx=env["TORCH_SETUP_ROCM_GFX"], source="TORCH_SETUP_ROCM_GFX",
                                devices=devices)
    if system_name == "Linux" and machine in ("aarch64", "arm64"):
        from torch_setup.facts import jetson

        # Before the driver probes: a Jetson's display driver can load an `nvidia` module whose version says
        # nothing about which CUDA builds its GPU runs.
        found = jetson.detect(system)
        if found is not None:  # L4T lists its libcuda (/usr/lib/aarch64-linux-gnu/nvidia) in ld.so.conf.d
            ld = system.run(["/sbin/ldconfig", "-p"], timeout=20)
            return replace(found, libcuda=parse_ldconfig_libcuda(ld.stdout) if ld.ok else None)
    facts = None
    text = system.read_text("/sys/module/nvidia/version")
    if text and parse_sys_module_version(text):
        facts = AcceleratorFacts("nvidia", parse_sys_module_version(text), "/sys/module/nvidia/version")
    if facts is None:
        text = system.read_text("/proc/driver/nvidia/version")
        if text and parse_proc_driver_version(text):
            facts = AcceleratorFacts("nvidia", parse_proc_driver_version(text), "/proc/driver/nvidia/version")
    smi_rows: list = []
    if facts is not None or any(d.vendor == "nvidia" for d in devices) or not devices:
        smi = system.run(["nvidia-smi", gpus.SMI_QUERY, "--format=csv,noheader"], timeout=20)
        if smi.ok:
            smi_rows = gpus.parse_smi_rows(smi.stdout)
            driver, names, cap = parse_nvidia_smi_csv(smi.stdout)
            if driver:
                facts = replace(facts or AcceleratorFacts("nvidia", driver, "nvidia-smi"), gpus=names,
                                compute_capability=cap)
    kfd = gpus.kfd_gfx(system) if any(d.vendor == "amd" for d in devices) or not devices else []
    rocm_gfx = None
    if facts is None and not kfd and (any(d.vendor == "amd" for d in devices) or not devices):
        rocm = system.run(["rocm_agent_enumerator"], timeout=20)
        rocm_gfx = parse_rocm_agents(rocm.stdout) if rocm.ok else None
    devices = gpus.merge(devices, smi_rows, kfd, rocm_gfx)
    if facts is not None:
        ld = system.run(["/sbin/ldconfig", "-p"], timeout=20)
        return replace(facts, libcuda=parse_ldconfig_libcuda(ld.stdout) if ld.ok else None, devices=devices,
                       driver_state="present", compute_capability=gpus.lowest_cc(devices) or facts.compute_capability)
    nvidia = [d for d in devices if d.vendor == "nvidia"]
    if nvidia:
        bound = sorted({d.kernel_driver for d in nvidia if d.kernel_driver})
        return AcceleratorFacts("nvidia", None, "PCI " + ", ".join(d.pci for d in nvidia)
                                + (f" (kernel driver: {', '.join(bound)})" if bound else " (no kernel driver)"),
                                devices=devices, driver_state="absent")
    amd = sorted({d.gfx for d in devices if d.vendor == "amd" and d.gfx})
    if amd:
        source = "KFD topology" if kfd else "rocm_agent_enumerator"
        return AcceleratorFacts(kind="rocm", gfx=amd[0], source=source, devices=devices)
    if any(gpus.is_xpu(d) for d in devices):
        return AcceleratorFacts(kind="xpu", source="PCI " + ", ".join(d.pci for d in devices if gpus.is_xpu(d)),
                                devices=devices)
    if system_name == "Darwin" and machine == "arm64":
        return AcceleratorFacts(kind="mps", source="Apple silicon")
    return AcceleratorFacts(devices=devices)
