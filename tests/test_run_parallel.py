"""run.execute with steps side by side: the Debian 13 minbase plan with a uv wheel runs the system packages while
uv -> venv -> torch goes on; a failure waits for the running steps, starts nothing new and removes what this run
made; progress lines stay whole. Commands are replayed by a FakeSystem that sleeps and writes down when each one
started and ended."""
from __future__ import annotations

import io
import json
import re
import threading
import time

import pytest

from conftest import FIXTURES, changed, host_facts, host_facts_dict
from torch_setup import pipeline, run, verify
from torch_setup.errors import StepError
from torch_setup.planning.steps import Plan, Step, Command
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.report import Reporter
from torch_setup.host.replay import FakeSystem, command_key
from torch_setup.host.system import Result
from torch_setup.wheels.uv import UvWheel

VENV = "/opt/venvs/torch"
UV = UvWheel("0.13.9", "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
             "https://files.pythonhosted.org/packages/3d/aa/uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl",
             "ab" * 32, 17606939)
# Debian's own words when `python3 -m venv` has no ensurepip (a real log; it names the half-made venv's python)
NO_ENSUREPIP = (FIXTURES / "logs" / "no-venv-module--debian-chroot.log").read_text().split("\n", 2)[2]


class Timed(FakeSystem):
    """Each command belongs to a plan step; it sleeps that step's time, prints `lines` output lines, and fails
    when the step is in `fail`. A venv step makes VENV/bin/python, as the real ones do (also when it fails:
    Debian's venv module makes the directory before it finds there is no ensurepip)."""

    def __init__(self, plan, seconds, fail=(), lines=0, failure_output="it failed\n", gates=None, **kw):
        super().__init__(**kw)
        self.step_of = {command_key(c.argv): s.id for s in plan.steps for c in s.commands}
        # a step's later commands take no time: the step's time is its first one's
        self.later = {command_key(c.argv) for s in plan.steps for c in s.commands[1:]}
        self.seconds, self.fail, self.lines, self.failure_output = seconds, set(fail), lines, failure_output
        # gates: step -> (other step, "start" or "end"): the step's command waits for that moment of the other
        # step, then sleeps its own time (orders the steps without trusting the scheduler's timing)
        self.gates = gates or {}
        self.events = {(sid, when): threading.Event() for s in plan.steps for sid in [s.id]
                       for when in ("start", "end")}
        self.t0 = time.monotonic()
        self.spans = {}  # step id -> (start, end), seconds since t0
        self.removed_at = {}
        self.lock = threading.Lock()

    def now_s(self):
        return time.monotonic() - self.t0

    def run(self, argv, *, env=None, timeout=None, input=None, on_line=None, cwd=None):
        key = command_key(argv)
        sid = self.step_of.get(key)
        if sid is None:  # not a step's command (a step's "done already?" check): not done
            return Result(1, "", "not a command of this plan's steps")
        if key in self.later:
            return Result(0)
        with self.lock:
            self.calls.append(key)
        start = self.now_s()
        self.events[(sid, "start")].set()
        for i in range(self.lines):
            if on_line:
                on_line(f"{sid} output line {i} " + "x" * 60)
            time.sleep(0)  # let the other step's thread print in between
        if sid in self.gates:
            assert self.events[self.gates[sid]].wait(10), f"{sid}: {self.gates[sid]} never came"
        time.sleep(self.seconds.get(sid, 0.0))
        if sid == "venv":
            self.files[VENV + "/bin/python"] = ""
        end = self.now_s()
        with self.lock:
            self.spans[sid] = (start, end)
        self.events[(sid, "end")].set()
        if sid in self.fail:
            if on_line:
                for line in self.failure_output.splitlines():
                    on_line(line)
            return Result(1, self.failure_output, "", end - start)
        return Result(0, "", "", end - start)

    def remove_tree(self, path):
        self.removed_at[path] = self.now_s()
        super().remove_tree(path)


def minbase(uv=UV, **changes):
    facts = changed(host_facts_dict("debian13-minbase"), **changes)
    return facts, make_plan(facts, _recipes(), Request(venv=VENV), uv=uv)


def _recipes():
    from torch_setup.recipes import load as recipes

    return recipes.load()


def test_the_plan_under_test(builtin_recipes):
    _, plan = minbase()
    assert [(s.id, s.status, s.after) for s in plan.steps] == [
        ("system-packages", "todo", ()), ("uv", "todo", ()), ("venv", "todo", ("uv",)),
        ("torch", "todo", ("venv",))]
    assert plan.steps[2].creates == VENV


def overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]


