"""verify: parse_smoke on smoke.py runs captured on this host (tests/fixtures/smoke/*.json), and one real run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES
from torch_setup import verify
from torch_setup.system import FakeSystem, Result, System


def smoke(name):
    data = json.loads((FIXTURES / "smoke" / f"{name}.json").read_text())
    assert data["source"]
    return data


def parsed(name):
    d = smoke(name)
    return verify.parse_smoke(d["python"], d["rc"], d["stdout"], d["stderr"])


def test_passing_cpu_run():
    v = parsed("pass-cpu")
    assert (v.ok, v.python, v.torch, v.error) == (True, "/tmp/tv/bin/python", "2.13.0+cpu", None)
    assert v.seconds == 12.09
    assert [(r["device"], r["ok"]) for r in v.results] == [("cpu", True)]
    assert v.results[0]["max_abs_diff"] < 1e-4
    assert v.compiler_lines == []
    assert set(v.to_dict()) == {"ok", "python", "torch", "seconds", "results", "error", "compiler_lines"}


def test_no_compiler():
    v = parsed("no-cxx")
    assert (v.ok, v.torch, v.results) == (False, "2.13.0+cpu", [])
    assert "InvalidCxxCompiler" in v.error
    assert any("No working C++ compiler found" in ln and "/nonexistent/g++" in ln for ln in v.compiler_lines)


def test_missing_python_h():
    v = parsed("no-python-h")
    assert (v.ok, v.torch) == (False, "2.13.0+cpu")
    assert "CppCompileError" in v.error
    assert any(ln.endswith("fatal error: Python.h: No such file or directory") for ln in v.compiler_lines)


@pytest.mark.parametrize("name", ["no-cxx", "no-python-h"])
def test_compiler_lines_are_only_the_compilers_lines(name):
    v = parsed(name)
    assert not any(ln.startswith("{") for ln in v.compiler_lines), v.compiler_lines
    if name == "no-python-h":
        assert v.compiler_lines[0].endswith("fatal error: Python.h: No such file or directory")


def test_no_torch_in_the_target():
    v = parsed("no-torch")
    assert (v.ok, v.torch, v.compiler_lines) == (False, None, [])
    assert "ModuleNotFoundError: No module named 'torch'" in v.error


def test_a_crash_before_the_json_line():
    # the interpreter died (a segfault in an extension: rc -11, nothing on stdout)
    v = verify.parse_smoke("/x/bin/python", -11, "", "Fatal Python error: Segmentation fault\n")
    assert (v.ok, v.error) == (False, "Fatal Python error: Segmentation fault")
    v = verify.parse_smoke("/x/bin/python", 137, "", "")
    assert v.error == "exit status 137"


def test_json_ok_but_nonzero_exit_is_a_failure():
    d = smoke("pass-cpu")
    assert verify.parse_smoke(d["python"], 1, d["stdout"], d["stderr"]).ok is False


class Recorder(FakeSystem):
    def run(self, argv, *, env=None, **kw):
        self.seen = (list(argv), dict(env or {}), Path(env["TORCHINDUCTOR_CACHE_DIR"]).is_dir())
        return super().run(argv, env=env, **kw)


def test_verify_runs_smoke_with_a_fresh_cache_and_removes_it():
    d = smoke("pass-cpu")
    system = Recorder(commands={"/tmp/tv/bin/python -c *": Result(d["rc"], d["stdout"], d["stderr"])})
    v = verify.verify(system, "/tmp/tv/bin/python")
    argv, env, existed = system.seen
    assert argv[:2] == ["/tmp/tv/bin/python", "-c"] and argv[2] == verify.SMOKE
    assert existed and not Path(env["TORCHINDUCTOR_CACHE_DIR"]).exists()
    assert env["TRITON_CACHE_DIR"].startswith(env["TORCHINDUCTOR_CACHE_DIR"])
    assert env["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "0"
    assert v.ok


def test_verify_of_a_missing_interpreter():
    v = verify.verify(System(), "/nonexistent/bin/python")
    assert (v.ok, v.error) == (False, "/nonexistent/bin/python: not found")


# --------------------------------------------------------------------------------------------- for real

TORCH_VENV = Path(os.environ.get("TORCH_SETUP_TEST_TORCH_VENV", "/tmp/tv"))
BASE_311 = Path("/root/.pyenv/versions/3.11.7/bin/python3")


@pytest.fixture(scope="module")
def torch_python():
    """A venv with the CPU torch: /tmp/tv (or $TORCH_SETUP_TEST_TORCH_VENV), made from the local wheel when
    missing; skip where that cannot be done."""
    exe = TORCH_VENV / "bin" / "python"
    if not exe.exists():
        wheels = sorted(Path("/opt/wheels").glob("torch-*-cp311-*.whl"))
        if not (BASE_311.exists() and wheels):
            pytest.skip(f"no torch venv at {TORCH_VENV} and no local cp311 torch wheel to make one")
        try:
            subprocess.run([str(BASE_311), "-m", "venv", str(TORCH_VENV)], check=True, timeout=120)
            subprocess.run([str(exe), "-m", "pip", "install", "-q", str(wheels[-1])], check=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as e:
            pytest.skip(f"could not make the torch venv at {TORCH_VENV}: {e}")
    if subprocess.run([str(exe), "-c", "import torch"], capture_output=True, timeout=120).returncode != 0:
        pytest.skip(f"{exe} has no importable torch")
    return str(exe)


@pytest.mark.slow
def test_verify_for_real(torch_python):
    v = verify.verify(System(), torch_python)
    assert v.ok, v.error
    assert v.torch and v.torch.startswith("2.")
    assert [r["device"] for r in v.results][0] == "cpu"
    assert v.results[0]["ok"] and v.results[0]["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_verify_for_real_without_a_compiler(torch_python):
    v = verify.verify(System(dict(os.environ, CXX="/nonexistent/g++")), torch_python)
    assert not v.ok
    assert "InvalidCxxCompiler" in v.error
    assert any("/nonexistent/g++" in ln for ln in v.compiler_lines)
