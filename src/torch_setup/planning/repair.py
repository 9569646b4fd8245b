"""A package step first when an earlier package-manager run was stopped half-way (facts.host.interrupted_packages:
dpkg's half-configured, unpacked and half-installed packages, its journal not folded in): the manager's `repair`
commands of the recipes (apt: `dpkg --configure -a`, then `apt-get install -f`, which reinstalls what a kill left
half-installed), before any other step that runs the package manager. Without it a rerun either calls the
box ready while `dpkg --audit` still lists packages, or fails with apt's "you must manually run
'dpkg --configure -a'"."""
from __future__ import annotations

from dataclasses import replace

from torch_setup.facts.model import Facts
from torch_setup.planning.steps import Plan, Step
from torch_setup.recipes import resolve

STEP_ID = "package-repair"


def add(plan: Plan, facts: Facts, recipes) -> Plan:
    broken = facts.host.interrupted_packages
    if not broken:
        return plan
    platform = recipes.os_platform_for_facts(facts)
    manager = recipes.managers.get(platform.manager) if platform else None
    if manager is None or not manager.repair:
        return replace(plan, notes=plan.notes + (
            f"the package manager left {len(broken)} package(s) half-installed ({', '.join(broken[:8])}), and no "
            "recipe says how to finish that: finish it by hand before installing",))
    shown = ", ".join(broken[:8]) + (f" and {len(broken) - 8} more" if len(broken) > 8 else "")
    step = Step(STEP_ID, "Finish the interrupted package installation", "todo",
                tuple(resolve.manager_command(facts, manager, argv) for argv in manager.repair), manager.root,
                f"{len(broken)} package(s) are not fully installed ({shown}): an earlier {manager.name} run was "
                f"stopped, and {manager.name} refuses to install until this has run")
    steps = tuple(replace(s, after=s.after + (STEP_ID,)) if s.status == "todo" and s.root else s for s in plan.steps)
    return replace(plan, steps=(step,) + steps)
