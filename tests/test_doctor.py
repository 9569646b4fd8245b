"""doctor: every requirement of torch.compile checked from the facts of captured hosts (and variants of them),
each problem with the plan step that fixes it; `gather_extras` through a FakeSystem; the CLI through Typer's
runner with `pipeline.detect` patched; and one real `doctor --json` on this host."""
from __future__ import annotations


import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.version import Version
from typer.testing import CliRunner

from conftest import payload, changed, fixture_text, host_facts, host_facts_dict
from torch_setup import doctor
from torch_setup.cli import app
from torch_setup.errors import ExitCode
from torch_setup.facts import accelerator
from torch_setup.facts.model import Facts
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.host.replay import FakeSystem
from torch_setup.wheels.variants import load_table
from torch_setup.wheels.uv import UvWheel

VENV = "/opt/venvs/torch"
OPTS = Request(venv=VENV)
FIXED_BY_PACKAGES = ("headers", "cxx", "ca", "openssl", "venv")
CHECK_IDS = ["python", "headers", "cxx", "c-compiler", "libcuda", "packages", "ca", "openssl", "venv", "torch",
             "torch-cuda", "gpu-driver", "torch-gpu", "torch-guard", "disk", "index", "inductor-cache", "cache-fs",
             "verified"]
STATUSES = {doctor.OK, doctor.PROBLEM, doctor.WARN, doctor.NA}

# The H200 device machine's driver (/sys/module/nvidia/version), and ldconfig -p with and without libcuda.
H200_DRIVER = accelerator.parse_sys_module_version(fixture_text("accelerator", "sys-module-version-h200.txt"))
LIBCUDA_LISTED = accelerator.parse_ldconfig_libcuda(fixture_text("accelerator", "ldconfig-libcuda-ubuntu24.04.txt"))
LIBCUDA_ABSENT = accelerator.parse_ldconfig_libcuda(fixture_text("accelerator", "ldconfig-toolkit-no-driver.txt"))


def facts_with(name: str, **changes) -> Facts:
    """A captured host's facts with dotted-key changes: facts_with('x', **{'host.uv': '/usr/bin/uv'})."""
    data = host_facts_dict(name)
    return changed(data, **changes)


def nvidia(name: str, libcuda: bool, cc, driver: str = H200_DRIVER, cuda=None) -> Facts:
    changes = {"accelerator.kind": "nvidia", "accelerator.driver_version": driver,
               "accelerator.source": "/sys/module/nvidia/version", "accelerator.gpus": ["NVIDIA H200"],
               "accelerator.compute_capability": "9.0", "accelerator.libcuda": libcuda, "compiler.cc": cc}
    if cuda is not None:
        changes["torch.cuda"] = cuda
    return facts_with(name, **changes)


def by_id(results):
    out = {c.id: c for c in results}
    assert len(out) == len(results), "a check id appears twice"
    return out


def step(plan, step_id):
    return next(s for s in plan.steps if s.id == step_id)


def displayed(plan, step_id):
    return tuple(c.display() for c in step(plan, step_id).commands)


def run_checks(facts, recipes, plan="make", extras=None, plan_error=""):
    if plan == "make":
        plan = make_plan(facts, recipes, OPTS)
    return by_id(doctor.checks(facts, recipes, plan, extras or doctor.Extras(), plan_error)), plan


# --------------------------------------------------------------------------------------------- captured hosts

def test_every_check_is_there_once_with_a_known_status(builtin_recipes):
    results, _ = run_checks(host_facts("debian13-minbase"), builtin_recipes)
    assert list(results) == CHECK_IDS
    assert {c.status for c in results.values()} <= STATUSES
    for c in results.values():
        assert set(c.to_dict()) == {"id", "status", "message", "fix", "commands", "advice"}
        assert c.message


