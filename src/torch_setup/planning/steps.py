"""What a plan is made of: argv commands with their environment, steps with a status, root and the needs they
provide, and the plan that every command slices (doctor's fixes, explain's fix steps, install's run)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

from torch_setup.masking import mask_text

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


def provided(needs: Iterable[str]) -> FrozenSet[str]:
    """What installing the packages of these recipe needs provides (a C++ compiler brings C and OpenMP)."""
    needs = frozenset(needs)
    return needs | (WITH_CXX if "cxx" in needs else frozenset())
