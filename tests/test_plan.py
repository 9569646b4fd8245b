"""Plans from facts: captured hosts' facts (tests/fixtures/hosts/*.json) and variants of them, with the exact
argv of every step."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from plan_cases import ran
from conftest import FIXTURES, HOST_NAMES, changed, debian_only, host_facts, host_facts_dict, load_host
from torch_setup import pipeline
from torch_setup.errors import ExitCode, UnsupportedError
from torch_setup.facts.host import parse_os_release
from torch_setup.facts.model import Facts, PythonFacts
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.host.replay import FakeSystem

VENV = "/opt/venvs/torch"
OPTS = Request(venv=VENV)
APT_INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600"]
APT_UPDATE = ["apt-get", "update", "-o", "DPkg::Lock::Timeout=600"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def facts_with(name: str, **changes) -> Facts:
    """A captured host's facts with dotted-key changes: facts_with('x', **{'host.is_root': False})."""
    data = host_facts_dict(name)
    return changed(data, **changes)


def steps(plan):
    return [(s.id, s.status, [list(c.argv) for c in s.commands], s.root) for s in plan.steps]


# --------------------------------------------------------------------------------------------- Debian 13 minbase

def test_minbase_as_root(builtin_recipes):
    plan = make_plan(host_facts("debian13-minbase"), builtin_recipes, OPTS)
    assert steps(plan) == [
        ("system-packages", "todo",
         [APT_INSTALL + ["python3.13-dev", "python3.13-venv", "g++", "ca-certificates", "openssl"]], True),
        ("venv", "todo", [["/usr/bin/python3", "-m", "venv", VENV]], False),
        ("torch", "todo", [[VENV + "/bin/python", "-m", "pip", "install", "torch>=2.6"]], False),
    ]
    assert plan.steps[0].commands[0].env == APT_ENV
    assert (plan.python, plan.platform, plan.notes) == (VENV + "/bin/python", "debian-13", ())
    assert "externally managed" in plan.steps[1].why


@pytest.mark.parametrize("age,refresh", [(564.55, False), (86_400.0, False), (86_401.0, True), (None, True)])
def test_minbase_refreshes_apt_lists_only_when_old_or_missing(builtin_recipes, age, refresh):
    plan = make_plan(facts_with("debian13-minbase", **{"host.apt_lists_age_s": age}), builtin_recipes, OPTS)
    want = ([APT_UPDATE] if refresh else []) + [
        APT_INSTALL + ["python3.13-dev", "python3.13-venv", "g++", "ca-certificates", "openssl"]]
    assert [list(c.argv) for c in plan.steps[0].commands] == want
    assert all(c.env == APT_ENV for c in plan.steps[0].commands)


def test_minbase_as_a_user_with_sudo(builtin_recipes):
    facts = facts_with("debian13-minbase", **{"host.is_root": False, "host.sudo": True, "host.apt_lists_age_s": None})
    plan = make_plan(facts, builtin_recipes, OPTS)
    sudo = ["sudo", "env", "DEBIAN_FRONTEND=noninteractive"]
    assert steps(plan)[0] == ("system-packages", "todo", [
        sudo + APT_UPDATE,
        sudo + APT_INSTALL + ["python3.13-dev", "python3.13-venv", "g++", "ca-certificates", "openssl"],
    ], True)
    assert all(c.env == {} for c in plan.steps[0].commands)  # sudo resets the environment: it is on the line
    # the venv and torch need no root
    assert [s.root for s in plan.steps[1:]] == [False, False]
    assert plan.steps[1].commands[0].argv[0] == "/usr/bin/python3"


def test_minbase_as_a_user_without_sudo_keeps_plain_commands(builtin_recipes):
    facts = facts_with("debian13-minbase", **{"host.is_root": False, "host.sudo": False})
    plan = make_plan(facts, builtin_recipes, OPTS)
    cmd = plan.steps[0].commands[0]
    assert cmd.argv[0] == "apt-get" and cmd.env == APT_ENV
    assert cmd.display() == ("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o "
                             "DPkg::Lock::Timeout=600 python3.13-dev python3.13-venv g++ ca-certificates openssl")