def test_minbase_lists_each_problem_with_the_step_that_fixes_it(builtin_recipes):
    facts = host_facts("debian13-minbase")
    results, plan = run_checks(facts, builtin_recipes)
    assert doctor.blocking(results.values())
    problems = {i for i, c in results.items() if c.status == doctor.PROBLEM}
    assert problems == {"headers", "cxx", "ca", "openssl", "venv", "torch"}
    apt = displayed(plan, "system-packages")
    assert any("python3.13-dev" in c and "g++" in c for c in apt)
    for check in FIXED_BY_PACKAGES:
        assert (results[check].fix, results[check].commands) == ("system-packages", apt), check
    assert results["torch"].fix == "torch"
    assert results["torch"].commands == displayed(plan, "torch")
    assert any(f"{VENV}/bin/python" in c and "torch" in c for c in results["torch"].commands)
    assert results["python"].status == doctor.OK and facts.python.version in results["python"].message
    assert results["headers"].message.endswith(facts.python.include_dir)
    # no NVIDIA GPU: Triton's needs do not apply
    assert (results["c-compiler"].status, results["libcuda"].status) == (doctor.NA, doctor.NA)
    assert results["torch-cuda"].status == doctor.NA


def test_minbase_without_a_venv_in_the_plan_has_no_venv_problem(builtin_recipes):
    """--break-system-packages: torch goes into the system Python, so venv support is not needed."""
    facts = host_facts("debian13-minbase")
    plan = make_plan(facts, builtin_recipes, Request(venv=VENV, break_system_packages=True))
    assert "venv" not in {s.id for s in plan.steps}
    results, _ = run_checks(facts, builtin_recipes, plan)
    assert results["venv"].status == doctor.NA and results["venv"].fix is None
    assert "--break-system-packages" in results["torch"].commands[0]
    assert "python3.13-venv" not in " ".join(displayed(plan, "system-packages"))
    assert {i for i, c in results.items() if c.status == doctor.PROBLEM} == {"headers", "cxx", "ca", "openssl",
                                                                             "torch"}


