"""Plan cases as data (tests/plans/*.json): facts + request -> the expected plan, replayed through the code that
every command runs (pipeline.assemble, which pipeline.plan_host wraps). `scripts/pin-plans` writes the
expectations; a failing case prints GOT and WANT.

A case with `indexes` (index URL -> a listing under tests/fixtures, PEP 691 JSON) also chooses torch, as `install`
does, from those listings: every other index does not answer (as download.pytorch.org does not from the machines
these were pinned on). Its `torch` pins the choice: build, version, index, and the reasons and warnings."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from torch_setup import pipeline
from torch_setup.recipes import load as recipes_mod
from torch_setup.errors import TorchSetupError
from torch_setup.facts.model import Facts
from torch_setup.request import PythonRequest, Request

TESTS = Path(__file__).resolve().parent
CASES = TESTS / "plans"
FIXTURES = TESTS / "fixtures"
REQUEST_KEYS = {"python", "provider", "venv", "torch", "break_system_packages", "backend", "with", "index_url",
                "keep_torch"}


def load_case(path: Path) -> dict:
    case = json.loads(path.read_text())
    unknown = set(case) - {"facts", "request", "indexes", "steps", "python", "notes", "env", "torch", "refused",
                           "index", "choice"}
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    assert not set(case.get("request", {})) - REQUEST_KEYS, f"{path.name}: unknown request keys"
    return case


def facts_of(case: dict) -> Facts:
    data = json.loads((FIXTURES / case["facts"]).read_text())
    return Facts.from_dict(data.get("facts", data))  # a host capture holds its facts under "facts"


def request_of(case: dict) -> Request:
    r = dict(case.get("request", {}))
    return Request.parse(python=r.pop("python", ""), provider=r.pop("provider", None), venv=r.pop("venv", None),
                         with_=r.pop("with", ""), **r)


def lines(plan) -> list:
    """One line per step, its commands joined as a shell line: `id (root): cmd && cmd`, or `id: done`."""
    return [f"{s.id}: done" if s.status == "done" else
            f"{s.id}{' (root)' if s.root else ''}: " + " && ".join(c.display() for c in s.commands)
            for s in plan.steps]


def _world_choice(case: dict, recipes):
    """The torch chosen for a case with `"index": "pytorch-world"`: the modelled PyTorch index and the captured
    PyPI listing of tests/test_torch_choice.py (FakeFetch), as `install` would ask them; None without one."""
    if case.get("index") != "pytorch-world":
        return None
    from test_torch_choice import FakeFetch
    from torch_setup.wheels.choose import choose

    from torch_setup.planning.make import needs_torch

    facts = facts_of(case)
    request = request_of(case)
    if not needs_torch(facts, recipes, request):
        return None  # as pipeline.choose_torch: a kept torch asks no index
    return choose(facts, recipes, backend=request.backend or "auto", fetch=FakeFetch(), env={})


def case_fetch(case: dict):
    """The index client of a case with `indexes`: those listings answer, nothing else does."""
    from torch_setup.wheels import indexes

    listings = {url.rstrip("/"): FIXTURES / path for url, path in case.get("indexes", {}).items()}

    def fetch(source, project, **kw):
        path = listings.get(source.url.rstrip("/"))
        if path is None or project != "torch":
            raise indexes.IndexUnreachable(source, "the host name does not resolve")
        files = indexes.parse_simple_json(json.loads(path.read_text()), source.url.rstrip("/") + "/torch/")
        return indexes.Listing(source, tuple(files))
    return fetch


def choice_of(case: dict, recipes=None):
    """The torch choice of a case with `indexes` (None without), as `install` makes it."""
    recipes = recipes or recipes_mod.load()
    if case.get("index") == "pytorch-world":
        return _world_choice(case, recipes)
    if "indexes" not in case:
        return None
    from torch_setup.planning import provide

    prep = provide.prepare(facts_of(case), recipes, request_of(case))  # a Python the plan provides, as plan_host
    return pipeline.choose_torch(prep.facts, recipes, request_of(case), case_fetch(case))


def plan_of(case: dict, recipes=None, online: bool = True):
    """The plan of the case; `online` False: without asking any index, as `doctor` plans."""
    choice = choice_of(case, recipes) if online else None
    return pipeline.assemble(request_of(case), facts_of(case), recipes or recipes_mod.load(), choice=choice)


def expected_of(case: dict, recipes=None) -> dict:
    """What the code plans for the case now: its steps, interpreter, notes and environment, or its refusal."""
    try:
        plan = plan_of(case, recipes)
    except TorchSetupError as e:
        return {"refused": {"code": int(e.code), "message": e.message, **({"hint": e.hint} if e.hint and
                                                                          "indexes" in case else {})}}
    out = {"steps": lines(plan), "python": plan.python, "notes": list(plan.notes), "env": plan.env}
    if "indexes" in case:
        choice = choice_of(case, recipes)
        out["torch"] = {k: choice.to_dict()[k] for k in ("variant", "version", "requirement", "index_url", "source",
                                                          "reasons", "warnings")} if choice else None
    if case.get("index"):
        why = {s.id: s.why for s in plan.steps}
        out["choice"] = {"torch": why.get("torch"), **({k: plan.torch[k] for k in ("requirement", "variant",
                                                                                      "reasons", "warnings")}
                                                        if plan.torch else {})}
    return out


def ran(facts: Facts, plan) -> Facts:
    """The host once the plan ran (a model of it after `install`): each step's needs provided, the venv made,
    torch installed."""
    py, compiler, host, torch, config = facts.python, facts.compiler, facts.host, facts.torch, facts.config
    for step in plan.todo:
        if step.id == "torch-guard":  # the venv's pip.conf lists the constraints file (guard.py)
            from torch_setup import guard

            path = guard.constraints_path(step.commands[0].argv[3])
            config = dataclasses.replace(config, pip=config.pip + f"global.constraint={path!r}\n")
        elif step.id == "venv":
            venv = step.commands[-1].argv[-1]
            py = dataclasses.replace(py, executable=venv + "/bin/python", prefix=venv, in_venv=True,
                                     externally_managed=False, base_executable=py.executable, user_site=None)
            torch = type(torch)()
        elif "torch" in step.provides:  # the build the plan chose, else one for the box's GPU (or the CPU)
            chosen = plan.torch or {}
            variant, version = chosen.get("variant"), chosen.get("version")
            if not variant:  # what install would choose first for this box's GPUs
                from torch_setup.wheels.tags import target_from
                from torch_setup.wheels.variants import load_table, wanted

                variant = wanted(facts, load_table(), target_from(facts)[0], "auto", {}).preferred[0]
                version = "2.14.1" if variant == "cu126" else "2.15.0"  # cu126: the last torch with a cu126 build
            cuda = f"{variant[2:-1]}.{variant[-1]}" if variant.startswith("cu") else None
            torch = dataclasses.replace(torch, version=f"{version}+{variant}", cuda=cuda, location=py.prefix,
                                        in_user_site=False, arch_list=None)
        else:
            got = step.provides
            py = dataclasses.replace(py, has_headers=py.has_headers or "headers" in got,
                                     venv_ok=py.venv_ok or "venv" in got)
            compiler = dataclasses.replace(compiler, toolchain_ok=compiler.toolchain_ok or "cxx" in got)
            host = dataclasses.replace(host, ca_bundle=host.ca_bundle or "ca" in got,
                                       openssl=host.openssl or ("openssl" if "openssl" in got else None))
    compiler = dataclasses.replace(compiler, ok=compiler.toolchain_ok and py.has_headers)
    return dataclasses.replace(facts, python=py, compiler=compiler, host=host, torch=torch, config=config)


__all__ = ["CASES", "PythonRequest", "expected_of", "facts_of", "lines", "load_case", "plan_of", "ran", "request_of"]
