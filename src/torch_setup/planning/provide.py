"""Provide what the box lacks before the plan proper: a Python of the asked version, a compiler new enough.

Pure functions of facts and recipes, like `plan.make_plan`. Each returns steps (argv commands) and the facts as
they will be once those steps ran, so the rest of the plan is `make_plan` of those facts:

    prep = prepare(facts, recipes, request)            # refusals, python_steps, compiler_steps
    choice = choose_torch(prep.facts, ...)               # the target's wheel tags are the provided Python's
    plan = compose(prep, make_plan(prep.facts, recipes, request, choice, uv))

as `pipeline.plan_host` does for every command. `facts` there is what `detect` says about the box: the target,
or `python.found = False` where `--python 3.13` found none (then `facts.host_python` is the box's python3).
The provided interpreter is a predicted one (`PythonFacts.predicted`): it is never run while planning.

Python providers (`--python-from`):

- system: the platform's package manager, where the recipe lists the version in `pythons`, after enabling the
  recipe's `repos` for it (EPEL + CRB on RHEL 9/10, the deadsnakes PPA on an Ubuntu LTS). One install brings the
  interpreter, its headers, venv support, the compiler and CA certificates: the command the recipe's
  `source` cites for that platform.
- uv: `uv python install X.Y` (python-build-standalone: headers included, nothing to build), then `uv venv` at
  the plan's venv path, so the interpreter's path is known before its patch release is.
- pyenv: pyenv's suggested build environment [S33] and `pyenv install --skip-existing X.Y`, then a venv from it.
- conda: a new environment with `python=X.Y` (and conda-forge's compiler where the box has none), as the user.

The default (`default_provider`): the source of the box's active Python when it is one of these (a conda env, a
pyenv version, a uv-managed or Homebrew Python: keep to it), else the package manager where the platform packages
the version, else uv.

Getting uv where there is none. `pip install --user uv` fails on PEP 668 boxes (Debian 12+, Ubuntu 23.04+, Arch,
Tumbleweed, Homebrew) and `--break-system-packages` is not ours to pass; uv's `curl ... | sh` installer needs curl
(absent from minimal images) and GitHub, which mirrors and air-gapped sites block, while the index pip is
configured with is what a box that installs torch reaches anyway. So, in this order: the uv wheel the pipeline
resolved from the user's indexes or PyPI (`uvtool.UvWheel`: a stdlib script checks its sha256 and unpacks the
static binary; no pip, no venv module), else the platform's own uv package (Homebrew), else uv from PyPI in a
small venv of its own (~/.local/share/torch-setup/uv) made by the box's python3 (on Debian/Ubuntu after
`python3-venv`, which holds ensurepip) -- "into an isolated environment", as uv's installation docs advise for
PyPI installs. The last one serves `plan --facts` and sites whose index the pipeline could not ask.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

from torch_setup.planning.compiler import compiler_steps, needs_cxx
from torch_setup.planning.predict import box_python, env_manager, facts_after, predicted, show_env
from torch_setup.planning.steps import WITH_CXX, Command, Plan, Step, provided
from torch_setup.recipes import refuse, resolve
from torch_setup.errors import UnsupportedError
from torch_setup.facts.model import Facts, PythonFacts
from torch_setup.recipes.load import PYTHON, Platform, Recipes, fill
from torch_setup.request import DEFAULT_VENV, PythonRequest, Request

PYTHON_NEEDS = frozenset({"python", "headers", "venv", "environment"})  # what a provided interpreter brings
UV_MIN_PYTHON = "3.8"  # uv's wheels on PyPI: Requires-Python >= 3.8 (https://pypi.org/project/uv/)
UV_TOOL_VENV = "~/.local/share/torch-setup/uv"  # the venv that carries uv when nothing better is at hand
PYENV_ROOT = "~/.pyenv"  # pyenv's default root, where a fresh checkout goes
PYENV_GIT = "https://github.com/pyenv/pyenv.git"
CONDA_ENV = "~/.conda/envs/torch-py{nodot}"  # in conda's default user envs_dirs: `conda activate torch-py313` works


@dataclass(frozen=True)
class Provision:
    """Steps that provide a Python, and what the plan continues with."""
    steps: Tuple[Step, ...]
    python: str  # the interpreter the rest of the plan (and the verification) uses
    provider: str  # system, uv, pyenv, conda; "" when the asked Python is there already
    facts: Facts  # the facts once the steps ran: give these to make_plan
    env: Dict[str, str] = field(default_factory=dict)  # CXX/CC/OMP_PREFIX for the verification and the user


@dataclass(frozen=True)
class Prepared:
    """What comes before make_plan: provisioning steps, in order, and the facts make_plan is to see."""
    steps: Tuple[Step, ...]
    facts: Facts
    provider: str = ""
    env: Dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- entry points

def prepare(facts: Facts, recipes: Recipes, request: Request = Request(), *, uv=None) -> Prepared:
    """Refuse what cannot work, provide the asked Python when the box lacks it, and fix a compiler too old.
    `uv`: a uvtool.UvWheel to fetch when the box has no uv."""
    box_only = replace(facts, python=PythonFacts())
    refuse.check(box_only, recipes)  # musl, old glibc, Intel or old macOS: before anything about Pythons
    steps: List[Step] = []
    env: Dict[str, str] = {}
    chosen = ""
    wanted = request.python if request.python.is_version else PythonRequest.parse(facts.python.absent)
    py = facts.python
    if wanted.is_version and not (py.found and wanted.accepts(py.version, py.free_threaded)):
        prov = python_steps(facts, recipes, wanted, request.provider, venv=request.venv, uv=uv)
        steps += prov.steps
        facts, env, chosen = prov.facts, dict(prov.env), prov.provider
    refuse.check(facts, recipes)  # the target Python: too new, free-threaded outside torch's support, ...
    fix = compiler_steps(facts, recipes)
    if fix:
        steps.append(fix.step)
        facts = fix.facts
        env.update(fix.env)
    return Prepared(tuple(_chain(steps)), facts, chosen, env)


def compose(prepared: Prepared, plan: Plan) -> Plan:
    """The provisioning steps, then the plan's, which wait for them (the runner starts a step with no `after`
    at once); the environment to set goes into the notes."""
    steps = list(prepared.steps)
    last = (steps[-1].id,) if steps else ()
    steps += [s if s.after or not last else replace(s, after=last) for s in plan.steps]
    notes = list(plan.notes)
    if prepared.env:
        notes.append("torch.compile here needs " + show_env(prepared.env) + ": the verification sets it; set it for "
                     "your own runs too (export " + show_env(prepared.env) + ")")
    return replace(plan, steps=tuple(steps), notes=tuple(notes), env={**plan.env, **prepared.env})


# ------------------------------------------------------------------------------------------------------- pythons

def default_provider(facts: Facts, recipes: Recipes, minor: str) -> str:
    py = box_python(facts) or PythonFacts()
    if py.found and py.source in ("conda", "pyenv", "uv"):
        return py.source
    platform = recipes.os_platform_for_facts(facts)
    if py.found and py.source == "homebrew" and platform and platform.manager == "brew":
        return "system"
    if platform and platform.packages_python(minor) and not minor.endswith("t"):
        return "system"
    return "uv"


def python_steps(facts: Facts, recipes: Recipes, wanted: PythonRequest, provider: Optional[str] = None, *,
                 venv: str = DEFAULT_VENV, uv=None) -> Provision:
    """Steps that give the box the Python `wanted` asks for (3.13, 3.13t), from `provider` (None:
    default_provider). `venv`: where the venv goes (uv, pyenv); `uv`: a uvtool.UvWheel to fetch when the box has
    no uv. conda's and pyenv's paths are the host's (facts.host)."""
    minor, free_threaded = wanted.label, wanted.free_threaded
    base = wanted.minor or ""
    row = recipes.torch_for(base, free_threaded)
    if row is None:
        known = sorted({t.python for t in recipes.torch_python if not t.free_threaded},
                       key=lambda v: tuple(int(x) for x in v.split(".")))
        raise UnsupportedError(f"no torch release supports torch.compile on Python {minor}",
                               hint=f"ask for a Python from {known[0]} to {known[-1]} (--python {known[-1]})")
    py = facts.python
    if py.found and wanted.accepts(py.version, py.free_threaded):
        return Provision((), py.executable or "", "", facts)
    provider = provider or default_provider(facts, recipes, minor)
    if free_threaded and provider != "uv":
        raise UnsupportedError(f"--python-from {provider} cannot provide the free-threaded Python {minor}",
                               hint=f"--python-from uv (uv python install {minor})")
    version = row.min_python or base  # the newest build of that line, at least the floor torch needs
    if provider == "system":
        return _system(facts, recipes, base, version)
    if provider == "uv":
        return _uv(facts, recipes, minor, version, resolve.expand_home(venv, facts), uv)
    if provider == "pyenv":
        return _pyenv(facts, recipes, base, version, resolve.expand_home(venv, facts), facts.host.pyenv)
    return _conda(facts, recipes, base, version, facts.host.conda)