def test_openssl_is_planned_explicitly_not_left_to_ca_certificates(builtin_recipes):
    # minbase has neither; a box that has CA certificates (which bring openssl on Debian) but no openssl program
    # still gets it: Inductor runs it, not the CA bundle
    facts = facts_with("debian13-minbase", **{"host.ca_bundle": True})
    plan = make_plan(facts, builtin_recipes, OPTS)
    assert plan.steps[0].commands[-1].argv[-1] == "openssl" and "ca-certificates" not in plan.steps[0].commands[-1].argv
    assert "openssl (Inductor checksums its precompiled header with it)" in plan.steps[0].why


@pytest.mark.parametrize("torch_version,needed", [("2.15.0+cu132", True), ("2.8.0", True), ("2.7.1+cpu", False),
                                                  ("2.6.0", False)])
def test_openssl_only_for_a_torch_that_runs_it(builtin_recipes, torch_version, needed):
    """A kept torch decides (recipes/torch.toml [[program]]: openssl from 2.8)."""
    facts = facts_with("debian13-installed-venv", **{"host.openssl": None, "torch.version": torch_version})
    plan = make_plan(facts, builtin_recipes, Request(venv="/root/.venvs/torch"))
    pkg = plan.steps[0]
    assert pkg.id == "system-packages"
    assert (pkg.status, [list(c.argv)[-1] for c in pkg.commands]) == (("todo", ["openssl"]) if needed else ("done", []))


def test_openssl_for_the_torch_chosen_or_the_newest(builtin_recipes):
    from types import SimpleNamespace

    facts = facts_with("debian13-installed-system", **{"host.openssl": None})
    newest = make_plan(facts, builtin_recipes, OPTS)  # no choice: a fresh install takes the newest torch
    assert newest.steps[0].commands[-1].argv[-1] == "openssl"
    old = SimpleNamespace(version="2.7.1", requirement="torch==2.7.1", variant="cpu", warnings=(),
                          install_args=lambda uv=False: ["torch==2.7.1"],
                          index_args=lambda uv=False: [], to_dict=lambda: {})
    assert make_plan(facts, builtin_recipes, OPTS, choice=old).steps[0].status == "done"


def test_minbase_with_uv_on_path(builtin_recipes):
    facts = facts_with("debian13-minbase", **{"host.uv": "/usr/local/bin/uv"})
    plan = make_plan(facts, builtin_recipes, OPTS)
    assert [list(c.argv) for c in plan.steps[-1].commands] == [
        ["/usr/local/bin/uv", "pip", "install", "--python", VENV + "/bin/python", "torch>=2.6"]]


def test_torch_range_from_the_user(builtin_recipes):
    plan = make_plan(host_facts("debian13-minbase"), builtin_recipes, Request(venv=VENV, torch=">=2.6,<2.15"))
    assert plan.steps[-1].commands[0].argv[-1] == "torch>=2.6,<2.15"


def test_default_venv_is_under_the_planned_hosts_home(builtin_recipes, monkeypatch):
    monkeypatch.setenv("HOME", "/somewhere/else")  # this host's home must not leak into another host's plan
    facts = facts_with("debian13-minbase", **{"host.home": "/home/ada"})
    plan = make_plan(facts, builtin_recipes)
    assert plan.python == "/home/ada/.venvs/torch/bin/python"


# --------------------------------------------------------------------------------------------- installed, seed note

def test_installed_venv_is_all_done(builtin_recipes):
    plan = make_plan(host_facts("debian13-installed-venv"), builtin_recipes, Request(venv="/root/.venvs/torch"))
    assert plan.todo == []
    assert [(s.id, s.status) for s in plan.steps] == [("system-packages", "done"), ("torch", "done")]
    assert plan.steps[1].title == "torch 2.15.0+cu132"
    assert plan.python == "/root/.venvs/torch/bin/python"


def test_the_minbase_plan_leads_to_the_captured_installed_venv(builtin_recipes):
    """The capture after `torch-setup install` on the minbase root is the interpreter the plan promised."""
    plan = make_plan(host_facts("debian13-minbase"), builtin_recipes, Request(venv="/root/.venvs/torch"))
    after = host_facts("debian13-installed-venv")
    assert plan.python == after.python.executable
    assert make_plan(after, builtin_recipes, Request(venv="/root/.venvs/torch")).todo == []