def test_system_packages_run_while_uv_venv_and_torch_go_on():
    facts, plan = minbase()
    # apt ends 0.1 s after torch does (the cold-install case: the torch download is the long one here)
    system = Timed(plan, {"system-packages": 0.1, "uv": 0.1, "venv": 0.1, "torch": 0.15},
                   gates={"system-packages": ("torch", "end")})
    out = io.StringIO()
    runs = run.execute(system, plan, facts, Reporter(out))
    assert [(r.id, r.status) for r in runs] == [("system-packages", "ran"), ("uv", "ran"), ("venv", "ran"),
                                                ("torch", "ran")]
    s = system.spans
    # apt and the chain start together; torch's download overlaps apt
    assert overlap(s["system-packages"], s["uv"])
    assert overlap(s["system-packages"], s["torch"])
    # the chain keeps its order
    assert s["uv"][1] <= s["venv"][0] and s["venv"][1] <= s["torch"][0]
    assert not system.removed_at
    text = out.getvalue()
    assert "ok: torch" in text and "ok: system-packages" in text
    # torch was done before apt was
    assert text.index("ok: torch") < text.index("ok: system-packages")


def test_a_failing_torch_waits_for_apt_then_removes_the_venv_it_made():
    facts, plan = minbase()
    # apt goes on for 0.3 s after torch failed
    system = Timed(plan, {"system-packages": 0.3, "uv": 0.02, "venv": 0.02, "torch": 0.05}, fail={"torch"},
                   failure_output="ERROR: No matching distribution found for torch>=2.6\n",
                   gates={"system-packages": ("torch", "end")})
    out = io.StringIO()
    with pytest.raises(StepError) as err:
        run.execute(system, plan, facts, Reporter(out))
    raised = system.now_s()
    assert "'torch'" in err.value.message and "No matching distribution" in err.value.details
    s = system.spans
    assert s["torch"][1] < s["system-packages"][1]  # torch failed while apt was still running
    assert raised >= s["system-packages"][1]  # the run waited for apt
    assert system.removed_at[VENV] >= s["system-packages"][1]
    assert not system.exists(VENV)
    assert f"removed {VENV}, made by this run" in out.getvalue()
    assert "FAILED: torch" in out.getvalue() and "ok: system-packages" in out.getvalue()


def test_a_venv_that_was_there_before_is_kept():
    facts, plan = minbase()
    system = Timed(plan, {"system-packages": 0.2}, fail={"torch"}, files={VENV + "/bin/python": "",
                                                                          VENV + "/pyvenv.cfg": "home = /usr/bin\n"})
    with pytest.raises(StepError):
        run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert not system.removed_at
    assert system.files[VENV + "/pyvenv.cfg"] == "home = /usr/bin\n"


def test_a_failing_apt_stops_the_chain_before_torch():
    facts, plan = minbase()
    # the venv step is still running 0.3 s after apt failed
    system = Timed(plan, {"system-packages": 0.05, "uv": 0.02, "venv": 0.3}, fail={"system-packages"},
                   failure_output="E: Unable to locate package python3.13-dev\n",
                   gates={"venv": ("system-packages", "end")})
    out = io.StringIO()
    with pytest.raises(StepError) as err:
        run.execute(system, plan, facts, Reporter(out))
    assert "'system-packages'" in err.value.message and "python3.13-dev" in err.value.details
    assert "torch" not in system.spans  # started nothing after the failure
    assert system.spans["venv"][1] > system.spans["system-packages"][1]  # the running venv step was waited for
    assert VENV in system.removed_at and not system.exists(VENV)


def test_done_steps_are_skipped_and_the_rest_runs():
    facts, plan = minbase(**{"python.has_headers": True, "compiler.toolchain_ok": True, "compiler.ok": True,
                             "host.ca_bundle": True, "host.openssl": "/usr/bin/openssl"})
    assert [s.status for s in plan.steps] == ["done", "todo", "todo", "todo"]
    system = Timed(plan, {})
    runs = run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert [(r.id, r.status) for r in runs] == [("system-packages", "done"), ("uv", "ran"), ("venv", "ran"),
                                                ("torch", "ran")]
    assert set(system.spans) == {"uv", "venv", "torch"}
    assert not any(c.startswith("apt-get") for c in system.calls)


LINE = re.compile(
    r"^(==> .+"
    r"|\[(?P<cmd>[a-z-]+)\] \$ .+"
    r"|\[(?P<out>[a-z-]+)\]   (?P<sid>[a-z-]+) output line \d+ x{60}"
    r"|ok: [a-z-]+ \(\d+\.\d s, done at \+\d+\.\d s\))$"
)


