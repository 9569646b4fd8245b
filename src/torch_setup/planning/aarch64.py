"""What the plan says on Linux aarch64 beyond the torch choice: the flags Inductor compiles with there.

torch's Inductor picks -march for aarch64 itself (torch/_inductor/cpp_builder.py `_get_linux_aarch64_arch_flag`,
[S72]; read from the torch 2.13.0 and 2.15.0 wheels, absent from 2.10.0): with a g++ older than 13 on a CPU with
SVE and BF16 (Graviton 3/4, NVIDIA Grace, Neoverse V1/V2) it passes -march=armv8.6-a+sve+bf16 (+sve2), otherwise
-march=native; TORCHINDUCTOR_CPP_MARCH overrides it. gcc before 13 has miscompiled and crashed on Inductor's SVE
code on Neoverse (pytorch/pytorch#137775, gcc 10.2). A Jetson Orin's Cortex-A78AE has no SVE: no note there.
"""
from __future__ import annotations

from typing import List, Optional

from packaging.version import InvalidVersion, Version

from torch_setup.facts.model import Facts
from torch_setup.planning.compiler import gcc_major

EXPLICIT_MARCH_FROM = Version("2.13")  # the oldest torch wheel read that has the rule (2.10.0 has not)


def _gcc_that_runs(facts: Facts, recipes) -> Optional[int]:
    """The major of the g++ Inductor will run: the one found, else the one the platform's packages install."""
    c = facts.compiler
    if c.path:
        return gcc_major(c) if c.family == "gcc" else None
    if c.cxx not in ("g++", "c++"):
        return None  # $CXX names another compiler, not installed yet: not the platform's g++
    platform = recipes.os_platform_for_facts(facts)
    return platform.compiler_default if platform else None


def notes(facts: Facts, recipes, choice=None) -> List[str]:
    if (facts.os.system or "Linux") != "Linux" or facts.arch not in ("aarch64", "arm64"):
        return []
    if facts.accelerator.kind == "jetson":
        return []
    if choice is not None:
        try:
            if Version(choice.version) < EXPLICIT_MARCH_FROM:
                return []
        except InvalidVersion:
            pass
    major = _gcc_that_runs(facts, recipes)
    if major is None or major >= 13:
        return []
    return [f"aarch64 with g++ {major} (older than 13): torch >= 2.13's Inductor compiles with "
            "-march=armv8.6-a+sve+bf16 instead of -march=native on CPUs with SVE and BF16 (Graviton 3/4, Grace), "
            "and gcc before 13 has miscompiled and crashed on that SVE code (pytorch/pytorch#137775): a g++ >= 13 "
            "as CXX avoids it, TORCHINDUCTOR_CPP_MARCH sets the flag (torch/_inductor/cpp_builder.py [S72])"]
