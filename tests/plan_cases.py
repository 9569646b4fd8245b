"""Plan cases as data (tests/plans/*.json): facts + request -> the expected plan, replayed through the code that
every command runs (pipeline.assemble, which pipeline.plan_host wraps). `scripts/pin-plans` writes the
expectations; a failing case prints GOT and WANT.

A case with `indexes` also chooses torch, as `install` does, from what those indexes answer: each maps an index URL
to a listing under tests/fixtures (PEP 691 JSON), or, for https://download.pytorch.org/whl, to "pytorch-world" (the
modelled PyTorch index of tests/test_torch_choice.py: every variant of the table, over its VERSIONS). Every other
index does not answer (as download.pytorch.org does not from the machines these were pinned on). Its `torch` pins
the choice as the plan carries it: the torch step's why, then build, version, index, and the reasons and warnings
(null where no torch is chosen: a kept torch)."""
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
WORLD = "pytorch-world"  # the modelled PyTorch index (test_torch_choice.FakeFetch), at its one URL
PYTORCH_WHL = "https://download.pytorch.org/whl"
CHOICE_KEYS = ("variant", "version", "requirement", "index_url", "source", "reasons", "warnings")
REQUEST_KEYS = {"python", "provider", "venv", "torch", "break_system_packages", "backend", "with", "index_url",
                "keep_torch"}


def load_case(path: Path) -> dict:
    case = json.loads(path.read_text())
    unknown = set(case) - {"facts", "request", "indexes", "steps", "python", "notes", "env", "torch", "refused"}
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    for url, what in case.get("indexes", {}).items():
        assert (FIXTURES / what).is_file() if what != WORLD else url.rstrip("/") == PYTORCH_WHL, \
            f"{path.name}: {url} answers with {what!r}: a listing under tests/fixtures, or {WORLD!r} at {PYTORCH_WHL}"
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


def case_fetch(case: dict):
    """The index client of a case with `indexes`: those answer, with their listings; nothing else does."""
    from torch_setup.wheels import indexes

    listings = {url.rstrip("/"): what for url, what in case.get("indexes", {}).items()}

    def fetch(source, project, **kw):
        url = source.url.rstrip("/")
        base = url.rsplit("/", 1)[0]
        if project == "torch" and url in listings:
            files = indexes.parse_simple_json(json.loads((FIXTURES / listings[url]).read_text()), url + "/torch/")
            return indexes.Listing(source, tuple(files))
        if project == "torch" and listings.get(base) == WORLD:
            from test_torch_choice import FakeFetch

            return FakeFetch()(source, project)
        raise indexes.IndexUnreachable(source, "the host name does not resolve")
    return fetch


def choice_of(case: dict, recipes=None):
    """The torch choice of a case with `indexes` (None without), as `install` makes it."""
    if "indexes" not in case:
        return None
    from torch_setup.planning import provide

    recipes = recipes or recipes_mod.load()
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
        why = next((s.why for s in plan.steps if s.id == "torch"), None)
        out["torch"] = {"why": why, **{k: (plan.torch or {}).get(k) for k in CHOICE_KEYS}}
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
