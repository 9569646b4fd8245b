"""The plan: a pure function of facts, recipes and the request. Ordered steps with a status, argv commands, root,
and the needs each step provides (what doctor's fixes and explain's fix steps are sliced by)."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

from packaging.version import InvalidVersion, Version

from torch_setup.errors import UnsupportedError
from torch_setup.facts.model import Facts
from torch_setup.recipes import NEEDS as RECIPE_NEEDS
from torch_setup.recipes import Manager, Platform, Recipes
from torch_setup.masking import mask_text
from torch_setup.request import Request

# What a step can provide: the recipe needs (package tables), what comes with a C++ compiler, and the rest.
# "venv" is venv support (ensurepip); "environment" is a venv or environment to install torch into (PEP 668's fix).
NEEDS = ("python", "headers", "venv", "cxx", "c-compiler", "openmp", "ca", "openssl", "compiler-upgrade", "uv",
         "environment", "torch")
WITH_CXX = frozenset({"cxx", "c-compiler", "openmp"})  # g++ brings gcc and libgomp on every recipe's platform


@dataclass(frozen=True)
class Command:
    argv: Tuple[str, ...]
    env: Dict[str, str] = field(default_factory=dict)

    def display(self) -> str:
        """For people and logs: credentials in index URLs masked."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        # A script sent with -c shows as its first line: the whole text is in `plan --json`.
        words = ["<script: " + a.strip().splitlines()[0].strip('"') + ">" if "\n" in a else shlex.quote(a)
                 for a in self.argv]
        return mask_text((prefix + " " if prefix else "") + " ".join(words))

    def shown(self) -> List[str]:
        return [mask_text(a) for a in self.argv]

    def to_dict(self) -> dict:
        """For `plan --json` and Ansible: argv and the environment it runs with, masked."""
        return {"argv": self.shown(), "env": {k: mask_text(v) for k, v in self.env.items()}}


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    status: str  # "done" or "todo"
    commands: Tuple[Command, ...]
    root: bool
    why: str = ""
    after: Tuple[str, ...] = ()  # steps that must finish first; the others run side by side
    creates: Optional[str] = None  # a directory this step makes, removed again if a later step fails
    checks: Tuple[Tuple[str, ...], ...] = ()  # argv that all exit 0 when the step is done already
    provides: FrozenSet[str] = frozenset()  # NEEDS this step satisfies

    def __post_init__(self):
        assert self.provides <= set(NEEDS), self.provides - set(NEEDS)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status,
                "commands": [c.to_dict() for c in self.commands], "root": self.root, "why": self.why,
                "after": list(self.after), "provides": sorted(self.provides)}


@dataclass(frozen=True)
class Plan:
    steps: Tuple[Step, ...]
    python: Optional[str]  # the interpreter torch.compile will run in once the plan is done
    platform: Optional[str]  # recipe id
    notes: Tuple[str, ...] = ()
    torch: Optional[dict] = None  # the torch choice (index, variant, version, reasons), masked
    env: Dict[str, str] = field(default_factory=dict)  # CXX/CC torch.compile must run with (a newer compiler)

    @property
    def todo(self) -> List[Step]:
        return [s for s in self.steps if s.status == "todo"]

    def step_for(self, need: str) -> Optional[Step]:
        """The todo step that provides `need`, if the plan has one."""
        return next((s for s in self.todo if need in s.provides), None)

    def fixing(self, needs: Iterable[str]) -> List[Step]:
        """The todo steps that provide these needs, and the todo steps those wait for, in plan order."""
        by_id = {s.id: s for s in self.todo}
        wanted = {s.id for s in self.todo if s.provides & set(needs)}
        todo = list(wanted)
        while todo:
            for dep in by_id[todo.pop()].after:
                if dep in by_id and dep not in wanted:
                    wanted.add(dep)
                    todo.append(dep)
        return [s for s in self.todo if s.id in wanted]

    def only(self, steps: Iterable[Step]) -> "Plan":
        """This plan with every other todo step marked done (explain --fix runs a slice)."""
        keep = {s.id for s in steps}
        return replace(self, steps=tuple(s if s.id in keep or s.status == "done" else replace(s, status="done")
                                         for s in self.steps))

    def to_dict(self) -> dict:
        return {"steps": [s.to_dict() for s in self.steps], "python": self.python, "platform": self.platform,
                "torch": self.torch, "env": self.env, "notes": list(self.notes)}


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


