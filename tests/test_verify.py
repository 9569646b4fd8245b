"""verify: parse_smoke on smoke.py runs captured on this host (tests/fixtures/smoke/*.json), and one real run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES
from torch_setup import verify
from torch_setup.host.replay import FakeSystem
from torch_setup.host.system import Result, System

IMPORTS = Path(verify.__file__).parent / verify.IMPORTS


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
    assert set(v.to_dict()) == {"ok", "python", "torch", "seconds", "results", "error", "compiler_lines", "env",
                                "recorded"} and v.recorded is None


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
        self.seen = (list(argv), dict(env or {}), self.exists(env["TORCHINDUCTOR_CACHE_DIR"]))
        return super().run(argv, env=env, **kw)


def test_verify_runs_smoke_with_a_fresh_cache_and_removes_it():
    d = smoke("pass-cpu")
    system = Recorder(commands={"/tmp/tv/bin/python -c *": Result(d["rc"], d["stdout"], d["stderr"])})
    v = verify.verify(system, "/tmp/tv/bin/python")
    argv, env, existed = system.seen
    assert argv[:2] == ["/tmp/tv/bin/python", "-c"] and argv[2] == verify.SMOKE
    assert existed and not system.exists(env["TORCHINDUCTOR_CACHE_DIR"])
    assert f"remove_tree {env['TORCHINDUCTOR_CACHE_DIR']}" in system.calls
    assert env["TRITON_CACHE_DIR"].startswith(env["TORCHINDUCTOR_CACHE_DIR"])
    assert env["TMPDIR"] == env["TORCHINDUCTOR_CACHE_DIR"]
    assert v.ok


# Inductor's switches that turn a default code path off: the precompiled header (whose checksum runs `openssl`,
# torch >= 2.8) and the graph caches. A fresh cache directory already means nothing can be hit.
DEFAULT_OFF_SWITCHES = ("TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS", "TORCHINDUCTOR_FX_GRAPH_CACHE",
                        "TORCHINDUCTOR_AUTOGRAD_CACHE")


def test_the_check_compiles_with_the_default_inductor_configuration():
    system = FakeSystem(env={"PATH": "/usr/bin", "HOME": "/root"})
    pending = verify.start(system, "/tmp/tv/bin/python")
    env = pending.job.env
    pending.cancel()
    assert not [k for k in env if k in DEFAULT_OFF_SWITCHES], env
    # only the fresh directories are the check's own
    assert set(env) == {"TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TMPDIR"}


def test_the_users_settings_pass_through_untouched_and_are_reported():
    d = smoke("pass-cpu")
    user = {"PATH": "/usr/bin", "TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS": "0", "TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
            "CXX": "/usr/bin/g++-14", "TORCHINDUCTOR_CACHE_DIR": "/home/u/.cache/inductor", "TMPDIR": "/var/tmp"}
    system = Recorder(env=user, commands={"/tmp/tv/bin/python -c *": Result(d["rc"], d["stdout"], d["stderr"])})
    pending = verify.start(system, "/tmp/tv/bin/python", env={"CC": "/usr/bin/gcc-14"})
    full = dict(system.env, **pending.job.env)  # what System.start runs it with
    assert full["TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS"] == "0" and full["TORCHINDUCTOR_FX_GRAPH_CACHE"] == "0"
    assert (full["CXX"], full["CC"]) == ("/usr/bin/g++-14", "/usr/bin/gcc-14")
    assert full["TORCHINDUCTOR_CACHE_DIR"] == pending.cache != user["TORCHINDUCTOR_CACHE_DIR"]
    assert full["TMPDIR"] == pending.cache
    v = pending.finish()
    shown = {"CC": "/usr/bin/gcc-14", "CXX": "/usr/bin/g++-14", "TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS": "0",
             "TORCHINDUCTOR_FX_GRAPH_CACHE": "0"}
    assert v.ok and v.env == shown and v.to_dict()["env"] == shown


def test_the_smoke_check_gets_the_import_list_and_compiles_only_once_told():
    d = smoke("pass-cpu")
    system = Recorder(commands={"/tmp/tv/bin/python -c *": Result(d["rc"], d["stdout"], d["stderr"])})
    pending = verify.start(system, "/tmp/tv/bin/python")
    argv = pending.job.argv
    listing = argv[argv.index("--imports") + 1]
    assert argv[:3] == ["/tmp/tv/bin/python", "-c", verify.SMOKE] and argv[-1] == "--wait"
    assert listing.startswith(pending.cache) and system.files[listing] == IMPORTS.read_text()
    assert pending.job.sent is None  # started: importing, not compiling
    v = pending.finish()
    assert pending.job.sent == "go" and v.ok and not Path(pending.cache).exists()


def test_a_cancelled_verification_is_killed_and_leaves_no_cache():
    system = FakeSystem()
    pending = verify.start(system, "/tmp/tv/bin/python")
    pending.cancel()
    assert pending.job.cancelled and pending.job.sent is None
    assert system.calls[-2].startswith("cancel /tmp/tv/bin/python -c ") and not system.exists(pending.cache)
    assert system.calls[-1] == f"remove_tree {pending.cache}"


def test_the_import_list_names_modules_under_site_packages_and_where_it_came_from():
    text = IMPORTS.read_text()
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    names = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert "scripts/capture-imports" in header[1] and f"{len(names)} files" in header[1]
    assert names[0] == "torch/__init__.py" and len(set(names)) == len(names) > 1000
    assert all(n.endswith(".py") and not n.startswith("/") and ".." not in n for n in names)
    # in import order: a package before its modules, torch.compile's own modules late
    assert names.index("torch/_dynamo/__init__.py") < names.index("torch/_dynamo/eval_frame.py")
    assert names.index("torch/__init__.py") < names.index("torch/_inductor/codegen/cpp.py")


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


@pytest.mark.slow
def test_verify_for_real_without_openssl(torch_python, tmp_path):
    """torch >= 2.8 checksums its precompiled header with `openssl`: a check that turned the header off passed
    here, where the user's own torch.compile fails."""
    bin_dir = tmp_path / "bin"  # PATH as the host's, less openssl
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        for f in (Path(d).iterdir() if d and Path(d).is_dir() else ()):
            if f.name != "openssl" and not (bin_dir / f.name).exists():
                (bin_dir / f.name).symlink_to(f)
    v = verify.verify(System(dict(os.environ, PATH=str(bin_dir))), torch_python)
    assert not v.ok
    assert "No such file or directory: 'openssl'" in v.error and "_precompile_header" in v.error


