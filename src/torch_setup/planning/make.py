"""The plan: a pure function of facts, recipes and the request (planning/steps.py has what it is made of)."""
from __future__ import annotations

import os
from typing import List, NamedTuple, Optional

from packaging.version import InvalidVersion, Version

from torch_setup.errors import UnsupportedError
from torch_setup.facts.model import Facts
from torch_setup.planning.steps import Command, Plan, Step, provided
from torch_setup.recipes import resolve
from torch_setup.recipes.load import NEEDS as RECIPE_NEEDS
from torch_setup.recipes.load import Platform, Recipes
from torch_setup.request import Request


def torch_requirement(facts: Facts, recipes: Recipes, user_range: str = "") -> str:
    """'torch>=2.6' for the target Python, from recipes/torch.toml; refuse a Python no torch compiles on."""
    py = facts.python
    row = recipes.torch_for(py.minor or "", py.free_threaded)
    label = f"{py.minor}{'t' if py.free_threaded else ''}"
    if row is None:
        known = sorted({t.python for t in recipes.torch_python if not t.free_threaded}, key=Version)
        raise UnsupportedError(
            f"no torch release supports torch.compile on Python {label}",
            hint=f"use a Python from {known[0]} to {known[-1]} (--python {known[-1]})",
        )
    if row.min_python and Version(py.version or "0") < Version(row.min_python):
        raise UnsupportedError(
            f"torch.compile on Python {label} needs CPython >= {row.min_python}; this is {py.version}",
            hint=f"upgrade the interpreter to {row.min_python} or later ({row.source})",
        )
    spec = f">={row.min_torch}" + (f",<={row.max_torch}.99" if row.max_torch else "")
    return "torch" + (user_range if user_range else spec)


def torch_usable(facts: Facts, recipes: Recipes) -> bool:
    """Is the installed torch one whose torch.compile supports the target Python?"""
    if not facts.torch.version:
        return False
    row = recipes.torch_for(facts.python.minor or "", facts.python.free_threaded)
    if row is None:
        return False
    try:
        v = Version(Version(facts.torch.version).base_version)
    except InvalidVersion:
        return False
    return v >= Version(row.min_torch) and (not row.max_torch or v < Version(row.max_torch + ".99"))


def _package_step(facts: Facts, recipes: Recipes, platform: Optional[Platform], needs: List[str],
                  step_id: str = "system-packages", label: str = "System packages") -> Optional[Step]:
    if not platform:
        return None
    manager = recipes.managers[platform.manager]
    minor = facts.python.minor or ""
    packages: List[str] = []
    for need in RECIPE_NEEDS:
        if need in needs:
            packages += platform.packages_for(need, resolve.values(facts, minor))
    packages = list(dict.fromkeys(packages))
    what = {"headers": f"Python {minor} headers", "venv": "venv support", "cxx": "a C++ compiler with OpenMP",
            "ca": "CA certificates", "openssl": "openssl (Inductor checksums its precompiled header with it)"}
    title = f"{label}: " + (" ".join(packages) if packages else "nothing missing")
    if not packages:
        return Step(step_id, title, "done", (), manager.root, "headers, compiler and venv support present")
    why = "missing: " + ", ".join(what[n] for n in RECIPE_NEEDS if n in needs)
    return Step(step_id, title, "todo", tuple(resolve.install_commands(facts, manager, packages)), manager.root, why,
                provides=provided(needs))


def needs_torch(facts: Facts, recipes: Recipes, request: Request) -> bool:
    """No torch, one torch.compile does not support here, a --torch range, or one that cannot use the GPUs."""
    return not (torch_usable(facts, recipes) and not request.torch) or (
        repair_needed(facts) is not None and not request.keep_torch)


def repair_needed(facts: Facts):
    """The torchbuild.Verdict when the installed torch cannot use the box's GPUs (a CPU build on a CUDA box,
    kernels missing for a GPU), else None."""
    from torch_setup import torchbuild

    verdict = torchbuild.judge(facts)
    return verdict if verdict is not None and not verdict.ok else None


ROLLBACK_SUFFIX = ".torch-setup-previous"  # the venv as it was before torch-setup replaced its torch


def _guard(facts: Facts, options: Request, choice, venv: Optional[str], target: str, kept: bool) -> Optional[Step]:
    """guard.py's step: a venv on a GPU box pins the torch build it holds (kept torch: when not pinned yet)."""
    from torch_setup import guard

    prefix = venv or (facts.python.prefix if facts.python.in_venv else None)
    if not prefix or not guard.wanted(facts):
        return None
    if kept and (guard.listed(facts.config.pip, prefix) or repair_needed(facts) is not None):  # pinned, or wrong
        return None
    names = guard.companion_names(choice.extras if choice else options.with_)
    return guard.step(target, prefix, names, () if kept else ("torch",))


