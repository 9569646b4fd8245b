"""smoke.py's helpers, for real: the bytecode they write for the listed modules is what import would write (import
keeps it), unlisted modules are left alone, and a module already compiled is not compiled again."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from torch_setup import smoke

MODULES = {"torch/__init__.py": "import torch.a\n", "torch/a.py": "A = 1\n", "torch/b.py": "B = 2\n",
           "other/__init__.py": "", "other/c.py": "C = 3\n"}


def fake_site(tmp_path, listed):
    site = tmp_path / "site-packages"
    for name, text in MODULES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    listing = tmp_path / "imports.txt"
    listing.write_text("# a header line\n" + "".join(n + "\n" for n in listed))
    return site, listing


def pyc(site, name):
    return importlib.util.cache_from_source(str(site / name))


def run_helpers(monkeypatch, site, listing, cpus, dont_write_bytecode=False):
    monkeypatch.syspath_prepend(str(site))  # find_spec("torch") finds the fake torch
    monkeypatch.setattr(sys, "dont_write_bytecode", dont_write_bytecode)  # PYTHONDONTWRITEBYTECODE=1 or python -B
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    helpers = smoke.write_bytecode(str(listing))
    for p in helpers:
        assert p.wait(timeout=60) == 0
    return helpers


def test_helpers_write_the_bytecode_import_would_write_for_the_listed_modules(tmp_path, monkeypatch):
    listed = ["torch/__init__.py", "torch/a.py", "other/c.py"]
    site, listing = fake_site(tmp_path, listed)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")  # would make py_compile write hash-based bytecode
    helpers = run_helpers(monkeypatch, site, listing, cpus=3)
    assert len(helpers) == 2  # one per spare CPU, the list split between them
    assert all(os.path.exists(pyc(site, n)) for n in listed) and not os.path.exists(pyc(site, "torch/b.py"))
    flags = {n: int.from_bytes(open(pyc(site, n), "rb").read()[4:8], "little") for n in listed}
    assert flags == dict.fromkeys(listed, 0)  # timestamp-based, as import writes it: not hashed
    before = {n: os.stat(pyc(site, n)).st_mtime_ns for n in listed}
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", "import torch, other.c"], env=env, check=True, timeout=60)
    # import found them valid (it rewrites stale or foreign bytecode) and wrote its own for nothing listed
    assert {n: os.stat(pyc(site, n)).st_mtime_ns for n in listed} == before


def test_bytecode_already_there_is_not_written_again(tmp_path, monkeypatch):
    site, listing = fake_site(tmp_path, ["torch/__init__.py", "torch/a.py"])
    run_helpers(monkeypatch, site, listing, cpus=2)
    before = os.stat(pyc(site, "torch/a.py")).st_mtime_ns
    run_helpers(monkeypatch, site, listing, cpus=2)
    assert os.stat(pyc(site, "torch/a.py")).st_mtime_ns == before


def test_one_cpu_has_no_spare_for_a_helper(tmp_path, monkeypatch):
    site, listing = fake_site(tmp_path, ["torch/__init__.py"])
    assert run_helpers(monkeypatch, site, listing, cpus=1) == []


def test_no_bytecode_where_the_user_said_none(tmp_path, monkeypatch):
    site, listing = fake_site(tmp_path, ["torch/__init__.py"])
    assert run_helpers(monkeypatch, site, listing, cpus=4, dont_write_bytecode=True) == []
    assert not os.path.exists(pyc(site, "torch/__init__.py"))


def test_without_torch_there_is_nothing_to_help(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert smoke.write_bytecode(str(tmp_path / "imports.txt")) == []