@pytest.mark.parametrize("how", ["uv on PATH", "uv wheel"])
def test_a_plan_that_makes_the_venv_with_uv_has_no_venv_problem(builtin_recipes, how):
    if how == "uv on PATH":
        facts = facts_with("debian13-minbase", **{"host.uv": "/usr/local/bin/uv"})
        plan = make_plan(facts, builtin_recipes, OPTS)
    else:
        facts = host_facts("debian13-minbase")
        uv = UvWheel("0.13.9", "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                     "https://files.example/uv.whl", "0" * 64, 17606939)
        plan = make_plan(facts, builtin_recipes, OPTS, uv=uv)
    venv = step(plan, "venv")
    assert "venv" in venv.commands[0].argv and "-m" not in venv.commands[0].argv  # uv makes it
    results, _ = run_checks(facts, builtin_recipes, plan)
    assert results["venv"].status != doctor.PROBLEM, results["venv"]


def test_installed_venv_has_no_problem(builtin_recipes):
    facts = host_facts("debian13-installed-venv")
    results, plan = run_checks(facts, builtin_recipes)
    assert not plan.todo
    assert not doctor.blocking(results.values())
    assert {c.status for c in results.values()} <= {doctor.OK, doctor.NA}
    for check in ("python", "headers", "cxx", "ca", "openssl", "venv", "torch"):
        assert results[check].status == doctor.OK, results[check]
    assert all(c.fix is None and c.commands == () for c in results.values())
    assert facts.torch.version in results["torch"].message


def test_openssl_missing_is_a_problem_for_a_torch_that_runs_it(builtin_recipes):
    # the installed trixie venv (torch 2.15.0), its openssl gone: the user's torch.compile fails there
    facts = facts_with("debian13-installed-venv", **{"host.openssl": None})
    plan = make_plan(facts, builtin_recipes, Request(venv="/root/.venvs/torch"))
    results, _ = run_checks(facts, builtin_recipes, plan=plan)
    c = results["openssl"]
    assert c.status == doctor.PROBLEM and "torch 2.15.0+cu132" in c.message and "'openssl'" in c.message
    assert (c.fix, c.commands) == ("system-packages", displayed(plan, "system-packages"))
    assert c.commands[-1].endswith(" openssl")
    assert doctor.blocking(results.values())


def test_openssl_does_not_apply_to_a_torch_before_2_8(builtin_recipes):
    facts = facts_with("debian13-installed-venv", **{"host.openssl": None, "torch.version": "2.7.1+cpu"})
    results, _ = run_checks(facts, builtin_recipes,
                            plan=make_plan(facts, builtin_recipes, Request(venv="/root/.venvs/torch")))
    assert results["openssl"].status == doctor.NA and "2.7.1" in results["openssl"].message
    assert not doctor.blocking(results.values())


def test_openssl_found_is_ok(builtin_recipes):
    results, _ = run_checks(host_facts("debian13-installed-venv"), builtin_recipes)
    assert (results["openssl"].status, results["openssl"].message) == (doctor.OK, "openssl at /usr/bin/openssl")


def test_openssl_without_a_plan_gets_advice(builtin_recipes):
    facts = facts_with("debian13-minbase")
    results, _ = run_checks(facts, builtin_recipes, plan=None)
    c = results["openssl"]
    assert c.status == doctor.PROBLEM and "the newest torch" in c.message and c.fix is None and "openssl" in c.advice


def test_no_plan_the_python_check_carries_the_planning_error(builtin_recipes):
    facts = host_facts("debian13-minbase")
    results, _ = run_checks(facts, builtin_recipes, plan=None, plan_error="no recipe for Plan 9")
    assert results["python"].status == doctor.PROBLEM and results["python"].message == "no recipe for Plan 9"
    assert results["headers"].status == doctor.PROBLEM and results["headers"].fix is None


def test_no_python_is_one_problem(builtin_recipes):
    facts = facts_with("debian13-minbase", **{"python.found": False, "python.absent": "3.99"})
    results = doctor.checks(facts, builtin_recipes, None, doctor.Extras())
    assert [(c.id, c.status) for c in results] == [("python", doctor.PROBLEM)]
    assert "3.99" in results[0].message


# --------------------------------------------------------------------------------------------- NVIDIA

def test_the_fixtures_are_what_the_nvidia_tests_assume():
    assert H200_DRIVER == "580.159.03"
    assert (LIBCUDA_LISTED, LIBCUDA_ABSENT) == (True, False)


def test_nvidia_without_libcuda_or_c_compiler(builtin_recipes):
    facts = nvidia("debian13-minbase", libcuda=LIBCUDA_ABSENT, cc=None)
    results, plan = run_checks(facts, builtin_recipes)
    lib = results["libcuda"]
    assert lib.status == doctor.PROBLEM and "ldconfig" in lib.message
    assert lib.advice and "TRITON_LIBCUDA_PATH" in lib.advice and "driver" in lib.advice
    cc = results["c-compiler"]
    assert cc.status == doctor.PROBLEM
    # on Debian g++ brings gcc: the package step that installs g++ gives Triton its C compiler too
    assert (cc.fix, cc.commands) == ("system-packages", displayed(plan, "system-packages"))
    assert any("g++" in c for c in cc.commands)


def test_nvidia_with_libcuda_and_a_c_compiler(builtin_recipes):
    # the captured venv's CUDA torch (a CPU one on an NVIDIA box is the torch-gpu check's problem)
    facts = nvidia("debian13-installed-venv", libcuda=LIBCUDA_LISTED, cc="/usr/bin/gcc")
    results, _ = run_checks(facts, builtin_recipes)
    assert results["libcuda"].status == doctor.OK
    assert results["c-compiler"].status == doctor.OK and "/usr/bin/gcc" in results["c-compiler"].message
    assert not doctor.blocking(results.values())


def test_h200_with_the_captured_cuda_torch(builtin_recipes):
    facts = nvidia("debian13-installed-venv", libcuda=LIBCUDA_LISTED, cc="/usr/bin/gcc")
    assert facts.torch.cuda.startswith("13.")  # the captured venv's torch is a CUDA 13.2 build
    results, _ = run_checks(facts, builtin_recipes)
    assert results["torch-cuda"].status == doctor.OK and H200_DRIVER in results["torch-cuda"].message
    assert not doctor.blocking(results.values())


def test_nvidia_libcuda_missing_blocks_even_when_the_rest_is_installed(builtin_recipes):
    facts = nvidia("debian13-installed-venv", libcuda=False, cc="/usr/bin/gcc")
    results, _ = run_checks(facts, builtin_recipes)
    assert doctor.blocking(results.values())
    assert [i for i, c in results.items() if c.status == doctor.PROBLEM] == ["libcuda"]


def test_a_missing_c_compiler_always_says_how_to_fix_it(builtin_recipes):
    facts = nvidia("debian13-installed-venv", libcuda=True, cc=None)
    results, _ = run_checks(facts, builtin_recipes)
    cc = results["c-compiler"]
    assert cc.status == doctor.PROBLEM
    assert cc.commands or cc.advice, cc


def _floor(cuda: str):
    major, minor = cuda.split(".")[:2]
    return load_table().variant(f"cu{major}{minor}").driver_linux


@pytest.mark.parametrize("cuda,driver", [
    ("13.2", "525.60.13"), ("13.0", "525.147.05"), ("13.0", H200_DRIVER), ("12.6", "525.60.13"),
    ("12.8", "520.61.05"), ("11.8", "450.80.02"), ("12.4", "550.135"),
])
def test_torch_cuda_build_against_the_driver(builtin_recipes, cuda, driver):
    floor = _floor(cuda)
    assert Version(str(doctor.driver_floor(cuda))) == Version(floor)
    facts = nvidia("debian13-installed-venv", libcuda=True, cc="/usr/bin/gcc", driver=driver, cuda=cuda)
    check, _ = run_checks(facts, builtin_recipes)
    check = check["torch-cuda"]
    if Version(driver) < Version(str(floor)):
        assert check.status == doctor.PROBLEM
        assert str(floor) in check.message and driver in check.message and f"CUDA {cuda}" in check.message
        assert check.advice
    else:
        assert check.status == doctor.OK


def test_torch_cuda_13_needs_a_580_driver_from_the_table():
    assert Version(str(doctor.driver_floor("13.2"))) == Version(_floor("13.2")) >= Version("580")
    assert doctor.driver_floor("not-a-version") is None


def test_a_cuda_minor_without_a_row_still_gets_its_majors_floor(builtin_recipes):
    facts = nvidia("debian13-installed-venv", libcuda=True, cc="/usr/bin/gcc", driver="525.60.13", cuda="13.1")
    results, _ = run_checks(facts, builtin_recipes)
    assert results["torch-cuda"].status == doctor.PROBLEM


def test_cuda_torch_without_a_gpu_runs_on_the_cpu(builtin_recipes):
    facts = host_facts("debian13-installed-venv")
    assert facts.torch.cuda and facts.accelerator.kind == "none"
    results, _ = run_checks(facts, builtin_recipes)
    assert results["torch-cuda"].status == doctor.OK and "CPU" in results["torch-cuda"].message


# --------------------------------------------------------------------------------------------- extras

@pytest.mark.parametrize("free,want", [(2.5, doctor.WARN), (doctor.TORCH_DISK_GB - 0.1, doctor.WARN),
                                       (doctor.TORCH_DISK_GB + 40, doctor.OK)])
def test_disk_low_warns_when_torch_is_still_to_come(builtin_recipes, free, want):
    extras = doctor.Extras(disk_free_gb=free, disk_path="/root")
    results, _ = run_checks(host_facts("debian13-minbase"), builtin_recipes, extras=extras)
    assert results["disk"].status == want
    assert f"{free:.1f} GB free in /root" in results["disk"].message
    installed, _ = run_checks(host_facts("debian13-installed-venv"), builtin_recipes, extras=extras)
    assert installed["disk"].status == doctor.NA


def test_index_unreachable_blocks_only_when_torch_is_missing(builtin_recipes):
    extras = doctor.Extras(index_url="https://pypi.org/simple", index_error="ConnectTimeout")
    missing, _ = run_checks(host_facts("debian13-minbase"), builtin_recipes, extras=extras)
    present, _ = run_checks(host_facts("debian13-installed-venv"), builtin_recipes, extras=extras)
    assert missing["index"].status == doctor.PROBLEM
    assert present["index"].status == doctor.WARN
    assert not doctor.blocking(present.values())
    for c in (missing["index"], present["index"]):
        assert "ConnectTimeout" in c.message and "pypi.org" in c.message and "PIP_INDEX_URL" in c.advice
    answered, _ = run_checks(host_facts("debian13-minbase"), builtin_recipes,
                             extras=doctor.Extras(index_url="https://pypi.org/simple"))
    assert answered["index"].status == doctor.OK
    unchecked, _ = run_checks(host_facts("debian13-minbase"), builtin_recipes)
    assert unchecked["index"].status == doctor.NA


def test_an_inductor_cache_older_than_torch_is_stale(builtin_recipes):
    facts = host_facts("debian13-installed-venv")
    stale = doctor.Extras(cache_dir="/tmp/torchinductor_root", cache_mtime=1_700_000_000.0,
                          torch_mtime=1_800_000_000.0)
    results, _ = run_checks(facts, builtin_recipes, extras=stale)
    c = results["inductor-cache"]
    assert c.status == doctor.WARN and "/tmp/torchinductor_root" in c.message
    assert c.advice == "rm -rf /tmp/torchinductor_root"
    assert not doctor.blocking(results.values())
    fresh = doctor.Extras(cache_dir="/tmp/torchinductor_root", cache_mtime=1_800_000_100.0,
                          torch_mtime=1_800_000_000.0)
    results, _ = run_checks(facts, builtin_recipes, extras=fresh)
    assert results["inductor-cache"].status == doctor.OK and not results["inductor-cache"].advice


# --------------------------------------------------------------------------------------------- gather_extras

class Fake(FakeSystem):
    """A FakeSystem that also writes down the URLs it was asked about."""

    def http_error(self, url, timeout=3, trust=None):
        self.calls.append(f"http {url}")
        return super().http_error(url, timeout)


def test_gather_extras_for_a_box_without_torch():
    facts = host_facts("debian13-minbase")
    system = Fake(files={"/root/.bashrc": ""}, env={"USER": "root"}, disk={"/root": 3.25},
                  http={"https://pypi.org/simple/torch/": "ConnectTimeout"})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch")
    # the venv does not exist yet: the free space is measured where it will go
    assert (ex.disk_path, ex.disk_free_gb) == ("/root", 3.25)
    assert (ex.index_url, ex.index_error) == ("https://pypi.org/simple", "ConnectTimeout")
    assert system.calls == ["http https://pypi.org/simple/torch/"]
    assert ex.cache_dir is None  # no /tmp/torchinductor_root on this host


def test_gather_extras_asks_the_users_index_and_masks_it():
    facts = host_facts("debian13-minbase")
    url = "https://ci:s3cret@mirror.example/simple/"
    system = Fake(files={"/root/x": ""}, env={"PIP_INDEX_URL": url}, disk={"/root": 50.0})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch")
    assert system.calls == ["http https://ci:s3cret@mirror.example/simple/torch/"]
    assert ex.index_error is None and "s3cret" not in ex.index_url and "mirror.example" in ex.index_url


def test_gather_extras_with_torch_installed():
    facts = host_facts("debian13-installed-venv")
    version_py = os.path.join(facts.torch.location, "torch", "version.py")
    system = Fake(files={"/root/.venvs/torch/bin/python": "", "/tmp/torchinductor_root/fxgraph/x": "",
                         version_py: ""},
                  env={"USER": "root"}, disk={"/root/.venvs/torch": 40.0},
                  mtimes={"/tmp/torchinductor_root": 1_700_000_000.0, version_py: 1_800_000_000.0})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch")
    assert (ex.disk_path, ex.disk_free_gb) == ("/root/.venvs/torch", 40.0)
    assert ex.index_url is None and not [c for c in system.calls if c.startswith("http")]  # torch is there
    assert (ex.cache_dir, ex.cache_mtime, ex.torch_mtime) == ("/tmp/torchinductor_root", 1_700_000_000.0,
                                                              1_800_000_000.0)


def test_gather_extras_reads_torchinductor_cache_dir_and_skips_the_index_when_told():
    facts = host_facts("debian13-minbase")
    system = Fake(files={"/srv/cache/inductor/a": "", "/root/x": ""},
                  env={"TORCHINDUCTOR_CACHE_DIR": "/srv/cache/inductor"},
                  mtimes={"/srv/cache/inductor": 1_750_000_000.0})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch", check_index=False)
    assert (ex.cache_dir, ex.cache_mtime, ex.torch_mtime) == ("/srv/cache/inductor", 1_750_000_000.0, None)
    assert ex.index_url is None and system.calls == []


@pytest.mark.parametrize("env,want", [
    ({"UV_DEFAULT_INDEX": "https://uv.example/simple", "PIP_INDEX_URL": "https://pip.example/simple"},
     "https://uv.example/simple/torch/"),
    ({"UV_INDEX_URL": "https://uv-old.example/simple"}, "https://uv-old.example/simple/torch/"),
])
def test_gather_extras_asks_the_index_install_will_use(env, want):
    from torch_setup.wheels import indexes

    conf = indexes.configured(env=env)
    assert conf.index.url.rstrip("/") + "/torch/" == want  # what the torch choice asks first
    system = Fake(files={"/root/x": ""}, env=env, disk={"/root": 50.0})
    doctor.gather_extras(system, host_facts("debian13-minbase"), "/root/.venvs/torch")
    assert system.calls == [f"http {want}"]


def test_gather_extras_finds_the_cache_under_tmpdir():
    facts = host_facts("debian13-installed-venv")
    system = Fake(files={"/scratch/tmp/torchinductor_root/fxgraph/x": "", "/root/x": ""},
                  env={"USER": "root", "TMPDIR": "/scratch/tmp"},
                  mtimes={"/scratch/tmp/torchinductor_root": 1_700_000_000.0})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch")
    assert ex.cache_dir == "/scratch/tmp/torchinductor_root"


# --------------------------------------------------------------------------------------------- the CLI

runner = CliRunner()


@pytest.fixture
def cli_host(mocker, monkeypatch, tmp_path):
    """`doctor` on a captured host's facts: detect patched, no index asked, an empty cache dir and venv path."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "no-cache"))
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
    asked = []
    monkeypatch.setattr("torch_setup.host.system.System.http_error",
                        lambda self, url, timeout=3, trust=None: asked.append(url) or None)

    def use(name, **changes):
        facts = facts_with(name, **changes)
        mocker.patch("torch_setup.pipeline.detect", return_value=facts)
        return facts

    use.asked = asked
    use.venv = str(tmp_path / "venv")
    return use


def doctor_json(venv, *extra):
    result = runner.invoke(app, ["doctor", "--json", "--venv", venv, *extra])
    return result, (payload(result.stdout) if result.stdout.strip().startswith("{") else None)


def test_cli_doctor_json_on_minbase_is_blocked(cli_host):
    facts = cli_host("debian13-minbase")
    result, data = doctor_json(cli_host.venv)
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    assert set(data) == {"ok", "error", "python", "checks"} and data["error"]["name"] == "PROBLEMS"
    assert data["ok"] is False and data["python"] == facts.python.executable
    for c in data["checks"]:
        assert set(c) == {"id", "status", "message", "fix", "commands", "advice"}
        assert c["status"] in STATUSES and isinstance(c["commands"], list)
    checks = {c["id"]: c for c in data["checks"]}
    assert [c["id"] for c in data["checks"]] == CHECK_IDS
    assert checks["headers"]["status"] == "problem" and checks["headers"]["fix"] == "system-packages"
    assert any("python3.13-dev" in cmd for cmd in checks["headers"]["commands"])
    assert checks["torch"]["fix"] == "torch" and cli_host.venv in checks["torch"]["commands"][0]
    assert checks["index"]["status"] == "ok"
    assert cli_host.asked == ["https://pypi.org/simple/torch/"]


def test_cli_doctor_json_all_ok_exits_0(cli_host):
    cli_host("debian13-installed-venv")
    result, data = doctor_json(cli_host.venv)
    assert result.exit_code == 0, result.output
    assert data["ok"] is True
    assert {c["status"] for c in data["checks"]} <= {"ok", "n/a"}
    assert cli_host.asked == []  # torch is installed: no index asked


def test_cli_doctor_text_shows_the_fix_commands(cli_host):
    cli_host("debian13-minbase")
    result = runner.invoke(app, ["doctor", "--venv", cli_host.venv])
    assert result.exit_code == ExitCode.PROBLEMS
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert any(ln.split()[:2] == ["PROBLEM", "headers"] for ln in lines)
    assert any("fix: $" in ln and "apt-get install" in ln for ln in lines)
    assert "torch-setup install" in lines[-1]


def test_cli_doctor_nvidia_without_libcuda_gives_the_advice(cli_host):
    cli_host("debian13-installed-venv", **{"accelerator.kind": "nvidia", "accelerator.driver_version": H200_DRIVER,
                                           "accelerator.libcuda": False, "torch.cuda": None})
    result, data = doctor_json(cli_host.venv)
    assert result.exit_code == ExitCode.PROBLEMS
    lib = next(c for c in data["checks"] if c["id"] == "libcuda")
    assert lib["status"] == "problem" and "TRITON_LIBCUDA_PATH" in lib["advice"]


def test_cli_doctor_on_the_h200_with_a_cuda_torch_is_all_ok(cli_host):
    cli_host("debian13-installed-venv", **{"accelerator.kind": "nvidia", "accelerator.driver_version": H200_DRIVER,
                                           "accelerator.libcuda": True, "compiler.cc": "/usr/bin/gcc"})
    result, data = doctor_json(cli_host.venv)
    assert result.exit_code == 0, result.output
    assert data["ok"] is True
    assert next(c for c in data["checks"] if c["id"] == "torch-cuda")["status"] == "ok"


def test_real_doctor_json_on_this_host():
    """One real run, in a fresh interpreter, of doctor on this machine: what it finds is this host's business,
    its shape and exit code are ours."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(os.environ, PYTHONPATH=str(src) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "torch_setup", "doctor", "--json", "--python", sys.executable],
                       capture_output=True, text=True, timeout=60, env=env)
    elapsed = time.monotonic() - start
    assert p.returncode in (0, int(ExitCode.PROBLEMS)), p.stderr
    data = payload(p.stdout, "doctor")
    assert data["python"] and os.path.exists(data["python"])  # this Python, or the venv a second run would use
    ids = [c["id"] for c in data["checks"]]
    assert ids == CHECK_IDS
    assert {c["status"] for c in data["checks"]} <= STATUSES
    blocked = any(c["status"] == "problem" for c in data["checks"])
    assert data["ok"] is (not blocked) and p.returncode == (int(ExitCode.PROBLEMS) if blocked else 0)
    for c in data["checks"]:
        if c["status"] == "problem":
            assert c["fix"] or c["advice"] or c["id"] in ("python", "c-compiler"), c
    assert elapsed < 30, f"doctor took {elapsed:.1f} s"


