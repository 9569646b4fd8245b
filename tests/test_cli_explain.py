"""`torch-setup explain` through Typer's runner: real logs (tests/fixtures/logs, header lines stripped as a user
would paste them) from a file and from stdin, JSON and text, errors without tracebacks, and `--fix` on a captured
host's plan replayed by a FakeSystem (nothing is installed on this machine)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import payload, FIXTURES, host_facts, read_log
from torch_setup import explain as ex
from torch_setup.cli import app
from torch_setup.errors import ExitCode
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.host.replay import FakeSystem
from torch_setup.host.system import Result

runner = CliRunner()
LOGS = FIXTURES / "logs"
VENV = "/opt/venvs/torch"
CAUSE_KEYS = {"id", "title", "evidence", "line", "fix", "fix_for", "fix_steps", "fix_commands", "advice", "note"}
OS_RELEASE = 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'


def pasted(name: str):
    """(the log as a user pastes it, {header: value})."""
    return read_log(LOGS / name)


def copy_of(tmp_path: Path, name: str) -> Path:
    text, _ = pasted(name)
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


class Replay(FakeSystem):
    """Every command succeeds, and is written down: what `--fix` would have run."""


@pytest.fixture
def minbase(mocker, monkeypatch):
    """This host's plan is the Debian 13 minbase one; the runner's system is a Replay; the real System never runs
    a command."""
    facts = host_facts("debian13-minbase")
    from torch_setup.recipes import load as recipes

    rec = recipes.load()
    plan = make_plan(facts, rec, Request(venv=VENV))
    mocker.patch("torch_setup.cli._host_plan", return_value=(facts, rec, plan))
    replay = Replay(commands={"*": Result(0, "done\n")}, files={"/etc/os-release": OS_RELEASE})
    monkeypatch.setattr("torch_setup.cli.System", lambda *a, **kw: replay)

    def refuse(self, argv, **kw):
        raise AssertionError(f"a real command would have run: {argv}")

    monkeypatch.setattr("torch_setup.host.system.System.run", refuse)
    replay.plan = plan
    return replay


def invoke(*args, input=None):
    return runner.invoke(app, ["explain", *[str(a) for a in args]], input=input)


def no_traceback(result):
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


LOGS_WITH_A_STEP = ["missing-python-headers--vllm-logger.log", "no-cxx-compiler--debian-chroot-no-gxx.log",
                    "no-venv-module--debian-chroot.log", "missing-python-headers--german.log",
                    "no-openssl--inductor-2.15-debian13.log"]
LOGS_WITH_ADVICE = ["libcuda-not-found--colab.log", "duplicate-openmp--macos-wheel.log",
                    "gpu-too-old--p100.log", "inductor-cache--stale-cuda-utils.log"]


@pytest.mark.parametrize("name", LOGS_WITH_A_STEP + LOGS_WITH_ADVICE)
def test_explain_file_json(minbase, tmp_path, name):
    """--here: this host's plan gives the fixes, whatever host the log names."""
    text, header = pasted(name)
    result = invoke(copy_of(tmp_path, name), "--json", "--here")
    assert result.exit_code == 0, result.output
    no_traceback(result)
    data = payload(result.stdout)
    assert list(data) == ["ok", "error", "causes", "host"] and data["ok"] is True
    assert data["host"]["fix_for"] == "this-host"
    causes = data["causes"]
    assert causes and all(set(c) == CAUSE_KEYS for c in causes)
    first = causes[0]
    assert first["id"] == name.split("--")[0]  # the most likely cause first
    assert header["evidence"] in first["evidence"]
    assert header["evidence"].replace("\\", "/") in text.split("\n")[first["line"] - 1].replace("\\", "/")
    assert [c["id"] for c in causes] == [c.id for c in ex.diagnose(text)]
    assert len({c["id"] for c in causes}) == len(causes)
    if name in LOGS_WITH_A_STEP:
        apt = [c.display() for c in next(s for s in minbase.plan.steps if s.id == "system-packages").commands]
        assert first["fix_steps"] == ["system-packages"]
        assert first["fix"] == "; ".join(apt) and "apt-get install" in first["fix"]
        assert first["fix_commands"][0][:2] == ["apt-get", "install"] and first["fix_for"] == "this-host"
    else:
        assert first["fix_steps"] == [] and first["fix"] == first["advice"] and first["advice"]
    assert minbase.calls == []  # explaining runs nothing