def test_reporter_lines_stay_whole_when_steps_print_at_once():
    facts, plan = minbase()
    system = Timed(plan, {}, lines=300)
    out = io.StringIO()
    run.execute(system, plan, facts, Reporter(out))
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    counts = {}
    for line in lines[:-1]:
        m = LINE.match(line)
        assert m, f"torn or mixed line: {line!r}"
        if m.group("out"):
            assert m.group("out") == m.group("sid"), line  # each output line carries its own step's prefix
            counts[m.group("sid")] = counts.get(m.group("sid"), 0) + 1
    assert counts == {"system-packages": 300, "uv": 300, "venv": 300, "torch": 300}
    # the two first steps really printed side by side
    first_uv = next(i for i, ln in enumerate(lines) if ln.startswith("[uv]   "))
    last_apt = max(i for i, ln in enumerate(lines) if ln.startswith("[system-packages]   "))
    assert first_uv < last_apt


def test_a_venv_step_that_fails_half_way_removes_its_directory():
    facts, plan = minbase(uv=None)
    assert [s.id for s in plan.todo] == ["system-packages", "venv", "torch"]
    system = Timed(plan, {}, fail={"venv"}, failure_output=NO_ENSUREPIP)
    with pytest.raises(StepError) as err:
        run.execute(system, plan, facts, Reporter(io.StringIO()))
    assert "ensurepip is not" in err.value.details
    assert [c for c in system.calls if "-m venv" in c] == [f"/usr/bin/python3 -m venv {VENV}"]
    assert not system.exists(VENV)


def test_a_step_waiting_for_a_step_that_is_not_in_the_plan_is_an_error():
    facts = host_facts("debian13-installed-venv")
    lone = Step("torch", "torch", "todo", (Command(("/root/.venvs/torch/bin/python", "-m", "pip", "install",
                                                    "torch")),), False, after=("venv",))
    plan = Plan((lone,), "/root/.venvs/torch/bin/python", "debian-13")
    system = Timed(plan, {})
    try:
        runs = run.execute(system, plan, facts, Reporter(io.StringIO()))
    except StepError:
        return
    assert [(r.id, r.status) for r in runs] == [("torch", "ran")]


# --------------------------------------------------------------------------------- the verification starts early

class WithSmoke(Timed):
    """Timed, plus the smoke check: started (FakeJob) and run when told "go"; `moments` has when each happened."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.moments = {}
        d = json.loads((FIXTURES / "smoke" / "pass-cpu.json").read_text())
        self.smoke_result = Result(d["rc"], d["stdout"], d["stderr"])

    def start(self, argv, *, env=None):
        self.moments["verify started"] = self.now_s()
        return super().start(argv, env=env)

    def run(self, argv, *, env=None, **kw):
        if list(argv[1:3]) == ["-c", verify.SMOKE]:
            self.moments["verify compiles"] = self.now_s()
            return self.smoke_result
        return super().run(argv, env=env, **kw)


def test_the_verification_imports_torch_while_apt_finishes_and_compiles_after():
    facts, plan = minbase()
    system = WithSmoke(plan, {"system-packages": 0.3, "uv": 0.02, "venv": 0.02, "torch": 0.05},
                       gates={"system-packages": ("torch", "end")})
    out = io.StringIO()
    report = pipeline.install(system, facts, None, plan, Reporter(out))
    s, m = system.spans, system.moments
    assert s["torch"][1] <= m["verify started"] < s["system-packages"][1] <= m["verify compiles"]
    assert report.verification.ok
    assert out.getvalue().index("==> Verifying torch.compile") < out.getvalue().index("ok: system-packages")


def test_with_torch_already_in_the_verification_starts_before_the_steps():
    facts, plan = minbase(**{"torch.version": "2.15.0", "python.executable": VENV + "/bin/python",
                             "python.in_venv": True, "python.externally_managed": False})
    assert [s.id for s in plan.todo] == ["system-packages"]
    system = WithSmoke(plan, {"system-packages": 0.1})
    report = pipeline.install(system, facts, None, plan, Reporter(io.StringIO()))
    assert system.moments["verify started"] < system.spans["system-packages"][0]
    assert system.moments["verify compiles"] >= system.spans["system-packages"][1] and report.verification.ok


def test_a_failing_step_cancels_the_started_verification():
    facts, plan = minbase()
    system = WithSmoke(plan, {"system-packages": 0.2, "uv": 0.02, "venv": 0.02, "torch": 0.02},
                       fail={"system-packages"}, gates={"system-packages": ("torch", "end")})
    with pytest.raises(StepError):
        pipeline.install(system, facts, None, plan, Reporter(io.StringIO()))
    assert "verify started" in system.moments and "verify compiles" not in system.moments
    assert system.calls[-2].startswith(f"cancel {VENV}/bin/python -c ") and system.calls[-1].startswith("remove_tree")


def test_no_verification_no_smoke_check():
    facts, plan = minbase()
    system = WithSmoke(plan, {})
    report = pipeline.install(system, facts, None, plan, Reporter(io.StringIO()), do_verify=False)
    assert report.verification is None and not system.moments
