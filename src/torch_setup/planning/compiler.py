"""The compiler fix: a gcc too old for Inductor's C++20 replaced by the platform's newer one, or conda-forge's
compiler in a conda environment; CXX/CC then set for the verification and the user."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional

from torch_setup.facts.model import CompilerFacts, Facts
from torch_setup.planning.predict import env_manager, facts_after, show_env
from torch_setup.planning.steps import WITH_CXX, Command, Step
from torch_setup.recipes import resolve
from torch_setup.recipes.load import ADVISED_COMPILER, Recipes, fill


@dataclass(frozen=True)
class CompilerFix:
    """A compiler step, and the environment (CXX, CC) Inductor and Triton must run with afterwards."""
    step: Step
    env: Dict[str, str]
    facts: Facts  # the facts once the step ran (compiler.cxx = env CXX, toolchain_ok)


def gcc_major(compiler: CompilerFacts) -> Optional[int]:
    if compiler.family not in ("gcc", None) or not compiler.version:
        return None
    m = re.match(r"(\d+)", compiler.version)
    return int(m.group(1)) if m else None


def compiler_steps(facts: Facts, recipes: Recipes) -> Optional[CompilerFix]:
    """A compiler step where the platform's plain `packages.cxx` is not the fix: a gcc too old for Inductor's
    C++20 (the one found, or the one packages.cxx would install: RHEL 8's gcc 8, Leap 15's gcc 7) gets the
    platform's `cxx_upgrade`; a conda Python gets conda-forge's compiler in its own environment (when the host
    has conda, mamba or micromamba). None when the compiler works or packages.cxx is the fix."""
    c = facts.compiler
    if c.toolchain_ok:
        return None
    py = facts.python
    conda = facts.host.conda
    if py.found and py.source == "conda" and conda:
        cplat = recipes.source_platform("conda", arch=facts.arch or None, system=facts.os.system or None)
        if cplat:
            prefix = py.base_prefix or py.prefix or ""
            values = resolve.values(facts, py.minor or "", prefix)
            manager = env_manager(recipes, cplat, conda)
            packages = cplat.packages_for("cxx", values)
            env = {k: fill(v, **values) for k, v in cplat.cxx_env.items()}
            step = Step(
                "compiler", f"C++ compiler in the conda environment {prefix}: " + " ".join(packages), "todo",
                (Command(manager.install_argv(packages, prefix=prefix), dict(manager.env)),), False,
                "a conda Python gets conda-forge's compiler in its own environment, as the user"
                + (f"; then {show_env(env)}" if env else ""), provides=WITH_CXX)
            return CompilerFix(step, env, facts_after(facts, py, cxx=True, ca=False, cxx_env=env, keep_torch=True))
    platform = recipes.os_platform_for_facts(facts)
    if not platform or not platform.cxx_upgrade:
        return None
    major = gcc_major(c)
    if major is not None:
        if major >= platform.compiler_min:
            return None
        why = (f"g++ {c.version} cannot build Inductor's C++20 (gcc >= {platform.compiler_min} does; "
               f"{ADVISED_COMPILER} is advised)")
    elif not c.path and platform.compiler_default is not None and platform.compiler_default < platform.compiler_min:
        why = (f"no C++ compiler, and {platform.id}'s own g++ is gcc {platform.compiler_default}, too old for "
               f"Inductor's C++20 (gcc >= {platform.compiler_min})")
    else:
        return None
    upgrade = platform.cxx_upgrade
    manager = recipes.managers[platform.manager]
    values = resolve.values(facts, py.minor or "")
    packages = tuple(fill(p, **values) for p in upgrade.packages)
    env = {k: fill(v, **values) for k, v in upgrade.env.items()}
    step = Step("compiler", f"C++ compiler: {' '.join(packages)} ({show_env(env)})", "todo",
                         tuple(resolve.install_commands(facts, manager, packages)), manager.root,
                         why + f"; then {show_env(env)}", provides=WITH_CXX | {"compiler-upgrade"})
    return CompilerFix(step, env, facts_after(facts, py, cxx=True, ca=False, cxx_env=env, keep_torch=True))


def needs_cxx(facts: Facts, recipes: Recipes) -> bool:
    """The plain packages.cxx are wanted: no working compiler, and no compiler_steps fix instead."""
    return not facts.compiler.toolchain_ok and not compiler_steps(facts, recipes)
