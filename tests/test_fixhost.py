"""The host that wrote a log (loghost.read) and the host its fix is for (fixhost), on every real log fixture.

Each fixture's `# host:` header says the platform of the machine that wrote it (from its thread or, for a log
reproduced here, this Debian box): windows, macos, linux, or unknown where its thread does not say. "This host"
in these tests is a captured Debian 13 minbase host (tests/fixtures/hosts/debian13-minbase.json) with Python 3.13,
replayed by a FakeSystem: none of the fixtures but the Debian 13 one was written there.
"""
from __future__ import annotations

import json
import time

import pytest

from conftest import FIXTURES, host_facts, host_facts_dict, read_log
from torch_setup import explain as ex
from torch_setup import fixhost, loghost
from torch_setup.host.replay import FakeSystem
from torch_setup.planning.make import make_plan
from torch_setup.recipes import load as recipes_mod
from torch_setup.request import Request

LOGS = FIXTURES / "logs"
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n'
LINUX_COMMANDS = ("apt-get", "dnf", "yum", "apk", "pacman", "zypper")
PLATFORM_OF = {"jetson": "linux", "wsl": "linux"}


def log_files():
    return sorted(LOGS.glob("*.log"))


def this_host():
    """(FakeSystem of this host, this_plan callable, the calls it got)."""
    facts = host_facts("debian13-minbase")
    rec = recipes_mod.load()
    plan = make_plan(facts, rec, Request())
    calls = []

    def this_plan():
        calls.append(1)
        return facts, rec, plan

    return FakeSystem(files={"/etc/os-release": OS_RELEASE}), this_plan, calls


def explain_here(text: str, **kw):
    system, this_plan, calls = this_host()
    causes, log = ex.diagnose(text), loghost.read(text)
    fh = fixhost.choose(system, Request(), log, needs_plan=any(c.needs for c in causes), this_plan=this_plan,
                        cause_ids=[c.id for c in causes], **kw)
    return fixhost.fixes(causes, fh, log), fh, log, calls


@pytest.mark.parametrize("path", log_files(), ids=lambda p: p.name)
def test_the_log_host_is_never_read_as_another_platform(path):
    text, header = read_log(path)
    assert header.get("host") in ("windows", "macos", "linux", "unknown"), f"{path.name}: add a '# host:' header"
    read = PLATFORM_OF.get(loghost.read(text).platform, loghost.read(text).platform)
    assert read in (header["host"], "unknown"), f"{path.name}: read {read}, written on {header['host']}"


@pytest.mark.parametrize("path", log_files(), ids=lambda p: p.name)
def test_no_fix_is_a_command_for_another_platform(path):
    """The walk the issue asks for: a Windows or macOS log never gets a Linux package manager's command, and a
    Linux log's command is for the log's host or this one, never another OS's."""
    text, header = read_log(path)
    causes, fh, log, _ = explain_here(text)
    commands = [cmd for c in causes for cmd in c["fix_commands"]]
    if header["host"] in ("windows", "macos") and log.platform != "unknown":
        assert fh.kind == fixhost.LOG and fh.platform == header["host"]
        assert not [c for c in commands if c and c[0] in LINUX_COMMANDS], (path.name, commands)
    for c in causes:
        assert c["fix_for"] in (fixhost.THIS, fixhost.LOG, fixhost.ADVICE)
        assert (c["fix_for"] == fixhost.ADVICE) == (not c["fix_commands"])
        assert c["fix"]


def test_windows_msvc_log_gets_windows_advice_not_apt():
    # before: this host's `apt-get install ... python3.13-dev g++`
    text, _ = read_log(LOGS / "missing-python-headers--windows-pyconfig.log")
    causes, fh, log, calls = explain_here(text)
    assert log.platform == "windows" and log.python_source == "embedded"
    assert fh.kind == fixhost.LOG and "Windows" in fh.why
    first = causes[0]
    assert first["id"] == "missing-python-headers" and first["fix_commands"] == [] and first["fix_for"] == "advice"
    assert "apt-get" not in first["fix"] and "embedded" in first["fix"]
    assert calls == []  # this host was not probed


def test_macos_log_gets_no_linux_command():
    text, _ = read_log(LOGS / "duplicate-openmp--macos-wheel.log")
    causes, fh, log, calls = explain_here(text)
    assert (log.platform, fh.kind, calls) == ("macos", fixhost.LOG, [])
    assert all(not c["fix_commands"] for c in causes)


def test_a_linux_log_of_another_python_gets_the_plan_of_its_own_host():
    # reproduced on Debian 12 with its python3 3.11: the fix installs python3.11-dev there, not this host's 3.13
    text, _ = read_log(LOGS / "missing-python-headers--german.log")
    causes, fh, log, calls = explain_here(text)
    assert log.python_minor == "3.11" and log.python_source == "system"
    assert fh.kind == fixhost.LOG and "3.11" in fh.why and calls == [1]  # probed once: the OS and distro agreed
    first = causes[0]
    assert first["fix_for"] == fixhost.LOG
    install = next(c for c in first["fix_commands"] if "install" in c)
    assert "python3.11-dev" in install and "python3.13-dev" not in install


