"""run.execute on a FakeSystem: order, skipping, failures, root."""
from __future__ import annotations

import io
import os
import shutil

import pytest

from conftest import host_facts, host_facts_dict
from torch_setup.recipes import load as recipes_mod
from torch_setup import run
from torch_setup.errors import ExitCode, NeedsRootError, StepError
from torch_setup.facts.model import Facts
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.report import Reporter
from torch_setup.host.replay import FakeSystem, command_key
from torch_setup.host.system import Result

APT = "apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600"
# pip's and apt's own words for the failures below
PIP_NO_TORCH = ("ERROR: Could not find a version that satisfies the requirement torch>=2.6 (from versions: none)\n"
                "ERROR: No matching distribution found for torch>=2.6\n")
APT_NO_PACKAGE = ("Reading package lists...\nBuilding dependency tree...\n"
                  "E: Unable to locate package python3.13-dev\n")


class Host(FakeSystem):
    """A FakeSystem whose `python -m venv DIR` makes DIR on disk, as the real one does, and that records each env."""

    def exists(self, path):
        return os.path.exists(path)

    def remove_tree(self, path):
        shutil.rmtree(path)

    def run(self, argv, *, env=None, **kw):
        res = super().run(argv, env=env, **kw)
        self.envs = getattr(self, "envs", []) + [dict(env or {})]
        if res.ok and list(argv[1:3]) == ["-m", "venv"]:
            os.makedirs(os.path.join(argv[3], "bin"), exist_ok=True)
            open(os.path.join(argv[3], "pyvenv.cfg"), "w").write("home = /usr/bin\n")
        return res


def minbase_plan(venv):
    facts = host_facts("debian13-minbase")
    return facts, make_plan(facts, recipes_mod.load(), Request(venv=str(venv)))


def keys(plan):
    return [command_key(c.argv) for s in plan.todo for c in s.commands]


def test_runs_todo_steps_in_order(tmp_path):
    venv = tmp_path / "venv"
    facts, plan = minbase_plan(venv)
    system = Host(commands={k: Result(0, "ok\n") for k in keys(plan)})
    out = io.StringIO()
    runs = run.execute(system, plan, facts, Reporter(out))
    assert system.calls == [
        f"{APT} python3.13-dev python3.13-venv g++ ca-certificates openssl",
        f"/usr/bin/python3 -m venv {venv}",
        f"{venv}/bin/python -m pip install torch>=2.6",
    ]
    assert [(r.id, r.status) for r in runs] == [("system-packages", "ran"), ("venv", "ran"), ("torch", "ran")]
    assert system.envs[0] == {"DEBIAN_FRONTEND": "noninteractive"}  # the manager's env reaches the command
    assert venv.is_dir()
    text = out.getvalue()
    assert text.index("==> System packages") < text.index("==> Virtual environment") < text.index("==> torch")
    assert "ok: torch" in text


def test_done_steps_are_skipped(builtin_recipes):
    facts = host_facts("debian13-installed-venv")
    plan = make_plan(facts, builtin_recipes, Request(venv="/root/.venvs/torch"))
    system = Host()
    runs = run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert system.calls == []
    assert [(r.id, r.status) for r in runs] == [("system-packages", "done"), ("torch", "done")]
    assert [r.to_dict() for r in runs] == [{"id": "system-packages", "status": "done", "seconds": 0.0},
                                          {"id": "torch", "status": "done", "seconds": 0.0}]


def test_only_the_todo_step_of_a_mixed_plan_runs(builtin_recipes):
    data = host_facts_dict("debian13-installed-system")
    data["python"]["has_headers"] = False
    data["torch"].update(version="2.14.1", location=data["python"]["user_site"], in_user_site=True)
    facts = Facts.from_dict(data)
    plan = make_plan(facts, builtin_recipes, Request(venv="/nonexistent/venv"))
    system = Host(commands={f"{APT} python3.13-dev": Result(0)})
    runs = run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert system.calls == [f"{APT} python3.13-dev"]
    assert [r.status for r in runs] == ["ran", "done"]


