"""Replay each captured host (tests/fixtures/hosts/*.json, made by scripts/capture-host) through `gather` and
compare with the facts gathered on the real machine."""
from __future__ import annotations

import json
import time

import pytest

from conftest import HOST_NAMES, REQUIRED_KEYS, dotted, host_facts, host_system, load_host
from torch_setup.facts import gather
from torch_setup.facts.model import Facts
from torch_setup.request import PythonRequest

def test_there_are_captured_hosts():
    assert {"debian13-minbase", "debian13-installed-venv", "debian13-installed-system",
            "debian12-pyenv-3.11"} <= set(HOST_NAMES)


@pytest.mark.parametrize("name", HOST_NAMES)
def test_replay_gives_the_captured_facts(name, builtin_recipes):
    data = load_host(name)
    system = host_system(name)
    facts = gather.gather(system, PythonRequest.parse(data["spec"]), builtin_recipes.manager_binaries,
                          system_name="Linux", machine="x86_64")
    got, want = facts.to_dict(), data["facts"]
    # RecordingSystem stores the clock when the capture ends, not the value `now()` gave during detection
    # (see test_recording_system_keeps_the_clock_it_answered), so the age of apt's lists is off by the time the
    # capture took: compare it within a few seconds, everything else exactly.
    got_age, want_age = got["host"].pop("apt_lists_age_s"), want["host"].pop("apt_lists_age_s")
    assert (got_age is None) == (want_age is None)
    if got_age is not None:
        assert abs(got_age - want_age) < 5
    assert got == want, ("facts differ from the capture\nGOT:\n" + json.dumps(got, indent=1, sort_keys=True)
                         + "\nWANT:\n" + json.dumps(want, indent=1, sort_keys=True))


@pytest.mark.parametrize("name", HOST_NAMES)
def test_captured_facts_have_every_required_key_and_round_trip(name):
    data = load_host(name)["facts"]
    for key in REQUIRED_KEYS:
        dotted(data, key)
    assert Facts.from_dict(json.loads(json.dumps(data))).to_dict() == data


def test_debian13_minbase():
    f = host_facts("debian13-minbase")
    assert (f.os.id, f.os.version, f.os.codename, f.package_manager) == ("debian", "13", "trixie", "apt")
    assert (f.libc.name, f.libc.version, f.arch) == ("glibc", "2.41", "x86_64")
    py = f.python
    assert (py.executable, py.version, py.source) == ("/usr/bin/python3", "3.13.5", "system")
    assert py.externally_managed and not py.in_venv
    assert not py.has_headers and py.include_dir == "/usr/include/python3.13"
    assert py.venv_ok is False  # python3.13-venv (ensurepip) is not in minbase
    assert (f.compiler.path, f.compiler.ok, f.compiler.error) == (None, False, "g++: not found")
    assert f.host.is_root and not f.host.ca_bundle  # minbase has no ca-certificates
    assert f.host.openssl is None  # ... and no openssl program
    assert f.torch.version is None and f.accelerator.kind == "none"


def test_debian13_installed_venv():
    f = host_facts("debian13-installed-venv")
    py = f.python
    assert (py.executable, py.in_venv, py.externally_managed) == ("/root/.venvs/torch/bin/python", True, False)
    assert (py.base_executable, py.source, py.has_headers) == ("/usr/bin/python3", "system", True)
    assert (f.torch.version, f.torch.cuda, f.torch.triton) == ("2.15.0+cu132", "13.2", "3.9.0")
    assert (f.compiler.version, f.compiler.ok, f.compiler.toolchain_ok) == ("14.2.0", True, True)
    assert f.host.ca_bundle and f.host.openssl == "/usr/bin/openssl"  # ca-certificates depends on openssl


def test_debian13_installed_system():
    f = host_facts("debian13-installed-system")
    py = f.python
    assert (py.executable, py.has_headers, py.venv_ok, py.externally_managed) == ("/usr/bin/python3", True, True,
                                                                                   True)
    assert f.compiler.ok and f.torch.version is None