def _system(facts: Facts, recipes: Recipes, minor: str, version: str) -> Provision:
    platform = recipes.os_platform_for_facts(facts)
    where = f"{facts.os.name or facts.os.id} {facts.os.version}".strip()
    if not platform or not platform.packages_python(minor):
        raise UnsupportedError(
            f"{where} does not package Python {minor}" + (f" (recipe {platform.id})" if platform else ""),
            hint="--python-from uv (a uv-managed Python, headers included), pyenv or conda")
    manager = recipes.managers[platform.manager]
    values = resolve.values(facts, minor)
    steps: List[Step] = []
    repos = [recipes.repos[r] for r in platform.repos_for(minor)]
    refreshed = False
    prereq: Tuple[str, ...] = ()
    if repos:
        commands: List[Command] = []
        prereq = _unique(fill(p, **values) for r in repos for p in r.packages)
        if prereq:
            commands += resolve.install_commands(facts, manager, prereq)
            refreshed = resolve.stale(facts, manager)
        for r in repos:
            commands += [resolve.manager_command(facts, manager, tuple(fill(a, **values) for a in argv))
                         for argv in r.commands]
        if any(r.refresh for r in repos) and manager.refresh:
            commands.append(resolve.manager_command(facts, manager, manager.refresh))
            refreshed = True
        steps.append(Step(
            "python-repos", "Repositories: " + ", ".join(r.title for r in repos), "todo", tuple(commands),
            manager.root, f"Python {minor} comes from " + ", ".join(r.id for r in repos) + f" on {where}",
            checks=tuple(tuple(fill(a, **values) for a in r.check) for r in repos)))
    ca = platform.packages_for("ca", values)
    ca_done = bool(repos) and set(ca) <= set(prereq)  # the repositories' prerequisites brought them
    needs = [PYTHON, "headers", "venv"] + (["cxx"] if needs_cxx(facts, recipes) else []) + \
        (["ca"] if not facts.host.ca_bundle and not ca_done else []) + _openssl(facts, recipes)
    packages = _unique(p for need in needs for p in platform.packages_for(need, values))
    steps.append(Step(
        "python-packages", "System packages: " + " ".join(packages), "todo",
        tuple(resolve.install_commands(facts, manager, packages, refreshed=refreshed)), manager.root,
        f"no Python {minor} on the box; {platform.id} packages it",
        provides=provided(needs) | (frozenset({"ca"}) if ca_done else frozenset())))
    em = next((r.externally_managed for r in repos if r.externally_managed is not None), platform.externally_managed)
    exe = fill(platform.python_executable, **values)
    source = "homebrew" if manager.name == "brew" else "system"
    prefix = "/usr" if source == "system" else os.path.dirname(os.path.dirname(exe))
    after = facts_after(facts, predicted(
        executable=exe, version=version, prefix=prefix, base_prefix=prefix, source=source,
        include_dir=fill(platform.python_include, **values), externally_managed=em),
        cxx="cxx" in needs, ca="ca" in needs or ca_done, openssl="openssl" in needs)
    if manager.name == "apt":  # refreshed by these steps, or fresh already
        after = replace(after, host=replace(after.host, apt_lists_age_s=0.0))
    return Provision(tuple(steps), exe, "system", after)