def seed_note_facts() -> Facts:
    """The case this project started from: Debian/Ubuntu system Python 3.13, torch installed with
    `pip install --user` under ~/.local/lib/python3.13/site-packages, g++ present, python3.13-dev missing
    ('fatal error: Python.h: No such file or directory' with -I/usr/include/python3.13)."""
    site = "/home/ada/.local/lib/python3.13/site-packages"
    return facts_with(
        "debian13-installed-system",
        **{"host.is_root": False, "host.sudo": True, "python.has_headers": False, "python.user_site": site,
           "compiler.ok": False, "compiler.error": "Python.h: not in /usr/include/python3.13",
           "torch.version": "2.14.1", "torch.location": site, "torch.in_user_site": True})


def test_seed_note_fixes_only_the_headers(builtin_recipes):
    plan = make_plan(seed_note_facts(), builtin_recipes, OPTS)
    assert steps(plan) == [
        ("system-packages", "todo",
         [["sudo", "env", "DEBIAN_FRONTEND=noninteractive"] + APT_INSTALL + ["python3.13-dev"]], True),
        ("torch", "done", [], False),
    ]
    assert plan.python == "/usr/bin/python3"  # torch.compile keeps running in the user's interpreter
    assert plan.steps[0].why == "missing: Python 3.13 headers"
    assert "kept" in plan.steps[1].why


def test_a_torch_too_old_for_the_python_is_replaced(builtin_recipes):
    # torch 2.5 has cp313 wheels but Dynamo refuses 3.13 (pytorch/pytorch#144048)
    facts = facts_with("debian13-installed-venv", **{"torch.version": "2.5.1+cu124"})
    plan = make_plan(facts, builtin_recipes, OPTS)
    torch_step = plan.steps[-1]
    assert (torch_step.status, [list(c.argv) for c in torch_step.commands]) == (
        "todo", [["/root/.venvs/torch/bin/python", "-m", "pip", "install", "torch>=2.6"]])
    assert "2.5.1+cu124 does not support" in torch_step.why
    assert [s.id for s in plan.steps] == ["system-packages", "torch"]  # a venv is a venv: no second one


def test_a_pinned_torch_range_reinstalls_even_a_good_torch(builtin_recipes):
    plan = make_plan(host_facts("debian13-installed-venv"), builtin_recipes, Request(venv=VENV, torch="==2.14.1"))
    assert plan.steps[-1].status == "todo"
    assert plan.steps[-1].commands[0].argv[-1] == "torch==2.14.1"


# --------------------------------------------------------------------------------------------- other hosts

def test_pyenv_python_needs_no_venv(builtin_recipes):
    plan = make_plan(host_facts("debian12-pyenv-3.11"), builtin_recipes, OPTS)
    assert steps(plan) == [
        ("system-packages", "done", [], True),
        ("torch", "todo", [["/root/.pyenv/versions/3.11.7/bin/uv", "pip", "install", "--python",
                            "/root/.pyenv/versions/3.11.7/bin/python3", "torch>=2.1"]], False),
    ]
    assert plan.platform == "debian-12"


def test_debian12_system_python_goes_into_a_venv(builtin_recipes):
    """Debian 12's own python3 (externally managed, headers installed) on a host with uv on PATH."""
    plan = make_plan(host_facts("debian12-system-3.11"), builtin_recipes, OPTS)
    assert [(s.id, s.status, s.root) for s in plan.steps] == [
        ("system-packages", "done", True), ("venv", "todo", False), ("torch", "todo", False)]
    venv_argv = plan.steps[1].commands[-1].argv
    assert venv_argv[-1] == VENV and "/usr/bin/python3" in venv_argv  # a venv of the system interpreter
    assert list(plan.steps[2].commands[0].argv) == ["/root/.pyenv/versions/3.11.7/bin/uv", "pip", "install",
                                                    "--python", VENV + "/bin/python", "torch>=2.1"]
    assert plan.python == VENV + "/bin/python"


def test_pyenv_python_without_headers_gets_a_note_not_a_package(builtin_recipes):
    facts = facts_with("debian12-pyenv-3.11", **{"python.has_headers": False})
    plan = make_plan(facts, builtin_recipes, OPTS)
    assert plan.steps[0].status == "done"
    assert len(plan.notes) == 1 and "/root/.pyenv/versions/3.11.7/include/python3.11" in plan.notes[0]
    assert "pyenv" in plan.notes[0]


