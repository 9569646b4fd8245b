"""The deploy/ examples: Dockerfiles, the Ansible role's filters, cloud-init user data.

These tests are fast and run as any user. The real builds and runs are in tests/e2e/test_docker.py and
test_ansible.py. The cloud-init example is also checked with `cloud-init schema` from Debian's archive, in a
Debian 13 root (e2e, at the end of this file).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
USER_DATA = DEPLOY / "cloud-init" / "user-data.yaml"
ROLE = DEPLOY / "ansible" / "roles" / "torch_setup"


def _filters():
    spec = importlib.util.spec_from_file_location("ts_filters", ROLE / "filter_plugins" / "torch_setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


F = _filters()


# ---------------------------------------------------------------------------------------------- Dockerfiles

def _instructions(path: Path) -> list:
    """(KEYWORD, text) per instruction, with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            kw, _, rest = cur.strip().partition(" ")
            out.append((kw.upper(), rest))
            cur = ""
    return out


def test_three_dockerfiles():
    assert {p.name for p in DOCKERFILES} == {"debian13.Dockerfile", "python313-slim.Dockerfile",
                                             "cuda-ubuntu.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_verifies_and_cleans_in_one_layer(path):
    ins = _instructions(path)
    # BASE first, so the tests (and users with a mirror) can swap the base image without editing the file.
    assert ins[0][0] == "ARG" and ins[0][1].startswith("BASE=") and ins[1] == ("FROM", "${BASE}")
    assert ("COPY", "torch-setup.pyz /opt/torch-setup.pyz") in ins
    runs = [t for k, t in ins if k == "RUN"]
    assert len(runs) == 1, "one RUN: the caches must be removed in the layer that made them"
    run = runs[0]
    assert "python3 /opt/torch-setup.pyz install --yes --venv /opt/venv" in run
    assert "PIP_NO_CACHE_DIR=1" in run
    # cleaning happens after the install, in the same RUN
    assert run.index("install --yes") < run.index("rm -rf /var/lib/apt/lists/*")
    assert "/root/.cache" in run
    assert ins[-1] == ("ENV", "PATH=/opt/venv/bin:$PATH")


def test_cuda_dockerfile_names_the_variant():
    ins = _instructions(DEPLOY / "docker" / "cuda-ubuntu.Dockerfile")
    assert ins[0][1].startswith("BASE=nvidia/cuda:") and "ubuntu" in ins[0][1]
    # an ARG after FROM: in RUN's environment during the build, not left in the image
    assert ("ARG", "TORCH_SETUP_TORCH_BACKEND=cu130") in ins[2:]


# ---------------------------------------------------------------------------------------------- Ansible filters

def envelope(data=None, ok=True, error=None):
    """What `torch-setup install --json` prints: the README's envelope around the report."""
    return {"version": "0.1.0", "command": "install", "ok": ok, "data": data or {}, "error": error}


REPORT_READY = envelope({"changed": True, "dry_run": False, "python": "/opt/venv/bin/python",
                         "plan": {"steps": [{"id": "torch", "status": "todo"}]}, "runs": [{"status": "ran"}],
                         "verify": {"ok": True, "torch": "2.14.1", "seconds": 18.2, "results": [], "error": None,
                                    "compiler_lines": []}, "facts": {}})


def _run(report=None, rc=0, stderr="", stdout=None):
    return {"rc": rc, "stdout": json.dumps(report) if stdout is None else stdout, "stderr": stderr,
            "changed": False}


def test_result_ready():
    r = F.result(_run(REPORT_READY), "gpu-01")
    assert r["status"] == "ready" and r["torch"] == "2.14.1" and r["changed"] is True and r["seconds"] == 18.2
    assert F.changed(_run(REPORT_READY)) is True


def test_result_dry_run_is_planned_and_counts_as_a_change_only_when_steps_are_todo():
    planned = envelope(dict(REPORT_READY["data"], dry_run=True, changed=False, runs=[], verify=None))
    r = F.result(_run(planned), "h")
    assert r["status"] == "planned" and r["cause"] == "would run: torch"
    assert F.changed(_run(planned)) is True
    done = envelope(dict(planned["data"], plan={"steps": [{"id": "torch", "status": "done"}]}))
    assert F.result(_run(done), "h")["cause"] == "nothing to do" and F.changed(_run(done)) is False


def test_result_no_verify_is_ready_but_says_so():
    r = F.result(_run(envelope(dict(REPORT_READY["data"], verify=None))), "h")
    assert r["status"] == "ready" and r["cause"] == "not verified (--no-verify)"


def test_result_from_torch_setup_error_names_code_message_and_hint():
    err = envelope({"causes": []}, ok=False, error={"code": 6, "name": "NEEDS_ROOT", "message": "root is needed",
                                                    "hint": "run: apt-get install g++", "details": ""})
    r = F.result(_run(err, rc=6), "h")
    assert r["status"] == "failed"
    assert r["cause"] == "NEEDS_ROOT (exit 6): root is needed -- run: apt-get install g++"


def test_result_verify_failed_shows_compiler_lines():
    bad = envelope(dict(REPORT_READY["data"], verify={"ok": False, "torch": "2.14.1", "error": "x",
                                                      "compiler_lines": ["fatal error: Python.h: No such file"]}),
                   ok=False, error={"code": 9, "name": "VERIFY_FAILED", "message": "torch.compile failed"})
    r = F.result(_run(bad, rc=9), "h")
    assert r["status"] == "failed" and "Python.h" in r["cause"]


def test_result_without_json_uses_stderr():
    r = F.result(_run(rc=2, stdout="", stderr="Usage: ...\nError: No such option: --bogus\n"), "h")
    assert r["status"] == "failed" and r["cause"] == "exit 2: Error: No such option: --bogus"


def test_result_unreachable_and_copy_failure_come_from_earlier_tasks():
    unreachable = {"unreachable": True, "msg": "Task failed: Failed to connect to the host via ssh: refused"}
    r = F.result({}, "h", [unreachable, {"skipped": True}])
    assert r["cause"] == "unreachable: Failed to connect to the host via ssh: refused"
    r = F.result({"skipped": True}, "h", [{"path": "/tmp/x"}, {"failed": True, "msg": "No space left"}])
    assert r["status"] == "failed" and r["cause"] == "torch-setup did not run: No space left"


def test_result_of_an_async_timeout():
    run = {"failed": True, "msg": "async task did not complete within the requested time - 3600s"}
    assert F.result(run, "h")["cause"] == "async task did not complete within the requested time - 3600s"


def test_summary_counts_and_puts_failures_first():
    lines = F.summary([F.result(_run(REPORT_READY), "a"),
                       F.result(_run(rc=1, stdout="", stderr="boom"), "b")])
    assert lines[0] == "torch-setup: 2 hosts: 1 ready, 0 planned (check mode), 1 failed"
    assert lines[1] == "FAILED  b: exit 1: boom"
    assert lines[2].startswith("READY   a: torch 2.14.1 in /opt/venv/bin/python")


def test_bundle_argv_names_every_hosts_facts_once():
    argv = F.bundle_argv(["r/facts/a.json", "r/facts/b.json", "r/facts/a.json"], "python3", "t.pyz", "out")
    assert argv == ["python3", "t.pyz", "bundle", "--json", "--output", "out",
                    "--facts", "r/facts/a.json", "--facts", "r/facts/b.json"]
    assert F.bundle_argv(["a.json"], "py", "t.pyz", "o", True, ["--torch-backend", "cpu"])[-3:] == [
        "--dry-run", "--torch-backend", "cpu"]


def test_fleet_plays_build_one_bundle_before_the_installs():
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with ansible-core) is needed to parse the YAML")
    plays = yaml.safe_load((DEPLOY / "ansible" / "torch-setup.yml").read_text())
    names = [p["tasks"][0]["ansible.builtin.import_role"].get("tasks_from") if "tasks" in p else "main" for p in plays]
    assert names == ["facts", "bundle", "main", "summary"]
    assert all("torch_setup_bundle" in p["tasks"][0]["when"] for p in plays[:2])
    main = (ROLE / "tasks" / "main.yml").read_text()
    assert "['--from', torch_setup_bundle_url] if torch_setup_bundle | bool and not ansible_check_mode" in main


