"""The CLI through Typer's test runner: JSON shapes, exit codes, and messages without tracebacks."""
from __future__ import annotations

import json
from pathlib import Path
import platform
import sys

import pytest
from typer.testing import CliRunner

from conftest import payload, FIXTURES, HOSTS, REQUIRED_KEYS, debian_only, dotted, host_facts, host_facts_dict
from torch_setup import __version__, pipeline
from torch_setup.cli import app
from torch_setup.errors import ExitCode
from torch_setup.facts.model import Facts
from torch_setup.host.system import System

runner = CliRunner()
MINBASE = str(HOSTS / "debian13-minbase.json")
VENV = "/opt/venvs/torch"


@pytest.fixture(autouse=True)
def no_index(mocker):
    """Plans here ask for the generic torch requirement: which wheel an index offers is test_torch_choice's
    business, and `plan --facts` would otherwise read this host's pip configuration and indexes."""
    mocker.patch("torch_setup.pipeline.resolve_uv", return_value=None)  # nor which uv wheel it serves
    return mocker.patch("torch_setup.pipeline.choose_torch", return_value=None)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_failure(result, code, *words):
    assert result.exit_code == int(code), result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # exited through typer.Exit, not an uncaught error
    for word in words:
        assert word in result.output, f"{word!r} not in {result.output!r}"