# --------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("version,words", [
    ("3.16.0", ["3.16"]),
    ("3.8.18", ["3.8"]),
    ("3.7.16", ["3.7"]),
])
def test_python_without_any_torch_is_refused(builtin_recipes, version, words):
    facts = facts_with("debian12-pyenv-3.11", **{"python.version": version})
    with pytest.raises(UnsupportedError) as e:
        make_plan(facts, builtin_recipes, OPTS)
    for word in words:
        assert word in e.value.message
    assert "3.9" in e.value.hint and "3.15" in e.value.hint
    assert e.value.code == ExitCode.UNSUPPORTED


def test_free_threaded_3132_is_refused(builtin_recipes):
    facts = facts_with("debian12-pyenv-3.11", **{"python.version": "3.13.2", "python.free_threaded": True})
    with pytest.raises(UnsupportedError) as e:
        make_plan(facts, builtin_recipes, OPTS)
    assert "3.13t" in e.value.message and "3.13.3" in e.value.message


def test_free_threaded_3133_gets_a_bounded_torch(builtin_recipes):
    facts = facts_with("debian12-pyenv-3.11", **{"python.version": "3.13.3", "python.free_threaded": True})
    plan = make_plan(facts, builtin_recipes, OPTS)
    assert plan.steps[-1].commands[0].argv[-1] == "torch>=2.6,<=2.12.99"


def test_python_not_found_is_refused(builtin_recipes):
    facts = Facts(python=PythonFacts(absent="3.12"))
    with pytest.raises(UnsupportedError, match="3.12"):
        make_plan(facts, builtin_recipes, OPTS)


def _os(file):
    return dataclasses.asdict(parse_os_release((FIXTURES / "os-release" / file).read_text()))


def test_os_without_recipe_and_missing_needs_is_refused(builtin_recipes):
    facts = facts_with("debian13-minbase", os=_os("fedora-42.txt"), package_manager="dnf")
    with pytest.raises(UnsupportedError) as e:
        make_plan(facts, debian_only(builtin_recipes), OPTS)
    assert "Fedora Linux 42" in e.value.message
    assert "--recipes" in e.value.hint
    for need in ("headers", "venv", "cxx", "ca"):
        assert need in e.value.hint


def test_os_without_recipe_but_nothing_missing_plans_torch_only(builtin_recipes):
    facts = facts_with("debian12-pyenv-3.11", os=_os("rhel-9.txt"))
    plan = make_plan(facts, debian_only(builtin_recipes), OPTS)
    assert ([s.id for s in plan.steps], plan.platform) == (["torch"], None)


# --------------------------------------------------------------------------------------------- --break-system-packages

def test_break_system_packages_installs_into_the_system_python(builtin_recipes):
    facts = host_facts("debian13-installed-system")
    plan = make_plan(facts, builtin_recipes, Request(venv=VENV, break_system_packages=True))
    assert steps(plan) == [
        ("system-packages", "done", [], True),
        ("torch", "todo", [["/usr/bin/python3", "-m", "pip", "install", "torch>=2.6", "--break-system-packages"]],
         False),
    ]
    assert plan.python == "/usr/bin/python3"


def test_without_the_flag_it_is_never_passed(builtin_recipes):
    for name in HOST_NAMES:
        plan = make_plan(host_facts(name), builtin_recipes, OPTS)
        assert not any("--break-system-packages" in c.argv for s in plan.steps for c in s.commands), name


def test_break_system_packages_on_a_python_that_is_not_managed_adds_nothing(builtin_recipes):
    plan = make_plan(host_facts("debian12-pyenv-3.11"), builtin_recipes, Request(venv=VENV,
                                                                                  break_system_packages=True))
    assert "--break-system-packages" not in plan.steps[-1].commands[0].argv


def test_root_steps_of_a_sudo_user_run_through_sudo(builtin_recipes):
    facts = facts_with("debian13-installed-system", **{"host.is_root": False, "host.sudo": True})
    plan = make_plan(facts, builtin_recipes, Request(venv=VENV, break_system_packages=True))
    for step in plan.todo:
        if step.root:
            assert all(c.argv[0] == "sudo" for c in step.commands), step