def test_explain_from_stdin(minbase):
    text, header = pasted("no-cxx-compiler--dynamo-logger-container.log")
    result = invoke("-", "--json", input=text)
    assert result.exit_code == 0, result.output
    causes = payload(result.stdout)["causes"]
    assert causes[0]["id"] == "no-cxx-compiler" and header["evidence"] in causes[0]["evidence"]


def test_explain_reads_stdin_by_default_and_bytes_that_are_not_utf8(minbase):
    text, _ = pasted("missing-python-headers--french.log")
    raw = b"\xff\xfe garbage \x80\r\n" + text.encode("utf-8")
    result = runner.invoke(app, ["explain", "--json"], input=raw)
    assert result.exit_code == 0, result.output
    assert payload(result.stdout)["causes"][0]["id"] == "missing-python-headers"


def test_explain_text(minbase, tmp_path):
    # the log is from a Debian 12 box's python3.11, this host runs 3.13: the fix is for the log's host
    result = invoke(copy_of(tmp_path, "missing-python-headers--inductor-2.13-debian.log"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("fixes for: log-host (the log's Python is 3.11")
    assert lines[0].startswith("missing-python-headers: ")
    assert any(re.match(r"^  evidence \(line \d+\): .*Python\.h", ln) for ln in lines)
    assert any(ln.startswith("  fix: $ ") and "python3.11-dev" in ln for ln in lines)
    assert not any("python3.13-dev" in ln for ln in lines)


def test_explain_text_here(minbase, tmp_path):
    result = invoke(copy_of(tmp_path, "missing-python-headers--inductor-2.13-debian.log"), "--here")
    lines = result.output.splitlines()
    assert lines[-1].startswith("fixes for: this-host")
    assert any(ln.startswith("  fix: $ ") and "python3.13-dev" in ln for ln in lines)


def test_explain_windows_log_does_not_probe_this_host(minbase, mocker, tmp_path):
    plan = mocker.patch("torch_setup.cli._host_plan", side_effect=AssertionError("probed this host"))
    result = invoke(copy_of(tmp_path, "no-cxx-compiler--windows.log"), "--json")
    assert result.exit_code == 0, result.output
    data = payload(result.stdout)
    assert data["host"]["fix_for"] == "log-host" and data["host"]["log"]["platform"] == "windows"
    assert all(c["fix_commands"] == [] for c in data["causes"]) and plan.call_count == 0


def test_explain_facts_file(minbase, tmp_path):
    import json
    from conftest import host_facts_dict

    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(host_facts_dict("debian13-minbase")))
    result = invoke(copy_of(tmp_path, "no-cxx-compiler--windows.log"), "--json", "--facts", facts)
    assert result.exit_code == 0, result.output
    data = payload(result.stdout)
    assert data["host"]["fix_for"] == "facts-host"
    assert data["causes"][0]["fix_for"] == "facts-host" and data["causes"][0]["fix_commands"]
    result = invoke(copy_of(tmp_path, "no-cxx-compiler--windows.log"), "--fix", "--facts", facts)
    assert result.exit_code == int(ExitCode.FAILED) and minbase.calls == []


@pytest.mark.parametrize("name", ["unknown--plain-oom.log", "unknown--shape-mismatch-compiled.log",
                                  "unknown--empty.log"])
def test_text_with_no_known_cause_is_unknown(minbase, tmp_path, name):
    result = invoke(copy_of(tmp_path, name), "--json")
    assert result.exit_code == 0, result.output
    causes = payload(result.stdout)["causes"]
    assert [c["id"] for c in causes] == ["unknown"]
    assert causes[0]["evidence"] == "" and causes[0]["fix_steps"] == [] and causes[0]["fix"]


def test_free_text_is_unknown_in_text_mode_too(minbase):
    result = invoke("-", input="hello world\nthe weather is fine\n")
    assert result.exit_code == 0
    assert result.output.splitlines()[0].startswith("unknown")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_missing_file_is_a_clean_error(minbase, tmp_path, as_json):
    missing = tmp_path / "nope.log"
    result = invoke(missing, *(["--json"] if as_json else []))
    assert result.exit_code == int(ExitCode.FAILED)
    no_traceback(result)
    assert isinstance(result.exception, SystemExit)
    if as_json:
        err = payload(result.stdout)["error"]
        assert err["message"] == f"cannot read {missing}: No such file or directory"
    else:
        assert f"error: cannot read {missing}: No such file or directory" in result.output


def test_a_directory_is_a_clean_error(minbase, tmp_path):
    result = invoke(tmp_path)
    assert result.exit_code == int(ExitCode.FAILED)
    no_traceback(result)
    assert f"cannot read {tmp_path}" in result.output


# --------------------------------------------------------------------------------------------- --fix

def apt_install(plan):
    return [c for s in plan.steps if s.id == "system-packages" for c in s.commands]


def test_fix_runs_only_the_fixing_step(minbase, tmp_path):
    result = invoke(copy_of(tmp_path, "missing-python-headers--vllm-logger.log"), "--fix", "--json")
    assert result.exit_code == 0, result.output
    no_traceback(result)
    data = payload(result.stdout)
    assert data["causes"][0]["id"] == "missing-python-headers"
    want = [" ".join(c.argv) for c in apt_install(minbase.plan)]
    assert minbase.calls == want  # apt only: no venv, no torch
    ran = {r["id"]: r["status"] for r in data["runs"]}
    assert ran["system-packages"] == "ran"


def test_fix_text_mode_prints_the_causes_then_runs(minbase, tmp_path):
    result = invoke(copy_of(tmp_path, "no-cxx-compiler--debian-chroot-no-gxx.log"), "--fix")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("no-cxx-compiler")
    assert minbase.calls == [" ".join(c.argv) for c in apt_install(minbase.plan)]


@pytest.mark.parametrize("name", ["unknown--plain-oom.log", "libcuda-not-found--colab.log"])
def test_fix_with_nothing_in_the_plan_for_it_is_a_clean_error(minbase, tmp_path, name):
    result = invoke(copy_of(tmp_path, name), "--fix")
    assert result.exit_code == int(ExitCode.FAILED)
    no_traceback(result)
    assert "nothing in this host's plan fixes these causes" in result.output
    assert minbase.calls == []


def test_fix_without_a_plan_for_this_host_is_a_clean_error(mocker, monkeypatch, tmp_path):
    mocker.patch("torch_setup.cli._host_plan", return_value=(None, None, None))
    replay = Replay(commands={"*": Result(0)})
    monkeypatch.setattr("torch_setup.cli.System", lambda *a, **kw: replay)
    result = invoke(copy_of(tmp_path, "missing-python-headers--german.log"), "--fix")
    assert result.exit_code == int(ExitCode.FAILED)
    no_traceback(result)
    assert replay.calls == []


def test_fix_a_failing_step_names_its_own_causes(minbase, tmp_path):
    """The fix's own failure (apt cannot find the package) exits STEP_FAILED, with the step's output."""
    minbase.commands = {"apt-get*": Result(100, "E: Unable to locate package python3.13-dev\n")}
    result = invoke(copy_of(tmp_path, "missing-python-headers--spanish.log"), "--fix", "--json")
    assert result.exit_code == int(ExitCode.STEP_FAILED), result.output
    no_traceback(result)
    err = payload(result.stdout)["error"]
    assert "system-packages" in err["message"] and "Unable to locate package" in err["details"]


def test_fix_runs_the_steps_the_fixing_steps_come_after(minbase, tmp_path):
    result = invoke(copy_of(tmp_path, "torch-missing--import.log"), "--fix", "--json")
    assert result.exit_code == 0, result.output
    assert payload(result.stdout)["causes"][0]["id"] == "torch-missing"
    venv = next(s for s in minbase.plan.steps if s.id == "venv")
    assert venv.after == ("system-packages",)
    apt = " ".join(apt_install(minbase.plan)[0].argv)
    assert apt in minbase.calls
    assert minbase.calls.index(apt) < minbase.calls.index(" ".join(venv.commands[0].argv))


def test_fix_json_does_not_call_steps_it_left_out_done(minbase, tmp_path):
    result = invoke(copy_of(tmp_path, "missing-python-headers--vllm-logger.log"), "--fix", "--json")
    runs = {r["id"]: r["status"] for r in payload(result.stdout)["runs"]}
    assert runs["torch"] != "done" and runs["venv"] != "done"


def test_real_explain_on_this_host(tmp_path):
    """No patches: this host's own plan gives the fix (whatever it is here); the shape is ours."""
    result = invoke(copy_of(tmp_path, "missing-python-headers--vllm-logger.log"), "--json")
    assert result.exit_code == 0, result.output
    causes = payload(result.stdout)["causes"]
    assert causes[0]["id"] == "missing-python-headers" and all(set(c) == CAUSE_KEYS for c in causes)
    assert causes[0]["fix"]  # a step of this host's plan, or the catalogue's advice
