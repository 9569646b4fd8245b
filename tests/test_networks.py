"""Real networks: a mirror of the PyTorch index (--pytorch-index, TORCH_SETUP_PYTORCH_INDEX) and extra indexes
that hold some other torch, against loopback indexes (tests/lab.py) holding small files named like torch wheels."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from conftest import host_facts
from lab import serve
from test_torch_choice import RECIPES
from torch_setup import pipeline
from torch_setup.facts.model import ConfigFacts
from torch_setup.request import Request

_spec = importlib.util.spec_from_file_location("loopback", Path(__file__).parent / "fixtures" / "indexes" /
                                               "loopback.py")
loopback = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loopback)

TAIL = "cp313-cp313-manylinux_2_28_x86_64.whl"  # Debian 13's Python 3.13 on x86_64 (debian13-minbase)


def wheels(folder: Path, *names: str) -> list:
    out = []
    for name in names:
        loopback.tiny_wheel(folder / name)
        out.append(str(folder / name))
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("net")
    trees = {
        "mirror/whl/cpu": {"torch": wheels(d / "cpu", f"torch-2.14.1+cpu-{TAIL}")},
        "mirror/whl/cu132": {"torch": wheels(d / "cu132", f"torch-2.14.1+cu132-{TAIL}")},
        "pypi": {"torch": wheels(d / "pypi", f"torch-2.15.0-{TAIL}")},
        "private": {"torch": wheels(d / "private", f"torch-2.13.0-{TAIL}")},
    }
    with serve(trees) as srv:
        yield srv


def facts_with(env: dict, pip: str = ""):
    facts = host_facts("debian13-minbase")
    return dataclasses.replace(facts, config=ConfigFacts(pip=pip, env=env))


def with_credentials(url: str) -> str:
    return url.replace("http://", "http://alice:s3cret@")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_mirror_of_the_pytorch_index_replaces_it_for_every_variant(lab, how):
    mirror = with_credentials(lab.url("mirror/whl"))
    env = {"PIP_INDEX_URL": lab.url("pypi")}
    request = Request.parse(backend="cu132", pytorch_index=mirror if how == "flag" else None)
    if how == "env":
        env["TORCH_SETUP_PYTORCH_INDEX"] = mirror
    before = len(lab.asked)
    choice = pipeline.choose_torch(facts_with(env), RECIPES, request)
    assert (choice.version, choice.variant, choice.requirement) == ("2.14.1", "cu132", "torch==2.14.1+cu132")
    assert choice.index_args() == ["--index-url", mirror + "/cu132"]
    assert choice.index_url == lab.url("mirror/whl").replace("http://", "http://alice:***@") + "/cu132"
    assert lab.asked[before:] == ["/mirror/whl/cu132/torch/"]  # neither PyPI nor any other host was asked
    text = json.dumps(choice.to_dict())
    assert "s3cret" not in text and "s3cret" not in repr(choice)
    assert any("a mirror: --pytorch-index" in r for r in choice.reasons)


def test_a_fleets_pip_config_names_the_mirror_and_the_variable_wins_over_it(lab):
    """`[torch-setup] pytorch-index = URL` in a pip configuration file (the one a fleet deploys; pip ignores the
    section) names the mirror; $TORCH_SETUP_PYTORCH_INDEX, then --pytorch-index, win over it."""
    mirror = with_credentials(lab.url("mirror/whl"))
    pip = f"torch-setup.pytorch-index={mirror!r}\n"
    before = len(lab.asked)
    choice = pipeline.choose_torch(facts_with({"PIP_INDEX_URL": lab.url("pypi")}, pip), RECIPES,
                                   Request.parse(backend="cu132"))
    assert (choice.version, choice.variant, choice.index_args()) == ("2.14.1", "cu132", ["--index-url",
                                                                                          mirror + "/cu132"])
    assert lab.asked[before:] == ["/mirror/whl/cu132/torch/"]
    assert any("pip config torch-setup.pytorch-index" in r for r in choice.reasons)
    assert "s3cret" not in json.dumps(choice.to_dict())
    env = {"PIP_INDEX_URL": lab.url("pypi"), "TORCH_SETUP_PYTORCH_INDEX": lab.url("mirror/whl")}
    choice = pipeline.choose_torch(facts_with(env, "torch-setup.pytorch-index='http://127.0.0.1:9/none'\n"),
                                   RECIPES, Request.parse(backend="cu132"))
    assert choice.index_args() == ["--index-url", lab.url("mirror/whl") + "/cu132"]


def test_the_flag_wins_over_the_variable_and_cpu_asks_the_mirrors_cpu(lab):
    env = {"TORCH_SETUP_PYTORCH_INDEX": "http://127.0.0.1:9/nothing", "PIP_INDEX_URL": lab.url("pypi")}
    before = len(lab.asked)
    choice = pipeline.choose_torch(facts_with(env), RECIPES,
                                   Request.parse(backend="auto", pytorch_index=lab.url("mirror/whl")))
    assert (choice.version, choice.variant, choice.index_url) == ("2.14.1", "cpu", lab.url("mirror/whl/cpu"))
    assert lab.asked[before:] == ["/mirror/whl/cpu/torch/"]  # a CPU box (no GPU in the facts): cpu/ first


def test_an_extra_index_with_another_torch_is_searched_by_uv_as_pip_would(lab):
    """pip.conf: index-url = PyPI (2.15.0), extra-index-url = a private index (2.13.0). pip takes the best
    match over both; uv, by default, takes the extra index first and stops there: told unsafe-best-match."""
    pip = f"global.index-url={lab.url('pypi')!r}\nglobal.extra-index-url={lab.url('private')!r}\n"
    choice = pipeline.choose_torch(facts_with({}, pip), RECIPES,
                                   Request.parse(backend="cpu", pytorch_index="http://127.0.0.1:9/none"))
    assert (choice.version, choice.requirement) == ("2.15.0", "torch==2.15.0")
    assert "--index-strategy" not in choice.install_args()  # pip searches every index already
    uv = choice.install_args(uv=True)
    assert uv[uv.index("--index-strategy") + 1] == "unsafe-best-match"
    assert choice.index_args(uv=True)[:2] == ["--index-strategy", "unsafe-best-match"]
    plan = pipeline.assemble(Request(), facts_with({}, pip), RECIPES, choice=choice)
    argv = plan.step_for("torch").commands[0].argv
    assert ("--index-strategy" in argv) == ("uv" in Path(argv[0]).name)


def test_one_index_needs_no_strategy(lab):
    choice = pipeline.choose_torch(facts_with({"PIP_INDEX_URL": lab.url("private")}), RECIPES,
                                   Request.parse(backend="cpu", pytorch_index="http://127.0.0.1:9/none"))
    assert choice.version == "2.13.0" and "--index-strategy" not in choice.install_args(uv=True)
