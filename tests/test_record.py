"""The verification record: its key changes with everything the compile depends on, it is never trusted on
another box, and install with nothing to do takes it instead of compiling, unless --verify."""
from __future__ import annotations

import dataclasses
import io

import pytest

from conftest import host_facts
from torch_setup import pipeline, record
from torch_setup.host.replay import FakeSystem
from torch_setup.planning.steps import Plan
from torch_setup.report import Reporter
from torch_setup.verify import Verification

PY = "/root/.venvs/torch/bin/python"


def box(**files) -> FakeSystem:
    """The captured Debian 13 box with its torch venv, as the record sees it: files with mtimes."""
    base = {"/proc/sys/kernel/random/boot_id": "6b1c0c5e-0d5e-4c3c-9e1f-3a1f4b9f2d10\n",
            "/etc/machine-id": "2f4d1c0e9b8a4f0c8e6d5b4a3c2b1a09\n",
            "/proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"}
    base.update(files)
    stamps = {p: 1_790_000_000.0 for p in (PY, "/usr/include/python3.13/Python.h", "/usr/bin/g++", "/usr/bin/gcc",
                                           "/usr/bin/openssl")}
    loc = "/root/.venvs/torch/lib/python3.13/site-packages/"
    stamps.update({loc + f: 1_790_000_100.0 for f in record.TORCH_FILES})
    return FakeSystem(files=base, mtimes=stamps, env={"HOME": "/root", "PATH": "/usr/bin"})


FACTS = host_facts("debian13-installed-venv")
PASSED = Verification(True, PY, "2.15.0+cu132", 11.2, [{"device": "cpu", "ok": True, "seconds": 9.8}])


def test_a_passed_verification_is_found_again_while_nothing_changed():
    system = box()
    assert record.lookup(system, FACTS, PY, {}) is None
    assert record.save(system, FACTS, PY, {}, PASSED)
    hit = record.lookup(system, FACTS, PY, {})
    assert hit["torch"] == "2.15.0+cu132" and hit["when"] == system.now() and hit["results"] == PASSED.results


def test_a_failed_verification_is_not_recorded():
    system = box()
    assert not record.save(system, FACTS, PY, {}, dataclasses.replace(PASSED, ok=False))
    assert record.lookup(system, FACTS, PY, {}) is None


def _changed(what: str):
    """(system, facts, env) with one thing the compile depends on changed."""
    system, facts, env = box(), FACTS, {}
    if what == "Python.h":
        del system.mtimes["/usr/include/python3.13/Python.h"]  # deleted
    elif what == "headers rebuilt":
        system.mtimes["/usr/include/python3.13/Python.h"] += 60
    elif what == "torch":
        facts = dataclasses.replace(facts, torch=dataclasses.replace(facts.torch, version="2.14.1+cpu"))
    elif what == "torch files":
        system.mtimes["/root/.venvs/torch/lib/python3.13/site-packages/torch/_inductor/codecache.py"] += 1
    elif what == "compiler binary":
        system.mtimes["/usr/bin/g++"] += 3600
    elif what == "compiler version":
        facts = dataclasses.replace(facts, compiler=dataclasses.replace(facts.compiler, version="15.1.0"))
    elif what == "CXX":
        system.env["CXX"] = "clang++"
    elif what == "an Inductor setting":
        env = {"TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS": "0"}
    elif what == "the CPU":
        system.files["/proc/cpuinfo"] = "processor\t: 0\nflags\t\t: fpu sse2\n"
    elif what == "another box":
        system.files["/proc/sys/kernel/random/boot_id"] = "0f0f0f0f-0000-4000-8000-000000000000\n"
    elif what == "openssl":
        del system.mtimes["/usr/bin/openssl"]
    return system, facts, env


@pytest.mark.parametrize("what", ["Python.h", "headers rebuilt", "torch", "torch files", "compiler binary",
                                  "compiler version", "CXX", "an Inductor setting", "the CPU", "another box",
                                  "openssl"])
def test_anything_the_compile_depends_on_changed_breaks_the_record(what):
    system = box()
    record.save(system, FACTS, PY, {}, PASSED)
    changed_system, facts, env = _changed(what)
    changed_system.files[f"/root/{record.RECORD}"] = system.files[f"/root/{record.RECORD}"]
    assert record.lookup(changed_system, facts, PY, env) is None
    assert record.last(changed_system, facts, PY)["torch"] == "2.15.0+cu132"  # doctor can say it no longer holds


def test_a_box_that_cannot_be_told_apart_has_no_key():
    system = box()
    del system.files["/proc/sys/kernel/random/boot_id"]
    assert record.key(system, FACTS, PY, {}) is None and not record.save(system, FACTS, PY, {}, PASSED)


def test_install_with_nothing_to_do_takes_the_record_and_compiles_nothing_unless_asked():
    system = box()
    record.save(system, FACTS, PY, {}, PASSED)
    plan = Plan((), PY, "debian-13")
    report = pipeline.install(system, FACTS, None, plan, Reporter(io.StringIO()))
    assert report.verification.ok and report.verification.recorded == system.now()
    assert not [c for c in system.calls if c.startswith(PY)]  # no smoke check started
    again = pipeline.install(system, FACTS, None, plan, Reporter(io.StringIO()), reverify=True)
    assert again.verification.recorded is None
    assert any(c.startswith(f"{PY} -c ") for c in system.calls)  # --verify compiles afresh