def test_a_failing_step_stops_the_run_and_removes_the_venv_it_made(tmp_path):
    venv = tmp_path / "venv"
    facts, plan = minbase_plan(venv)
    commands = {k: Result(0) for k in keys(plan)}
    commands[f"{venv}/bin/python -m pip install torch>=2.6"] = Result(1, "Looking in indexes: https://pypi.org/simple\n",
                                                                     PIP_NO_TORCH)
    system = Host(commands=commands)
    out = io.StringIO()
    with pytest.raises(StepError) as e:
        run.execute(system, plan, facts, Reporter(out))
    assert e.value.code == ExitCode.STEP_FAILED
    assert "'torch'" in e.value.message
    assert e.value.details.splitlines()[-2:] == PIP_NO_TORCH.splitlines()
    assert not venv.exists()
    assert f"removed {venv}" in out.getvalue()
    assert "FAILED: torch" in out.getvalue()
    assert out.getvalue().count("ERROR: No matching distribution found for torch>=2.6") == 1  # streamed as it came


def test_a_failing_first_step_runs_nothing_else(tmp_path):
    venv = tmp_path / "venv"
    facts, plan = minbase_plan(venv)
    system = Host(commands={f"{APT} python3.13-dev python3.13-venv g++ ca-certificates openssl":
                            Result(100, APT_NO_PACKAGE)})
    with pytest.raises(StepError) as e:
        run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert "E: Unable to locate package python3.13-dev" in e.value.details
    assert len(system.calls) == 1
    assert not venv.exists()


def test_the_output_tail_is_the_last_40_lines(tmp_path):
    venv = tmp_path / "venv"
    facts, plan = minbase_plan(venv)
    commands = {k: Result(0) for k in keys(plan)}
    commands[f"{venv}/bin/python -m pip install torch>=2.6"] = Result(1, "".join(f"line {i}\n" for i in range(100)))
    with pytest.raises(StepError) as e:
        run.execute(Host(commands=commands), plan, facts, Reporter(io.StringIO()))
    lines = e.value.details.splitlines()
    assert lines == [f"line {i}" for i in range(60, 100)]


def test_a_venv_that_was_there_before_survives_a_failure(tmp_path):
    venv = tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "lib" / "user-work.txt").write_text("keep me")
    facts, plan = minbase_plan(venv)
    commands = {k: Result(0) for k in keys(plan)}
    commands[f"{venv}/bin/python -m pip install torch>=2.6"] = Result(1, "", PIP_NO_TORCH)
    with pytest.raises(StepError):
        run.execute(Host(commands=commands), plan, facts, Reporter(io.StringIO()))
    assert (venv / "lib" / "user-work.txt").read_text() == "keep me"


def _as_user(name, sudo):
    data = host_facts_dict(name)
    data["host"].update(is_root=False, sudo=sudo)
    return Facts.from_dict(data)


def test_no_root_and_no_sudo_lists_the_commands_and_runs_nothing(builtin_recipes, tmp_path):
    facts = _as_user("debian13-minbase", sudo=False)
    plan = make_plan(facts, builtin_recipes, Request(venv=str(tmp_path / "venv")))
    system = Host()
    with pytest.raises(run.NeedsRootError) as e:
        run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert system.calls == []
    assert e.value.code == ExitCode.NEEDS_ROOT
    assert e.value.details == (f"DEBIAN_FRONTEND=noninteractive {APT} python3.13-dev python3.13-venv g++ "
                               "ca-certificates openssl")
    assert "admin" in e.value.hint


@pytest.mark.parametrize("name,is_root,sudo", [
    ("debian13-minbase", True, False),
    ("debian13-minbase", False, True),
    ("debian13-installed-venv", False, False),  # nothing left that needs root
])
def test_check_privileges_passes(builtin_recipes, name, is_root, sudo):
    data = host_facts_dict(name)
    data["host"].update(is_root=is_root, sudo=sudo)
    facts = Facts.from_dict(data)
    run.check_privileges(make_plan(facts, builtin_recipes, Request(venv="/nonexistent/v")), facts)


def test_check_privileges_is_the_error_class_the_cli_maps():
    assert run.NeedsRootError is NeedsRootError
