"""The installed torch's build against the box's GPUs, on a real Debian 12 root with real torch wheels (no GPU
here: the driver and the GPUs' capabilities are declared with TORCH_SETUP_CUDA_DRIVER and
TORCH_SETUP_CUDA_CAPABILITY, as the README documents).

1. PyPI's torch 2.15.0 (its own build: cu132, kernels sm_75 ... sm_120) in a venv, and a GTX 1060-class GPU
   (sm_61) with driver 580 declared: doctor names the missing kernels, read from the installed libtorch_python.so
   (not from a table), and its fix is install's torch step after the venv is copied aside;
2. the same torch with an H200 (sm_90) declared: covered, kept;
3. a CPU torch put into that venv afterwards (`pip install` of another build, as a requirements file does): doctor
   flags it as a CPU build on a CUDA box, with the same fix.

Torch goes in with --no-deps from the wheel cache (~/.cache/torch-setup-tests/wheels, filled from PyPI on first
use): doctor and detect read torch's files, they never import it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.roots import build_pyz_in, cache_dir, debian_root, payload

pytestmark = pytest.mark.e2e
VENV = "/root/.venvs/torch"
PY = f"{VENV}/bin/python"
CUDA_WHEEL = "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl"  # PyPI's build: 2.15.0+cu132
CPU_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"  # download.pytorch.org/whl/cpu
DECLARED = {"TORCH_SETUP_CUDA_DRIVER": "580.95.05"}


def _wheel(name: str) -> Path:
    """A torch wheel from the shared cache, fetched from PyPI (sha256 checked) the first time."""
    cache = cache_dir() / "wheels"
    path = cache / name
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    if "+cpu" in name:  # PyPI has no +cpu Linux builds: the PyTorch CPU index has (over TLS, no digest here)
        url, sha256 = "https://download.pytorch.org/whl/cpu/" + urllib.parse.quote(name), None
    else:
        data = json.load(urllib.request.urlopen("https://pypi.org/pypi/torch/json", timeout=60))
        entry = next(f for files in data["releases"].values() for f in files if f["filename"] == name)
        url = urllib.parse.urljoin("https://pypi.org/pypi/torch/json", entry["url"])
        sha256 = entry["digests"]["sha256"]
    part = path.with_suffix(".part")
    digest = hashlib.sha256()
    try:
        r = urllib.request.urlopen(url, timeout=600)
    except OSError as e:  # the PyTorch CPU index does not answer on every network (PyPI has no +cpu build)
        if "+cpu" in name:
            pytest.skip(f"{url} did not answer ({type(e).__name__}: {e}) and {path} is not cached: no CPU build")
        raise
    with r, open(part, "wb") as out:
        for chunk in iter(lambda: r.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    assert sha256 is None or digest.hexdigest() == sha256
    part.replace(path)
    return path


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    cuda_wheel = _wheel(CUDA_WHEEL)
    with debian_root("bookworm", tmp_path_factory.mktemp("bookworm-gpu")) as root:
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        assert Path(uv).exists(), "uv is needed to make the venv in the root (scripts/test installs it)"
        root.copy_in(uv, "/tmp/setup-uv")
        root.copy_in(cuda_wheel, f"/tmp/{CUDA_WHEEL}")
        res = root.run(["/tmp/setup-uv", "venv", "-q", "--seed", "-p", "/usr/bin/python3", VENV], timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        res = root.run(["/tmp/setup-uv", "pip", "install", "-q", "--no-deps", "--python", PY, f"/tmp/{CUDA_WHEEL}"],
                       env={"UV_CACHE_DIR": "/tmp/setup-uv-cache"}, timeout=1800)
        assert res.returncode == 0, res.stderr[-2000:]
        root.run(["rm", "-rf", "/tmp/setup-uv-cache", f"/tmp/{CUDA_WHEEL}"])
        root.pyz = build_pyz_in(root)
        yield root


def doctor(root, capability: str) -> dict:
    res = root.run(["python3", root.pyz, "doctor", "--json", "--python", PY],
                   env=dict(DECLARED, TORCH_SETUP_CUDA_CAPABILITY=capability), timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    return {c["id"]: c for c in payload(res.stdout)["checks"]}


def test_detect_reads_the_arch_list_of_the_installed_build(box):
    res = box.run(["python3", box.pyz, "detect", "--json", "--python", PY], timeout=300)
    torch = payload(res.stdout)["torch"]
    assert (torch["version"], torch["cuda"]) == ("2.15.0+cu132", "13.2")
    assert torch["arch_list"] == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def test_a_pascal_gpu_has_no_kernels_in_it_and_doctor_says_so(box):
    checks = doctor(box, "6.1")
    check = checks["torch-gpu"]
    assert check["status"] == "problem"
    assert "sm_61" in check["message"] and "the installed build" in check["message"]
    assert "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120" in check["message"]
    assert check["fix"] == "torch" and "torch-setup install" in check["advice"]
    assert f"mv {VENV}.torch-setup-previous {VENV}" in check["advice"]
    assert checks["gpu-driver"]["status"] == "ok"


def test_an_h200_is_covered(box):
    check = doctor(box, "9.0")["torch-gpu"]
    assert check["status"] == "ok" and "kernels for every GPU" in check["message"]


def test_a_cpu_torch_swapped_in_later_is_flagged(box):
    wheel = _wheel(CPU_WHEEL)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    box.copy_in(uv, "/tmp/setup-uv")
    box.copy_in(wheel, f"/tmp/{CPU_WHEEL}")
    res = box.run(["/tmp/setup-uv", "pip", "install", "-q", "--no-deps", "--python", PY, f"/tmp/{CPU_WHEEL}"],
                  env={"UV_CACHE_DIR": "/tmp/setup-uv-cache"}, timeout=1800)
    assert res.returncode == 0, res.stderr[-2000:]
    box.run(["rm", "-rf", "/tmp/setup-uv", "/tmp/setup-uv-cache", f"/tmp/{CPU_WHEEL}"])
    check = doctor(box, "9.0")["torch-gpu"]
    assert check["status"] == "problem" and "2.13.0+cpu is a CPU build" in check["message"]
    assert check["fix"] == "torch"