def _uv(facts: Facts, recipes: Recipes, minor: str, version: str, venv: str, wheel) -> Provision:
    platform = recipes.os_platform_for_facts(facts)
    steps: List[Step] = []
    uv = facts.host.uv
    py = box_python(facts) or PythonFacts()
    maker = py.executable if py.found and py.executable else "python3"
    extra: Sequence[str] = ()
    if not uv and not wheel and platform and platform.uv_packages:
        extra, uv = platform.uv_packages, "uv"  # on PATH once the package is in
    elif not uv and not wheel and py.found and _older(py.version, UV_MIN_PYTHON):
        raise UnsupportedError(
            f"no uv here, no uv wheel was found on this host's indexes, and its python3 {py.version} is too old "
            f"to install uv from PyPI (uv needs Python >= {UV_MIN_PYTHON})",
            hint="put uv on PATH (https://docs.astral.sh/uv/getting-started/installation/), make PyPI reachable "
                 "when planning, or --python-from system")
    elif not uv and not wheel and platform and not (py.found and py.venv_ok):
        extra = platform.uv_bootstrap
    system, fixed = _system_packages(facts, recipes, platform, minor, extra,
                                     why="uv's Python brings its own headers; the compiler and CA certificates "
                                         "come from the system")
    if system:
        steps.append(system)
    if not uv and wheel:
        uv = wheel.dest(resolve.expand_home("~", facts))
        from torch_setup.wheels.uv import FETCH_SCRIPT

        steps.append(Step(
            "uv", f"uv {wheel.version} (one static binary)", "todo",
            (Command((maker, "-c", FETCH_SCRIPT, wheel.url, wheel.sha256, uv)),), False,
            "no uv here: it installs Python 3 builds with headers, and torch faster than pip",
            provides=frozenset({"uv"})))
    elif not uv:
        tool = resolve.expand_home(UV_TOOL_VENV, facts)
        uv = os.path.join(tool, "bin", "uv")
        steps.append(Step(
            "uv", f"uv (from the package index, in its own venv {tool})", "todo",
            (Command((maker, "-m", "venv", tool)),
             Command((os.path.join(tool, "bin", "python"), "-m", "pip", "install", "uv"))), False,
            "no uv here, and pip may not install into an externally managed Python: uv gets a venv of its own",
            provides=frozenset({"uv"})))
    steps.append(Step(
        "python", f"Python {minor} (uv-managed) in the venv {venv}", "todo",
        (Command((uv, "python", "install", minor)),
         Command((uv, "venv", "--seed", "--allow-existing", "--python", minor, venv))), False,
        f"no Python {minor} on the box: a uv-managed one (python-build-standalone, headers included)",
        creates=venv, provides=PYTHON_NEEDS))
    after = facts_after(facts, _venv_python(minor, version, venv, "uv"), cxx="cxx" in fixed, ca="ca" in fixed,
                   openssl="openssl" in fixed)
    after = replace(after, host=replace(after.host, uv=uv))
    return Provision(tuple(steps), os.path.join(venv, "bin", "python"), "uv", after)