# --------------------------------------------------------------------------------------------- cache-fs

LOCAL_MOUNTS = fixture_text("mountinfo", "debian12-local.txt")  # this test box: ext4 root, tmpfs /dev/shm
HPC_MOUNTS = fixture_text("mountinfo", "hpc-nfs-home.txt")  # an HPC node: home directories on NFS filers


def test_mountinfo_parsing_and_the_mount_that_holds_a_path():
    from torch_setup import mounts

    local = mounts.parse(LOCAL_MOUNTS)
    assert mounts.holding("/tmp/torchinductor_root", local).fstype == "ext4"
    assert mounts.holding("/dev/shm/x", local).fstype == "tmpfs"
    hpc = mounts.parse(HPC_MOUNTS)
    home = mounts.holding("/mnt/netapp2/Home_FT2/cesga/u123/.triton/cache", hpc)
    assert (home.point, home.fstype, home.source) == ("/mnt/netapp2/Home_FT2", "nfs", "10.117.49.202:/Home_FT2")
    assert mounts.holding("/mnt/netapp2", hpc).point == "/mnt/netapp2"
    assert mounts.holding("/mnt/netapp2x/y", hpc) is None  # a prefix of the name is not a parent
    assert mounts.parse("36 25 0:42 / /mnt/My\\040Disk rw - ext4 /dev/sdb1 rw\nnot a mountinfo line\n") == [
        mounts.Mount("/mnt/My Disk", "ext4", "/dev/sdb1")]
    assert mounts.is_network("nfs4") and mounts.is_network("lustre") and mounts.is_network("fuse.sshfs")
    assert not mounts.is_network("ext4") and not mounts.is_network("overlay") and not mounts.is_network("tmpfs")


