"""Every plan case in tests/plans/ (facts + request -> steps, or the refusal), replayed through the assembly every
command runs, and the invariants that tie the commands together: doctor's fixes and explain's fix steps are steps
of install's plan; planning again after the plan ran leaves nothing to do; a predicted interpreter is never run.
Re-pin with `scripts/pin-plans` and review the diff."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from plan_cases import CASES, expected_of, facts_of, lines, load_case, plan_of, ran, request_of
from torch_setup import doctor, pipeline
from torch_setup.planning import provide as provision
from torch_setup import explain as ex
from torch_setup.planning.steps import NEEDS
from torch_setup.planning.make import make_plan
from torch_setup.host.replay import FakeSystem

NAMES = sorted(p.stem for p in CASES.glob("*.json"))
PLANNED = [n for n in NAMES if "steps" in json.loads((CASES / f"{n}.json").read_text())]


def case(name: str) -> dict:
    return load_case(CASES / f"{name}.json")


@pytest.mark.parametrize("name", NAMES)
def test_case(builtin_recipes, name):
    c = case(name)
    want = {k: c[k] for k in ("steps", "python", "notes", "env", "torch", "refused") if k in c}
    got = expected_of(c, builtin_recipes)
    assert got == want, ("plan differs from the case (scripts/pin-plans re-pins it)\nGOT:\n"
                         + json.dumps(got, indent=1) + "\nWANT:\n" + json.dumps(want, indent=1))


def test_every_platform_fixture_has_both_requests_as_cases():
    platforms = {p.stem for p in (CASES.parent / "fixtures" / "platforms").glob("*.json")}
    assert {f"{p}--{m}" for p in platforms for m in ("default", "3.13")} <= set(NAMES)


def test_cases_name_their_facts_and_request():
    for name in NAMES:
        c = case(name)
        stem, _, python = name.rpartition("--")
        assert c["facts"].endswith(f"/{stem}.json") and c["request"].get("python", "default") == python, name


# ------------------------------------------------------------------------------------------ one plan, sliced

FIXES = {"headers": "headers", "cxx": "cxx", "ca": "ca", "openssl": "openssl", "torch": "torch"}


@pytest.mark.parametrize("name", PLANNED)
def test_doctor_fixes_are_install_plan_steps(builtin_recipes, name):
    """doctor's fix for each problem is the step of install's plan that provides what it lacks (RHEL 8's
    compiler: gcc-toolset-13, not the gcc 8 that plain packages would give)."""
    c = case(name)
    facts, request = facts_of(c), request_of(c)
    install = plan_of(c, builtin_recipes, online=False)  # the steps; which torch is not doctor's question
    seen = pipeline.plan_host(request, facts, builtin_recipes, online=False)  # what doctor plans with
    assert lines(seen) == lines(install)
    for check in doctor.checks(facts, builtin_recipes, seen, doctor.Extras()):
        need = FIXES.get(check.id)
        if check.status == doctor.PROBLEM and need and facts.python.found:
            step = install.step_for(need)
            assert check.fix == (step.id if step else None), (check, need)
            assert check.commands == (tuple(c.display() for c in step.commands) if step else ())


@pytest.mark.parametrize("name", PLANNED)
def test_explain_fix_steps_are_install_plan_steps(builtin_recipes, name):
    plan = plan_of(case(name), builtin_recipes)
    ids = {s.id for s in plan.todo}
    for sig in ex.load_catalogue():
        for step in ex.fix_steps(ex.Cause(sig.id, sig.title, "", 1, sig.needs, sig.advice, 0.0), plan):
            assert step.id in ids
            assert set(step.after) & ids <= {s.id for s in ex.fix_steps(
                ex.Cause(sig.id, sig.title, "", 1, sig.needs, sig.advice, 0.0), plan)}  # what it waits for too


def test_rhel8_compiler_fix_is_the_toolset_in_doctor_explain_and_install(builtin_recipes):
    c = {"facts": "platforms/rhel-8.json", "request": {}}
    plan = plan_of(c, builtin_recipes)
    assert plan.step_for("compiler-upgrade").commands[-1].argv[-1] == "gcc-toolset-13-gcc-c++"
    results = {r.id: r for r in doctor.checks(facts_of(c), builtin_recipes, plan, doctor.Extras())}
    assert results["cxx"].fix == "compiler" and "gcc-toolset-13-gcc-c++" in results["cxx"].commands[-1]
    cause = ex.diagnose("error: unrecognized command-line option '-std=c++20'")[0]
    assert cause.id == "compiler-too-old"
    assert [s.id for s in ex.fix_steps(cause, plan)] == ["compiler"]


def test_every_need_causes_name_is_a_need_plan_steps_provide():
    assert {n for sig in ex.load_catalogue() for n in sig.needs} <= set(NEEDS)


# --------------------------------------------------------------------------------------- planning converges

@pytest.mark.parametrize("name", PLANNED)
def test_planning_again_from_the_predicted_state_has_nothing_to_do(builtin_recipes, name):
    c = case(name)
    request = request_of(c)
    prep = provision.prepare(facts_of(c), builtin_recipes, request)  # the host once a Python is provided
    after = ran(prep.facts, make_plan(prep.facts, builtin_recipes, request))
    again = pipeline.assemble(request, after, builtin_recipes)
    assert again.todo == [], lines(again)


def test_choosing_torch_for_a_predicted_interpreter_runs_nothing(builtin_recipes):
    """Debian 12 has no 3.13: the plan provides one; asking the indexes for its torch runs no program at all (the
    old code ran `pip config list` with the venv that did not exist yet, and lost the user's index)."""
    from torch_setup.wheels.indexes import IndexUnreachable

    c = {"facts": "platforms/debian-12.json", "request": {"python": "3.13", "provider": "uv"}}
    facts = dataclasses.replace(facts_of(c), config=dataclasses.replace(
        facts_of(c).config, pip="global.index-url='https://mirror.example/simple'\n"))
    asked = []

    def fetch(source, project, **kw):
        asked.append((source.url, project))
        raise IndexUnreachable(source, "not in this test")

    system = FakeSystem()
    with pytest.raises(Exception):  # nothing answers: no torch can be chosen
        pipeline.plan_host(request_of(c), facts, builtin_recipes, fetch=fetch, system=system)
    assert system.calls == []
    assert ("https://mirror.example/simple", "torch") in asked  # the host's configured index was asked


REFUSED = [n for n in NAMES if "refused" in case(n) and "indexes" not in case(n)]  # refused with no torch chosen


@pytest.mark.parametrize("name", REFUSED)
def test_a_refused_host_asks_no_index_which_torch(builtin_recipes, name):
    """What the plan refuses (musl, a glibc older than the wheels', no Python) it refuses before asking any index
    which torch: install and plan on such a host do not wait on the network (nor fail on it) to say no."""
    from torch_setup.errors import TorchSetupError
    from torch_setup.wheels.indexes import IndexUnreachable

    c = case(name)
    asked = []

    def fetch(source, project, **kw):
        asked.append((source.url, project))
        raise IndexUnreachable(source, "not in this test")

    with pytest.raises(TorchSetupError) as refused:
        pipeline.plan_host(request_of(c), facts_of(c), builtin_recipes, fetch=fetch, system=FakeSystem())
    assert (int(refused.value.code), refused.value.message) == (c["refused"]["code"], c["refused"]["message"])
    assert [a for a in asked if a[1] == "torch"] == []


# Debian 12 as captured (its Python lacks headers and g++), changed where the plan itself refuses it, after the
# Python is settled: an OS no recipe knows, with packages to install; a HOME that is not a path.
PLAN_REFUSES = {
    "no recipe": (lambda f: dataclasses.replace(f, os=dataclasses.replace(f.os, id="plan9", name="Plan 9",
                                                                          version="4")), "no recipe for Plan 9 4"),
    "relative HOME": (lambda f: dataclasses.replace(f, host=dataclasses.replace(f.host, home="home/admin")),
                      "HOME is 'home/admin', not an absolute path"),
}


@pytest.mark.parametrize("name", PLAN_REFUSES)
def test_what_the_plan_refuses_it_refuses_before_asking_which_torch(builtin_recipes, name):
    from torch_setup.errors import TorchSetupError
    from torch_setup.wheels.indexes import IndexUnreachable

    change, message = PLAN_REFUSES[name]
    c = {"facts": "platforms/debian-12.json", "request": {}}
    asked = []

    def fetch(source, project, **kw):
        asked.append((source.url, project))
        raise IndexUnreachable(source, "not in this test")

    with pytest.raises(TorchSetupError) as refused:
        pipeline.plan_host(request_of(c), change(facts_of(c)), builtin_recipes, fetch=fetch, system=FakeSystem())
    assert refused.value.message.startswith(message)
    assert [a for a in asked if a[1] == "torch"] == []
    assert pipeline.plan_host(request_of(c), facts_of(c), builtin_recipes, online=False).todo  # as captured: planned


def test_plan_facts_uses_the_planned_hosts_tools_not_this_ones(builtin_recipes, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    c = {"facts": "platforms/debian-12.json", "request": {"python": "3.13", "provider": "pyenv"}}
    facts = facts_of(c)
    plan = pipeline.assemble(request_of(c), dataclasses.replace(
        facts, host=dataclasses.replace(facts.host, home="/home/admin", pyenv="/usr/bin/pyenv")), builtin_recipes)
    python = next(s for s in plan.steps if s.id == "python")
    assert python.commands[0].argv[0] == "/usr/bin/pyenv" and "/root" not in " ".join(lines(plan))


# ------------------------------------------------------------------------------------------------ imports

def test_detect_imports_no_planning_wheel_or_http_module(tmp_path):
    code = ("import sys\nfrom torch_setup.cli import main\nsys.argv = ['torch-setup', 'detect', '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('MODULES', ' '.join(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES"))
    loaded = set(line.split()[1:])
    banned = {"torch_setup.planning.make", "torch_setup.planning.provide", "torch_setup.wheels.choose",
              "torch_setup.wheels.variants",
              "torch_setup.wheels.tags", "torch_setup.wheels.indexes", "torch_setup.wheels.uv", "torch_setup.doctor",
              "torch_setup.explain", "requests", "urllib3", "packaging.tags"}
    assert not loaded & banned, sorted(loaded & banned)
