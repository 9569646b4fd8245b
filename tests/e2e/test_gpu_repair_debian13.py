"""GPU-build repair for real, the README's way (`python3 torch-setup.pyz ...` inside a Debian 13 minbase root; no GPU
here: a GTX 1060, sm_61, with driver 580 is declared through TORCH_SETUP_CUDA_CAPABILITY and TORCH_SETUP_CUDA_DRIVER,
as the README documents).

The venv /root/.venvs/torch holds PyPI's torch 2.15.0 for CPython 3.13 (its own build: cu132, kernels sm_75 and up)
with its Python dependencies; its CUDA 13 runtime wheels (2.7 GB) are left out: doctor and the repair read torch's
files, they never import it, and the repair installs the new build's own runtime. The cases, cheapest first:

1. doctor names the missing kernels, the list it gives being the one this test reads from the installed
   libtorch_python.so itself, and its fix is install's torch step after the venv is copied aside;
2. a replacement made to fail (the chosen wheel, served by a loopback index, cut short after the index was read):
   exit 8 (STEP_FAILED), and the venv is back exactly as it was (every file, its size, mode and mtime);
3. the real replacement: the plan's choice is checked against what answers here (download.pytorch.org's cu126 index:
   2.14.1+cu126; where it does not answer, PyPI's newest with sm_61 kernels, 2.7.1, a cu126 build), then
   `install --yes` puts it in, the rollback copy holds 2.15.0, the new build's own arch list covers sm_61 (sm_60
   cubins run on sm_61), and torch.compile passes (on the CPU, with this test's own check);
4. a later `pip install` of another torch build in the guarded venv (2.15.0 again, or the same version's CPU build)
   is refused, naming the constraint; uv, which reads no pip.conf, swaps it, and doctor flags the drift.

Downloads go through uv's cache, bound from the host (UV_CACHE_DIR or ~/.cache/uv), so a second run fetches only
index pages; the torch 2.15.0 wheels come from the tests' wheel cache (tests/lab.py `pypi_wheels`).
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from tests import lab
from tests.e2e.checks import COMPILE
from tests.e2e.roots import build_pyz_in, debian_root, payload

pytestmark = pytest.mark.e2e
VENV = "/root/.venvs/torch"
PY = f"{VENV}/bin/python"
PREVIOUS = f"{VENV}.torch-setup-previous"
DECLARED = {"TORCH_SETUP_CUDA_DRIVER": "580.95.05", "TORCH_SETUP_CUDA_CAPABILITY": "6.1"}
# torch 2.15.0 and its pure-Python dependencies, as tests/lab.py's TORCH_215 pins them.
TORCH_215 = tuple(p for p in lab.TORCH_215 if not p.startswith(("nvidia-", "cuda-", "triton")))
TORCH_215_WHEEL = "torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl"
PYTORCH_CU126 = "https://download.pytorch.org/whl/cu126"

# Does download.pytorch.org's cu126 index answer from the root? (any HTTP status counts as an answer)
REACH = """
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=15, context=ssl.create_default_context())
except urllib.error.HTTPError:
    pass
except Exception as e:
    sys.exit(f"unreachable: {type(e).__name__}: {e}")