def test_caches_on_an_nfs_home_warn_with_the_node_local_per_job_dirs(builtin_recipes):
    facts = host_facts("debian13-minbase")
    system = Fake(files={"/proc/self/mountinfo": LOCAL_MOUNTS + HPC_MOUNTS, "/root/x": ""},
                  env={"USER": "u123", "HOME": "/mnt/netapp2/Home_FT2/cesga/u123",
                       "TORCHINDUCTOR_CACHE_DIR": "/mnt/netapp2/Home_FT2/cesga/u123/.cache/inductor"})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch", check_index=False)
    assert ex.cache_mounts == [
        ("Inductor", "/mnt/netapp2/Home_FT2/cesga/u123/.cache/inductor", "nfs", "/mnt/netapp2/Home_FT2"),
        ("Triton", "/mnt/netapp2/Home_FT2/cesga/u123/.triton/cache", "nfs", "/mnt/netapp2/Home_FT2")]
    results, _ = run_checks(facts, builtin_recipes, extras=ex)
    c = results["cache-fs"]
    assert c.status == doctor.WARN and "nfs (/mnt/netapp2/Home_FT2)" in c.message
    assert "TORCHINDUCTOR_CACHE_DIR=" in c.advice and "TRITON_CACHE_DIR=" in c.advice and "SLURM_JOB_ID" in c.advice
    assert not doctor.blocking([c])


