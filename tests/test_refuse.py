"""Refusals (recipes/refusals.toml, refuse.check): what cannot work is refused before anything is installed, with the
reason, the way forward and exit code 5 (ExitCode.UNSUPPORTED). One test per refusal, on the platform facts of
tests/fixtures/platforms."""
from __future__ import annotations

import json

import pytest

from conftest import plan_for, FIXTURES, assert_bad_recipe, changed
from torch_setup.planning import provide as provision
from torch_setup.recipes import refuse
from torch_setup.recipes import load as recipes_mod
from torch_setup.request import PythonRequest, Request
from torch_setup.errors import ExitCode, UnsupportedError
from torch_setup.facts.model import Facts
from torch_setup.wheels.uv import UvWheel


PLATFORMS = FIXTURES / "platforms"


def facts(name: str, **changes) -> Facts:
    data = json.loads((PLATFORMS / f"{name}.json").read_text())
    return changed(data, **changes)


def refused(f: Facts, recipes) -> UnsupportedError:
    with pytest.raises(UnsupportedError) as e:
        refuse.check(f, recipes)
    assert e.value.code == ExitCode.UNSUPPORTED == 5  # the exit code the README documents
    assert e.value.message and e.value.hint
    return e.value


# (refusal id, facts, words of the reason, words of the way forward)
CASES = {
    "musl": (lambda: facts("alpine-3.22"), ["no torch wheels for musl", "Alpine Linux"], ["python:3.13-slim"]),
    "glibc-before-2.28": (lambda: facts("amzn-2"), ["glibc 2.26 is older than 2.28", "torch 2.6.0"],
                          ["glibc 2.28 or newer", "Amazon Linux 2023"]),
    "intel-mac": (lambda: facts("macos-14-homebrew", arch="x86_64"), ["Intel Macs"], ["Apple Silicon", "Rosetta"]),
    "macos-before-14": (lambda: facts("macos-14-homebrew", **{"os.version": "13.6.9"}),
                        ["macOS 14 or later", "macOS 13.6.9", "2.11"], ["upgrade to macOS 14"]),
    "not-cpython": (lambda: facts("debian-13", **{"python.implementation": "pypy"}),
                    ["needs CPython", "/usr/bin/python3 is pypy"], ["--python 3.15"]),
    "python-without-torch-compile": (lambda: facts("debian-13", **{"python.version": "3.16.0"}),
                                     ["no torch release supports torch.compile on Python 3.16"],
                                     ["from 3.9 to 3.15", "--python 3.15"]),
    "free-threaded-without-torch-compile": (
        lambda: facts("debian-testing", **{"python.free_threaded": True, "python.version": "3.12.8"}),
        ["free-threaded Python 3.12t"], ["regular (GIL) build of Python 3.12", "--python 3.12"]),
    "free-threaded-too-old": (
        lambda: facts("debian-13", **{"python.free_threaded": True, "python.version": "3.13.2"}),
        ["Python 3.13t needs CPython >= 3.13.3", "this is 3.13.2"], ["3.13.3 or later"]),
}


@pytest.mark.parametrize("rid", sorted(CASES))
def test_each_refusal(builtin_recipes, rid):
    make, reason_words, hint_words = CASES[rid]
    f = make()
    assert refuse.first(f, builtin_recipes).id == rid
    e = refused(f, builtin_recipes)
    for w in reason_words:
        assert w in e.message, (w, e.message)
    for w in hint_words:
        assert w in e.hint, (w, e.hint)
    assert rid in e.details  # which entry, and its source


def test_every_refusal_of_the_recipes_has_a_test(builtin_recipes):
    assert {r.id for r in builtin_recipes.refusals} == set(CASES)
    for r in builtin_recipes.refusals:
        assert r.source and r.origin.endswith("refusals.toml")


@pytest.mark.parametrize("name", sorted(p.stem for p in PLATFORMS.glob("*.json")
                                        if p.stem not in ("alpine-3.22", "amzn-2")))
def test_supported_platforms_are_not_refused(builtin_recipes, name):
    assert refuse.first(facts(name), builtin_recipes) is None
    refuse.check(facts(name), builtin_recipes)


@pytest.mark.parametrize("version,ok", [("3.13.3", True), ("3.13.2", False), ("3.13.0", False)])
def test_free_threaded_floor(builtin_recipes, version, ok):
    f = facts("debian-13", **{"python.free_threaded": True, "python.version": version})
    assert (refuse.first(f, builtin_recipes) is None) is ok


@pytest.mark.parametrize("glibc,ok", [("2.28", True), ("2.27", False), ("2.17", False), (None, True)])
def test_glibc_floor_is_2_28(builtin_recipes, glibc, ok):
    f = facts("rhel-8", **{"libc.version": glibc})  # RHEL 8 is glibc 2.28: just supported
    assert (refuse.first(f, builtin_recipes) is None) is ok


