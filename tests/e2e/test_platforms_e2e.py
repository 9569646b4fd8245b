"""Other platforms and Python sources, for real: Debian testing (python3 is 3.14 there), Debian 12 (no 3.13 in
its archive), and a pyenv interpreter on this host."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .roots import payload

from tests.e2e.roots import debian_root
from tests.e2e.test_install_debian13 import COMPILE

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(out)], check=True)
    return out


def test_debian_testing_python313_gets_its_own_headers(tmp_path, pyz):
    """python3 is 3.14 on forky: `--python 3.13` must bring python3.13-dev, not python3-dev (3.14's headers)."""
    with debian_root("forky", tmp_path) as root:
        root.copy_in(pyz, "/root/torch-setup.pyz")
        res = root.run(["python3", "/root/torch-setup.pyz", "install", "--yes", "--python", "3.13"], timeout=2400)
        print(res.stdout[-3000:], res.stderr[-5000:])
        assert res.returncode == 0
        assert "torch.compile verified" in res.stdout
        assert root.host_path("/usr/include/python3.13/Python.h").exists()
        assert not root.host_path("/usr/include/python3.14/Python.h").exists()
        status = root.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", "python3.13-dev", "python3-dev"])
        assert "python3.13-dev install ok installed" in status.stdout
        assert "python3-dev install ok installed" not in status.stdout
        res = root.run(["/root/.venvs/torch/bin/python", "-c", COMPILE], timeout=600)
        assert "COMPILE-OK" in res.stdout and "/root/.venvs/torch" in res.stdout, res.stderr[-3000:]


def test_debian12_plans_a_uv_managed_python313(tmp_path, pyz):
    """bookworm has no 3.13: the plan takes it from uv, with the compiler from apt (the uv-managed build itself
    comes from GitHub, which the test machines cannot reach, so this test stops at the plan)."""
    with debian_root("bookworm", tmp_path) as root:
        root.copy_in(pyz, "/root/torch-setup.pyz")
        res = root.run(["python3", "/root/torch-setup.pyz", "plan", "--json", "--python", "3.13"], timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        plan = payload(res.stdout)
        commands = [" ".join(c["argv"]) for s in plan["steps"] for c in s["commands"]]
        assert any(" python install 3.13" in c for c in commands), commands
        assert any("apt-get install" in c and " g++" in c for c in commands), commands
        assert not any("python3.13-dev" in c for c in commands), commands
        assert plan["python"] == "/root/.venvs/torch/bin/python"


def test_pyenv_interpreter_detected_and_set_up(tmp_path, pyz):
    """A real pyenv CPython 3.13 (a copy of this host's, so the host's own stays untouched)."""
    src = Path(os.path.expanduser("~/.pyenv/versions/3.13.0"))
    if not (src / "bin" / "python3.13").exists():
        pytest.skip("no pyenv 3.13.0 on this host")
    home = tmp_path / "home"
    copy = home / ".pyenv" / "versions" / "3.13.0"
    shutil.copytree(src, copy, symlinks=True)
    exe = str(copy / "bin" / "python3.13")
    env = dict(os.environ, HOME=str(home), PYENV_ROOT=str(home / ".pyenv"))
    env.pop("VIRTUAL_ENV", None)
    detect = subprocess.run([sys.executable, str(pyz), "detect", "--json", "--python", exe], env=env,
                            capture_output=True, text=True, timeout=300)
    assert detect.returncode == 0, detect.stderr
    facts = payload(detect.stdout)
    assert facts["python"]["source"] == "pyenv" and facts["python"]["externally_managed"] is False
    res = subprocess.run([sys.executable, str(pyz), "install", "--yes", "--python", exe], env=env,
                         capture_output=True, text=True, timeout=2400)
    print(res.stdout[-3000:], res.stderr[-5000:])
    assert res.returncode == 0
    assert "torch.compile verified" in res.stdout and exe in res.stdout  # into the pyenv Python: no venv
    res = subprocess.run([exe, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=600)
    assert "COMPILE-OK" in res.stdout, res.stderr[-3000:]