def _pyenv(facts: Facts, recipes: Recipes, minor: str, version: str, venv: str, pyenv: Optional[str]) -> Provision:
    platform = recipes.os_platform_for_facts(facts)
    if not platform:
        raise UnsupportedError(
            f"no recipe for {facts.os.name or facts.os.id} {facts.os.version}: pyenv's build environment is unknown",
            hint="install pyenv's suggested build environment yourself, or --python-from uv")
    steps: List[Step] = []
    extra = list(platform.pyenv_build)
    if not pyenv and platform.pyenv_packages:
        extra += platform.pyenv_packages
        pyenv = "pyenv"
    system, fixed = _system_packages(facts, recipes, platform, minor, extra,
                                     why="pyenv builds CPython from source: its suggested build environment")
    if system:
        steps.append(system)
    if not pyenv:
        root = resolve.expand_home(PYENV_ROOT, facts)
        pyenv = os.path.join(root, "bin", "pyenv")
        steps.append(Step("pyenv", f"pyenv (a checkout in {root})", "todo",
                                   (Command(("git", "clone", "--depth", "1", PYENV_GIT, root)),), False,
                                   "no pyenv here: pyenv's documented basic GitHub checkout"))
    # The patch release is pyenv's to pick (the newest 3.13.x): the venv comes from whichever it built.
    make_venv = 'exec "$("$0" root)/versions/$("$0" latest "$1")/bin/python$1" -m venv "$2"'
    steps.append(Step(
        "python", f"Python {minor} (pyenv) and the venv {venv}", "todo",
        (Command((pyenv, "install", "--skip-existing", minor)),
         Command(("sh", "-c", make_venv, pyenv, minor, venv))), False,
        f"no Python {minor} on the box: pyenv builds the newest {minor}.x (a few minutes)", creates=venv,
        provides=PYTHON_NEEDS))
    after = facts_after(facts, _venv_python(minor, version, venv, "pyenv"), cxx="cxx" in fixed, ca="ca" in fixed,
                   openssl="openssl" in fixed)
    return Provision(tuple(steps), os.path.join(venv, "bin", "python"), "pyenv", after)


