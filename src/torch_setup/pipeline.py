"""The pipeline, end to end: facts -> recipes -> plan -> run -> verify. The CLI parses the request and renders;
`plan_host` is the one assembly of a plan that every command slices."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

from torch_setup.recipes import load as recipes_mod
from torch_setup.errors import FactsError, TorchSetupError
from torch_setup.facts import gather as gathering
from torch_setup.facts import compiler, config, python
from torch_setup.facts.model import Facts
from torch_setup.request import PythonRequest, Request
from torch_setup.host.system import System

if TYPE_CHECKING:  # plan, run and verify are imported where used: `detect` starts faster without them
    from torch_setup.planning.steps import Plan
    from torch_setup.run import StepRun
    from torch_setup.verify import Verification

RECIPES_ENV = "TORCH_SETUP_RECIPES"


def load_recipes(dirs: Sequence[str], env) -> recipes_mod.Recipes:
    extra = list(dirs) + [d for d in env.get(RECIPES_ENV, "").split(os.pathsep) if d]
    return recipes_mod.load([Path(d) for d in extra])


def detect(system: System, request: PythonRequest, recipes, probes: Optional[gathering.Probes] = None) -> Facts:
    """recipes: the Recipes, or a function that loads them while the interpreter probe runs (~5 ms of TOML);
    probes: the probes, if the caller started them already."""
    load = recipes if callable(recipes) else (lambda: recipes)
    return gathering.gather(system, request, lambda: load().manager_binaries(), probes=probes)


def read_facts(path: str) -> Facts:
    try:
        text = Path(path).read_text() if path != "-" else __import__("sys").stdin.read()
    except OSError as e:
        raise FactsError(f"cannot read facts file {path}: {e.strerror}") from None
    except UnicodeError:
        raise FactsError(f"{path} is not text (not UTF-8)", hint="give the output of `torch-setup detect --json`") \
            from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise FactsError(f"{path} nests its JSON too deeply to be facts",
                         hint="give the output of `torch-setup detect --json`") from None
    except ValueError as e:
        raise FactsError(f"{path} is not JSON: {e}", hint="give the output of `torch-setup detect --json`") from None
    if isinstance(data, dict) and {"command", "data"} <= set(data) and isinstance(data["data"], dict):
        data = data["data"]  # the JSON envelope of `detect --json` (or of an install report)
    if isinstance(data, dict) and "facts" in data and isinstance(data["facts"], dict):
        data = data["facts"]  # an install report carries its facts
    try:
        return Facts.from_dict(data)
    except FactsError as e:
        raise FactsError(f"{path}: {e.message}", hint="give the output of `torch-setup detect --json`") from None


def gather_target(system: System, request: Request, recipes, probes: Optional[gathering.Probes] = None) -> Facts:
    """This host's facts for the request. A second run: where torch goes into a venv that exists already (one
    of the same Python), the venv is the target."""
    from torch_setup.planning import make as planning  # here: `detect` needs no planning, and starts faster
    from torch_setup.recipes import resolve

    facts = detect(system, request.python, recipes, probes)
    rec = recipes() if callable(recipes) else recipes
    if not facts.python.found or not planning.uses_venv(facts, rec, request):
        return facts
    exe = os.path.join(resolve.expand_home(request.venv, facts), "bin", "python")
    if not system.exists(exe):
        return facts
    py, torch, _, _ = python.find(system, PythonRequest.parse(exe))
    if py.minor != facts.python.minor or py.free_threaded != facts.python.free_threaded:
        return facts  # a venv of another Python: leave it, the plan's venv step will fail loudly on it
    return replace(facts, python=py, torch=torch,
                   compiler=compiler.probe(system, facts.os.system, py.include_dir, py.has_headers),
                   config=config.gather(system, facts.host.home or "/", py.prefix))


def plan_host(request: Request, facts: Facts, recipes, *, online: bool = True, fetch=None,
              system: Optional[System] = None) -> "Plan":
    """The one plan for a host: what `plan`, `install`, `doctor`, `explain`, the hints after a failed verify and
    the tests all call. `online`: ask the indexes which torch fits and where uv comes from (install, plan);
    offline (doctor, explain) the torch step names the range the Python supports and nothing is fetched.
    Everything about the host comes from `facts` (its tools, HOME, pip configuration, environment), so a facts
    file of another host plans as `install` would there. `fetch`: the index client (tests pass one); `system`:
    the planned host when it is this one (its local find-links folders, file:// indexes and constraint files are
    read); None for facts of another host, whose local folders and files are not read here (a note says so)."""
    from torch_setup.planning import make as planning
    from torch_setup.planning import provide as provision
    from torch_setup.planning import repair

    uv = resolve_uv(facts, recipes, request, fetch) if online else None
    prep = provision.prepare(facts, recipes, request, uv=uv)
    if online:
        planning.refuse(prep.facts, recipes, request, uv)  # a host the plan refuses asks no index which torch
    choice = choose_torch(prep.facts, recipes, request, fetch, system) if online else None
    plan = provision.compose(prep, planning.make_plan(prep.facts, recipes, request, choice, uv))
    return repair.add(plan, prep.facts, recipes)  # an interrupted apt first


def assemble(request: Request, facts: Facts, recipes, *, choice=None, uv=None) -> "Plan":
    """plan_host without the indexes: the `choice` of torch and the `uv` wheel given (tests give them)."""
    from torch_setup.planning import make as planning
    from torch_setup.planning import provide as provision
    from torch_setup.planning import repair

    prep = provision.prepare(facts, recipes, request, uv=uv)
    return repair.add(provision.compose(prep, planning.make_plan(prep.facts, recipes, request, choice, uv)),
                      prep.facts, recipes)


def choose_torch(facts: Facts, recipes, request: Request, fetch=None, system: Optional[System] = None):
    """Ask the indexes which torch fits, only when the plan will install one (a second run asks nothing). The
    indexes and variables are the planned host's (facts.config); nothing runs the target interpreter."""
    from torch_setup.planning import make as planning

    if not facts.python.found or not planning.needs_torch(facts, recipes, request):
        return None
    from torch_setup.wheels import choose as torch_choice
    from torch_setup.wheels import indexes

    env = facts.config.env
    backend = request.backend or "auto"  # auto: the planned host's $TORCH_SETUP_TORCH_BACKEND, else its GPU
    mirror = indexes.pytorch_mirror(request.pytorch_index, env, facts.config.pip)
    if system is None:  # facts of a host this one cannot look into: its folders and files are not read here
        fetch = _not_local(fetch)
    kw = {"fetch": fetch} if fetch else {}
    kw["read_text"] = system.read_text if system else (lambda path: None)
    if mirror:
        kw["pytorch_index"] = mirror
    return torch_choice.choose(
        facts, recipes, backend=backend, torch_range=request.torch, with_=request.with_,
        index_url=request.index_url, find_links=list(request.find_links), env=env, pip_config=facts.config.pip,
        **kw)


