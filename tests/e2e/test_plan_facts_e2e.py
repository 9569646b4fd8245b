"""`plan --facts` is `install --dry-run` of the host the facts came from, for real.

For each host: `detect --json` runs there (inside a real Debian root, or on this host as another user's pyenv
setup), its output is saved here, and this host's project CLI (`python -m torch_setup`) plans from that file alone;
the plan must equal the `plan` of `install --dry-run --json` run on the host itself: every step with its id,
title, status, commands (argv and env), root, after and provides, the target python, the notes, the environment
and the torch choice. Both sides ask the indexes (PyPI answers, or does not, for both alike).

The planning side runs in this host's own environment, whatever its pip configuration, HOME and PIP_*/UV_*
variables are (a plan from facts uses the planned host's), and once more with variables added that would change
the plan if they were read (another index, backend, HOME, no uv).
"""
from __future__ import annotations

import glob
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

from tests.e2e.roots import debian_root, payload

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "torch_setup"]  # this host's torch-setup (src/torch_setup/__main__.py)
PYZ_IN_ROOT = "/root/torch-setup.pyz"
PYTHON_NOT_FOUND = 7  # detect's exit code for a --python X.Y the host lacks (errors.ExitCode)
# Variables that change a plan when the planning side reads them instead of the facts' configuration. Port 9
# (discard) on the loopback: an index that never answers, on any network.
LEAKY = {"TORCH_SETUP_TORCH_BACKEND": "cu126", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
         "UV_DEFAULT_INDEX": "http://127.0.0.1:9/uv", "TORCH_SETUP_NO_UV": "1", "CXX": "clang++",
         "UV_PYTHON_INSTALL_DIR": "/nonexistent/uv-python", "HOME": "/nonexistent/home"}


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(out)], check=True)
    return out