"""


def arch_list(library: Path) -> list:
    """The build's arch list, as torch._C._cuda_getArchFlags() returns it, read here from the library's bytes: the one
    NUL-terminated string made only of space-separated sm_XY / compute_XY names (this test's own reading, not the
    probe's)."""
    data = library.read_bytes()
    found = {s.decode() for s in re.findall(rb"(?<=\0)(?:(?:sm|compute)_[0-9]+[af]? )+(?:sm|compute)_[0-9]+[af]?(?=\0)",
                                            data)}
    assert len(found) == 1, found
    return found.pop().split()


def runs_on(arches: list, cc: tuple) -> bool:
    """A cubin sm_XY runs on X.z with z >= Y; PTX compute_XY is JIT-compiled for any capability >= X.Y (NVIDIA's
    CUDA C++ Programming Guide, "Binary Compatibility" and "PTX Compatibility")."""
    for a in arches:
        m = re.fullmatch(r"(sm|compute)_([0-9]+)([0-9])([af]?)", a)
        assert m, a
        kind, major, minor, suffix = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if suffix:
            continue  # arch-specific targets run on their own capability only: none of them is Pascal
        if kind == "sm" and major == cc[0] and minor <= cc[1]:
            return True
        if kind == "compute" and (major, minor) <= cc:
            return True
    return False


def torch_version(root, venv: str = VENV) -> str:
    found = sorted(root.host_path(venv).glob("lib/python3.13/site-packages/torch-*.dist-info"))
    assert len(found) == 1, found
    return next(line.split(":", 1)[1].strip() for line in (found[0] / "METADATA").read_text().splitlines()
                if line.startswith("Version:"))


def libtorch_python(root, venv: str = VENV) -> Path:
    return root.host_path(venv) / "lib/python3.13/site-packages/torch/lib/libtorch_python.so"


def manifest(path: Path) -> dict:
    """Every entry under `path`: its kind, size, mode and mtime (a link: where it points)."""
    out = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(top) / name
            st = p.lstat()
            rel = str(p.relative_to(path))
            out[rel] = os.readlink(p) if p.is_symlink() else (st.st_mode, st.st_size if p.is_file() else 0,
                                                             st.st_mtime_ns)
    return out


def tsetup(root, *args: str, env=None, timeout: int = 600):
    res = root.run(["python3", root.pyz, *args], env=dict(DECLARED, **(env or {})), timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res


def checks(root) -> dict:
    res = tsetup(root, "doctor", "--json", "--python", PY, timeout=300)
    return {c["id"]: c for c in payload(res.stdout)["checks"]}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    wheels = lab.pypi_wheels(TORCH_215)
    assert Path(wheels[0]).name == TORCH_215_WHEEL
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    assert Path(uv).exists(), "uv is needed to make the venv in the root (scripts/test installs it)"
    with debian_root("trixie", tmp_path_factory.mktemp("trixie-gpu-repair")) as root:
        # uv's cache is the host's (safe to share): the repair's ~3 GB of CUDA 12 wheels are fetched once
        root.bind(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv", "/root/.cache/uv")
        root.copy_in(uv, "/tmp/setup-uv")
        for w in wheels:
            root.copy_in(w, f"/tmp/wheels/{Path(w).name}")
        res = root.run(["/tmp/setup-uv", "venv", "-q", "--seed", "-p", "/usr/bin/python3", VENV], timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        res = root.run(["sh", "-c", f"/tmp/setup-uv pip install -q --no-deps --python {PY} /tmp/wheels/*.whl"],
                       timeout=1800)
        assert res.returncode == 0, res.stderr[-2000:]
        root.run(["rm", "-rf", "/tmp/setup-uv", "/tmp/wheels"])
        assert torch_version(root) == "2.15.0"
        root.pyz = build_pyz_in(root)
        yield root


def test_doctor_names_the_kernels_missing_from_the_installed_build(box):
    installed = arch_list(libtorch_python(box))
    assert not runs_on(installed, (6, 1)) and runs_on(installed, (7, 5))  # the premise: PyPI's 2.15.0 is sm_75+
    res = tsetup(box, "doctor", "--json", "--python", PY, timeout=300)
    assert res.returncode == 10, res.stdout[-2000:]  # PROBLEMS
    check = {c["id"]: c for c in payload(res.stdout)["checks"]}["torch-gpu"]
    assert check["status"] == "problem", check
    assert "sm_61" in check["message"] and "(the installed build)" in check["message"], check
    assert f"its build lists {' '.join(installed)} " in check["message"], (installed, check)
    assert check["fix"] == "torch" and "torch-setup install" in check["advice"]
    assert f"rm -rf {VENV} && mv {PREVIOUS} {VENV}" in check["advice"]


def test_a_replacement_made_to_fail_restores_the_old_venv(box, tmp_path):
    """The chosen wheel is served by a loopback index and cut short once the index has been read (its sha256 and
    size no longer hold): the torch step fails after the venv was copied aside, and the copy is put back."""
    bad = tmp_path / "torch-2.7.1-cp313-cp313-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(bad, "w") as z:  # a wheel whose metadata (PEP 658) is served whole
        z.writestr("torch/__init__.py", "__version__ = '2.7.1'\n" + "#" * 200_000)
        z.writestr("torch-2.7.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 2.7.1\n")
        z.writestr("torch-2.7.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: torch-setup-test\n"
                   "Root-Is-Purelib: false\nTag: cp313-cp313-manylinux_2_28_x86_64\n")
        z.writestr("torch-2.7.1.dist-info/RECORD", "")
    venv = box.host_path(VENV)
    before = manifest(venv)
    with lab.serve({"simple": {"torch": [str(bad)]}}) as index:
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        res = tsetup(box, "install", "--yes", "--json", "--python", PY, "--index-url", index.url("simple"),
                     timeout=1800)
        asked = index.asked_under("simple")
    out = payload(res.stdout)
    assert res.returncode == 8, (res.stdout[-3000:], res.stderr[-3000:])  # STEP_FAILED
    assert out["error"]["name"] == "STEP_FAILED" and "step 'torch' failed" in out["error"]["message"], out["error"]
    assert f"/simple/files/{bad.name}" in asked, asked  # it failed on the wheel itself, not before
    line = f"the torch replacement failed: rolled back, {VENV} is the venv as it was before (restored from {PREVIOUS})"
    assert out["rollback"] == line and line in out["error"]["hint"], out
    assert line in res.stderr
    assert manifest(venv) == before
    assert not box.host_path(PREVIOUS).exists()
    assert torch_version(box) == "2.15.0"


def test_install_replaces_torch_with_the_newest_build_that_has_sm61_kernels(box):
    res = tsetup(box, "plan", "--json", "--python", PY, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    plan = payload(res.stdout)
    choice = plan["torch"]
    reach = box.run(["python3", "-c", REACH, PYTORCH_CU126], timeout=60)
    if reach.returncode == 0:  # the PyTorch index answers: its newest cu126 build (cu126 is sm_50 and up)
        assert (choice["version"], choice["variant"]) == ("2.14.1", "cu126"), choice
        assert choice["index_url"].rstrip("/") == PYTORCH_CU126, choice
        want = "2.14.1+cu126"
    else:  # it does not: PyPI's newest torch with sm_61 kernels (data/torch_variants.toml: 2.7.* is cu126)
        assert (choice["version"], choice["variant"], choice["source"]) == ("2.7.1", "cu126", "pypi"), (
            reach.stderr, choice)
        assert urllib.parse.urlsplit(choice["index_url"]).hostname == "pypi.org", choice
        assert any("download.pytorch.org/whl/cu126 did not answer" in w for w in choice["warnings"]), choice
        want = "2.7.1"
    assert any("compute capability 6.1 has kernels in cu126" in r for r in choice["reasons"]), choice["reasons"]
    steps = [s["id"] for s in plan["steps"]]
    assert steps.index("torch-rollback") < steps.index("torch") < steps.index("torch-guard"), steps

    res = tsetup(box, "install", "--yes", "--json", "--python", PY, timeout=3600)
    out = payload(res.stdout)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-5000:])
    assert out["verify"]["ok"] is True and out["rollback"] is None, out["verify"]
    assert [r["ok"] for r in out["verify"]["results"]] == [True], out["verify"]  # torch.compile, on the CPU
    assert torch_version(box) == want
    assert torch_version(box, PREVIOUS) == "2.15.0"  # the rollback copy is kept
    new = arch_list(libtorch_python(box))
    assert runs_on(new, (6, 1)), new  # this test's own reading of the new build
    flags = box.run([PY, "-c", "import torch; print(torch.__version__); print(torch._C._cuda_getArchFlags())"],
                    timeout=600)
    assert flags.returncode == 0, flags.stderr[-2000:]
    version, flags_line = flags.stdout.split("\n")[:2]
    assert version.split("+")[0] == want.split("+")[0] and flags_line == " ".join(new), flags.stdout
    res = box.run([PY, "-c", COMPILE], timeout=900)
    assert res.returncode == 0 and "COMPILE-OK" in res.stdout, res.stderr[-3000:]
    after = checks(box)
    assert after["torch-gpu"]["status"] == "ok", after["torch-gpu"]
    assert after["torch-guard"]["status"] == "ok", after["torch-guard"]


def cpu_wheel(folder: Path, version: str) -> Path:
    """A stand-in for download.pytorch.org's CPU build of `version` (a wheel of torch VERSION+cpu: only its version
    matters to pip's constraint, and the real one is not reachable on every network)."""
    out = folder / f"torch-{version}+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"
    dist = f"torch-{version}+cpu.dist-info"
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("torch/version.py", f"__version__ = '{version}+cpu'\ncuda = None\n")
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}+cpu\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: torch-setup-test\nRoot-Is-Purelib: false\n"
                   "Tag: cp313-cp313-manylinux_2_28_x86_64\n")
        z.writestr(f"{dist}/RECORD", "")
    return out


def test_pip_in_the_guarded_venv_refuses_another_torch_build(box, tmp_path):
    want = torch_version(box)
    assert want != "2.15.0", "needs the repaired venv (the test before)"
    pins = box.host_path(f"{VENV}/torch-setup-constraints.txt").read_text()
    assert re.search(rf"^torch===?{re.escape(want)}$", pins, re.M), pins
    wheel = lab.pypi_wheels(("torch==2.15.0",))[0]
    box.copy_in(wheel, f"/tmp/{TORCH_215_WHEEL}")
    cpu = cpu_wheel(tmp_path, want.split("+")[0])  # the same version's CPU build: `==2.7.1` alone would let it in
    box.copy_in(cpu, f"/tmp/{cpu.name}")
    try:  # offline and no dependencies: pip's answer is its constraint's alone
        for other in (TORCH_215_WHEEL, cpu.name):
            res = box.run([PY, "-m", "pip", "install", "--no-index", "--no-deps", f"/tmp/{other}"], timeout=600)
            text = res.stdout + res.stderr
            assert res.returncode != 0, (other, text[-2000:])
            assert "(constraint) torch=" in text and want in text, (other, text[-2000:])
            assert torch_version(box) == want

        # uv reads no pip.conf (guard.py): it swaps the build, and doctor says so
        uv = box.run(["sh", "-c", "ls /root/.cache/torch-setup/uv-*/uv"]).stdout.split()
        assert uv, "install fetched uv into /root/.cache/torch-setup"
        res = box.run([uv[0], "pip", "install", "--no-deps", "--python", PY, f"/tmp/{TORCH_215_WHEEL}"],
                      timeout=1200)
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        box.run(["rm", "-f", f"/tmp/{TORCH_215_WHEEL}", f"/tmp/{cpu.name}"])
    assert torch_version(box) == "2.15.0"
    after = checks(box)
    guard = after["torch-guard"]
    assert guard["status"] == "warn" and "install pinned " + want in guard["message"], guard
    assert "torch 2.15.0+cu132 is installed" in guard["message"], guard
    assert after["torch-gpu"]["status"] == "problem" and "sm_61" in after["torch-gpu"]["message"]