# --------------------------------------------------------------------------------------------- invariants

VARIANTS = [(name, {}) for name in HOST_NAMES] + [
    ("debian13-minbase", {"host.is_root": False, "host.sudo": True}),
    ("debian13-minbase", {"host.apt_lists_age_s": None, "host.uv": "/usr/local/bin/uv"}),
    ("debian13-installed-system", {"python.has_headers": False, "torch.version": "2.14.1"}),
    ("debian13-installed-venv", {"torch.version": "2.5.1"}),
    ("debian12-system-3.11", {"python.venv_ok": False, "compiler.toolchain_ok": False}),
]


@pytest.mark.parametrize("name,changes", VARIANTS, ids=[f"{n}{'+' + ','.join(c) if c else ''}" for n, c in VARIANTS])
def test_planning_after_install_has_nothing_to_do(builtin_recipes, name, changes):
    facts = facts_with(name, **changes)
    before = copy.deepcopy(facts)
    plan = make_plan(facts, builtin_recipes, OPTS)
    assert facts == before  # make_plan does not touch its input
    assert make_plan(facts, builtin_recipes, OPTS) == plan  # and gives the same plan twice
    after = ran(facts, plan)
    again = make_plan(after, builtin_recipes, OPTS)
    assert again.todo == [], [s.to_dict() for s in again.todo]
    assert again.python == plan.python


def test_every_step_has_the_fields_the_cli_prints(builtin_recipes):
    for name in HOST_NAMES:
        for step in make_plan(host_facts(name), builtin_recipes, OPTS).steps:
            d = step.to_dict()
            assert {"id", "title", "status", "commands", "root"} <= set(d)
            assert d["status"] in ("done", "todo")
            assert all(isinstance(c["argv"], list) and all(isinstance(a, str) for a in c["argv"])
                       and isinstance(c["env"], dict) for c in d["commands"])
            assert (d["status"] == "done") == (d["commands"] == [])


def test_second_run_plans_for_the_venv_it_made(builtin_recipes):
    """After install, the default target is still /usr/bin/python3; gather_target takes the venv the first run
    made as the target (both probes captured on the same root), and then nothing is left to do."""
    system_host = load_host("debian13-installed-system")["host"]
    venv_host = load_host("debian13-installed-venv")["host"]
    merged = copy.deepcopy(system_host)
    merged["files"].update(venv_host["files"])
    merged["commands"].update(venv_host["commands"])
    system = FakeSystem.from_dict(dict(merged, env=dict(merged.get("env", {}), HOME="/root")))
    request = Request(venv="/root/.venvs/torch")
    assert make_plan(host_facts("debian13-installed-system"), builtin_recipes, request).todo  # a venv again
    facts = pipeline.gather_target(system, request, builtin_recipes)
    assert facts.python.executable == "/root/.venvs/torch/bin/python"
    assert facts.torch.version == "2.15.0+cu132"
    assert pipeline.plan_host(request, facts, builtin_recipes, online=False).todo == []


def test_gather_target_keeps_the_default_python_without_a_venv(builtin_recipes):
    system = FakeSystem.from_dict(load_host("debian13-minbase")["host"])
    facts = pipeline.gather_target(system, OPTS, builtin_recipes)
    assert facts.python.executable == "/usr/bin/python3" and not facts.python.in_venv


def test_a_given_venv_is_made_even_for_a_writable_python(builtin_recipes):
    """python:3.13-slim's /usr/local Python may be written to; `--venv /opt/venv` still asks for a venv there."""
    facts = host_facts("debian12-pyenv-3.13.0")
    assert not facts.python.externally_managed and facts.python.source == "pyenv"
    without = make_plan(facts, builtin_recipes, Request(venv="/opt/venv"))
    assert "venv" not in [s.id for s in without.steps]
    given = make_plan(facts, builtin_recipes, Request(venv="/opt/venv", venv_given=True))
    assert given.python == "/opt/venv/bin/python"
    venv = next(s for s in given.steps if s.id == "venv")
    assert venv.why == "--venv asks for one" and venv.creates == "/opt/venv"