def test_parse_report_tolerates_garbage():
    assert F.parse_report("not json") == {} and F.parse_report("{broken") == {} and F.parse_report(None) == {}


# ---------------------------------------------------------------------------------------------- YAML files

def test_ansible_yaml_parses_and_keeps_the_fleet_keywords():
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with ansible-core) is needed to parse the YAML")
    plays = yaml.safe_load((DEPLOY / "ansible" / "torch-setup.yml").read_text())
    first = next(p for p in plays if p.get("roles") == ["torch_setup"])
    assert "torch_setup_serial" in first["serial"] and first["ignore_unreachable"] is True
    assert plays[-1]["hosts"] == "localhost"
    for path in list(ROLE.rglob("*.yml")) + [DEPLOY / "ansible" / "inventory.example.yml"]:
        assert yaml.safe_load(path.read_text()) is not None, path
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["torch_setup_args"] == [] and defaults["torch_setup_become"] is False


def test_ansible_syntax_check():
    exe = Path(sys.executable).parent / "ansible-playbook"
    if not exe.exists():
        pytest.skip("ansible-core is not installed in this environment")
    res = subprocess.run([str(exe), "--syntax-check", "-i", "localhost,", str(DEPLOY / "ansible" / "torch-setup.yml")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def _user_data():
    yaml = pytest.importorskip("yaml", reason="PyYAML (comes with ansible-core) is needed to parse the YAML")
    text = USER_DATA.read_text()
    return text, yaml.safe_load(text)


def _firstboot_script() -> str:
    _, data = _user_data()
    return next(f["content"] for f in data["write_files"] if f["path"] == "/usr/local/sbin/torch-setup-firstboot")


def test_user_data_is_cloud_config():
    text, data = _user_data()
    assert text.startswith("#cloud-config\n")
    assert set(data) <= {"write_files", "runcmd", "packages", "package_update"}
    assert data["runcmd"] == [["/usr/local/sbin/torch-setup-firstboot"]]
    script = _firstboot_script()
    assert "install --yes --json --venv /opt/venv" in script and "TORCH_SETUP_TORCH_BACKEND=auto" in script


def test_firstboot_script_is_valid_sh(tmp_path):
    script = tmp_path / "firstboot"
    script.write_text(_firstboot_script())
    res = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("report,rc,expected", [
    (REPORT_READY, 0, "torch-setup: ready: torch 2.14.1 in /opt/venv/bin/python"),
    (envelope({}, ok=False, error={"name": "NO_TORCH", "message": "no torch wheel"}), 11,
     "torch-setup: FAILED (exit 11): no torch wheel -- see /var/log/torch-setup/"),
    (None, 1, "torch-setup: FAILED (exit 1): no report -- see /var/log/torch-setup/"),
])
def test_firstboot_one_line_result(tmp_path, report, rc, expected):
    snippet = re.search(r"<<'PY'\n(.*?)\nPY\n", _firstboot_script(), re.S).group(1)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report) if report else "")
    res = subprocess.run([sys.executable, "-c", snippet, str(path), str(rc)], capture_output=True, text=True)
    assert res.stdout.strip() == expected, res.stderr


@pytest.mark.e2e
def test_cloud_init_schema_accepts_user_data(tmp_path):
    """`cloud-init schema` from Debian 13's archive, installed in a throwaway root, not on this host (the package
    would hook into this machine's boot)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: it builds a Debian 13 root with debootstrap and chroot")
    from tests.e2e.roots import debian_root

    with debian_root("trixie", tmp_path) as root:
        res = root.run("apt-get update -qq && apt-get install -y -qq --no-install-recommends cloud-init",
                       timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        root.copy_in(USER_DATA, "/tmp/user-data.yaml")
        res = root.run(["cloud-init", "schema", "-c", "/tmp/user-data.yaml"], timeout=300)
        assert res.returncode == 0 and "Valid schema" in res.stdout, res.stdout + res.stderr


def test_the_saved_report_is_the_envelope_as_printed():
    assert F.parse_json(json.dumps(REPORT_READY)) == REPORT_READY
    assert F.parse_json("Traceback (most recent call last):") == {} and F.parse_json("[1]") == {}