def uses_venv(facts: Facts, recipes: Recipes, request: Request) -> bool:
    """Does torch go into a venv of the target? For a system-owned or externally managed Python, or --venv."""
    py = facts.python
    system_owned = py.source == "system" and not py.in_venv
    return needs_torch(facts, recipes, request) and not request.break_system_packages and (
        py.externally_managed or system_owned or (request.venv_given and not py.in_venv))


class _Basis(NamedTuple):
    """What make_plan decides before its steps (and where it refuses)."""
    platform: Optional[Platform]
    requirement: str
    keep_torch: bool
    system_owned: bool
    use_venv: bool
    venv: Optional[str]
    target: Optional[str]
    no_uv: bool
    fetch_uv: bool
    uv_path: Optional[str]
    needs: List[str]
    notes: List[str]


def refuse(facts: Facts, recipes: Recipes, options: Request = Request(), uv=None) -> None:
    """Raise what make_plan refuses without a torch choice (no Python, a refusal of recipes/refusals.toml, no
    recipe for what the host lacks, a HOME that is no path), before the indexes are asked which torch."""
    _basis(facts, recipes, options, None, uv)


def _basis(facts: Facts, recipes: Recipes, options: Request, choice, uv) -> _Basis:
    py = facts.python
    if not py.found:
        raise UnsupportedError(f"no Python interpreter matches --python {py.absent or '(default)'}",
                               hint="--python 3.13 provides one (see --python-from)")
    from torch_setup.recipes import refuse as refusals

    refusals.check(facts, recipes)  # musl, old glibc, Intel or old macOS, a Python no torch compiles on
    platform = recipes.platform_for_facts(facts)
    requirement = torch_requirement(facts, recipes, options.torch)
    keep_torch = not needs_torch(facts, recipes, options)
    system_owned = py.source == "system" and not py.in_venv
    use_venv = uses_venv(facts, recipes, options)
    venv = resolve.expand_home(options.venv, facts) if use_venv else None
    target = os.path.join(venv, "bin", "python") if venv else py.executable
    from torch_setup.wheels import uv as uvtool

    no_uv = uvtool.refused(facts.config.env)  # pip, even with a uv on PATH or cached by an earlier run
    fetch_uv = uv is not None and not facts.host.uv and not keep_torch and not no_uv
    uv_path = None if no_uv else facts.host.uv or (uv.dest(resolve.expand_home("~", facts)) if fetch_uv else None)

    needs = []
    if not py.has_headers:
        needs.append("headers")
    if use_venv and not py.venv_ok and not uv_path:  # uv makes venvs without ensurepip
        needs.append("venv")
    if not facts.compiler.toolchain_ok:
        needs.append("cxx")
    if not facts.host.ca_bundle:
        needs.append("ca")
    kept_or_chosen = facts.torch.version if keep_torch else (choice.version if choice else None)  # None: newest
    if not facts.host.openssl and recipes.torch_runs("openssl", kept_or_chosen):
        needs.append("openssl")
    notes: List[str] = []
    headers_from_system = py.source == "system"
    if "headers" in needs and not headers_from_system:
        needs.remove("headers")
        notes.append(f"Python.h is missing from {py.include_dir}, and a {py.source} Python is not fixed by system "
                     "packages: reinstall that interpreter with its headers")
    if not platform and needs:
        raise UnsupportedError(
            f"no recipe for {facts.os.name or facts.os.id} {facts.os.version}".rstrip(),
            hint="add one with --recipes DIR (see recipes/debian.toml), or install these yourself: "
                 + ", ".join(needs),
        )

    return _Basis(platform, requirement, keep_torch, system_owned, use_venv, venv, target, no_uv, fetch_uv, uv_path,
                  needs, notes)


