"""The verification compiles the way the user's torch.compile does, on a real Debian 13 minbase root.

The box: g++ and python3.13-dev installed with --no-install-recommends (so no ca-certificates, and no `openssl`
program), torch 2.15.0 from PyPI in a venv. The user's own torch.compile fails there (Inductor checksums its
precompiled header with `openssl sha512`), so:

1. `verify` must fail too and name the cause `no-openssl` (a check that turned the precompiled header off passed);
2. `install` must install openssl (explicitly: it is not left to ca-certificates), and then `verify` passes.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .roots import payload

from tests.e2e.roots import debian_root

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
VENV = "/root/.venvs/torch"
PY = f"{VENV}/bin/python"
TORCH = "torch==2.15.0"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with debian_root("trixie", tmp_path_factory.mktemp("trixie-openssl")) as r:
        yield r


@pytest.fixture(scope="module")
def box(root, tmp_path_factory):
    """The root as the issue describes it, and the zipapp of this checkout in it."""
    res = root.run("apt-get update -qq && apt-get install -y -qq --no-install-recommends g++ python3.13-dev",
                   timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    assert Path(uv).exists(), "uv is needed to install torch into the root (scripts/test installs it)"
    root.copy_in(uv, "/tmp/setup-uv")
    try:
        res = root.run(["/tmp/setup-uv", "venv", "-q", "--seed", "-p", "/usr/bin/python3", VENV], timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        res = root.run(["/tmp/setup-uv", "pip", "install", "-q", "--python", PY, TORCH],
                       env={"UV_CACHE_DIR": "/tmp/setup-uv-cache"}, timeout=1800)
        assert res.returncode == 0, res.stderr[-2000:]
    finally:  # nothing of ours left on the box but the venv
        root.run(["rm", "-rf", "/tmp/setup-uv", "/tmp/setup-uv-cache"])
    out = tmp_path_factory.mktemp("pyz") / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(out)], check=True,
                   capture_output=True)
    root.copy_in(out, "/root/torch-setup.pyz")
    return root


def test_the_box_is_the_one_of_the_issue(box):
    assert box.run("command -v openssl").returncode != 0
    assert not box.host_path("/etc/ssl/certs/ca-certificates.crt").exists()
    assert box.host_path("/usr/include/python3.13/Python.h").exists()
    res = box.run([PY, "-c", "import torch; print(torch.__version__)"], timeout=300)
    assert res.returncode == 0 and res.stdout.startswith("2.15.0"), res.stderr[-2000:]


def test_verify_fails_like_the_users_compile_and_names_the_cause(box):
    res = box.run(["python3", "/root/torch-setup.pyz", "verify", "--python", PY, "--json"], timeout=1200)
    assert res.returncode == 9, res.stdout[-3000:] + res.stderr[-3000:]  # VERIFY_FAILED
    report = payload(res.stdout)
    assert report["ok"] is False and report["torch"].startswith("2.15.0")
    assert "No such file or directory: 'openssl'" in report["error"] and "_precompile_header" in report["error"]
    assert report["causes"][0]["id"] == "no-openssl", report["causes"]
    assert report["causes"][0]["fix_steps"] == ["system-packages"] and "openssl" in report["causes"][0]["fix"]
    assert report["env"] == {}  # the user set nothing: torch's defaults


def test_doctor_names_the_missing_openssl(box):
    res = box.run(["python3", "/root/torch-setup.pyz", "doctor", "--python", PY, "--json"], timeout=300)
    assert res.returncode == 10, res.stdout[-3000:] + res.stderr[-2000:]  # PROBLEMS
    checks = {c["id"]: c for c in payload(res.stdout)["checks"]}
    assert checks["openssl"]["status"] == "problem" and checks["openssl"]["fix"] == "system-packages"


def test_install_installs_openssl_and_then_verify_passes(box):
    res = box.run(["python3", "/root/torch-setup.pyz", "install", "--yes", "--json", "--python", PY], timeout=2400)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    report = payload(res.stdout)
    pkg = next(s for s in report["plan"]["steps"] if s["id"] == "system-packages")
    installed = pkg["commands"][-1]["argv"]
    assert "openssl" in installed and "ca-certificates" in installed, pkg  # named, not left to ca-certificates
    assert next(s for s in report["plan"]["steps"] if s["id"] == "torch")["status"] == "done"  # 2.15.0 kept
    assert report["verify"]["ok"] is True, report["verify"]
    assert box.run("command -v openssl").stdout.strip() == "/usr/bin/openssl"
    res = box.run(["python3", "/root/torch-setup.pyz", "verify", "--python", PY], timeout=1200)
    assert res.returncode == 0 and "torch.compile verified: torch 2.15.0" in res.stdout, res.stderr[-3000:]