def test_a_log_that_matches_this_host_gets_this_hosts_plan():
    text, _ = read_log(LOGS / "no-openssl--inductor-2.15-debian13.log")  # Debian 13, python3.13
    causes, fh, _, calls = explain_here(text)
    assert fh.kind == fixhost.THIS and calls == [1]
    assert causes[0]["fix_for"] == fixhost.THIS and causes[0]["fix_steps"] == ["system-packages"]


def test_pep668_log_of_another_host_gets_the_venv_too():
    text, _ = read_log(LOGS / "externally-managed--debian-pip.log")
    log = loghost.read(text)
    facts = fixhost.log_facts(log, ["externally-managed"])
    assert facts is None or facts.python.externally_managed


def test_here_takes_this_hosts_plan_whatever_the_log_says():
    text, _ = read_log(LOGS / "missing-python-headers--german.log")
    causes, fh, _, calls = explain_here(text, here=True)
    assert fh.kind == fixhost.THIS and calls == [1]
    assert any("python3.13-dev" in " ".join(c) for c in causes[0]["fix_commands"])


def test_facts_file_gives_that_hosts_exact_plan_slice(tmp_path):
    from torch_setup import pipeline

    data = host_facts_dict("debian12-system-3.11")
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"version": "x", "command": "detect", "ok": True, "data": data, "error": None}))
    text, _ = read_log(LOGS / "no-cxx-compiler--windows.log")  # what the log says no longer decides
    causes, fh, _, calls = explain_here(text, facts_file=str(path))
    assert fh.kind == fixhost.FACTS and calls == []
    facts = pipeline.read_facts(str(path))
    expected = pipeline.plan_host(Request(), facts, recipes_mod.load(), online=False).fixing(["cxx"])
    assert causes[0]["fix_steps"] == [s.id for s in expected]
    assert causes[0]["fix_commands"] == [c.shown() for s in expected for c in s.commands]


def test_gpu_arch_fix_is_computed_from_the_gpu_and_torch_in_the_log():
    line = ("NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
            "installation.\nThe current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 "
            "sm_86 sm_90.\n")
    log = loghost.read("torch 2.6.0+cu124\n" + line)
    assert (log.capability, log.gpus[0], log.torch, log.torch_build) == ("12.0", "NVIDIA GeForce RTX 5090", "2.6.0",
                                                                          "cu124")
    advice = fixhost.tailored("gpu-arch-unsupported", log)
    assert "2.6.0+cu124" in advice and "sm_120" in advice and "12.8" in advice
    old = fixhost.tailored("gpu-arch-unsupported", loghost.read("NVIDIA GeForce GTX 1080 with CUDA capability sm_61 "
                                                                "is not compatible with the current PyTorch"))
    assert "+cu126" in old and "12.8" not in old


@pytest.mark.parametrize("text, field, value", [
    ('  File "C:\\Users\\me\\miniconda3\\envs\\sd\\lib\\site-packages\\torch\\__init__.py", line 1', "python_source",
     "conda"),
    ("/home/u/.pyenv/versions/3.12.4/lib/python3.12/site-packages/torch/_inductor/codecache.py", "python", "3.12.4"),
    ("/opt/homebrew/lib/python3.13/site-packages/torch/_inductor/cpp_builder.py", "system", "Darwin"),
    ("/usr/lib/aarch64-linux-gnu/tegra/libcuda.so.1", "jetson", True),
    ("/mnt/c/Users/me/project/train.py", "wsl", True),
    ("Successfully installed torch-2.5.1+cu121", "torch_build", "cu121"),
    ("Collecting triton==3.1.0", "triton", "3.1.0"),
    ("HIP error: invalid device function on gfx1100", "gfx", "gfx1100"),
    ("(ST) E:\\StableTuner>pip install --upgrade triton==1.1.1", "system", "Windows"),  # a cmd prompt
])
def test_reads_host_facts(text, field, value):
    assert getattr(loghost.read(text), field) == value


def test_reading_a_log_of_another_host_does_not_probe_this_one_and_is_fast():
    text, _ = read_log(LOGS / "missing-python-headers--windows-msvc-chinese.log")
    start = time.perf_counter()
    for _ in range(20):
        _, _, _, calls = explain_here(text)
        assert calls == []
    assert (time.perf_counter() - start) / 20 < 0.3


def test_fixture_hosts_cover_the_platforms():
    hosts = [read_log(p)[1]["host"] for p in log_files()]
    assert {"windows", "macos", "linux"} <= set(hosts)