def make_plan(facts: Facts, recipes: Recipes, options: Request = Request(), choice=None, uv=None) -> Plan:
    """`choice` is the torch to install (torch_choice.Choice), chosen beforehand because that asks indexes;
    without one the step asks for the oldest torch that supports torch.compile on this Python, or newer.
    `uv` (uvtool.UvWheel) is a uv to fetch when the box has none: torch then downloads while apt runs."""
    py = facts.python
    (platform, requirement, keep_torch, system_owned, use_venv, venv, target,
     no_uv, fetch_uv, uv_path, needs, notes) = _basis(facts, recipes, options, choice, uv)
    steps: List[Step] = []
    # CA certificates and openssl (a program on PATH) are the box's, whatever the Python's source: they come
    # from the OS's own recipe.
    os_platform = recipes.os_platform_for_facts(facts)
    box_needs = [n for n in ("ca", "openssl") if n in needs]
    if os_platform and platform is not os_platform and box_needs:
        needs = [n for n in needs if n not in box_needs]
        steps.append(_package_step(facts, recipes, os_platform, box_needs))
        env_step = _package_step(facts, recipes, platform, needs, "env-packages", "Env packages")
        if env_step and env_step.status == "todo":  # a conda env's own packages
            steps.append(env_step)
    else:
        pkg = _package_step(facts, recipes, platform, needs)
        if pkg:
            steps.append(pkg)
    ca_env = dict(getattr(choice, "env", ())) if choice else {}  # the CA file the torch choice trusted: pip, uv
    if fetch_uv:
        from torch_setup.wheels.uv import FETCH_SCRIPT

        size = f", {uv.size / 1e6:.0f} MB" if uv.size else ""
        steps.append(Step("uv", f"uv {uv.version} (one static binary{size})", "todo",
                          (Command((py.executable, "-c", FETCH_SCRIPT, uv.url, uv.sha256, uv_path), ca_env),),
                          False,
                          "no uv here: it installs torch several times faster than pip, and makes the venv "
                          "without waiting for the system packages", provides=frozenset({"uv"})))
    index_args = tuple(choice.index_args(uv=bool(uv_path))) if choice else ()
    if use_venv:
        if uv_path:
            argv = (uv_path, "venv", "--seed", "--python", py.executable, venv) + index_args
            after = ("uv",) if fetch_uv else ()
            command = Command(argv, ca_env)
        else:
            argv = (py.executable, "-m", "venv", venv)
            after = ("system-packages",) if "venv" in needs else ()
            command = Command(argv)
        steps.append(Step(
            "venv", f"Virtual environment {venv}", "todo", (command,), False,
            ("the target Python is " + ("externally managed (PEP 668)" if py.externally_managed else
                                        "the system's own") + ": torch goes into a venv")
            if py.externally_managed or system_owned else "--venv asks for one", after, venv,
            provides=frozenset({"environment"}),
        ))
    repair = repair_needed(facts) if facts.torch.version and not options.keep_torch else None
    if keep_torch:
        from torch_setup import torchbuild

        verdict = torchbuild.judge(facts)
        steps.append(Step("torch", f"torch {facts.torch.version}", "done", (), False,
                          f"torch {facts.torch.version} supports torch.compile on Python {py.minor}"
                          + (" and has kernels for every GPU" if verdict is not None and verdict.ok
                             and facts.accelerator.kind == "nvidia" else "")
                          + (f": kept (--keep-torch), though {verdict.message}" if verdict is not None
                             and not verdict.ok else ": kept"),
                          provides=frozenset({"torch"})))
    else:
        args = tuple(choice.install_args(uv=bool(uv_path))) if choice else (requirement,)
        if choice:
            requirement = choice.requirement + (f" ({choice.variant})" if choice.variant else "")
        if uv_path:
            argv = (uv_path, "pip", "install", "--python", target) + args
        else:
            argv = (target, "-m", "pip", "install") + args
        if options.break_system_packages and py.externally_managed:
            argv += ("--break-system-packages",)
        why = (f"torch {facts.torch.version} does not support torch.compile on Python {py.minor}"
               if facts.torch.version else "no torch in the target")
        after = ("venv",) if use_venv else (("uv",) if fetch_uv else ())
        if repair is not None:
            why = repair.message + ("; a build with kernels for every GPU goes into the venv" if use_venv
                                    else "; replaced by a build with kernels for every GPU")
            if py.in_venv and py.prefix and not use_venv:
                keep = py.prefix.rstrip("/") + ROLLBACK_SUFFIX
                steps.append(Step(
                    "torch-rollback", f"Keep the environment as it is in {keep}", "todo",
                    (Command(("sh", "-c", 'rm -rf "$2" && cp -a "$1" "$2"', "sh", py.prefix, keep)),), False,
                    f"torch {facts.torch.version} is replaced: the venv as it was stays in {keep} (to roll back: "
                    f"rm -rf {py.prefix} && mv {keep} {py.prefix})"))
                after = after + ("torch-rollback",)
            elif not use_venv:  # (a new venv replaces nothing: the old torch stays where it is)
                notes.append(f"torch {facts.torch.version} is replaced in {py.prefix}; to go back: pip install "
                             f"torch=={facts.torch.version} from the index it came from")
        as_root = options.break_system_packages and system_owned and not facts.host.is_root
        if not uv_path and py.in_venv and not use_venv:  # its own pin lifted for this run (guard.py)
            from torch_setup import guard

            ca_env = dict(ca_env, **guard.for_replacement(facts.config.pip, py.prefix))
        command = resolve.root_command(argv, ca_env, facts) if as_root else Command(argv, ca_env)
        steps.append(Step("torch", f"torch ({requirement})", "todo", (command,), as_root, why, after,
                          provides=frozenset({"torch"})))
    guard_step = _guard(facts, options, choice, venv if use_venv else None, target, keep_torch)
    if guard_step:
        steps.append(guard_step)
    if choice:
        notes += list(choice.warnings)
    from torch_setup.planning import aarch64

    notes += aarch64.notes(facts, recipes, choice)
    return Plan(tuple(steps), target, platform.id if platform else None, tuple(notes),
                choice.to_dict() if choice else None)
