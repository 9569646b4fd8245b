"""deploy/ansible/torch-setup.yml, run for real with ansible-core from PyPI.

1. This CI host, in check mode (`--dry-run`, so the machine running the tests is left alone), together with a
   host that cannot be reached and a host with a settings mistake. The playbook must report the plan for the
   first, the cause for the others, leave no copy of the tool behind, and fail at the end.
2. The same host in check mode with `torch_setup_bundle=true`: detect runs, the bundle is only sized, the host
   plans, nothing is downloaded or changed.
3. The real run (no --check), over SSH, is tests/e2e/test_fleet.py: three Debian 13 roots in their own network
   namespaces, set up from one bundle in batches, a failing host that does not stop the others, the reports and the
   summary naming it, and torch.compile checked in each venv the play made with that test's own script.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .roots import payload

from tests.e2e.roots import ROOT_PATH

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "deploy" / "ansible"
ANSIBLE_REQUIREMENT = "ansible-core>=2.18"  # the test extra should carry the same



@pytest.fixture(scope="module")
def ansible_bin(tmp_path_factory) -> Path:
    """ansible-playbook from the test venv if the test extra installed it, else from a throwaway venv."""
    here = Path(sys.executable).parent / "ansible-playbook"
    if here.exists():
        return here.parent
    venv = tmp_path_factory.mktemp("ansible-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    ANSIBLE_REQUIREMENT], check=True, timeout=600)
    return venv / "bin"


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(out)], check=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again at once: connections to it are refused


def _digest(path: str) -> str:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "absent"


def _summary_lines(stdout: str) -> list:
    return [ln.strip().strip('",') for ln in stdout.splitlines() if ln.strip().startswith(('"READY', '"FAILED',
                                                                                            '"PLANNED'))]


def test_check_mode_on_this_host_plans_and_changes_nothing(ansible_bin, pyz, tmp_path):
    inventory = {"all": {"hosts": {
        "ci-host": {"ansible_connection": "local", "ansible_python_interpreter": str(ansible_bin / "python"),
                    "torch_setup_python": "/usr/bin/python3"},
        # a settings mistake (a string where a list belongs): the rescue must catch it and still clean up
        "misconfigured": {"ansible_connection": "local", "ansible_python_interpreter": str(ansible_bin / "python"),
                          "torch_setup_args": "--venv /opt/venv"},
        "ghost": {"ansible_host": "127.0.0.1", "ansible_port": _free_port(),
                  "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes -o StrictHostKeyChecking=no "
                                             "-o UserKnownHostsFile=/dev/null"},
    }}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))  # JSON is YAML
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")}
    env.update(PATH=ROOT_PATH, ANSIBLE_NOCOLOR="1")  # no test venv on PATH: torch-setup looks at the host's own
    venv = Path.home() / ".venvs" / "torch"
    before = (_digest("/var/lib/dpkg/status"), venv.exists(), sorted(Path("/tmp").glob("*.torch-setup")))

    res = subprocess.run(
        [str(ansible_bin / "ansible-playbook"), "--check", "-i", str(tmp_path / "inventory.yml"),
         str(ANSIBLE_DIR / "torch-setup.yml"), "-e", f"torch_setup_pyz={pyz}",
         "-e", f"torch_setup_reports_dir={reports}", "-e", "torch_setup_serial=1"],
        capture_output=True, text=True, env=env, timeout=600)
    print(res.stdout[-5000:], res.stderr[-2000:])

    assert res.returncode == 2, "a failed host must fail the run, after all hosts were tried"
    report = payload((reports / "ci-host.json").read_text())
    assert report["dry_run"] is True and report["changed"] is False and report["runs"] == []
    assert report["plan"]["steps"] and report["facts"]["os"]["id"]
    summary = {r["host"]: r for r in json.loads((reports / "summary.json").read_text())}
    assert summary["ci-host"]["status"] == "planned", summary
    assert summary["ghost"]["status"] == "failed" and summary["ghost"]["cause"].startswith("unreachable"), summary
    assert summary["misconfigured"]["status"] == "failed", summary
    assert summary["misconfigured"]["cause"].startswith("torch-setup did not run: "), summary
    lines = _summary_lines(res.stdout)
    assert any(ln.startswith("PLANNED ci-host:") for ln in lines), lines
    assert any(ln.startswith("FAILED  ghost: unreachable") for ln in lines), lines
    # Check mode means nothing changed here: no packages, no venv, and no copy of the tool left behind.
    after = (_digest("/var/lib/dpkg/status"), venv.exists(), sorted(Path("/tmp").glob("*.torch-setup")))
    assert after == before


def test_check_mode_with_a_bundle_sizes_it_and_plans_and_changes_nothing(ansible_bin, pyz, tmp_path):
    """`--check -e torch_setup_bundle=true`: the facts play runs `detect`, the controller only sizes the bundle
    (`bundle --dry-run`: a report with sizes, no folder, nothing downloaded), each host plans as without it (a
    dry run, planned in the summary) and nothing changes here. This host's own pip configuration is set aside
    (an empty one), so what is sized is what a plain box would get."""
    inventory = {"all": {"hosts": {
        "ci-host": {"ansible_connection": "local", "ansible_python_interpreter": str(ansible_bin / "python"),
                    "torch_setup_python": "/usr/bin/python3"}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    reports, bundle_dir = tmp_path / "reports", tmp_path / "bundle"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH") and not k.startswith(("PIP_", "UV_"))}
    env.update(PATH=ROOT_PATH, ANSIBLE_NOCOLOR="1", PIP_CONFIG_FILE=os.devnull)
    venv = Path.home() / ".venvs" / "torch"
    before = (_digest("/var/lib/dpkg/status"), venv.exists(), sorted(Path("/tmp").glob("*.torch-setup")))

    res = subprocess.run(
        [str(ansible_bin / "ansible-playbook"), "--check", "-i", str(tmp_path / "inventory.yml"),
         str(ANSIBLE_DIR / "torch-setup.yml"), "-e", f"torch_setup_pyz={pyz}",
         "-e", f"torch_setup_reports_dir={reports}", "-e", "torch_setup_bundle=true",
         "-e", f"torch_setup_bundle_dir={bundle_dir}", "-e", "torch_setup_bundle_url=http://127.0.0.1:9/b/",
         "-e", f"torch_setup_controller_python={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=900)
    print(res.stdout[-5000:], res.stderr[-2000:])

    assert res.returncode == 0, res.stdout[-3000:]
    assert (reports / "facts" / "ci-host.json").exists()  # the facts play ran detect
    sized = payload((reports / "bundle.json").read_text())
    assert sized["dry_run"] is True and sized["bytes"] > 0 and "downloaded_bytes" not in sized, sized
    assert len(sized["hosts"]) == 1
    assert not bundle_dir.exists(), sorted(bundle_dir.rglob("*"))[:20]
    report = payload((reports / "ci-host.json").read_text())
    assert report["dry_run"] is True and report["changed"] is False and report["runs"] == []
    summary = {r["host"]: r for r in json.loads((reports / "summary.json").read_text())}
    assert summary["ci-host"]["status"] == "planned", summary
    after = (_digest("/var/lib/dpkg/status"), venv.exists(), sorted(Path("/tmp").glob("*.torch-setup")))
    assert after == before