def test_quick_here_reads_no_process():
    system = FakeSystem(files={"/etc/os-release": OS_RELEASE})
    assert loghost.quick_here(system) == loghost.QuickHost("Linux", "x86_64", "debian", ())
    assert system.calls == []


def test_conflicts():
    here = loghost.QuickHost("Linux", "x86_64", "debian", ())
    assert loghost.conflicts(loghost.LogHost(), here) == []
    assert loghost.conflicts(loghost.read("/usr/lib/python3/dist-packages/x.py"), here) == []  # Debian family
    assert loghost.conflicts(loghost.read("C:\\Users\\a\\x.py"), here)
    assert loghost.conflicts(loghost.read("/usr/lib64/python3.9/site-packages/x.py"), here)  # RHEL family
    assert loghost.conflicts(loghost.read("/usr/lib/python3.11/x.py"), here, "3.13")




def _gpu_host(capability):
    """This host (the captured Debian 13 minbase) with an NVIDIA GPU of this capability, or none."""
    import dataclasses

    from torch_setup.facts.model import AcceleratorFacts

    facts = host_facts("debian13-minbase")
    if capability:
        facts = dataclasses.replace(facts, accelerator=AcceleratorFacts(
            kind="nvidia", driver_version="575.51.03", gpus=["NVIDIA GeForce RTX 5090"], compute_capability=capability,
            libcuda=True))
    rec = recipes_mod.load()
    plan = make_plan(facts, rec, Request())
    return lambda: (facts, rec, plan)


# the lines torch prints for an RTX 5090, behind a Linux path that says which OS wrote them
LINUX_5090 = ("/home/me/venv/lib/python3.13/site-packages/torch/cuda/__init__.py:209: UserWarning:\n"
              "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
              "installation.\n")


def _explain_gpu(text, capability):
    causes, log = ex.diagnose(text), loghost.read(text)
    fh = fixhost.choose(FakeSystem(files={"/etc/os-release": OS_RELEASE}), Request(), log, needs_plan=True,
                        this_plan=_gpu_host(capability), cause_ids=[c.id for c in causes])
    return fixhost.fixes(causes, fh, log)[0], fh


def test_a_gpu_arch_log_from_a_gpu_this_host_lacks_gets_advice_for_that_gpu():
    # before: this host's `pip install 'torch>=2.1'`, on a box without that GPU (or any)
    for capability in (None, "8.9"):
        cause, fh = _explain_gpu(LINUX_5090, capability)
        assert cause["id"] == "gpu-arch-unsupported" and fh.kind == fixhost.LOG and cause["fix_for"] == fixhost.ADVICE
        assert "sm_120" in fh.why and "sm_120" in cause["fix"] and "12.8" in cause["fix"]


def test_a_gpu_arch_log_from_this_hosts_gpu_gets_this_hosts_plan():
    cause, fh = _explain_gpu(LINUX_5090, "12.0")
    assert fh.kind == fixhost.THIS and fh.why == "the log matches this host"


def test_a_gpu_arch_log_that_says_no_os_or_no_gpu_gets_advice():
    text, _ = read_log(LOGS / "gpu-arch-unsupported--docker-xinference.log")  # the GPU, but no OS
    cause, fh = _explain_gpu(text, "12.0")
    assert fh.kind == fixhost.LOG and fh.why == fixhost.NO_OS and cause["fix_for"] == fixhost.ADVICE
    assert "sm_120" in cause["fix"]
    cause, fh = _explain_gpu("/usr/lib/python3/dist-packages/torch/nn/modules/module.py:1: in f\n"
                             "RuntimeError: CUDA error: no kernel image is available for execution on the device\n",
                             "12.0")
    assert cause["id"] == "gpu-arch-unsupported" and fh.kind == fixhost.LOG and fh.plan is None
    assert "which GPU" in fh.why


def test_a_gpu_arch_log_of_a_plannable_host_plans_a_torch_for_its_gpu():
    text = ("/usr/lib/python3/dist-packages/torch/cuda/__init__.py:209: UserWarning:\n"
            "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
            "installation.\n  File \"/usr/lib/python3.11/threading.py\", line 1, in run\n")
    causes, log = ex.diagnose(text), loghost.read(text)
    fh = fixhost.choose(FakeSystem(files={"/etc/os-release": OS_RELEASE}), Request(), log, needs_plan=True,
                        this_plan=_gpu_host(None), cause_ids=[c.id for c in causes])
    assert fh.kind == fixhost.LOG and fh.facts.accelerator.compute_capability == "12.0"
    cause = fixhost.fixes(causes, fh, log)[0]
    assert cause["fix_for"] == fixhost.LOG and "sm_120" in cause["note"]
    assert any("torch>=2.7" in " ".join(c) for c in cause["fix_commands"])  # Blackwell: torch 2.7+ (CUDA 12.8)