def _not_local(fetch):
    """An index client that does not read local folders or file:// indexes: they are the planned host's."""
    from torch_setup.wheels import indexes

    def remote_only(source, project, **kw):
        if indexes.is_local(source.url):
            raise indexes.IndexUnreachable(source, "a folder of the planned host: not read from this one")
        return (fetch or indexes.fetch)(source, project, **kw)
    return remote_only


def keep_record(system: System, request: Request, recipes, python: str, env, verification) -> None:
    """A passed verification, recorded under the key of the box as it is now (probed again: the run may have
    changed it), so the next run with nothing to do need not compile."""
    from torch_setup import record

    if verification is None or not verification.ok or verification.recorded is not None:
        return
    try:
        facts = gather_target(system, request, recipes)
    except TorchSetupError:
        return
    if facts.python.executable and system.realpath(facts.python.executable) == system.realpath(python):
        record.save(system, facts, python, env, verification)


def resolve_uv(facts: Facts, recipes, request: Request, fetch=None):
    """A uv wheel to fetch when the box has no uv and the plan may use one (torch to install, or a Python to
    provide), from the planned host's indexes."""
    from torch_setup.planning import make as planning

    if facts.host.uv or (facts.python.found and not planning.needs_torch(facts, recipes, request)):
        return None
    from torch_setup.wheels import uv as uvtool

    return uvtool.resolve(facts, facts.config.env, fetch=(lambda source: fetch(source, "uv")) if fetch else None,
                          index_url=request.index_url)