@pytest.mark.slow
def test_a_verification_told_to_stop_does_not_compile(torch_python):
    pending = verify.start(System(), torch_python)
    res = pending.job.finish("stop", timeout=300)
    pending.cancel()  # removes its cache (the job has ended)
    assert not Path(pending.cache).exists()
    v = verify.parse_smoke(torch_python, res.rc, res.stdout, res.stderr)
    assert not v.ok and "cancelled before compiling" in v.error and v.results == []
    assert v.torch and v.torch.startswith("2.")  # torch was imported while it waited


@pytest.mark.slow
def test_the_isa_checks_are_done_before_torch_compile_asks(torch_python, tmp_path):
    """check_isas_side_by_side leans on Inductor internals: on the torch here it must really build each vector ISA's
    test library (a change in torch would make it do nothing, silently)."""
    code = (f"SMOKE = {verify.SMOKE!r}\n"
            "ns = {'__name__': 'smoke'}\nexec(SMOKE, ns)\nns['check_isas_side_by_side']()\n"
            "from torch._inductor import cpu_vec_isa as isa\nflags = isa.x86_isa_checker()\n"
            "print(len([i for i in isa.supported_vec_isa_list if all(f in flags for f in str(i).split())]))\n")
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    res = subprocess.run([torch_python, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    claimed = int(res.stdout.split()[-1])
    if "avx2" in Path("/proc/cpuinfo").read_text():
        assert claimed >= 1
    # each ISA the CPU claims had its test library (or two: some check an extension too) built, before any compile
    assert len(list(tmp_path.rglob("*.so"))) >= claimed


def test_the_verification_timeout_is_900_s_unless_the_environment_says_otherwise():
    """A slow box (a small ARM board, an emulated root) gives the first torch.compile more time with
    TORCH_SETUP_VERIFY_TIMEOUT; a value that is not a positive number is refused as the request is parsed."""
    from torch_setup import verify as v
    from torch_setup.errors import UsageError
    from torch_setup.request import Request

    assert v.timeout_of({}) == 900.0
    assert v.timeout_of({"TORCH_SETUP_VERIFY_TIMEOUT": "3600"}) == 3600.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(UsageError):
            Request.parse(python="", env={"HOME": "/root", "TORCH_SETUP_VERIFY_TIMEOUT": bad})

    class Job:
        def finish(self, word, timeout):
            self.timeout = timeout
            raise RuntimeError("stop here")

    class Sys:
        env = {"TORCH_SETUP_VERIFY_TIMEOUT": "1234"}

        def remove_tree(self, path):
            pass

    job = Job()
    with pytest.raises(RuntimeError):
        v.Pending(Sys(), "/usr/bin/python3", job, "/tmp/x").finish()
    assert job.timeout == 1234.0
