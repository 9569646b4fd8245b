"""What torch.compile's GPU path (Inductor's Triton kernels) will need, checked where no GPU is visible.

A `docker build` sees no GPU, so its verification compiles on the CPU only. For a CUDA build of torch this says
what the first compile on a GPU will use, from facts and files (torch is not imported):
- Triton's C compiler (it builds a small launcher module with it) and Python.h: the plan's own facts;
- libcuda.so.1: from ldconfig's cache, else TRITON_LIBCUDA_PATH; in a container it usually is not there at build
  time, because the NVIDIA container runtime mounts the driver's libraries when the container starts;
- Triton's bundled ptxas (triton/backends/nvidia/bin/ptxas), which turns its PTX into GPU code.
Nothing here fails a command: `verify --gpu` at the first start on a GPU host proves the path."""
from __future__ import annotations

import os
from typing import List, Optional

from torch_setup.facts.model import Facts
from torch_setup.host.system import System

CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")  # Docker's and podman's


def in_container(system: System) -> bool:
    return any(system.exists(m) for m in CONTAINER_MARKS) or bool(system.env.get("container"))


def libcuda(system: System, facts: Facts) -> dict:
    where = system.env.get("TRITON_LIBCUDA_PATH", "")
    if where:
        found = system.exists(os.path.join(where, "libcuda.so.1")) or system.exists(os.path.join(where, "libcuda.so"))
        return {"found": found, "how": "TRITON_LIBCUDA_PATH",
                "line": f"libcuda.so.1: TRITON_LIBCUDA_PATH={where}" + ("" if found else " (not there now)")}
    if facts.accelerator.libcuda:
        return {"found": True, "how": "ldconfig", "line": "libcuda.so.1: in ldconfig's cache"}
    if in_container(system):
        return {"found": False, "how": "container runtime",
                "line": "libcuda.so.1: not here now; in a container the NVIDIA container runtime mounts it at start "
                        "(docker run --gpus all, or the nvidia runtime class)"}
    return {"found": False, "how": None,
            "line": "libcuda.so.1: not in ldconfig's cache and TRITON_LIBCUDA_PATH unset: the NVIDIA driver's "
                    "libraries are needed on the GPU host"}


def ptxas(system: System, facts: Facts) -> Optional[str]:
    loc = facts.torch.location
    if not loc:
        return None
    # facts.torch.location is the folder torch is installed in (site-packages), triton's wheel beside it
    path = os.path.join(loc, "triton", "backends", "nvidia", "bin", "ptxas")
    return path if system.exists(path) else None


def readiness(system: System, facts: Facts, cuda: Optional[str] = None) -> dict:
    """The `gpu_path` key of verify's and install's JSON: what the GPU path will need and whether it is there.
    `cuda`: the build's CUDA as the verification read it (else the facts')."""
    py, cc = facts.python, facts.compiler
    lib = libcuda(system, facts)
    tool = ptxas(system, facts)
    lines: List[str] = [
        f"Triton's C compiler: {cc.cc}" if cc.cc else "Triton's C compiler: none ($CC, gcc, clang): install gcc",
        f"Python.h: {py.include_dir}" if py.has_headers else f"Python.h: missing from {py.include_dir}",
        lib["line"],
        f"ptxas: {tool}" if tool else "ptxas: Triton's bundled ptxas (triton/backends/nvidia/bin/ptxas) not found "
                                      "next to torch",
    ]
    return {"cuda": cuda or facts.torch.cuda, "c_compiler": cc.cc or None, "python_h": bool(py.has_headers),
            "libcuda": {"found": lib["found"], "how": lib["how"]}, "ptxas": tool,
            "ready": bool(cc.cc and py.has_headers and tool), "lines": lines,
            "prove": "verify --gpu on the first start on a GPU host"}


def applies(v) -> bool:
    """A CUDA build of torch (verify.Verification `v`) that compiled on no GPU: the case this report is for."""
    return bool(v.cuda) and not any(str(r.get("device")).startswith("cuda") for r in v.results)