@pytest.mark.parametrize("version,ok", [("14.0", True), ("14.6.1", True), ("15.7.9", True), ("13.7", False),
                                        ("11.7.10", False), ("", True)])
def test_macos_floor_is_14(builtin_recipes, version, ok):
    f = facts("macos-14-homebrew", **{"os.version": version})
    assert (refuse.first(f, builtin_recipes) is None) is ok


def test_python_refusals_need_a_python(builtin_recipes):
    # The nvidia/cuda image has no Python: nothing about one is refused; the box itself is fine.
    assert refuse.first(facts("nvidia-cuda-ubuntu24.04"), builtin_recipes) is None
    # ... and a box refusal holds whatever the Python
    assert refuse.first(facts("alpine-3.22", **{"python.found": False}), builtin_recipes).id == "musl"


def test_a_refused_box_is_refused_before_any_python_is_provided(builtin_recipes):
    with pytest.raises(UnsupportedError, match="musl"):
        provision.prepare(facts("alpine-3.22"), builtin_recipes, Request(python=PythonRequest.parse("3.13")))


def test_a_refused_default_python_does_not_stop_providing_another(builtin_recipes):
    # RHEL 8's python3 is 3.6 (no torch.compile); --python 3.13 brings a uv-managed one and plans on that.
    f = facts("rhel-8", **{"python.version": "3.6.8", "python.executable": "/usr/bin/python3"})
    assert refuse.first(f, builtin_recipes).id == "python-without-torch-compile"
    wheel = UvWheel("0.13.9", "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl", "https://pypi.example/uv.whl",
                    "ab" * 32, 20_000_000)
    plan = plan_for(f, builtin_recipes, Request(venv="/opt/venv"), python="3.13", uv=wheel)
    assert plan.python == "/opt/venv/bin/python"
    # The uv wheel is fetched by a standard-library script that python3 3.6 runs (tests/test_uvtool.py runs it
    # under a real 3.6); without one, pip on 3.6 cannot install uv (Requires-Python >= 3.8): refused, not planned.
    fetch = next(s for s in plan.steps if s.id == "uv").commands[0].argv
    assert fetch[:2] == ("/usr/bin/python3", "-c")
    with pytest.raises(UnsupportedError, match="too old to install uv") as e:
        plan_for(f, builtin_recipes, Request(venv="/opt/venv"), python="3.13")
    assert e.value.code == ExitCode.UNSUPPORTED and "uv" in e.value.hint


def test_the_plan_refuses_through_the_same_entries(builtin_recipes):
    with pytest.raises(UnsupportedError) as e:
        plan_for(facts("debian-13", **{"python.version": "3.16.1"}), builtin_recipes, Request())
    assert e.value.message == "no torch release supports torch.compile on Python 3.16"


def test_a_site_can_add_a_refusal(tmp_path):
    (tmp_path / "site.toml").write_text(
        '[[refuse]]\nid = "no-arm"\nwhen = { arch = ["aarch64"] }\nreason = "not on {arch} here"\n'
        'hint = "use the x86_64 pool"\nsource = "site policy"\n')
    r = recipes_mod.load([tmp_path])
    e = refused(facts("debian-13", arch="aarch64"), r)
    assert (e.message, e.hint) == ("not on aarch64 here", "use the x86_64 pool")


@pytest.mark.parametrize("body,words", [
    ('[[refuse]]\nid = "x"\nwhen = { libc = "musl" }\nreason = "r"\nhint = "h"\nsource = "s"\n',
     ["refuse #1 (x) when", "'libc' must be a list of strings"]),
    ('[[refuse]]\nid = "x"\nwhen = { kernel_below = "5.4" }\nreason = "r"\nhint = "h"\nsource = "s"\n',
     ["refuse #1 (x) when", "kernel_below"]),
    ('[[refuse]]\nid = "x"\nwhen = {}\nreason = "r"\nhint = "h"\nsource = "s"\n', ["refuse #1 (x)", "'when'"]),
    ('[[refuse]]\nid = "x"\nwhen = { libc = ["musl"] }\nreason = "r"\nsource = "s"\n', ["refuse #1 (x)", "'hint'"]),
    ('[[refuse]]\nid = "x"\nwhen = { python_unsupported = "yes" }\nreason = "r"\nhint = "h"\nsource = "s"\n',
     ["refuse #1 (x) when", "true or false"]),
])
def test_malformed_refusals_name_file_and_entry(tmp_path, body, words):
    assert_bad_recipe(tmp_path, body, words)