def write_json(tmp_path, data, name="facts.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# --------------------------------------------------------------------------------------------- detect

def test_detect_json_has_every_key_the_issue_lists():
    result = invoke("detect", "--json", "--python", sys.executable)
    assert result.exit_code == 0, result.output
    data = payload(result.stdout)
    for key in REQUIRED_KEYS:
        dotted(data, key)
    assert data["python"]["version"] == platform.python_version()
    assert data["python"]["found"] is True
    assert data["python"]["executable"] and data["python"]["absent"] == "" and not data["python"]["predicted"]
    facts = {k: v for k, v in data.items() if k not in ("ok", "error")}
    assert Facts.from_dict(facts).to_dict() == facts  # what plan --facts reads back


def test_detect_text():
    result = invoke("detect", "--python", sys.executable)
    assert result.exit_code == 0, result.output
    for label in ("os", "python", "headers", "c++ compiler", "accelerator", "torch"):
        assert f"{label}:" in result.output
    assert platform.python_version() in result.output


@pytest.mark.parametrize("spec", ["9.9", "/nonexistent/bin/python3"])
def test_detect_unknown_python(spec):
    assert_clean_failure(invoke("detect", "--python", spec), ExitCode.PYTHON_NOT_FOUND,
                         f"no Python interpreter matches --python {spec}")


def test_detect_absent_version_prints_the_host_without_it_and_plan_facts_provides_it(tmp_path):
    """`detect --python 3.99 --json` on a box without 3.99: the host's facts with the target absent, exit 7; those
    facts, planned, provide 3.99 (here refused: no torch supports it) instead of failing on a missing Python."""
    result = invoke("detect", "--json", "--python", "3.99")
    assert result.exit_code == ExitCode.PYTHON_NOT_FOUND
    data = payload(result.stdout)
    assert data["python"]["found"] is False and data["python"]["absent"] == "3.99"
    assert data["host_python"]["executable"]  # the box's python3, which runs the bootstrap scripts
    text = invoke("detect", "--python", "3.99")
    assert text.exit_code == ExitCode.PYTHON_NOT_FOUND and "no Python 3.99 on this host" in text.output
    facts = tmp_path / "facts.json"
    facts.write_text(result.stdout)
    planned = invoke("plan", "--facts", facts)
    assert_clean_failure(planned, ExitCode.UNSUPPORTED, "no torch release supports torch.compile on Python 3.99")


def test_detect_unknown_python_json():
    result = invoke("detect", "--json", "--python", "9.9")
    assert result.exit_code == ExitCode.PYTHON_NOT_FOUND
    err = payload(result.stdout)["error"]
    assert (err["code"], err["name"]) == (7, "PYTHON_NOT_FOUND")
    assert "9.9" in err["message"] and err["hint"]


# --------------------------------------------------------------------------------------------- plan

def test_plan_facts_json():
    result = invoke("plan", "--facts", MINBASE, "--json", "--venv", VENV)
    assert result.exit_code == 0, result.output
    data = payload(result.stdout)
    assert [s["id"] for s in data["steps"]] == ["system-packages", "venv", "torch"]
    for step in data["steps"]:
        assert {"id", "title", "status", "commands", "root"} <= set(step)
    assert data["steps"][0]["commands"] == [{"argv": [
        "apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600",
        "python3.13-dev", "python3.13-venv", "g++", "ca-certificates", "openssl"],
        "env": {"DEBIAN_FRONTEND": "noninteractive"}}]  # who runs the JSON argv (Ansible) gets the environment too
    assert data["steps"][0]["root"] is True
    assert data["steps"][1]["commands"] == [{"argv": ["/usr/bin/python3", "-m", "venv", VENV], "env": {}}]
    assert data["steps"][2]["commands"] == [{"argv": [VENV + "/bin/python", "-m", "pip", "install", "torch>=2.6"],
                                             "env": {}}]
    assert data["python"] == VENV + "/bin/python"


def test_plan_reads_what_detect_printed(tmp_path):
    """A bare `detect --json` object (not wrapped like the host captures) is a facts file."""
    path = write_json(tmp_path, host_facts_dict("debian13-installed-venv"))
    result = invoke("plan", "--facts", path, "--json", "--venv", "/root/.venvs/torch")
    assert result.exit_code == 0, result.output
    assert [s["status"] for s in payload(result.stdout)["steps"]] == ["done", "done"]


def test_plan_text():
    result = invoke("plan", "--facts", MINBASE, "--venv", VENV)
    assert result.exit_code == 0, result.output
    assert ("1. [todo] System packages: python3.13-dev python3.13-venv g++ ca-certificates openssl  (root)"
            in result.output)
    assert f"$ /usr/bin/python3 -m venv {VENV}" in result.output
    assert f"torch.compile will run in: {VENV}/bin/python" in result.output


def test_plan_facts_not_json(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text("os: debian\n")
    assert_clean_failure(invoke("plan", "--facts", path), ExitCode.BAD_FACTS, "is not JSON",
                         "detect --json")


@pytest.mark.parametrize("change,words", [
    (lambda d: d["python"].update(version=3.13), ["facts.python.version", "expected str"]),
    (lambda d: d["host"].update(is_root="yes"), ["facts.host.is_root", "expected bool"]),
    (lambda d: d.update(gpu="h200"), ["unknown key", "gpu"]),
    (lambda d: d.update(os=["debian"]), ["facts.os", "expected an object"]),
])
def test_plan_facts_wrong_type(tmp_path, change, words):
    data = host_facts_dict("debian13-minbase")
    change(data)
    assert_clean_failure(invoke("plan", "--facts", write_json(tmp_path, data)), ExitCode.BAD_FACTS, *words)


def test_plan_facts_that_is_a_list(tmp_path):
    assert_clean_failure(invoke("plan", "--facts", write_json(tmp_path, [1, 2])), ExitCode.BAD_FACTS,
                         "expected an object")


def test_plan_facts_missing_file(tmp_path):
    assert_clean_failure(invoke("plan", "--facts", tmp_path / "nope.json"), ExitCode.BAD_FACTS,
                         "cannot read facts file")


def test_plan_facts_error_as_json(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text("{")
    result = invoke("plan", "--facts", path, "--json")
    assert result.exit_code == ExitCode.BAD_FACTS
    data = payload(result.stdout)
    assert data["ok"] is False and data["error"]["name"] == "BAD_FACTS"


@pytest.mark.parametrize("case,word", [("unknown-need", "compiler"), ("bad-toml", "not valid TOML"),
                                       ("unknown-manager", "'no-such-pm'")])
def test_malformed_recipe(case, word):
    bad = FIXTURES / "recipes-bad" / case
    assert_clean_failure(invoke("plan", "--facts", MINBASE, "--recipes", bad), ExitCode.BAD_RECIPE, str(bad), word)


def test_user_recipes_change_the_plan():
    result = invoke("plan", "--facts", MINBASE, "--json", "--venv", VENV, "--recipes", FIXTURES / "recipes-user")
    assert result.exit_code == 0, result.output
    assert "libpython3.13-dev" in payload(result.stdout)["steps"][0]["commands"][0]["argv"]


def test_unsupported_os(tmp_path, mocker):
    # only the Debian/Ubuntu recipes (the first release's scope), so that the Fedora facts below have no recipe whatever
    # other platforms the built-in data gains
    real = pipeline.load_recipes
    mocker.patch("torch_setup.pipeline.load_recipes", side_effect=lambda *a: debian_only(real(*a)))
    data = host_facts_dict("debian13-minbase")
    data["os"].update(id="fedora", version="42", codename="", like=[], name="Fedora Linux")
    assert_clean_failure(invoke("plan", "--facts", write_json(tmp_path, data)), ExitCode.UNSUPPORTED,
                         "no recipe for Fedora Linux 42", "--recipes")


def test_unsupported_python(tmp_path):
    data = host_facts_dict("debian12-pyenv-3.11")
    data["python"]["version"] = "3.16.0"
    assert_clean_failure(invoke("plan", "--facts", write_json(tmp_path, data)), ExitCode.UNSUPPORTED, "3.16")


def test_usage_error():
    assert invoke("plan", "--no-such-option").exit_code == ExitCode.USAGE


def test_version():
    result = invoke("--version")
    assert (result.exit_code, result.output.strip()) == (0, __version__)


# --------------------------------------------------------------------------------------------- install

def as_user(name, sudo=False) -> Facts:
    data = host_facts_dict(name)
    data["host"].update(is_root=False, sudo=sudo)
    return Facts.from_dict(data)


@pytest.fixture
def no_commands(mocker):
    """Nothing may run on this host."""
    return mocker.patch.object(System, "run", side_effect=AssertionError("a command ran"))


def test_install_without_root_or_sudo(mocker, no_commands, tmp_path):
    mocker.patch("torch_setup.pipeline.detect", return_value=as_user("debian13-minbase"))
    result = invoke("install", "--yes", "--venv", tmp_path / "v")
    assert_clean_failure(result, ExitCode.NEEDS_ROOT, "need root", "admin")
    # the commands an admin must run, in full (their exact argv is pinned in test_plan.py)
    listed = result.output[result.output.index("error:"):]
    assert "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends" in listed
    assert "python3.13-dev" in listed and "g++" in listed
    no_commands.assert_not_called()


def test_install_without_root_json(mocker, no_commands, tmp_path):
    mocker.patch("torch_setup.pipeline.detect", return_value=as_user("debian13-minbase"))
    result = invoke("install", "--yes", "--json", "--venv", tmp_path / "v")
    assert result.exit_code == ExitCode.NEEDS_ROOT
    err = payload(result.stdout)["error"]
    assert err["name"] == "NEEDS_ROOT" and "apt-get install" in err["details"]


def test_install_dry_run_json(mocker, no_commands, tmp_path):
    mocker.patch("torch_setup.pipeline.detect", return_value=host_facts("debian13-minbase"))
    venv = tmp_path / "v"
    result = invoke("install", "--dry-run", "--json", "--venv", venv)
    assert result.exit_code == 0, result.output
    data = payload(result.stdout)
    assert (data["dry_run"], data["changed"], data["runs"], data["verify"]) == (True, False, [], None)
    ids = [s["id"] for s in data["plan"]["steps"]]
    assert (ids[0], ids[-1]) == ("system-packages", "torch") and "venv" in ids
    assert {s["status"] for s in data["plan"]["steps"]} == {"todo"}
    assert data["python"] == f"{venv}/bin/python"
    assert Facts.from_dict(data["facts"]) == host_facts("debian13-minbase")
    assert not venv.exists()


def test_install_dry_run_text(mocker, no_commands, tmp_path):
    mocker.patch("torch_setup.pipeline.detect", return_value=host_facts("debian13-minbase"))
    result = invoke("install", "--dry-run", "--venv", tmp_path / "v")
    assert result.exit_code == 0, result.output
    assert "[todo] System packages" in result.output


def test_install_with_nothing_to_do_says_so(mocker, no_commands):
    mocker.patch("torch_setup.pipeline.detect", return_value=host_facts("debian13-installed-venv"))
    result = invoke("install", "--no-verify", "--venv", "/root/.venvs/torch")
    assert result.exit_code == 0, result.output
    assert "Nothing to do" in result.output


def test_install_off_a_terminal_wants_yes(mocker, no_commands, tmp_path):
    mocker.patch("torch_setup.pipeline.detect", return_value=host_facts("debian13-minbase"))
    assert_clean_failure(invoke("install", "--venv", tmp_path / "v"), ExitCode.USAGE, "--yes")


def test_install_unknown_python():
    assert_clean_failure(invoke("install", "--python", "9.9", "--dry-run"), ExitCode.PYTHON_NOT_FOUND, "9.9")


# --------------------------------------------------------------------------------------------- verify

def test_verify_unknown_python():
    assert_clean_failure(invoke("verify", "--python", "/nonexistent/bin/python"), ExitCode.PYTHON_NOT_FOUND)


def test_readme_documents_every_cause_id_and_exit_code():
    """The README's tables are what users read: they must not drift from the catalogue and ExitCode."""
    from torch_setup import explain
    from torch_setup.errors import ExitCode

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for sig in explain.load_catalogue():
        assert f"| `{sig.id}` |" in readme, sig.id
    for code in ExitCode:
        assert f"| {int(code)} | {code.name} |" in readme, code.name


def test_readme_dockerfile_is_the_tested_one():
    """The Dockerfile the README shows is the one the end-to-end suite builds (deploy/docker/debian13.Dockerfile)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("```dockerfile\n", 1)[1].split("```", 1)[0]
    tested = (root / "deploy" / "docker" / "debian13.Dockerfile").read_text()
    code = [ln for ln in tested.splitlines() if ln.strip() and not ln.startswith("#")]
    assert [ln for ln in block.splitlines() if ln.strip()] == code


# ------------------------------------------------------------------------------------- the JSON envelope

@pytest.mark.parametrize("args", [
    ["detect", "--json", "--python", sys.executable],
    ["detect", "--json", "--python", "3.99"],  # the facts all the same, and PYTHON_NOT_FOUND
    ["plan", "--facts", MINBASE, "--json"],
    ["plan", "--facts", "/nonexistent.json", "--json"],
    ["install", "--dry-run", "--json", "--python", "/nonexistent/python3"],
    ["verify", "--json", "--python", "/nonexistent/python3"],
    ["doctor", "--facts", MINBASE, "--json"],
    ["explain", str(FIXTURES / "logs" / "no-cxx-compiler--debian-chroot-no-gxx.log"), "--json"],
    ["bundle", "--facts", "/nonexistent.json", "--output", "/nonexistent/b", "--json"],
    ["install", "--dry-run", "--json", "--from", "/nonexistent/bundle"],
])
def test_every_command_prints_one_envelope(args):
    """{version, command, ok, data, error}: ok is a bool, error null exactly when ok, and the exit code is the
    error's code (README, "JSON output")."""
    result = invoke(*args)
    env = json.loads(result.stdout)
    assert list(env) == ["version", "command", "ok", "data", "error"]
    assert env["version"] == __version__ and env["command"] == args[0] and isinstance(env["ok"], bool)
    assert isinstance(env["data"], dict)
    if env["ok"]:
        assert env["error"] is None and result.exit_code == 0
    else:
        assert set(env["error"]) == {"code", "name", "message", "hint", "details"}
        assert result.exit_code == env["error"]["code"] == int(ExitCode[env["error"]["name"]])


def test_install_json_keeps_the_rollback_line_of_a_failed_replacement(mocker, no_commands, tmp_path):
    """pipeline.install puts the rollback line in the error's extra fields; the command adds the failed plan beside
    it, and the JSON error's data.rollback is that line (README: "one line says so (JSON: data.rollback)")."""
    from torch_setup.errors import StepError

    line = "the torch replacement failed: rolled back, /v is the venv as it was before (restored from /v.prev)"

    def failing_install(*args, **kwargs):
        e = StepError("step 'torch' failed: torch")
        e.extra = {"rollback": line}
        raise e

    mocker.patch("torch_setup.pipeline.detect", return_value=host_facts("debian13-minbase"))
    mocker.patch("torch_setup.pipeline.install", side_effect=failing_install)
    result = invoke("install", "--yes", "--json", "--venv", tmp_path / "v")
    assert result.exit_code == ExitCode.STEP_FAILED, result.output
    data = payload(result.stdout)
    assert data["rollback"] == line and data["plan"]["steps"], data
