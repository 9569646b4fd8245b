"""aarch64 facts and plan notes: a Jetson told apart from server aarch64 by its own files, and the -march note for a
g++ older than 13 (torch's Inductor passes -march=armv8.6-a+sve+bf16 there). The choices themselves are pinned in
tests/plans/ (GH200, DGX Spark, Graviton + L4, Jetson Orin, a CPU-only Graviton) and tests/test_torch_choice.py."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from torch_setup.facts import accelerator, jetson
from torch_setup.facts.model import CompilerFacts, Facts
from torch_setup.host.replay import FakeSystem
from torch_setup.planning import aarch64
from torch_setup.recipes import load as recipes_mod

from plan_cases import facts_of

FIX = Path(__file__).parent / "fixtures" / "jetson"
RECIPES = recipes_mod.load()


def fixture(name: str) -> str:
    """The fixture without its `# source:` line, as the file is on the device."""
    return (FIX / name).read_text().split("\n", 1)[1]


@pytest.mark.parametrize("name, release", [("nv_tegra_release-r36.4.3.txt", "36.4.3"),
                                           ("nv_tegra_release-r35.3.1.txt", "35.3.1")])
def test_nv_tegra_release(name, release):
    assert jetson.parse_nv_tegra_release(fixture(name)) == release


def test_nv_tegra_release_that_is_not_one():
    assert jetson.parse_nv_tegra_release("") is None
    assert jetson.parse_nv_tegra_release("Ubuntu 22.04.4 LTS\n") is None


def test_device_tree_compatible():
    assert jetson.parse_compatible(fixture("compatible-agx-orin.txt")) == "tegra234"
    assert jetson.parse_compatible("linux,dummy-virt\x00") is None  # a QEMU virt machine: not a Jetson
    assert jetson.chip_info("tegra234") == ("Orin", "8.7")


def test_a_jetson_before_its_display_drivers_nvidia_module():
    """L4T 36 loads an nvidia display module (nvidia-drm): its version must not make the box a desktop-driver GPU
    box whose driver decides the CUDA builds."""
    files = {jetson.RELEASE: fixture("nv_tegra_release-r36.4.3.txt"),
             jetson.COMPATIBLE: fixture("compatible-agx-orin.txt"), "/sys/module/nvidia/version": "540.4.0\n"}
    acc = accelerator.detect(FakeSystem(files=files), "aarch64", "Linux")
    assert (acc.kind, acc.l4t, acc.compute_capability, acc.driver_version) == ("jetson", "36.4.3", "8.7", None)
    acc = accelerator.detect(FakeSystem(files={"/sys/module/nvidia/version": "580.95.05\n"}), "aarch64", "Linux")
    assert (acc.kind, acc.driver_version) == ("nvidia", "580.95.05")  # a GH200: no Jetson files


def test_l4t_round_trips_and_is_absent_off_a_jetson():
    facts = facts_of({"facts": "aarch64/jetson-orin-jp6.json"})
    assert Facts.from_dict(facts.to_dict()) == facts
    assert "l4t" not in facts_of({"facts": "aarch64/gh200-ubuntu24.04.json"}).to_dict()["accelerator"]


def _with_gcc(facts: Facts, version):
    c = CompilerFacts(cxx="g++", path="/usr/bin/g++", family="gcc", version=version, toolchain_ok=True)
    return dataclasses.replace(facts, compiler=c)


def test_march_note_for_gcc_older_than_13_on_aarch64():
    graviton = facts_of({"facts": "aarch64/graviton-l4-amzn2023.json"})  # no g++ yet: AL2023's is gcc 11
    (note,) = aarch64.notes(graviton, RECIPES)
    assert note.startswith("aarch64 with g++ 11 (older than 13)") and "-march=armv8.6-a+sve+bf16" in note
    assert aarch64.notes(_with_gcc(graviton, "11.5.0"), RECIPES)
    assert aarch64.notes(_with_gcc(graviton, "14.2.0"), RECIPES) == []


def test_no_march_note_where_it_does_not_apply():
    gh200 = facts_of({"facts": "aarch64/gh200-ubuntu24.04.json"})  # Ubuntu 24.04: gcc 13
    assert aarch64.notes(gh200, RECIPES) == []
    orin = facts_of({"facts": "aarch64/jetson-orin-jp6.json"})  # Ubuntu 22.04's gcc 11, but no SVE on Orin
    assert aarch64.notes(orin, RECIPES) == []
    x86 = dataclasses.replace(facts_of({"facts": "aarch64/graviton-l4-amzn2023.json"}), arch="x86_64")
    assert aarch64.notes(x86, RECIPES) == []

    class Old:  # torch 2.10 passes -march=native whatever the gcc
        version = "2.10.0"
    assert aarch64.notes(facts_of({"facts": "aarch64/graviton-l4-amzn2023.json"}), RECIPES, Old()) == []


def test_a_foreign_roots_tarball_has_its_own_cache_name():
    from tests.e2e import roots

    assert roots.tarball_name("trixie", ("python3",), "arm64") == "trixie-arm64-minbase-python3"
    assert roots.tarball_name("trixie", ("python3",), roots.host_arch()) == "trixie-minbase-python3"  # as before
    assert roots.tarball_name("trixie", ("python3",)) == "trixie-minbase-python3"


def test_binfmt_entry_is_read_as_the_kernel_writes_it(tmp_path, monkeypatch):
    from tests.e2e import roots

    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                           "flags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n")
    monkeypatch.setattr(roots, "BINFMT_DIR", tmp_path)
    assert roots._binfmt_entry("arm64") == {"enabled": True, "flags": "PF",
                                            "interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"}
    assert roots._binfmt_entry("riscv64") == {}