def test_caches_on_local_disks_are_ok_and_no_mountinfo_is_not_known(builtin_recipes):
    facts = host_facts("debian13-minbase")
    system = Fake(files={"/proc/self/mountinfo": LOCAL_MOUNTS, "/root/x": ""}, env={"USER": "root"})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch", check_index=False)
    assert [m[2] for m in ex.cache_mounts] == ["ext4", "ext4"]
    results, _ = run_checks(facts, builtin_recipes, extras=ex)
    assert results["cache-fs"].status == doctor.OK
    ex = doctor.gather_extras(Fake(files={"/root/x": ""}), facts, "/root/.venvs/torch", check_index=False)
    assert ex.cache_mounts is None
    results, _ = run_checks(facts, builtin_recipes, extras=ex)
    assert results["cache-fs"].status == doctor.NA


def test_a_cache_filesystem_near_its_inode_quota_warns(builtin_recipes):
    facts = host_facts("debian13-minbase")
    system = Fake(files={"/proc/self/mountinfo": LOCAL_MOUNTS, "/scratch/x": ""},
                  env={"USER": "root", "TORCHINDUCTOR_CACHE_DIR": "/scratch/inductor"},
                  inodes={"/scratch": (1_500, 4_000_000), "/root": (2_000_000, 4_000_000)})
    ex = doctor.gather_extras(system, facts, "/root/.venvs/torch", check_index=False)
    # the cache dir is not there yet: its filesystem is the nearest directory that is
    assert ex.cache_inodes == [("Inductor", "/scratch/inductor", 1_500, 4_000_000)]
    results, _ = run_checks(facts, builtin_recipes, extras=ex)
    c = results["cache-fs"]
    assert c.status == doctor.WARN and "1500 of 4000000 inodes left" in c.message
    assert "TORCHINDUCTOR_CACHE_DIR" in c.advice
    plenty = doctor.Extras(cache_mounts=[("Inductor", "/tmp/x", "ext4", "/")],
                           cache_inodes=[("Inductor", "/tmp/x", 3_000_000, 4_000_000)])
    assert run_checks(facts, builtin_recipes, extras=plenty)[0]["cache-fs"].status == doctor.OK


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_the_inodes_of_a_real_tmpfs_that_ran_out(tmp_path):
    """A real tmpfs of 64 inodes, filled: what System.inodes_free reads is what doctor judges."""
    import subprocess

    from torch_setup.host.system import System

    point = tmp_path / "cache"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(point)], check=True)
    try:
        for i in range(80):
            try:
                (point / f"k{i}").write_text("")
            except OSError:
                break
        free, total = System().inodes_free(str(point))
        assert total == 64 and free == 0
        cache = ("Inductor", str(point / "inductor"), free, total)
        c = doctor._cache_fs_check(doctor.Extras(cache_mounts=[], cache_inodes=[cache]))
        assert c.status == doctor.WARN and "0 of 64 inodes left" in c.message
        assert System().inodes_free("/")[1] > 0
    finally:
        subprocess.run(["umount", str(point)], check=True)
