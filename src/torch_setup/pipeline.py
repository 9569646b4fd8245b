"""The pipeline, end to end: facts -> recipes -> plan -> run -> verify. The CLI only parses and renders."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

from torch_setup import recipes as recipes_mod
from torch_setup.errors import FactsError
from torch_setup.facts import gather as gathering
from torch_setup.facts import compiler, python
from torch_setup.facts.model import Facts
from torch_setup.system import System

if TYPE_CHECKING:  # plan, run and verify are imported where used: `detect` starts faster without them
    from torch_setup import plan as planning
    from torch_setup.run import StepRun
    from torch_setup.verify import Verification

RECIPES_ENV = "TORCH_SETUP_RECIPES"


def load_recipes(dirs: Sequence[str], env) -> recipes_mod.Recipes:
    extra = list(dirs) + [d for d in env.get(RECIPES_ENV, "").split(os.pathsep) if d]
    return recipes_mod.load([Path(d) for d in extra])


def detect(system: System, spec: str, recipes, required: bool = True,
           probes: Optional[gathering.Probes] = None) -> Facts:
    """recipes: the Recipes, or a function that loads them while the interpreter probe runs (~5 ms of TOML);
    probes: the probes, if the caller started them already."""
    load = recipes if callable(recipes) else (lambda: recipes)
    return gathering.gather(system, spec, lambda: load().manager_binaries(), python_required=required,
                            probes=probes)


def read_facts(path: str) -> Facts:
    try:
        text = Path(path).read_text() if path != "-" else __import__("sys").stdin.read()
    except OSError as e:
        raise FactsError(f"cannot read facts file {path}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise FactsError(f"{path} is not JSON: {e}", hint="give the output of `torch-setup detect --json`") from None
    if isinstance(data, dict) and "facts" in data and isinstance(data["facts"], dict):
        data = data["facts"]  # an install report carries its facts
    try:
        return Facts.from_dict(data)
    except FactsError as e:
        raise FactsError(f"{path}: {e.message}", hint="give the output of `torch-setup detect --json`") from None


def prefer_existing_venv(system: System, facts: Facts, recipes, options: planning.Options) -> Facts:
    """A second run: when the plan would make a venv that already exists, plan for the venv instead."""
    from torch_setup import plan as planning  # here: `detect` needs no planning, and starts faster

    plan = planning.make_plan(facts, recipes, options)
    venv_step = next((s for s in plan.steps if s.id == "venv"), None)
    exe = os.path.join(os.path.expanduser(options.venv), "bin", "python")
    if not venv_step or not system.exists(exe):
        return facts
    py, torch, _, _ = python.find(system, exe)
    if py.minor != facts.python.minor or py.free_threaded != facts.python.free_threaded:
        return facts  # a venv of another Python: leave it, the plan's venv step will fail loudly on it
    return with_python(system, facts, exe, (py, torch))


def with_python(system: System, facts: Facts, spec: str, found=None) -> Facts:
    """The facts for another interpreter on the same host: only the Python, torch and compiler facts change."""
    py, torch = found or python.find(system, spec)[:2]
    facts.python, facts.torch = py, torch
    facts.python.spec = spec
    facts.compiler = compiler.probe(system, facts.os.system, py.include_dir, py.has_headers)
    return facts


def host_plan(system: System, spec: str, recipes, options: planning.Options):
    """(facts, plan, why not) for this host as it is, without asking any index: doctor's and explain's view."""
    from torch_setup import plan as planning
    from torch_setup.errors import TorchSetupError

    facts = detect(system, spec, recipes, required=False)
    if not facts.python.found:
        return facts, None, ""
    try:
        facts = prefer_existing_venv(system, facts, recipes, options)
        return facts, planning.make_plan(facts, recipes, options), ""
    except TorchSetupError as e:
        return facts, None, e.message


@dataclass(frozen=True)
class TorchOptions:
    backend: str = ""  # "" = $TORCH_SETUP_TORCH_BACKEND, else auto
    with_: tuple = ()
    index_url: Optional[str] = None
    find_links: tuple = ()


def choose_torch(system: System, facts: Facts, recipes, options: planning.Options, topts: TorchOptions,
                 local: bool = True):
    """Ask the indexes which torch fits, only when the plan will install one (a second run asks nothing).

    local=False (facts from another host): this host's pip configuration and environment are not its."""
    from torch_setup import plan as planning

    if not facts.python.found or not planning.needs_torch(facts, recipes, options):
        return None
    from torch_setup import torch_choice
    from torch_setup.variants import BACKEND_ENV

    pip_config = ""
    env = system.env if local else {}
    if local and facts.python.executable:
        res = system.run([facts.python.executable, "-m", "pip", "config", "list"], timeout=30)
        pip_config = res.stdout if res.ok else ""
    backend = topts.backend or env.get(BACKEND_ENV, "") or "auto"
    return torch_choice.choose(
        facts, recipes, backend=backend, torch_range=options.torch, with_=topts.with_,
        index_url=topts.index_url, find_links=list(topts.find_links), env=env, pip_config=pip_config,
        read_text=system.read_text,
    )


def resolve_uv(system: System, facts: Facts, recipes, options: planning.Options):
    """A uv wheel to fetch when the box has no uv and the plan may use one (torch to install, or a Python to
    provide)."""
    from torch_setup import plan as planning

    if facts.host.uv or (facts.python.found and not planning.needs_torch(facts, recipes, options)):
        return None
    from torch_setup import uvtool

    return uvtool.resolve(facts, system.env)


@dataclass
class InstallReport:
    facts: Facts
    plan: planning.Plan
    runs: List[StepRun] = field(default_factory=list)
    verification: Optional[Verification] = None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(r.status == "ran" for r in self.runs)

    @property
    def ok(self) -> bool:
        return self.verification is None or self.verification.ok

    def to_dict(self) -> dict:
        from torch_setup import __version__

        return {
            "ok": self.ok, "version": __version__, "changed": self.changed, "dry_run": self.dry_run,
            "python": self.plan.python,
            "plan": self.plan.to_dict(), "runs": [r.to_dict() for r in self.runs],
            "verify": self.verification.to_dict() if self.verification else None,
            "facts": self.facts.to_dict(),
        }


def install(system: System, facts: Facts, recipes, plan: planning.Plan, reporter,
            do_verify: bool = True) -> InstallReport:
    from torch_setup import verify as verification
    from torch_setup.run import execute

    report = InstallReport(facts, plan)
    pending: Optional[verification.Pending] = None

    def start_verify() -> None:
        """One interpreter for the verification, started once torch is in: it imports torch (writing its bytecode)
        while the other steps finish, and compiles when they have."""
        nonlocal pending
        if do_verify and plan.python and pending is None:
            reporter.line(f"==> Verifying torch.compile in {plan.python} (fresh Inductor cache; torch imports now, "
                          "the compile waits for every step)")
            pending = verification.start(system, plan.python, env=plan.env)

    if not any(s.id == "torch" for s in plan.todo):
        start_verify()
    try:
        report.runs = execute(system, plan, facts, reporter,
                              on_done=lambda step_id: step_id == "torch" and start_verify())
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    start_verify()
    if pending is not None:
        report.verification = pending.finish()
    return report
