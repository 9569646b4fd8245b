"""The main job, end to end, on a real Debian 13 minbase root that has only python3 (3.13).

1. The control: uv's own `--torch-backend=auto` fails where download.pytorch.org does not answer, and resolves
   where it does (asked first, on this network); a torch in a venv fails torch.compile (no C++ compiler).
2. `doctor` lists the problems; `python3 torch-setup.pyz install --yes`, as the README tells a user on a bare box.
3. torch.compile passes in the environment it made (checked here with our own script, not the product's).
4. A second `install` has nothing to do, and `doctor` is all ok.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .roots import payload

from tests.e2e.roots import debian_root

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

# Independent of src/torch_setup/smoke.py on purpose: the test must not trust the product's own check.
COMPILE = """
import os, sys, tempfile, torch
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()
m = torch.nn.Linear(16, 4)
f = lambda x: torch.relu(m(x)).softmax(-1) * 2  # pointwise ops and a reduction: generated C++, not just addmm
x = torch.randn(8, 16)
y = torch.compile(f)(x)
assert torch.allclose(y, f(x), atol=1e-5), "compiled output differs from eager"
print("COMPILE-OK", torch.__version__, sys.executable)
"""


# Does download.pytorch.org answer from here? (any HTTP status counts as an answer)
REACH = """
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen("https://download.pytorch.org/whl/cpu/", timeout=10, context=ssl.create_default_context())
except urllib.error.HTTPError:
    pass
except Exception as e:
    sys.exit(f"unreachable: {type(e).__name__}: {e}")
"""


@pytest.fixture(scope="module")
def pyz(root) -> str:
    """The README's bare-box command, first half, run inside the root: the project's files (as a clone has them)
    and `python3 scripts/build-zipapp`, with nothing but the root's python3."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if (REPO / name).is_file():
            root.copy_in(REPO / name, f"/root/torch-setup/{name}")
    res = root.run(["sh", "-c", "cd /root/torch-setup && python3 scripts/build-zipapp"], timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return "/root/torch-setup/dist/torch-setup.pyz"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with debian_root("trixie", tmp_path_factory.mktemp("trixie")) as r:
        yield r


def test_control_torch_compile_fails_on_bare_root(root):
    uv = shutil.which("uv")
    if not uv:
        pytest.fail("uv is needed for the control (pip install uv); .ci/run installs it")
    root.copy_in(uv, "/tmp/control-uv")
    try:
        assert root.run(["/tmp/control-uv", "venv", "-q", "-p", "/usr/bin/python3", "/opt/control"]).returncode == 0
        # uv's own auto backend asks download.pytorch.org: where that does not answer, uv gives up instead of
        # falling back (astral-sh/uv#19569); where it answers, uv resolves a torch from it. Which one this network
        # is, is asked first, from the root (with the root's CA settings), and the control asserts that case.
        reach = root.run(["python3", "-c", REACH], timeout=60)
        res = root.run(["/tmp/control-uv", "pip", "install", "--dry-run", "--python", "/opt/control/bin/python",
                        "--torch-backend=auto", "torch"], env={"UV_CACHE_DIR": "/tmp/control-uv-cache"}, timeout=600)
        if reach.returncode == 0:
            assert res.returncode == 0 and "torch" in res.stderr, res.stderr[-2000:]
        else:
            assert res.returncode != 0 and "download.pytorch.org" in res.stderr, (reach.stdout, res.stderr[-2000:])
        res = root.run(["/tmp/control-uv", "pip", "install", "-q", "--python", "/opt/control/bin/python", "torch"],
                       env={"UV_CACHE_DIR": "/tmp/control-uv-cache"}, timeout=1200)
        assert res.returncode == 0, res.stderr[-2000:]
        res = root.run(["/opt/control/bin/python", "-c", COMPILE], timeout=600)
        assert res.returncode != 0
        assert "InvalidCxxCompiler" in res.stderr or "No working C++ compiler" in res.stderr, res.stderr[-3000:]
    finally:  # leave the root bare again: no uv, no torch, nothing the product could lean on
        root.run(["rm", "-rf", "/tmp/control-uv", "/tmp/control-uv-cache", "/opt/control"])


def test_doctor_lists_the_problems_first(root, pyz):
    res = root.run(["python3", pyz, "doctor", "--json"], timeout=300)
    assert res.returncode == 10, res.stderr[-2000:]  # PROBLEMS
    problems = {c["id"] for c in payload(res.stdout)["checks"] if c["status"] == "problem"}
    assert {"headers", "cxx", "torch"} <= problems


def test_install_makes_torch_compile_work(root, pyz):
    res = root.run(["sh", "-c",
                    "cd /root/torch-setup && python3 dist/torch-setup.pyz install --yes --torch-backend auto"],
                   timeout=2400)
    print(res.stdout[-3000:], res.stderr[-6000:])
    assert res.returncode == 0
    assert "torch.compile verified" in res.stdout
    venv_python = "/root/.venvs/torch/bin/python"
    assert root.host_path("/usr/include/python3.13/Python.h").exists()
    res = root.run([venv_python, "-c", COMPILE], timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "COMPILE-OK" in res.stdout


def test_second_install_has_nothing_to_do(root, pyz):
    res = root.run(["python3", pyz, "install", "--yes", "--json"], timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = payload(res.stdout)
    assert report["changed"] is False
    assert [s["status"] for s in report["plan"]["steps"]] == ["done"] * len(report["plan"]["steps"])
    assert report["verify"]["ok"] is True
    assert "Nothing to do" in res.stderr


def test_doctor_is_all_ok_after(root, pyz):
    res = root.run(["python3", pyz, "doctor", "--json"], timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    report = payload(res.stdout)
    assert report["ok"] is True and report["python"] == "/root/.venvs/torch/bin/python"
    assert not [c for c in report["checks"] if c["status"] == "problem"]
