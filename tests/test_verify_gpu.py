"""verify --gpu: the smoke check on the first GPU, and what the GPU path needs where no GPU is visible (gpupath.py).

No GPU here: the no-GPU path runs for real against the CPU torch of tests/test_verify.py's venv, the parsing on its
captured output (tests/fixtures/smoke/gpu-cpu-build.json); the GPU run itself is scripts/gpu-check's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import payload
from test_verify import parsed, torch_python  # noqa: F401  (the fixture: a venv with the CPU torch)
from torch_setup import gpupath, smoke, verify
from torch_setup.cli import app
from torch_setup.errors import ExitCode
from torch_setup.facts.model import AcceleratorFacts, CompilerFacts, Facts, PythonFacts, TorchFacts
from torch_setup.host.system import System

ROOT = Path(__file__).resolve().parents[1]


def test_a_cpu_build_asked_for_the_gpu_fails_with_one_line_and_no_traceback():
    v = parsed("gpu-cpu-build")
    assert (v.ok, v.torch, v.cuda, v.results, v.gpu) == (False, "2.13.0+cpu", None, [], None)
    assert v.no_gpu == v.error == "torch 2.13.0+cpu is a CPU build (no CUDA or ROCm in it): it cannot use a GPU"
    assert v.to_dict()["no_gpu"] == v.no_gpu and "gpu" in v.to_dict()


def test_without_gpu_the_json_keys_are_as_before():
    assert "gpu" not in parsed("pass-cpu").to_dict() and "no_gpu" not in parsed("pass-cpu").to_dict()


class FakeCuda:
    """torch.cuda as a CUDA build on a host without a usable GPU reports it (torch.cuda.init raises its cause)."""

    def __init__(self, count, init_error=None):
        self.count, self.init_error = count, init_error

    def is_available(self):
        return self.count > 0

    def device_count(self):
        return self.count

    def init(self):
        if self.init_error:
            raise RuntimeError(self.init_error)


def fake_torch(cuda, hip=None, count=0, init_error=None):
    return types.SimpleNamespace(__version__="2.15.0", version=types.SimpleNamespace(cuda=cuda, hip=hip),
                                 cuda=FakeCuda(count, init_error))


def test_no_gpu_reason_names_the_build_and_torchs_own_cause(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    reason = smoke.no_gpu_reason(fake_torch("13.0", init_error="Found no NVIDIA driver on your system. Please "
                                            "check that you have an NVIDIA GPU and installed a driver\nmore"))
    assert reason == ("torch 2.15.0 (CUDA 13.0) sees no GPU (CUDA_VISIBLE_DEVICES=''): Found no NVIDIA driver on "
                      "your system. Please check that you have an NVIDIA GPU and installed a driver")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert smoke.no_gpu_reason(fake_torch(None, hip="7.2")) == "torch 2.15.0 (ROCm 7.2) sees no GPU: no CUDA device"
    assert smoke.no_gpu_reason(fake_torch("13.0", count=1)) is None
    assert "CPU build" in smoke.no_gpu_reason(fake_torch(None))


def test_verify_asks_the_smoke_check_for_the_gpu():
    class Recording(System):
        argv: list = []

        def start(self, argv, *, env=None, **kw):
            Recording.argv = argv
            return types.SimpleNamespace(finish=lambda line, timeout=None: types.SimpleNamespace(
                rc=1, stdout='{"ok": false, "results": [], "no_gpu": "x", "error": "x"}', stderr=""))

    v = verify.verify(Recording(dict(os.environ)), sys.executable, gpu=True)
    assert Recording.argv[-2:] == ["--gpu", "--wait"] and v.no_gpu == "x"
    verify.verify(Recording(dict(os.environ)), sys.executable)
    assert "--gpu" not in Recording.argv


@pytest.mark.slow
def test_verify_gpu_for_real_on_a_cpu_torch(torch_python):  # noqa: F811
    res = CliRunner().invoke(app, ["verify", "--gpu", "--json", "--python", torch_python])
    data = payload(res.stdout, "verify")  # checks the envelope; data's own "error" is the verification's
    error = json.loads(res.stdout)["error"]
    assert res.exit_code == ExitCode.NO_GPU == error["code"] == 15, res.stdout
    assert error["name"] == "NO_GPU" and "\n" not in error["message"]
    assert "CPU build" in error["message"] and "Traceback" not in res.stdout
    assert data["no_gpu"] == error["message"] and data["results"] == [] and data["ok"] is False
    assert "gpu_path" not in data  # a CPU build: no GPU path to prepare
    text = CliRunner().invoke(app, ["verify", "--gpu", "--python", torch_python])
    assert text.exit_code == 15 and "Traceback" not in text.output
    assert text.output.splitlines()[0].startswith("error: torch 2.13") and "CPU build" in text.output


def facts_with(tmp_path, cc="gcc", headers=True, libcuda=False):
    site = tmp_path / "site-packages"
    (site / "torch").mkdir(parents=True, exist_ok=True)
    return Facts(python=PythonFacts(found=True, include_dir="/usr/include/python3.13", has_headers=headers),
                 compiler=CompilerFacts(cc=cc), accelerator=AcceleratorFacts(libcuda=libcuda),
                 torch=TorchFacts(version="2.15.0", cuda="13.0", location=str(site)))  # as probe_python says


def add_ptxas(tmp_path):
    p = tmp_path / "site-packages" / "triton" / "backends" / "nvidia" / "bin" / "ptxas"
    p.parent.mkdir(parents=True)
    p.write_text("")
    return str(p)


def test_gpu_path_in_a_container_build(tmp_path):
    facts = facts_with(tmp_path)
    ptxas = add_ptxas(tmp_path)
    r = gpupath.readiness(System({"container": "podman"}), facts)
    assert (r["ready"], r["c_compiler"], r["python_h"], r["ptxas"], r["cuda"]) == (True, "gcc", True, ptxas, "13.0")
    assert r["libcuda"] == {"found": False, "how": "container runtime"}
    assert any("NVIDIA container runtime mounts it at start" in ln for ln in r["lines"])


def test_gpu_path_missing_pieces_are_named(tmp_path):
    facts = facts_with(tmp_path, cc=None, headers=False)
    r = gpupath.readiness(System({}), replace(facts))
    assert (r["ready"], r["c_compiler"], r["python_h"], r["ptxas"]) == (False, None, False, None)
    assert "Triton's C compiler: none" in r["lines"][0] and "Python.h: missing" in r["lines"][1]
    assert "ptxas" in r["lines"][3] and "not found" in r["lines"][3]


def test_libcuda_from_ldconfig_or_triton_libcuda_path(tmp_path):
    facts = facts_with(tmp_path, libcuda=True)
    assert gpupath.libcuda(System({}), facts)["how"] == "ldconfig"
    (tmp_path / "libcuda.so.1").write_text("")
    lib = gpupath.libcuda(System({"TRITON_LIBCUDA_PATH": str(tmp_path)}), facts)
    assert (lib["found"], lib["how"]) == (True, "TRITON_LIBCUDA_PATH")
    lib = gpupath.libcuda(System({"TRITON_LIBCUDA_PATH": str(tmp_path / "none")}), facts)
    assert lib["found"] is False and "not there now" in lib["line"]


def test_gpu_path_applies_to_a_cuda_build_that_compiled_on_no_gpu():
    def ran(cuda, devices):
        return verify.Verification(ok=True, python="py", cuda=cuda, results=[{"device": d} for d in devices])

    assert gpupath.applies(ran("13.0", ["cpu"])) and not gpupath.applies(ran("13.0", ["cpu", "cuda"])) \
        and not gpupath.applies(ran(None, ["cpu"]))


def test_the_entrypoint_verifies_the_gpu_then_runs_the_command(tmp_path):
    """deploy/docker/gpu-entrypoint.sh with a stand-in for the pyz: a failed check stops the start."""
    pyz = tmp_path / "torch-setup.pyz"
    log = tmp_path / "log"
    pyz.write_text(f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                   "sys.exit(int(__import__('os').environ.get('RC', '0')))\n")
    script = str(ROOT / "deploy" / "docker" / "gpu-entrypoint.sh")
    env = dict(os.environ, TORCH_SETUP_PYZ=str(pyz), TORCH_SETUP_PYTHON=sys.executable)
    ok = subprocess.run([script, "echo", "started"], env=env, capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout.strip()) == (0, "started")
    assert log.read_text() == f"verify --gpu --python {sys.executable}\n"
    bad = subprocess.run([script, "echo", "started"], env=dict(env, RC="15"), capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 15 and "started" not in bad.stdout
    none = subprocess.run([script, "echo", "started"], env=dict(env, TORCH_SETUP_PYTHON="no-such-python3"),
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 7 and "no no-such-python3" in none.stderr and "started" not in none.stdout


def test_the_kubernetes_init_container_verifies_the_gpu_of_the_image_the_dockerfile_makes():
    import yaml

    pod = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "verify-gpu-init.yaml").read_text())
    init, = pod["spec"]["initContainers"]
    work, = pod["spec"]["containers"]
    assert init["command"][1:4] == ["/opt/torch-setup.pyz", "verify", "--gpu"]
    assert init["resources"]["limits"] == work["resources"]["limits"] == {"nvidia.com/gpu": 1}
    dockerfile = (ROOT / "deploy" / "docker" / "cuda-ubuntu.Dockerfile").read_text()
    assert "COPY torch-setup.pyz /opt/torch-setup.pyz" in dockerfile and "--venv /opt/venv" in dockerfile
    assert init["command"][0] == init["command"][-1] == "/opt/venv/bin/python3"
    for doc in ("deploy/README.md", "README.md"):
        text = (ROOT / doc).read_text()
        assert "gpu-entrypoint.sh" in text and "verify-gpu-init.yaml" in text and "verify --gpu" in text, doc
    assert "| 15 | NO_GPU |" in (ROOT / "README.md").read_text()


def test_verify_of_a_cuda_torch_that_compiled_on_no_gpu_reports_the_gpu_path(monkeypatch):
    """The wiring in cli.verify: the verification stands in (a CUDA torch compiled on the CPU, as in a docker
    build), the facts are this host's, gathered for real."""
    from torch_setup import pipeline

    cpu_only = verify.Verification(True, sys.executable, torch="2.15.0", cuda="13.0",
                                   results=[{"device": "cpu", "ok": True, "seconds": 1.0, "max_abs_diff": 0.0}])
    monkeypatch.setattr(verify, "verify", lambda system, exe, gpu=False: cpu_only)
    monkeypatch.setattr(pipeline, "keep_record", lambda *a, **k: None)
    res = CliRunner().invoke(app, ["verify", "--json", "--python", sys.executable])
    data = payload(res.stdout, "verify")
    assert res.exit_code == 0 and data["ok"], res.stdout
    path = data["gpu_path"]
    assert set(path) == {"cuda", "c_compiler", "python_h", "libcuda", "ptxas", "ready", "lines", "prove"}
    assert path["cuda"] == "13.0" and len(path["lines"]) == 4 and path["lines"][2].startswith("libcuda.so.1: ")
    text = CliRunner().invoke(app, ["verify", "--python", sys.executable])
    assert text.exit_code == 0 and "GPU path: Triton's C compiler" in text.output
    monkeypatch.setattr(verify, "verify", lambda system, exe, gpu=False: replace(cpu_only, cuda=None))
    assert "gpu_path" not in payload(CliRunner().invoke(app, ["verify", "--json", "--python", sys.executable]).stdout)


def test_verify_gpu_says_which_gpu_it_compiled_on(monkeypatch):
    gpu = {"device": "cuda:0", "name": "NVIDIA H200", "capability": "9.0", "visible": 2}
    passed = verify.Verification(True, sys.executable, torch="2.15.0", cuda="13.0", gpu=gpu,
                                 results=[{"device": "cuda", "ok": True, "seconds": 9.5, "max_abs_diff": 0.0}])
    monkeypatch.setattr(verify, "verify", lambda system, exe, gpu=False: passed)
    text = CliRunner().invoke(app, ["verify", "--gpu", "--python", sys.executable])
    assert text.exit_code == 0, text.output
    assert "on cuda:0: NVIDIA H200 (compute capability 9.0), the first of 2 GPU(s) torch sees" in text.output
    data = payload(CliRunner().invoke(app, ["verify", "--gpu", "--json", "--python", sys.executable]).stdout)
    assert data["gpu"] == gpu and data["no_gpu"] is None and "gpu_path" not in data
