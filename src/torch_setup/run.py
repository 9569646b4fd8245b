"""Run a plan: the one runner. Root only where a step needs it; steps run side by side where the plan allows
(apt while torch downloads); a step that fails stops the run, and what this run made half is removed."""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from torch_setup.errors import NeedsRootError, StepError
from torch_setup.facts.model import Facts
from torch_setup import interrupt
from torch_setup.interrupt import Interrupted
from torch_setup.lock import HostLock
from torch_setup.planning.steps import Plan, Step
from torch_setup.report import Reporter
from torch_setup.host.system import System


@dataclass
class StepRun:
    id: str
    status: str  # done, ran, failed, skipped
    seconds: float = 0.0
    output_tail: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "seconds": round(self.seconds, 2)}


def check_privileges(plan: Plan, facts: Facts) -> None:
    """Refuse before running anything when a root step remains and there is neither root nor sudo."""
    blocked = [s for s in plan.todo if s.root]
    if blocked and not facts.host.is_root and not facts.host.sudo:
        lines = [c.display() for s in blocked for c in s.commands]
        raise NeedsRootError(
            "these steps need root, and this user is not root and has no passwordless sudo",
            hint="ask an admin to run the commands below, then run torch-setup install again",
            details="\n".join(lines),
        )


def execute(system: System, plan: Plan, facts: Facts, reporter: Reporter,
            on_done: Callable[[str], object] = lambda step_id: None) -> List[StepRun]:
    """Run the todo steps, each as soon as the steps it comes after are done; on_done(step id) as each ends well
    (in this thread)."""
    check_privileges(plan, facts)
    runs: Dict[str, StepRun] = {s.id: StepRun(s.id, "done") for s in plan.steps if s.status == "done"}
    pending = [s for s in plan.steps if s.status == "todo"]
    ids = {s.id for s in plan.steps}
    for s in pending:
        if set(s.after) - ids:
            raise StepError(f"step {s.id!r} waits for {', '.join(sorted(set(s.after) - ids))}, which the plan lacks")
    failed: Optional[StepRun] = None
    # Only what did not exist before this run may be removed on a failure (never a user's own venv).
    fresh = {s.id for s in pending if s.creates and not system.exists(s.creates)}
    running: dict = {}
    packages = HostLock(system.env, reporter.line) if getattr(system, "locks", True) else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
            while pending or running:
                for step in [s for s in pending if not failed and all(a in runs for a in s.after)]:
                    pending.remove(step)
                    running[pool.submit(_run_step, system, step, reporter, packages)] = step
                if not running:
                    break  # a failure stopped the rest
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    run = future.result()
                    if run.status == "failed":
                        failed = failed or run
                    else:
                        runs[step.id] = run
                        on_done(step.id)
    except Interrupted as stop:  # the children are stopped already (interrupt.py); the pool has ended
        stop.during = [f"step {s.id!r} ({s.title})" for s in running.values()]
        stop.removed = _remove_made(system, plan, fresh, runs, {s.id for s in running.values()}, None)
        stop.kept = [f"step {r.id!r}" for r in runs.values() if r.status == "ran" and r.id not in fresh]
        raise
    if failed:
        _remove_made(system, plan, fresh, runs, {failed.id}, reporter)
        step = next(s for s in plan.steps if s.id == failed.id)
        raise StepError(f"step {step.id!r} failed: {step.title}", details=failed.output_tail)
    return [runs.get(s.id, StepRun(s.id, "skipped")) for s in plan.steps]


def _remove_made(system: System, plan: Plan, fresh: set, runs: Dict[str, StepRun], broken: set,
                 reporter: Optional[Reporter]) -> List[str]:
    """Nothing half-installed: what this run made goes with a failed or interrupted install (steps that ran, and
    the ones that failed or were stopped); what existed before it stays."""
    removed = []
    for made in plan.steps:
        if made.id in fresh and (runs.get(made.id, StepRun("", "")).status == "ran" or made.id in broken) \
                and system.exists(made.creates):
            system.remove_tree(made.creates)
            if reporter is not None:  # an interruption says it in its one line
                reporter.line(f"removed {made.creates}, made by this run")
            removed.append(made.creates)
    return removed


def _run_step(system: System, step: Step, reporter: Reporter, packages: Optional[HostLock] = None) -> StepRun:
    if step.root and packages is not None:  # a package-manager step: one torch-setup at a time on the host
        with packages.step():
            return _run_step(system, step, reporter)
    if step.checks and all(system.run(list(argv), timeout=60).ok for argv in step.checks):
        return StepRun(step.id, "done")  # e.g. a repository enabled by an earlier run
    reporter.step_start(step)
    total = 0.0
    for cmd in step.commands:
        reporter.command(cmd.display(), step)
        res = system.run(cmd.argv, env=cmd.env, on_line=lambda line: reporter.output(line, step))
        total += res.seconds
        if not res.ok and interrupt.stopping():
            return StepRun(step.id, "stopped", total)  # the interruption's one line says so
        if not res.ok:
            tail = "\n".join(res.output.strip().splitlines()[-40:])
            reporter.step_end(step, False, total)
            return StepRun(step.id, "failed", total, tail)
    reporter.step_end(step, True, total)
    return StepRun(step.id, "ran", total)