def differences(a, b, path: str = "plan") -> List[str]:
    """Where two JSON values differ, one line each: `plan.steps[3].commands[0].argv[5]: 'x' != 'y'`."""
    if type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'install --dry-run' if k in a else 'plan --facts'}")
            else:
                out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            ids = [[x.get("id") if isinstance(x, dict) else x for x in v] for v in (a, b)]
            return [f"{path}: {len(a)} items != {len(b)} ({ids[0]} != {ids[1]})"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def plan_from_facts(facts_file: Path, args: List[str], env: Optional[dict] = None) -> dict:
    """`plan --facts FILE --json` by this host's CLI, in this host's environment (plus `env`)."""
    res = subprocess.run([*CLI, "plan", "--facts", str(facts_file), "--json", *args], capture_output=True,
                         text=True, timeout=600, env=dict(os.environ, **(env or {})), cwd="/")
    assert res.returncode == 0, res.stderr[-3000:]
    return payload(res.stdout)


def assert_same_plan(installed: dict, facts_file: Path, args: List[str]) -> None:
    """The dry run's plan against this host's plans from the facts: as this host is, and with LEAKY set."""
    assert installed["dry_run"] is True and installed["plan"]["steps"], installed
    for extra in ({}, LEAKY):
        planned = {k: v for k, v in plan_from_facts(facts_file, args, extra).items() if k not in ("ok", "error")}
        diffs = differences(installed["plan"], planned)
        assert not diffs, f"plan --facts {' '.join(args)} (with {sorted(extra)}) differs:\n" + "\n".join(diffs)
        assert planned == installed["plan"]


def in_root(root, argv: List[str], env: Optional[dict] = None):
    return root.run(["python3", PYZ_IN_ROOT, *argv], env=env, timeout=600)


# (suite, --python, whether the root lacks it): Debian 13's python3 is 3.13; testing's is 3.14 (minbase has no
# 3.13: apt provides python3.13); Debian 12 has no 3.13 in its archive (uv provides it).
ROOTS = [("trixie", None, False), ("forky", "3.13", None), ("bookworm", "3.13", True)]


@pytest.mark.parametrize("suite,version,absent", ROOTS, ids=[r[0] for r in ROOTS])
def test_plan_from_a_roots_facts_is_its_install_dry_run(tmp_path, pyz, suite, version, absent):
    py = ["--python", version] if version else []
    with debian_root(suite, tmp_path / "roots") as root:
        root.copy_in(pyz, PYZ_IN_ROOT)
        detect = in_root(root, ["detect", "--json", *py])
        facts = json.loads(detect.stdout)["data"]  # printed even when the Python is absent
        lacks = bool(facts["python"]["absent"])
        if absent is not None:
            assert lacks is absent, facts["python"]
        assert detect.returncode == (PYTHON_NOT_FOUND if lacks else 0), detect.stderr[-2000:]
        if lacks:
            assert facts["python"]["absent"] == version and facts["host_python"]["executable"] == "/usr/bin/python3"
        assert facts["config"]["pip"] == ""  # the root has no pip configuration; this host has one
        facts_file = tmp_path / f"{suite}-facts.json"
        facts_file.write_text(detect.stdout)
        dry = in_root(root, ["install", "--dry-run", "--json", *py])
        assert dry.returncode == 0, dry.stderr[-3000:]
    installed = payload(dry.stdout)
    assert installed["plan"]["torch"], installed["plan"]  # the choice was made online, on both sides
    # An absent Python: the facts say which is wanted, so the plan needs no --python (and may have it).
    for args in ([[], py] if lacks else [py]):
        assert_same_plan(installed, facts_file, args)


def pyenv_python(minor: str) -> Optional[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin", f"python{minor}")))
    return found[-1] if found else None


def test_plan_from_a_pyenv_hosts_facts_is_its_install_dry_run(tmp_path):
    """The host of test_platforms_e2e's pyenv case (a pyenv CPython 3.13 and another HOME, so none of this host's
    ~/.config/pip), described by its facts; this host's own HOME, pip.conf and variables must not matter. Dry
    runs only: the interpreter is used where it is, and nothing is written into it."""
    exe = pyenv_python("3.13")
    if not exe:
        pytest.skip("no pyenv CPython 3.13 on this host ($PYENV_ROOT/versions/3.13.*)")
    home = tmp_path / "home"
    home.mkdir()
    # The planned host is this machine with a pip configured by nobody (no PIP_*/UV_* variables, no pip.conf):
    # local folders a configuration names are the planned host's, and a plan from facts does not read them
    # (test_files_named_by_the_facts_are_the_planned_hosts_not_this_ones). The planning side keeps all of this
    # host's configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(HOME=str(home), PYENV_ROOT=str(Path(exe).parents[3]), PIP_CONFIG_FILE=os.devnull)
    env.pop("VIRTUAL_ENV", None)
    py = ["--python", exe]
    detect = subprocess.run([*CLI, "detect", "--json", *py], env=env, capture_output=True, text=True, timeout=300)
    assert detect.returncode == 0, detect.stderr[-2000:]
    facts = json.loads(detect.stdout)["data"]
    assert facts["python"]["source"] == "pyenv" and facts["host"]["home"] == str(home)
    facts_file = tmp_path / "pyenv-facts.json"
    facts_file.write_text(detect.stdout)
    dry = subprocess.run([*CLI, "install", "--dry-run", "--json", *py], env=env, capture_output=True, text=True,
                         timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert_same_plan(payload(dry.stdout), facts_file, py)


def fake_torch_wheel(folder: Path) -> Path:
    """A torch wheel's name for the root's Python 3.13 and this machine (the root's) arch: only the name is
    listed, nothing reads the file."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"torch-2.9.0+cpu-cp313-cp313-manylinux_2_28_{arch}.whl"
    wheel.write_bytes(b"")
    return wheel


# Files that the planned host's configuration names, made on THIS host only (the root has none of them): a plan
# from the facts must not read this host's files of those names, since install on the planned host cannot.
LOCAL_FILES = ["find-links folder", "constraint file", "find-links under ~"]


@pytest.mark.parametrize("case", LOCAL_FILES)
def test_files_named_by_the_facts_are_the_planned_hosts_not_this_ones(tmp_path, pyz, case):
    """install on the root finds no such folder or file and takes torch from PyPI; a plan from its facts takes the
    same torch: it does not read this host's folder or constraint file of that name (they would be the planned
    host's). The one difference allowed: the note for a local folder says it was not read here, where the root
    says it has no such folder."""
    here = tmp_path / "only-on-this-host"
    if case == "find-links folder":
        fake_torch_wheel(here / "wheels")
        env = {"PIP_FIND_LINKS": str(here / "wheels")}
    elif case == "constraint file":
        here.mkdir()
        (here / "constraints.txt").write_text("torch<2.10\n")
        env = {"PIP_CONSTRAINT": str(here / "constraints.txt")}
    else:  # ~ is the planned host's HOME (/home/ada there), not this host's
        env = {"PIP_FIND_LINKS": "~/wheels", "HOME": "/home/ada"}
    with debian_root("trixie", tmp_path / "roots") as root:
        assert not any(root.host_path(p).exists() for p in env.values() if p.startswith("/") and p != "/home/ada")
        root.host_path("/home/ada").mkdir(parents=True)
        root.copy_in(pyz, PYZ_IN_ROOT)
        detect = in_root(root, ["detect", "--json"], env)
        assert detect.returncode == 0, detect.stderr[-2000:]
        facts_file = tmp_path / "facts.json"
        facts_file.write_text(detect.stdout)
        dry = in_root(root, ["install", "--dry-run", "--json"], env)
        assert dry.returncode == 0, dry.stderr[-3000:]
    installed = payload(dry.stdout)
    if case == "constraint file":
        assert_same_plan(installed, facts_file, [])  # unread on both sides: the same plan
        return
    planned = plan_from_facts(facts_file, [])
    diffs = differences(installed["plan"], {k: v for k, v in planned.items() if k not in ("ok", "error")})
    assert [d.split(":")[0] for d in diffs] == ["plan.notes[0]", "plan.torch.warnings[0]"], diffs  # the same line
    assert "no such folder" in installed["plan"]["notes"][0]
    assert "not read from this one" in planned["notes"][0] and "/wheels" in planned["notes"][0]
    assert planned["torch"]["version"] == installed["plan"]["torch"]["version"]  # not this host's 2.9.0+cpu
