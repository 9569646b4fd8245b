"""Rollback: a venv whose torch the plan replaces is copied aside first (step `torch-rollback`, planning/make.py:
VENV -> VENV.torch-setup-previous). When the replacement fails -- the run fails or is interrupted after the copy
and before the torch step ended well, or torch.compile does not verify with the new build -- the copy is put back,
and one line says so; when it cannot be put back, the line says exactly how to do it by hand. A failure after the
new torch is in (the guard step) keeps it: a rerun finishes."""
from __future__ import annotations

from typing import Collection, Optional, Tuple

from torch_setup.planning.steps import Plan

STEP_ID = "torch-rollback"


def kept(plan: Plan, done: Collection[str]) -> Optional[Tuple[str, str]]:
    """(venv, its copy) when the plan's rollback step ran in this run, else None."""
    step = next((s for s in plan.todo if s.id == STEP_ID), None)
    if step is None or STEP_ID not in done:
        return None
    argv = step.commands[0].argv
    return argv[-2], argv[-1]


def restore(system, plan: Plan, done: Collection[str], why: str) -> Optional[str]:
    """Put the copy back; the one line to print, or None when there is nothing to roll back."""
    pair = kept(plan, done)
    if pair is None:
        return None
    venv, copy = pair
    by_hand = f"rm -rf {venv} && mv {copy} {venv}"
    if not system.exists(copy):
        return f"{why}: the copy {copy} is gone, so {venv} could not be rolled back"
    res = system.run(["sh", "-c", 'rm -rf "$1" && mv "$2" "$1"', "sh", venv, copy], timeout=600)
    if res.ok:
        return f"{why}: rolled back, {venv} is the venv as it was before (restored from {copy})"
    tail = res.output.strip().splitlines()[-1:] or [f"exit {res.rc}"]
    return f"{why}: could not roll back ({tail[0]}); to do it by hand: {by_hand}"