def _root(argv: Tuple[str, ...], env: Dict[str, str], facts: Facts) -> Command:
    """As root: run as is; else through sudo, with the environment on the command line (sudo resets it)."""
    if facts.host.is_root or not facts.host.sudo:
        return Command(argv, env)
    return Command(("sudo",) + (("env",) + tuple(f"{k}={v}" for k, v in env.items()) if env else ()) + argv)


def manager_command(facts: Facts, manager: Manager, argv: Tuple[str, ...]) -> Command:
    """A package manager's command: as root (sudo where needed), or as the user for Homebrew and conda."""
    return _root(argv, manager.env, facts) if manager.root else Command(argv, dict(manager.env))


def stale(facts: Facts, manager: Manager) -> bool:
    """Does the manager's refresh run before an install? apt's by the lists' age; the others' always."""
    age = facts.host.apt_lists_age_s if manager.name == "apt" else None
    return bool(manager.refresh) and (manager.refresh_max_age_s is None or age is None
                                      or age > manager.refresh_max_age_s)


def install_commands(facts: Facts, manager: Manager, packages, refreshed: bool = False) -> List[Command]:
    """The manager's refresh when its lists are stale (and no earlier step refreshed them), then its install."""
    commands = [manager_command(facts, manager, manager.refresh)] if stale(facts, manager) and not refreshed else []
    return commands + [manager_command(facts, manager, manager.install_argv(packages))]


def template_values(facts: Facts) -> Dict[str, str]:
    """What recipe templates may name besides {minor}: {arch}, {major}."""
    return {"arch": facts.arch or "", "major": (facts.os.version or "").split(".")[0]}


def expand_home(path: str, facts: Facts) -> str:
    """~ as the planned host's home (`plan --facts` may describe another box)."""
    home = (facts.host.home or "/").rstrip("/")
    return home + path[1:] if path == "~" or path.startswith("~/") else path


def _package_step(facts: Facts, recipes: Recipes, platform: Optional[Platform], needs: List[str],
                  step_id: str = "system-packages", label: str = "System packages") -> Optional[Step]:
    if not platform:
        return None
    manager = recipes.managers[platform.manager]
    minor = facts.python.minor or ""
    packages: List[str] = []
    for need in RECIPE_NEEDS:
        if need in needs:
            packages += platform.packages_for(need, minor, **template_values(facts))
    packages = list(dict.fromkeys(packages))
    what = {"headers": f"Python {minor} headers", "venv": "venv support", "cxx": "a C++ compiler with OpenMP",
            "ca": "CA certificates", "openssl": "openssl (Inductor checksums its precompiled header with it)"}
    title = f"{label}: " + (" ".join(packages) if packages else "nothing missing")
    if not packages:
        return Step(step_id, title, "done", (), manager.root, "headers, compiler and venv support present")
    why = "missing: " + ", ".join(what[n] for n in RECIPE_NEEDS if n in needs)
    return Step(step_id, title, "todo", tuple(install_commands(facts, manager, packages)), manager.root, why,
                provides=provided(needs))


def provided(needs: Iterable[str]) -> FrozenSet[str]:
    """What installing the packages of these recipe needs provides (a C++ compiler brings C and OpenMP)."""
    needs = frozenset(needs)
    return needs | (WITH_CXX if "cxx" in needs else frozenset())


def needs_torch(facts: Facts, recipes: Recipes, request: Request) -> bool:
    return not (torch_usable(facts, recipes) and not request.torch)


def uses_venv(facts: Facts, recipes: Recipes, request: Request) -> bool:
    """Does torch go into a venv of the target? For a system-owned or externally managed Python, or --venv."""
    py = facts.python
    system_owned = py.source == "system" and not py.in_venv
    return needs_torch(facts, recipes, request) and not request.break_system_packages and (
        py.externally_managed or system_owned or (request.venv_given and not py.in_venv))