def _conda(facts: Facts, recipes: Recipes, minor: str, version: str, conda: Optional[str]) -> Provision:
    if not conda:
        raise UnsupportedError("--python-from conda: no conda, mamba or micromamba on PATH",
                               hint="install Miniforge (https://conda-forge.org/download/), or --python-from uv")
    cplat = recipes.source_platform("conda", arch=facts.arch or None, system=facts.os.system or None)
    if not cplat:
        raise UnsupportedError(f"no conda recipe for {facts.os.system} {facts.arch}",
                               hint="add one with --recipes DIR (see recipes/conda.toml), or --python-from uv")
    manager = env_manager(recipes, cplat, conda)
    prefix = resolve.expand_home(fill(CONDA_ENV, minor=minor), facts)
    values = resolve.values(facts, minor, prefix)
    cxx = not facts.compiler.toolchain_ok
    packages = _unique(list(cplat.packages_for(PYTHON, values))
                       + (list(cplat.packages_for("cxx", values)) if cxx else []))
    env = {k: fill(v, **values) for k, v in cplat.cxx_env.items()} if cxx else {}
    step = Step("python", f"conda environment {prefix}: " + " ".join(packages), "todo",
                         (Command(manager.create_argv(packages, prefix=prefix), dict(manager.env)),),
                         False, f"no Python {minor} on the box: a conda-forge one in its own environment",
                         creates=prefix, provides=PYTHON_NEEDS | (WITH_CXX if cxx else frozenset()))
    exe = fill(cplat.python_executable, **values)
    after = facts_after(facts, predicted(
        executable=exe, version=version, prefix=prefix, base_prefix=prefix, source="conda",
        include_dir=fill(cplat.python_include, **values), externally_managed=False),
        cxx=cxx, ca=False, cxx_env=env)
    return Provision((step,), exe, "conda", after, env)


# ------------------------------------------------------------------------------------------------------- helpers

def _older(version: Optional[str], than: str) -> bool:
    return bool(version) and tuple(int(x) for x in re.findall(r"\d+", version or "")[:2]) < \
        tuple(int(x) for x in than.split("."))


def _unique(items) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _chain(steps: Sequence[Step]) -> List[Step]:
    """One after the other: package managers hold a lock, and each step needs what the one before made."""
    out: List[Step] = []
    for s in steps:
        out.append(replace(s, after=(out[-1].id,)) if out and not s.after else s)
    return out


def _system_packages(facts: Facts, recipes: Recipes, platform: Optional[Platform], minor: str,
                     extra: Sequence[str], why: str) -> Tuple[Optional[Step], List[str]]:
    """The system packages a Python from elsewhere still needs: the compiler (unless compiler_steps fixes it),
    CA certificates, and `extra` (uv's bootstrap, pyenv's build environment). Also: which needs it fixes."""
    if not platform:
        return None, []
    manager = recipes.managers[platform.manager]
    values = resolve.values(facts, minor)
    needs = (["cxx"] if needs_cxx(facts, recipes) else []) + (["ca"] if not facts.host.ca_bundle else []) + \
        _openssl(facts, recipes)
    packages = _unique([fill(p, **values) for p in extra]
                       + [p for need in needs for p in platform.packages_for(need, values)])
    if not packages:
        return None, []
    return Step("python-packages", "System packages: " + " ".join(packages), "todo",
                         tuple(resolve.install_commands(facts, manager, packages)), manager.root, why,
                         provides=provided(needs)), needs


def _venv_python(minor: str, version: str, venv: str, source: str) -> PythonFacts:
    return predicted(executable=os.path.join(venv, "bin", "python"), version=version, prefix=venv, source=source,
                     free_threaded=minor.endswith("t"), in_venv=True)


def _openssl(facts: Facts, recipes: Recipes) -> List[str]:
    """The openssl need, for the new torch a provided Python gets (the newest: it runs openssl)."""
    return ["openssl"] if not facts.host.openssl and recipes.torch_runs("openssl", None) else []
