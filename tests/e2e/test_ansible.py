"""deploy/ansible/torch-setup.yml, run for real with ansible-core from PyPI.

1. This CI host, in check mode (`--dry-run`, so the machine running the tests is left alone), together with a
   host that cannot be reached and a host with a settings mistake. The playbook must report the plan for the
   first, the cause for the others, leave no copy of the tool behind, and fail at the end.
2. A Debian 13 minbase root, for real. ansible-core has no chroot connection (community.general has one), so
   the controller runs inside the root with a local connection, as the issue allows. Two inventory hosts,
   `serial: 1`: a host whose install fails first, then the real install. The failing batch must not stop the
   next, the reports and summary must say which host failed and why, and torch.compile must then pass in the
   venv the playbook made, checked with this test's own script.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .roots import payload

from tests.e2e.roots import ROOT_PATH, debian_root
from tests.e2e.compile_check import COMPILE

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


def _ansible_core_version(ansible_bin: Path) -> str:
    return subprocess.run([str(ansible_bin / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('ansible-core'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_real_run_in_a_debian13_root(ansible_bin, pyz, tmp_path_factory):
    uv = Path(sys.executable).parent / "uv"  # the test venv's (scripts/test installs it); PATH may have a shim
    uv = str(uv) if uv.exists() else shutil.which("uv")
    if not uv:
        pytest.fail("uv is needed to put ansible-core into the root (pip install uv); scripts/test installs it")
    with debian_root("trixie", tmp_path_factory.mktemp("trixie")) as root:
        # The controller inside the root: ansible-core (same version as on the host) in its own venv, made with
        # uv because minbase has no pip and no venv module. uv is then removed so torch-setup cannot lean on it.
        root.copy_in(uv, "/tmp/uv")
        uv_env = {"UV_CACHE_DIR": "/tmp/uv-cache"}
        res = root.run(["/tmp/uv", "venv", "-q", "-p", "/usr/bin/python3", "/opt/ansible"], env=uv_env)
        assert res.returncode == 0, res.stderr
        res = root.run(["/tmp/uv", "pip", "install", "-q", "--python", "/opt/ansible/bin/python",
                        f"ansible-core=={_ansible_core_version(ansible_bin)}"], env=uv_env, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        root.run(["rm", "-rf", "/tmp/uv", "/tmp/uv-cache"], check=True)

        # The repository's layout, so the playbook's default torch_setup_pyz (../../dist) is the path used.
        shutil.copytree(ANSIBLE_DIR, root.host_path("/opt/ts/deploy/ansible"),
                        ignore=shutil.ignore_patterns("reports", "__pycache__"))
        root.copy_in(pyz, "/opt/ts/dist/torch-setup.pyz")
        ca = root.ca_in_root
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                     # the test machine's proxy CA, passed the way a fleet behind a proxy or mirror would pass its own
                     "torch_setup_environment": {"SSL_CERT_FILE": ca, "PIP_CERT": ca, "REQUESTS_CA_BUNDLE": ca}
                     if ca else {}},
            "hosts": {
                "broken": {"torch_setup_args": ["--python", "/opt/no-such-python/bin/python3"]},  # must fail
                "trixie": {"torch_setup_args": ["--venv", "/opt/venv"]},
            }}}
        root.host_path("/opt/ts/inventory.yml").write_text(json.dumps(inventory))

        res = root.run(["/opt/ansible/bin/ansible-playbook", "-i", "/opt/ts/inventory.yml",
                        "/opt/ts/deploy/ansible/torch-setup.yml", "-e", "torch_setup_serial=1"],
                       env={"ANSIBLE_NOCOLOR": "1"}, timeout=2400)
        print(res.stdout[-6000:], res.stderr[-3000:])
        assert res.returncode == 2, "broken failed, so the run must fail at the end"

        reports = root.host_path("/opt/ts/deploy/ansible/reports")
        good = payload((reports / "trixie.json").read_text())
        assert good["ok"] is True and good["changed"] is True and good["verify"]["ok"] is True, good.get("verify")
        assert good["python"] == "/opt/venv/bin/python"
        bad = payload((reports / "broken.json").read_text())
        assert bad["ok"] is False and bad["error"]["name"], bad  # PYTHON_NOT_FOUND today; the name is the product's
        cause = f"{bad['error']['name']} (exit {bad['error']['code']}): {bad['error']['message']}"
        summary = {r["host"]: r for r in json.loads((reports / "summary.json").read_text())}
        assert summary["trixie"]["status"] == "ready" and summary["trixie"]["torch"], summary
        assert summary["broken"]["status"] == "failed", summary
        assert summary["broken"]["cause"].startswith(cause), summary
        lines = _summary_lines(res.stdout)
        assert any(ln.startswith("READY   trixie: torch ") for ln in lines), lines
        assert any(ln.startswith(f"FAILED  broken: {bad['error']['name']} (exit ") for ln in lines), lines
        recap = re.search(r"^trixie\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", res.stdout, re.M)
        assert recap and recap.groups()[0] != "0" and recap.groups()[1:] == ("0", "0"), recap
        assert not list(root.host_path("/tmp").glob("*.torch-setup")), "the temporary copy must be removed"

        res = root.run(["/opt/venv/bin/python", "-c", COMPILE], timeout=600)
        assert res.returncode == 0 and "COMPILE-OK" in res.stdout, res.stderr[-3000:]
