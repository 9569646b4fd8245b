"""Shared helpers for the unit tests: captured fixtures, the built-in recipes, facts of captured hosts."""
from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest

from torch_setup.recipes import load as recipes_mod
from torch_setup.facts.model import Facts
from torch_setup.host.replay import FakeSystem

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTS = FIXTURES / "hosts"
HOST_NAMES = sorted(p.stem for p in HOSTS.glob("*.json"))


# The keys `detect --json` must carry (its documented facts), dotted = nested.
REQUIRED_KEYS = [
    "os.id", "os.version", "arch", "libc.name", "libc.version", "package_manager", "python.executable",
    "python.version", "python.source", "python.include_dir", "python.has_headers", "python.externally_managed",
    "python.in_venv", "compiler.cxx", "compiler.version", "compiler.ok", "accelerator.kind",
    "accelerator.driver_version", "torch.version",
]


def dotted(data: dict, key: str):
    for part in key.split("."):
        assert isinstance(data, dict) and part in data, f"missing key {key}"
        data = data[part]
    return data


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs torch.compile for real on this host (about 30 s)")


def fixture_text(*parts: str) -> str:
    """A captured text fixture without its leading '# source: ...' line."""
    text = FIXTURES.joinpath(*parts).read_text()
    first, sep, rest = text.partition("\n")
    assert first.startswith("# source:"), f"{'/'.join(parts)} must start with a '# source:' line"
    return rest


def load_host(name: str) -> dict:
    return json.loads((HOSTS / f"{name}.json").read_text())


def host_facts_dict(name: str) -> dict:
    return copy.deepcopy(load_host(name)["facts"])


def host_facts(name: str) -> Facts:
    return Facts.from_dict(host_facts_dict(name))


def host_system(name: str) -> FakeSystem:
    return FakeSystem.from_dict(copy.deepcopy(load_host(name)["host"]))


def probe_output(name: str) -> str:
    """What the Python probe printed on a captured host."""
    commands = load_host(name)["host"]["commands"]
    return next(v["stdout"] for k, v in commands.items() if "<script: " in k)


def detected_with_dpkg_status(name: str, status: str, recipes) -> Facts:
    """What `detect` gathers through the seam on the captured host `name` (an x86_64 Linux), with `status` as its
    dpkg status file."""
    from torch_setup.facts import gather, packages
    from torch_setup.request import PythonRequest

    system = host_system(name)
    system.files[packages.DPKG_STATUS] = status
    return gather.gather(system, PythonRequest.parse(load_host(name)["spec"]), recipes.manager_binaries,
                         system_name="Linux", machine="x86_64")


@pytest.fixture(scope="session")
def builtin_recipes() -> recipes_mod.Recipes:
    return recipes_mod.load()


DEBIAN_FAMILY = {"debian", "ubuntu"}


def debian_only(recipes: recipes_mod.Recipes) -> recipes_mod.Recipes:
    """The recipes with only the Debian and Ubuntu platforms (the first release's scope): tests of 'an OS with no
    recipe' stay true while other platforms are added as data."""
    keep = tuple(p for p in recipes.platforms if p.os and set(p.os) <= DEBIAN_FAMILY)
    return dataclasses.replace(recipes, platforms=keep)


def changed(data: dict, **changes) -> Facts:
    """Facts from a facts dict with dotted-key changes: changed(d, **{'host.is_root': False}). A key the facts
    do not have is an error, so a renamed fact cannot leave a test silently testing nothing."""
    for key, value in changes.items():
        *path, last = key.split(".")
        target = data
        for part in path:
            target = target[part]
        assert last in target, key
        target[last] = value
    return Facts.from_dict(data)


def assert_bad_recipe(tmp_path, body: str, words) -> None:
    """A recipe file with `body` is refused with a message naming the file and each of `words`."""
    from torch_setup.errors import ExitCode, RecipeError

    (tmp_path / "site.toml").write_text(body)
    with pytest.raises(RecipeError) as e:
        recipes_mod.load([tmp_path])
    assert str(tmp_path / "site.toml") in e.value.message
    for word in words:
        assert word in e.value.message, f"{word!r} not in {e.value.message!r}"
    assert e.value.code == ExitCode.BAD_RECIPE


LOG_HEADER = re.compile(r"^# (source|evidence|note|host): ?(.*)$")


def read_log(path) -> tuple:
    """A log fixture: (the log as a user pastes it, {header key: value}); its `# source:` lines are ours."""
    lines = Path(path).read_bytes().decode("utf-8").split("\n")
    header = {}
    while lines and LOG_HEADER.match(lines[0].rstrip("\r")):
        key, value = LOG_HEADER.match(lines[0].rstrip("\r")).groups()
        header[key] = value
        lines.pop(0)
    return "\n".join(lines), header


def load_script(name: str):
    """A script of scripts/ (no .py ending) as a module, for testing its pure parts."""
    import importlib.machinery
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module



def plan_for(facts: Facts, recipes, request=None, *, python=None, provider=None, choice=None, uv=None):
    """The plan production makes (pipeline.assemble, which plan_host wraps), for these facts and this request:
    `python`/`provider` as `--python`/`--python-from` would give them."""
    from torch_setup import pipeline
    from torch_setup.request import PythonRequest, Request

    request = request or Request()
    if python is not None or provider is not None:
        request = dataclasses.replace(request, python=PythonRequest.parse(python), provider=provider)
    return pipeline.assemble(request, facts, recipes, choice=choice, uv=uv)


ENVELOPE = {"version", "command", "ok", "data", "error"}


def payload(stdout: str, command: str = "") -> dict:
    """A command's JSON output: its envelope checked ({version, command, ok, data, error}), and its data with the
    envelope's ok and error beside it, which is what the tests read."""
    env = json.loads(stdout)
    assert set(env) == ENVELOPE, sorted(env)
    assert not command or env["command"] == command, env["command"]
    assert (env["error"] is None) == bool(env["ok"]), env
    return {"ok": env["ok"], "error": env["error"], **env["data"]}  # a data key of the same name wins