@dataclass
class InstallReport:
    facts: Facts
    plan: Plan
    runs: List[StepRun] = field(default_factory=list)
    verification: Optional[Verification] = None
    dry_run: bool = False
    rollback: Optional[str] = None  # the line saying the replaced torch's venv was put back (rollback.py)

    @property
    def changed(self) -> bool:
        return any(r.status == "ran" for r in self.runs)

    @property
    def ok(self) -> bool:
        return self.verification is None or self.verification.ok

    def to_dict(self) -> dict:
        return {
            "changed": self.changed, "dry_run": self.dry_run,
            "python": self.plan.python,
            "plan": self.plan.to_dict(), "runs": [r.to_dict() for r in self.runs],
            "verify": self.verification.to_dict() if self.verification else None,
            "rollback": self.rollback,
            "facts": self.facts.to_dict(),
        }


def install(system: System, facts: Facts, recipes, plan: Plan, reporter,
            do_verify: bool = True, reverify: bool = False) -> InstallReport:
    """Run the plan and verify. With nothing to do, a passed verification whose record still holds (nothing the
    compile depends on changed: record.py) stands for a new one, unless `reverify`."""
    from torch_setup import record
    from torch_setup import verify as verification
    from torch_setup.run import execute

    report = InstallReport(facts, plan)
    if do_verify and plan.python and not plan.todo and not reverify:
        hit = record.lookup(system, facts, plan.python, plan.env)
        if hit:
            report.verification = verification.Verification(
                True, plan.python, hit.get("torch"), 0.0, list(hit.get("results") or []), recorded=hit.get("when"))
            return report
    pending: Optional[verification.Pending] = None

    def start_verify() -> None:
        """One interpreter for the verification, started once torch is in: it imports torch (writing its bytecode)
        while the other steps finish, and compiles when they have."""
        nonlocal pending
        if do_verify and plan.python and pending is None:
            reporter.line(f"==> Verifying torch.compile in {plan.python} (fresh Inductor cache; torch imports now, "
                          "the compile waits for every step)")
            pending = verification.start(system, plan.python, env=plan.env)

    from torch_setup import rollback

    torch_steps = {s.id for s in plan.todo if "torch" in s.provides}
    done: set = set()  # steps that ended well: a failure after the venv was copied aside puts it back
    if not torch_steps:
        start_verify()
    try:
        report.runs = execute(system, plan, facts, reporter,
                              on_done=lambda step_id: done.add(step_id) or (step_id in torch_steps and start_verify()))
    except BaseException as e:
        if pending is not None:
            pending.cancel()
        line = None if torch_steps <= done else rollback.restore(system, plan, done, "the torch replacement failed")
        if line:  # (the new torch in place, a later step failed: it stays, and a rerun finishes)
            reporter.line(line)
            if isinstance(e, TorchSetupError):
                e.hint = line + (f"; {e.hint}" if e.hint else "")
                e.extra = dict(e.extra, rollback=line)  # --json: data.rollback, as on a failed verification
        raise
    start_verify()
    if pending is not None:
        report.verification = pending.finish()
        if not report.verification.ok:
            report.rollback = rollback.restore(system, plan, done, "torch.compile failed with the new torch")
            if report.rollback:
                reporter.line(report.rollback)
    return report
