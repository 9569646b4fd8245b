"""Run a plan: the one runner. Root only where a step needs it; a step that fails stops the run."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import List, Optional

from torch_setup.errors import NeedsRootError, StepError
from torch_setup.facts.model import Facts
from torch_setup.plan import Plan, Step
from torch_setup.report import Reporter
from torch_setup.system import System


@dataclass
class StepRun:
    id: str
    status: str  # done, ran, failed
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


def execute(system: System, plan: Plan, facts: Facts, reporter: Reporter) -> List[StepRun]:
    check_privileges(plan, facts)
    runs: List[StepRun] = []
    created_venv: Optional[str] = None
    for step in plan.steps:
        if step.status == "done":
            runs.append(StepRun(step.id, "done"))
            continue
        run = _run_step(system, step, reporter)
        runs.append(run)
        if run.status == "failed":
            if created_venv:  # nothing half-installed: a venv this run made goes with a failed install
                shutil.rmtree(created_venv, ignore_errors=True)
                reporter.line(f"removed {created_venv}, made by this run")
            raise StepError(f"step {step.id!r} failed: {step.title}", details=run.output_tail)
        if step.id == "venv":
            created_venv = step.commands[-1].argv[-1]
    return runs


def _run_step(system: System, step: Step, reporter: Reporter) -> StepRun:
    reporter.step_start(step)
    total = 0.0
    for cmd in step.commands:
        reporter.command(cmd.display())
        res = system.run(cmd.argv, env=cmd.env, on_line=reporter.output)
        total += res.seconds
        if not res.ok:
            tail = "\n".join(res.output.strip().splitlines()[-40:])
            reporter.step_end(step, False, total)
            return StepRun(step.id, "failed", total, tail)
    reporter.step_end(step, True, total)
    return StepRun(step.id, "ran", total)


def venv_python(path: str) -> Optional[str]:
    exe = os.path.join(os.path.expanduser(path), "bin", "python")
    return exe if os.path.exists(exe) else None