def test_debian12_pyenv_311():
    f = host_facts("debian12-pyenv-3.11")
    assert (f.os.version, f.os.codename, f.libc.version) == ("12", "bookworm", "2.36")
    py = f.python
    assert (py.version, py.source, py.externally_managed, py.in_venv) == ("3.11.7", "pyenv", False, False)
    assert (f.compiler.version, f.compiler.ok) == ("12.2.0", True)
    assert (f.host.container, f.host.uv) == ("docker", "/root/.pyenv/versions/3.11.7/bin/uv")


def test_debian12_pyenv_3130_by_path():
    f = host_facts("debian12-pyenv-3.13.0")
    assert load_host("debian12-pyenv-3.13.0")["spec"] == "/root/.pyenv/versions/3.13.0/bin/python3"
    assert (f.python.executable, f.python.version, f.python.source) == (
        "/root/.pyenv/versions/3.13.0/bin/python3", "3.13.0", "pyenv")
    assert f.python.has_headers and not f.python.externally_managed


def test_debian12_system_python():
    f = host_facts("debian12-system-3.11")
    py = f.python
    assert (py.version, py.source, py.externally_managed, py.has_headers) == ("3.11.2", "system", True, True)
    assert py.include_dir == "/usr/include/python3.11"


def test_debian12_venv_of_the_system_python():
    f = host_facts("debian12-venv-of-system")
    py = f.python
    assert (py.in_venv, py.externally_managed, py.source, py.base_executable) == (True, False, "system",
                                                                                  "/usr/bin/python3")
    assert py.include_dir == "/usr/include/python3.11"  # a venv compiles against its base's headers


def test_debian12_uv_venv():
    f = host_facts("debian12-uv-venv-pyenv-3.12")
    py = f.python
    assert (py.in_venv, py.source, py.version, py.prefix) == (True, "pyenv", "3.12.1", "/tmp/uvv")


def test_debian12_torch_cpu_venv():
    f = host_facts("debian12-venv-torch-cpu")
    assert (f.torch.version, f.torch.cuda, f.python.in_venv) == ("2.13.0+cpu", None, True)


def test_recording_system_keeps_the_clock_it_answered():
    from torch_setup.host.replay import RecordingSystem

    rec = RecordingSystem()
    answered = rec.now()
    time.sleep(0.01)  # the capture goes on probing after detect_host read the clock
    assert rec.fixture()["clock"] == answered


def test_gather_without_the_python_gives_found_false(builtin_recipes):
    system = host_system("debian13-minbase")
    facts = gather.gather(system, PythonRequest.parse("3.12"), builtin_recipes.manager_binaries,
                          system_name="Linux", machine="x86_64")
    assert facts.python.found is False and facts.python.absent == "3.12"
    assert facts.host_python.executable == "/usr/bin/python3" and facts.host_python.version == "3.13.5"
    assert facts.os.id == "debian" and facts.arch == "x86_64"


def test_gather_without_any_python_for_a_path_is_an_error(builtin_recipes):
    from torch_setup.errors import PythonNotFoundError

    with pytest.raises(PythonNotFoundError):
        gather.gather(host_system("debian13-minbase"), PythonRequest.parse("/opt/none/python3"),
                      builtin_recipes.manager_binaries, system_name="Linux", machine="x86_64")


def test_gather_asks_only_what_the_capture_holds(builtin_recipes):
    """Every command the replay ran was answered from the capture (nothing fell through to 'not found' except
    the probes that were not found on the real host too)."""
    data = load_host("debian13-minbase")
    system = host_system("debian13-minbase")
    gather.gather(system, PythonRequest.parse(data["spec"]), builtin_recipes.manager_binaries, system_name="Linux",
                          machine="x86_64")
    assert set(system.calls) <= set(data["host"]["commands"])