def make_plan(facts: Facts, recipes: Recipes, options: Request = Request(), choice=None, uv=None) -> Plan:
    """`choice` is the torch to install (torch_choice.Choice), chosen beforehand because that asks indexes;
    without one the step asks for the oldest torch that supports torch.compile on this Python, or newer.
    `uv` (uvtool.UvWheel) is a uv to fetch when the box has none: torch then downloads while apt runs."""
    py = facts.python
    if not py.found:
        raise UnsupportedError(f"no Python interpreter matches --python {py.absent or '(default)'}",
                               hint="--python 3.13 provides one (see --python-from)")
    from torch_setup import refuse

    refuse.check(facts, recipes)  # musl, old glibc, Intel or old macOS, a Python no torch compiles on
    platform = recipes.platform_for_facts(facts)
    requirement = torch_requirement(facts, recipes, options.torch)
    keep_torch = not needs_torch(facts, recipes, options)
    system_owned = py.source == "system" and not py.in_venv
    use_venv = uses_venv(facts, recipes, options)
    venv = expand_home(options.venv, facts) if use_venv else None
    target = os.path.join(venv, "bin", "python") if venv else py.executable
    fetch_uv = uv is not None and not facts.host.uv and not keep_torch
    uv_path = facts.host.uv or (uv.dest(expand_home("~", facts)) if fetch_uv else None)

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
    if fetch_uv:
        from torch_setup.uvtool import FETCH_SCRIPT

        size = f", {uv.size / 1e6:.0f} MB" if uv.size else ""
        steps.append(Step("uv", f"uv {uv.version} (one static binary{size})", "todo",
                          (Command((py.executable, "-c", FETCH_SCRIPT, uv.url, uv.sha256, uv_path)),), False,
                          "no uv here: it installs torch several times faster than pip, and makes the venv "
                          "without waiting for the system packages", provides=frozenset({"uv"})))
    index_args = tuple(choice.index_args()) if choice else ()
    if use_venv:
        if uv_path:
            argv = (uv_path, "venv", "--seed", "--python", py.executable, venv) + index_args
            after = ("uv",) if fetch_uv else ()
        else:
            argv = (py.executable, "-m", "venv", venv)
            after = ("system-packages",) if "venv" in needs else ()
        steps.append(Step(
            "venv", f"Virtual environment {venv}", "todo", (Command(argv),), False,
            ("the target Python is " + ("externally managed (PEP 668)" if py.externally_managed else
                                        "the system's own") + ": torch goes into a venv")
            if py.externally_managed or system_owned else "--venv asks for one", after, venv,
            provides=frozenset({"environment"}),
        ))
    if keep_torch:
        steps.append(Step("torch", f"torch {facts.torch.version}", "done", (), False,
                          f"torch {facts.torch.version} supports torch.compile on Python {py.minor}: kept",
                          provides=frozenset({"torch"})))
    else:
        args = tuple(choice.install_args()) if choice else (requirement,)
        if choice:
            requirement = choice.requirement + (f" ({choice.variant})" if choice.variant else "")
        argv: Tuple[str, ...]
        if uv_path:
            argv = (uv_path, "pip", "install", "--python", target) + args
        else:
            argv = (target, "-m", "pip", "install") + args
        if options.break_system_packages and py.externally_managed:
            argv += ("--break-system-packages",)
        why = (f"torch {facts.torch.version} does not support torch.compile on Python {py.minor}"
               if facts.torch.version else "no torch in the target")
        after = ("venv",) if use_venv else (("uv",) if fetch_uv else ())
        as_root = options.break_system_packages and system_owned and not facts.host.is_root
        command = _root(argv, {}, facts) if as_root else Command(argv)
        steps.append(Step("torch", f"torch ({requirement})", "todo", (command,), as_root, why, after,
                          provides=frozenset({"torch"})))
    if choice:
        notes += list(choice.warnings)
    return Plan(tuple(steps), target, platform.id if platform else None, tuple(notes),
                choice.to_dict() if choice else None)
