"""torch_choice: the variant, version and index chosen for a target, with a fake index world and a real one."""
from __future__ import annotations

import dataclasses

import importlib.util
import json
import re
import time
from dataclasses import fields
from pathlib import Path

import pytest

from torch_setup.wheels import indexes
from torch_setup.recipes import load as recipes_mod
from torch_setup.errors import NoTorchError, UnsupportedError
from torch_setup.facts import accelerator
from torch_setup.facts.model import AcceleratorFacts, Facts, HostFacts, LibcFacts, OsFacts, PythonFacts
from torch_setup.wheels.indexes import IndexUnreachable, Listing, Source
from torch_setup.host.replay import FakeSystem
from torch_setup.host.system import Result
from torch_setup.wheels.choose import Choice, choose
from torch_setup.wheels.variants import load_table
from torch_setup.wheels.tags import target_from

FIXTURES = Path(__file__).parent / "fixtures" / "indexes"
_spec = importlib.util.spec_from_file_location("loopback", FIXTURES / "loopback.py")
loopback = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loopback)

RECIPES = recipes_mod.load()
PT = "https://download.pytorch.org/whl"
PYPI = "https://pypi.org/simple"
SMI = "nvidia-smi --query-gpu=pci.bus_id,driver_version,compute_cap,name --format=csv,noheader"

# ------------------------------------------------------------------------------------------------ facts

# Driver sources as captured: /proc on an H200 box, a two-GPU nvidia-smi, /sys/module on a 535 box, nothing.
DRIVERS = {
    "h200": {"files": {"/proc/driver/nvidia/version":
                       "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  Wed Aug 13 00:12:35 UTC 2025\n"
                       "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n"},
             "smi": "580.159.03, 9.0, NVIDIA H200\n"},
    "multi": {"files": {}, "smi": "580.95.05, 8.6, NVIDIA RTX A6000\n580.95.05, 7.0, Tesla V100-SXM2-32GB\n"},
    "r535": {"files": {"/sys/module/nvidia/version": "535.183.01\n"}, "smi": None},
    "none": {"files": {}, "smi": None},
}
PYTHONS = {"3.10": ("3.10.14", False), "3.13": ("3.13.5", False), "3.13t": ("3.13.5", True),
           "3.14": ("3.14.0", False), "3.15": ("3.15.0", False), "3.16": ("3.16.0", False), "3.13.1t": ("3.13.1", True)}


def make_facts(driver="none", python="3.13", where="linux-x86_64", glibc="2.36", macos="14.5", gfx=None,
               container=None) -> Facts:
    system_name, arch = {"linux-x86_64": ("Linux", "x86_64"), "linux-aarch64": ("Linux", "aarch64"),
                         "darwin-arm64": ("Darwin", "arm64"), "windows-amd64": ("Windows", "AMD64")}[where]
    d = DRIVERS[driver]
    commands = {SMI: Result(0, d["smi"])} if d["smi"] else {}
    env = {"TORCH_SETUP_ROCM_GFX": gfx} if gfx else {}
    acc = accelerator.detect(FakeSystem(files=d["files"], commands=commands, env=env), arch, system_name)
    version, ft = PYTHONS[python]
    libc = LibcFacts("glibc", glibc) if system_name == "Linux" else LibcFacts()
    return Facts(os=OsFacts(id="x", version=macos if system_name == "Darwin" else "13", system=system_name),
                 arch=arch, libc=libc, host=HostFacts(container=container),
                 python=PythonFacts(found=True, version=version, free_threaded=ft), accelerator=acc)


def test_driver_facts_come_from_the_real_parsers():
    assert make_facts("h200").accelerator.driver_version == "580.159.03"
    assert make_facts("h200").accelerator.compute_capability == "9.0"
    multi = make_facts("multi").accelerator
    assert (multi.driver_version, multi.compute_capability, len(multi.gpus)) == ("580.95.05", "7.0", 2)
    assert make_facts("r535").accelerator.driver_version == "535.183.01"
    assert make_facts("none").accelerator.kind == "none"


# ------------------------------------------------------------------------------------------------ a fixed world

VERSIONS = ["2.6.0", "2.7.0", "2.7.1", "2.8.0", "2.9.0", "2.9.1", "2.10.0", "2.11.0", "2.12.0", "2.12.1", "2.13.0",
            "2.14.0", "2.14.1", "2.15.0"]


def _pythons(version: str):
    """Which CPython ABIs a torch release has wheels for (modelled on PyPI: 3.13t to 2.12.0, 3.14 from 2.9)."""
    v = tuple(int(x) for x in version.split("."))
    out = [] if v >= (2, 15) else ["cp310"]
    out += ["cp311", "cp312", "cp313"]
    if (2, 6) <= v <= (2, 12, 0):
        out.append("cp313t")
    if v >= (2, 9):
        out += ["cp314", "cp314t"]
    if v >= (2, 15):
        out += ["cp315", "cp315t"]
    return out


def _requires(version: str) -> str:
    v = tuple(int(x) for x in version.split("."))
    return ">=3.11" if v >= (2, 15) else ">=3.10" if v >= (2, 9) else ">=3.9"


def pytorch_world():
    """download.pytorch.org/whl/<variant>/torch/ for every variant in the table, over VERSIONS."""
    plat = {"linux-x86_64": "manylinux_2_28_x86_64", "linux-aarch64": "manylinux_2_28_aarch64",
            "windows-amd64": "win_amd64"}
    world = {}
    for v in load_table().variants:
        files = []
        for version in VERSIONS:
            if not v.torch.contains(version):
                continue
            for abi in _pythons(version):
                interp = abi.rstrip("t")
                for p in v.platforms:
                    if p in plat:
                        files.append(indexes.File(f"torch-{version}+{v.name}-{interp}-{abi}-{plat[p]}.whl",
                                                  f"{PT}/{v.name}/torch-{version}%2B{v.name}.whl", _requires(version)))
        world[v.name] = tuple(files)
    return world


WORLD = pytorch_world()
PYPI_FILES = tuple(indexes.parse_simple_json(json.loads((FIXTURES / "pypi-torch-simple.json").read_text()),
                                             PYPI + "/torch/"))


class FakeFetch:
    """Serves WORLD for the PyTorch index and the captured PyPI listing; `dead` prefixes do not answer."""

    def __init__(self, dead=(), extra=None):
        self.dead, self.extra, self.calls = tuple(dead), dict(extra or {}), []

    def __call__(self, source: Source, project: str) -> Listing:
        url = source.url.rstrip("/")
        self.calls.append(url)
        if any(url.startswith(d) for d in self.dead):
            raise IndexUnreachable(source, "the host name does not resolve")
        if url in self.extra:
            return Listing(source, self.extra[url])
        if url == PYPI:
            return Listing(source, PYPI_FILES)
        if url.startswith(PT + "/"):
            files = WORLD.get(url.rsplit("/", 1)[1])
            return Listing(source, files or (), found=files is not None)
        return Listing(source, (), found=False)


def pick(facts, *, dead=(), env=None, **kw) -> Choice:
    return choose(facts, RECIPES, fetch=FakeFetch(dead), env=env or {}, **kw)


# ------------------------------------------------------------------------------------------------ the table

# driver x Python x OS/arch -> (variant, index, version), with the PyTorch index answering. One row per driver
# (Linux x86_64) or OS: the variant and its index, then the version chosen for each Python of PYTHONS_ASKED.
PYTHONS_ASKED = ("3.10", "3.13", "3.13t", "3.14")
ROWS = [
    # H200, driver 580.159.03, compute capability 9.0: every CUDA build runs; the newest torch, then newest CUDA.
    # 2.15 needs Python >= 3.11; 3.13t: cp313t wheels up to 2.12.0 (PyPI), and cu132 starts 2.12: 2.12.0 there.
    ("h200", "linux-x86_64", "cu132", PT + "/cu132", ("2.14.1", "2.15.0", "2.12.0", "2.15.0")),
    # Two GPUs, the lower one a V100 (sm_70): no kernels in cu130/cu132 or in cu128 from 2.11 -> cu126.
    ("multi", "linux-x86_64", "cu126", PT + "/cu126", ("2.14.1", "2.14.1", "2.12.0", "2.14.1")),
    # Driver 535 (CUDA 12 only), capability unknown: CUDA 13 builds are out (cu128 ends at 2.11).
    ("r535", "linux-x86_64", "cu126", PT + "/cu126", ("2.14.1", "2.14.1", "2.12.0", "2.14.1")),
    # No GPU: the CPU index.
    ("none", "linux-x86_64", "cpu", PT + "/cpu", ("2.14.1", "2.15.0", "2.12.0", "2.15.0")),
    # Apple silicon: PyPI's wheels (with MPS); macOS >= 14 for current torch.
    ("none", "darwin-arm64", "cpu", PYPI, ("2.14.1", "2.15.0", "2.12.0", "2.15.0")),
]
CASES = [(driver, python, where, variant, index, version) for driver, where, variant, index, versions in ROWS
         for python, version in zip(PYTHONS_ASKED, versions)] + [
    ("none", "3.13", "linux-aarch64", "cpu", PT + "/cpu", "2.15.0"),
    ("h200", "3.13", "linux-aarch64", "cu132", PT + "/cu132", "2.15.0"),  # a GH200
    ("none", "3.13", "windows-amd64", "cpu", PT + "/cpu", "2.15.0"),
]


@pytest.mark.parametrize("driver, python, where, variant, index, version", CASES)
def test_choice_table(driver, python, where, variant, index, version):
    c = pick(make_facts(driver, python, where))
    assert (c.variant, c.index_url, c.version) == (variant, index, version)
    label = "" if index == PYPI else f"+{variant}"
    assert c.requirement == f"torch=={version}{label}"
    assert c.warnings == ()
    assert c.extra_index_urls == ()


# The same, with download.pytorch.org not answering (as here): PyPI, whose Linux builds are CUDA builds.
FALLBACK = [
    ("none", "3.13", "linux-x86_64", "cu132", "2.15.0", True),  # CPU box: a CUDA build, with the size warned
    ("none", "3.10", "linux-x86_64", "cu130", "2.14.1", True),
    ("h200", "3.13", "linux-x86_64", "cu132", "2.15.0", False),
    ("h200", "3.13t", "linux-x86_64", "cu130", "2.12.0", False),
    ("r535", "3.13", "linux-x86_64", "cu128", "2.10.0", False),  # PyPI's 2.11+ are CUDA 13: driver too old
    ("multi", "3.14", "linux-x86_64", "cu128", "2.10.0", False),  # sm_70 kernels: cu128 up to 2.10
    # aarch64: PyPI has CPU builds up to 2.10, and a CPU box takes the newest *CPU* build over a newer CUDA one
    # (said: see test_aarch64_cpu_box_is_told_of_the_newer_cuda_build).
    ("none", "3.13", "linux-aarch64", "cpu", "2.10.0", False),
    ("h200", "3.13", "linux-aarch64", "cu132", "2.15.0", False),
]


@pytest.mark.parametrize("driver, python, where, variant, version, size_warned", FALLBACK)
def test_choice_when_the_pytorch_index_does_not_answer(driver, python, where, variant, version, size_warned):
    c = pick(make_facts(driver, python, where), dead=(PT,))
    assert (c.variant, c.index_url, c.version, c.requirement) == (variant, PYPI, version, f"torch=={version}")
    assert c.source == "pypi"
    assert len(c.warnings) == 1
    assert c.warnings[0].startswith(f"{PT}/") and "did not answer (the host name does not resolve)" in c.warnings[0]
    assert "falling back to PyPI" in c.warnings[0]
    assert ("about 3 GB to download" in c.warnings[0]) == size_warned


def test_old_glibc_gets_the_last_manylinux1_torch():
    # glibc 2.17 (CentOS 7, Amazon Linux 2): PyPI's newest fitting cp313 wheel is 2.6.0 manylinux1 [S24].
    c = pick(make_facts("none", "3.13", glibc="2.17"), dead=(PT,))
    assert (c.version, c.wheel) == ("2.6.0", "torch-2.6.0-cp313-cp313-manylinux1_x86_64.whl")


def test_macos_13_is_capped_at_2_11():
    c = pick(make_facts("none", "3.13", "darwin-arm64", macos="13.6"))
    assert (c.version, c.wheel) == ("2.11.0", "torch-2.11.0-cp313-cp313-macosx_11_0_arm64.whl")


def test_aarch64_cpu_box_is_told_of_the_newer_cuda_build():
    """PyPI's aarch64 torch is CPU-only up to 2.10 and a CUDA build from 2.11 [S90]: the CPU box gets the CPU build,
    never silently -- the warning names its size, the newer CUDA build and its size, and how to get that one."""
    c = pick(make_facts("none", "3.13", "linux-aarch64"), dead=(PT,))
    assert (c.variant, c.version) == ("cpu", "2.10.0")
    (w,) = c.warnings
    assert "falling back to PyPI, whose newest cpu-only Linux aarch64 torch is 2.10.0 (146 MB wheel)" in w, w
    assert "its newer torch 2.15.0 is a CUDA build (cu132): about 3.2 GB to download (~5.2 GB installed)" in w, w
    assert "--torch '>=2.11' installs that one" in w
    newer = pick(make_facts("none", "3.13", "linux-aarch64"), dead=(PT,), torch_range=">=2.11")
    assert (newer.variant, newer.version) == ("cu132", "2.15.0")
    assert "is a CUDA build (cu132): about 3.2 GB to download (~5.2 GB installed), run here on the CPU" in \
        newer.warnings[0]
    # With the PyTorch index answering, its CPU index has the newest torch: nothing to say.
    assert pick(make_facts("none", "3.13", "linux-aarch64")).warnings == ()


JETSON_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126/+simple"
# What the Jetson AI Lab index's jp6/cu126 torch page lists (reconstructed from [S91]: torch 2.8.0, cp310 only).
JETSON_FILES = tuple(indexes.File(f"torch-{v}-cp310-cp310-linux_aarch64.whl", f"{JETSON_INDEX}/torch-{v}.whl")
                     for v in ("2.7.0", "2.8.0"))
TEGRA_RELEASE = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n"


def jetson_facts(files=None, python="3.10.12") -> Facts:
    files = {"/etc/nv_tegra_release": TEGRA_RELEASE,
             "/proc/device-tree/compatible": "nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00",
             # JetPack 6's display driver: a desktop-looking module version that says nothing about CUDA here
             "/sys/module/nvidia/version": "540.4.0\n"} if files is None else files
    acc = accelerator.detect(FakeSystem(files=files), "aarch64", "Linux")
    return Facts(os=OsFacts(id="ubuntu", version="22.04", system="Linux"), arch="aarch64",
                 libc=LibcFacts("glibc", "2.35"), python=PythonFacts(found=True, version=python), accelerator=acc)


def test_a_jetson_is_told_apart_from_server_aarch64():
    acc = jetson_facts().accelerator
    assert (acc.kind, acc.l4t, acc.compute_capability, acc.gpus) == ("jetson", "36.4.3", "8.7",
                                                                     ["Jetson Orin (tegra234)"])
    assert jetson_facts({"/proc/device-tree/compatible": "nvidia,tegra234\x00"}).accelerator.kind == "jetson"
    # The same files on x86_64, or none on aarch64: not a Jetson.
    assert accelerator.detect(FakeSystem(files={"/etc/nv_tegra_release": TEGRA_RELEASE}), "x86_64", "Linux").kind \
        == "none"
    assert accelerator.detect(FakeSystem(files={}), "aarch64", "Linux").kind == "none"


def test_jetson_gets_the_jetson_ai_lab_index_not_pypi():
    c = choose(jetson_facts(), RECIPES, fetch=FakeFetch(dead=(PT,), extra={JETSON_INDEX: JETSON_FILES}), env={})
    assert (c.variant, c.version, c.requirement, c.source) == ("jp6-cu126", "2.8.0", "torch==2.8.0", "platform")
    assert c.index_url == JETSON_INDEX + "/" and c.extra_index_urls == ()
    assert any("Jetson Linux 36.4.3 (JetPack 6, CUDA 12.6)" in r and "cannot use the Jetson GPU" in r
               for r in c.reasons), c.reasons


def test_jetson_index_down_is_no_torch_with_advice_not_pypis_cuda_13_build():
    with pytest.raises(NoTorchError) as e:
        choose(jetson_facts(), RECIPES, fetch=FakeFetch(dead=(PT, JETSON_INDEX)), env={})
    assert "Jetson AI Lab index" in e.value.hint and "--torch-backend cpu" in e.value.hint
    assert "pypi.jetson-ai-lab.io" in e.value.hint  # the index that did not answer is named


def test_jetson_of_an_l4t_without_an_index_on_file_is_a_cpu_box_with_a_warning():
    c = pick(jetson_facts({"/etc/nv_tegra_release": "# R38 (release), REVISION: 2.0, GCID: 1\n"}), dead=(PT,))
    assert c.variant == "cpu"
    assert any("no torch index on file for Jetson Linux 38.2.0" in w for w in c.warnings), c.warnings


def test_rocm_gfx_picks_the_newest_rocm_build_with_it():
    c = pick(make_facts(python="3.13", gfx="gfx1100"))
    assert (c.variant, c.index_url, c.version) == ("rocm7.14", PT + "/rocm7.14", "2.15.0")  # 2.14+: 7.14 only
    c = pick(make_facts(python="3.13", gfx="gfx1150"), torch_range="<2.14")  # before 2.14: only rocm7.2 has it
    assert (c.variant, c.version) == ("rocm7.2", "2.13.0")


def test_driver_too_old_for_any_cuda_build():
    facts = make_facts("none", "3.13")
    facts = dataclasses.replace(facts, accelerator=AcceleratorFacts("nvidia", "418.39", "/sys/module/nvidia/version"))
    c = pick(facts)
    assert c.variant == "cpu"
    assert c.warnings == ("NVIDIA driver 418.39 runs no CUDA torch build (the oldest needs 450.80.02): chose cpu",)


def test_gpu_without_kernels_in_any_build():
    facts = make_facts("none", "3.13")
    facts = dataclasses.replace(facts, accelerator=AcceleratorFacts("nvidia", "470.256.02", "nvidia-smi",
                                                                    ["Tesla K40m"], "3.5"))
    c = pick(facts)
    assert c.variant == "cpu" and "compute capability 3.5" in c.warnings[0]


def test_unknown_gfx_falls_back_to_cpu_with_a_warning():
    c = pick(make_facts(python="3.13", gfx="gfx803"))
    assert c.variant == "cpu" and "gfx803" in c.warnings[0]


# ------------------------------------------------------------------------------------------------ reasons

def test_reasons_say_why(tmp_path):
    c = pick(make_facts("h200", "3.13"))
    text = "\n".join(c.reasons)
    assert "NVIDIA driver 580.159.03 (/proc/driver/nvidia/version) runs CUDA builds up to cu132" in text
    assert "compute capability 9.0 has kernels in cu132, cu130" in text
    assert f"torch comes from {PT}/cu132, the PyTorch index for cu132, which answered" in text
    assert "torch 2.15.0 (cu132 build) is the newest with a cp313-cp313-manylinux_2_28_x86_64 wheel" in text
    assert "torch.compile on Python 3.13 (torch >= 2.6" in text


def test_multi_gpu_reason_names_every_gpu():
    c = pick(make_facts("multi", "3.13"))
    assert any("compute capabilities 7.0, 8.6 (every GPU) has kernels in cu129, cu128, cu126" in r
               and "not in cu132, cu130" in r for r in c.reasons)


def test_docker_build_no_gpu_mentions_the_variable():
    c = pick(make_facts("none", "3.13", container="docker"))
    assert c.variant == "cpu" and any("TORCH_SETUP_TORCH_BACKEND" in r for r in c.reasons)


# ------------------------------------------------------------------------------------------------ backends and ranges

def test_backend_from_the_environment_for_docker_builds():
    c = pick(make_facts("none", "3.13"), env={"TORCH_SETUP_TORCH_BACKEND": "cu130"})
    assert (c.variant, c.index_url, c.version) == ("cu130", PT + "/cu130", "2.15.0")
    assert c.reasons[0].startswith("TORCH_SETUP_TORCH_BACKEND=cu130")


def test_explicit_backend_wins_over_detection():
    c = pick(make_facts("h200", "3.13"), backend="cu126")
    assert (c.variant, c.version) == ("cu126", "2.14.1")
    c = pick(make_facts("h200", "3.13"), backend="cpu", env={"TORCH_SETUP_TORCH_BACKEND": "cu130"})
    assert c.variant == "cpu"


def test_explicit_backend_the_driver_cannot_run_is_warned():
    c = pick(make_facts("r535", "3.13"), backend="cu130")
    assert c.variant == "cu130" and any("older than cu130 needs (580)" in w for w in c.warnings)


def test_explicit_backend_without_kernels_for_the_gpu_is_warned():
    c = pick(make_facts("multi", "3.13"), backend="cu130")
    assert any("no kernels for compute capability 7.0" in w for w in c.warnings)


def test_unknown_backend_name_is_an_error():
    with pytest.raises(UnsupportedError, match="unknown torch backend 'cuda12'"):
        pick(make_facts(), backend="cuda12")


def test_variant_missing_from_the_table_is_still_asked_for():
    fetch = FakeFetch()
    with pytest.raises(NoTorchError):
        choose(make_facts(), RECIPES, backend="cu134", fetch=fetch, env={})
    assert PT + "/cu134" in fetch.calls


@pytest.mark.parametrize("spec, version", [("<2.12", "2.11.0"), ("2.13", "2.13.0"), ("torch>=2.9,<2.10", "2.9.1"),
                                           ("==2.14.0", "2.14.0")])
def test_torch_range(spec, version):
    assert pick(make_facts("none", "3.13"), torch_range=spec).version == version


def test_torch_range_that_is_not_one():
    with pytest.raises(UnsupportedError, match="not a version range"):
        pick(make_facts(), torch_range=">>2")


def test_range_below_torch_compile_support_is_no_torch():
    with pytest.raises(NoTorchError) as e:
        pick(make_facts("none", "3.13"), torch_range="<2.6")
    assert "supports torch.compile (torch >= 2.6)" in e.value.message and "within <2.6" in e.value.message


def test_pip_constraint_file_caps_torch():
    cfg = "global.constraint='/etc/xdg/pip/constraints.txt'\n"
    c = pick(make_facts("none", "3.13"), pip_config=cfg,
             read_text=lambda p: ("# cap\ntorch<=2.14.1\ntorchvision<=0.29.1\n"
                                  if p.endswith("constraints.txt") else None))
    assert c.version == "2.14.1"
    assert "the constraint file /etc/xdg/pip/constraints.txt limits torch to <=2.14.1" in c.reasons


# ------------------------------------------------------------------------------------------------ companions

def test_with_torchvision_and_torchaudio_matched_to_torch():
    c = pick(make_facts("none", "3.13"), with_=["torchvision,torchaudio"])
    assert c.version == "2.15.0"  # torchvision 0.29.2 came with 2.15 (Requires-Dist torch>=2.14.0)
    assert c.extras == ("torchvision==0.29.2", "torchaudio==2.11.1")
    assert any("torchaudio's last release is 2.11.1" in w for w in c.warnings)
    c = pick(make_facts("none", "3.13"), with_=["torchvision"], torch_range="<2.12")
    assert (c.version, c.extras) == ("2.11.0", ("torchvision==0.26.*",))
    c = pick(make_facts("none", "3.13"), with_=["torchaudio"], torch_range="==2.9.*")
    assert c.extras == ("torchaudio==2.9.*",) and c.warnings == ()


def test_unknown_companion_is_passed_through_with_a_warning():
    c = pick(make_facts("none", "3.13"), with_=["torchao"])
    assert c.extras == ("torchao",) and any("torchao" in w for w in c.warnings)


# ------------------------------------------------------------------------------------------------ no torch

def test_python_too_new_names_the_newest_that_works():
    with pytest.raises(NoTorchError) as e:
        pick(make_facts("none", "3.16"))
    assert "Python 3.16" in e.value.message
    assert e.value.hint.startswith("Python 3.15 would work (torch 2.15.0)")


def test_free_threaded_before_3_13_3_cannot_compile():
    with pytest.raises(NoTorchError) as e:
        pick(make_facts("none", "3.13.1t"))
    assert "CPython >= 3.13.3" in e.value.message and "Python 3.15 would work" in e.value.hint


def test_musl_has_no_torch():
    facts = make_facts("none", "3.13")
    facts = dataclasses.replace(facts, libc=LibcFacts("musl", "1.2.5"))
    with pytest.raises(NoTorchError) as e:
        pick(facts, dead=(PT,))
    assert "musllinux_1_2_x86_64" in e.value.message
    assert "no Python has a fitting torch wheel" in e.value.hint


def test_nothing_answers():
    with pytest.raises(NoTorchError, match="no index answered"):
        pick(make_facts("none", "3.13"), dead=(PT, PYPI))


# ------------------------------------------------------------------------------------------------ configured indexes

MIRROR = "https://alice:hunter2@mirror.example/simple"


def test_configured_mirror_before_pypi_and_credentials_masked():
    files = (indexes.File("torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl",
                          "https://alice:hunter2@mirror.example/files/torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl",
                          ">=3.10"),)
    fetch = FakeFetch(dead=(PT,), extra={MIRROR: files})
    c = choose(make_facts("h200", "3.13"), RECIPES, fetch=fetch, env={"PIP_INDEX_URL": MIRROR})
    assert (c.variant, c.version, c.source) == ("cu130", "2.14.1", "configured")
    assert c.index_url == "https://alice:***@mirror.example/simple"
    assert c.index_url_real == MIRROR
    assert c.install_args()[-2:] == ["--index-url", MIRROR]
    assert PYPI not in fetch.calls  # the mirror had a fitting wheel
    _assert_no_secret(c, "hunter2")


def test_explicit_index_url_skips_the_pytorch_index():
    fetch = FakeFetch()
    c = choose(make_facts("none", "3.13"), RECIPES, index_url=PYPI, fetch=fetch, env={})
    assert c.source == "index-url" and not any(u.startswith(PT) for u in fetch.calls)


def _assert_no_secret(choice: Choice, secret: str):
    for f in fields(choice):
        if f.name.endswith("_real"):
            continue
        assert secret not in repr(getattr(choice, f.name)), f.name
    assert secret not in repr(choice)
    assert secret not in json.dumps(choice.to_dict())


# ------------------------------------------------------------------------------------------------ a real index

CPU_WHEELS = ["torch-2.14.1+cpu-cp313-cp313-manylinux_2_28_x86_64.whl",
              "torch-2.14.1+cpu-cp314-cp314-manylinux_2_28_x86_64.whl",
              "torch-2.14.1+cpu-cp312-cp312-manylinux_2_28_x86_64.whl",
              "torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl",
              "torch-2.11.0+cpu-cp313-cp313t-manylinux_2_28_x86_64.whl",
              "torch-2.14.1+cpu-cp313-cp313-win_amd64.whl"]
PYPI_WHEELS = ["torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl",
               "torch-2.14.1-cp314-cp314-manylinux_2_28_x86_64.whl",
               "torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A PyTorch-style index (PEP 503 HTML only) at /whl/cpu and a PyPI-style one (PEP 691 JSON) at /simple,
    plus the same behind basic auth at /private/simple."""
    root = tmp_path_factory.mktemp("www")
    loopback.add_project(root, "whl/cpu", "whl/cpu", CPU_WHEELS, json_too=False)
    loopback.add_project(root, "simple", "files", PYPI_WHEELS, json_too=True)
    loopback.add_project(root, "private/simple", "files", PYPI_WHEELS, json_too=True)
    with loopback.Loopback(root, auth=("/private/", "alice:hunter2")) as srv:
        yield srv


def real(facts, server, **kw) -> Choice:
    kw.setdefault("pytorch_index", server.url + "/whl")
    kw.setdefault("pypi", server.url + "/simple")
    return choose(facts, RECIPES, env=kw.pop("env", {}), **kw)


def test_real_pytorch_style_index_is_chosen(server):
    c = real(make_facts("none", "3.13"), server)
    assert (c.variant, c.version, c.requirement) == ("cpu", "2.14.1", "torch==2.14.1+cpu")
    assert (c.index_url, c.source, c.warnings) == (server.url + "/whl/cpu", "pytorch", ())
    assert c.wheel == "torch-2.14.1+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"
    c = real(make_facts("none", "3.13t"), server)
    assert (c.version, c.wheel) == ("2.11.0", "torch-2.11.0+cpu-cp313-cp313t-manylinux_2_28_x86_64.whl")


@pytest.mark.parametrize("dead", ["closed-port", "no-such-name"])
def test_real_unreachable_pytorch_index_falls_back(server, dead):
    base = f"http://127.0.0.1:{loopback.closed_port()}/whl" if dead == "closed-port" else \
        "https://download.pytorch.invalid/whl"
    start = time.monotonic()
    c = real(make_facts("none", "3.13"), server, pytorch_index=base)
    assert time.monotonic() - start < 1.5
    assert (c.variant, c.version, c.requirement, c.source) == ("cu130", "2.14.1", "torch==2.14.1", "pypi")
    assert c.index_url == server.url + "/simple"
    reason = "connection refused" if dead == "closed-port" else "the host name does not resolve"
    assert c.warnings == (f"{base}/cpu did not answer ({reason}); falling back to PyPI, whose Linux x86_64 torch "
                          "2.14.1 is a CUDA build (cu130): about 3 GB to download (~5.3 GB installed), run here on "
                          "the CPU",)
    accept = [a for p, a, _ in server.requests if p == "/simple/torch/"]
    assert accept and "vnd.pypi.simple.v1+json" in accept[-1]


def test_real_no_wheel_for_the_interpreter_names_a_python_that_works(server):
    with pytest.raises(NoTorchError) as e:
        real(make_facts("none", "3.15"), server)
    assert e.value.hint.startswith("Python 3.14 would work (torch 2.14.1)")
    facts = make_facts("none", "3.10")  # supported by torch.compile, but no cp310 wheel is served
    with pytest.raises(NoTorchError) as e:
        real(facts, server)
    assert "no torch wheel for CPython 3.10 (cp310, manylinux_2_36_x86_64)" in e.value.message
    assert e.value.hint.startswith("Python 3.14 would work")


def test_real_offline_wheelhouse(tmp_path):
    house = tmp_path / "wheelhouse"
    loopback.tiny_wheel(house / "torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl")
    loopback.tiny_wheel(house / "numpy-2.3.0-cp313-cp313-manylinux_2_28_x86_64.whl")
    dead = f"http://127.0.0.1:{loopback.closed_port()}"
    calls = []

    def fetch(source, project):
        calls.append(source.display)
        return indexes.fetch(source, project)

    c = choose(make_facts("none", "3.13"), RECIPES, find_links=[str(house)], fetch=fetch, env={},
               pytorch_index=dead + "/whl", pypi=dead + "/simple")
    assert (c.variant, c.version, c.requirement, c.source) == ("cpu", "2.13.0", "torch==2.13.0+cpu", "find-links")
    assert c.find_links == (str(house),) and c.install_args()[-2:] == ["--find-links", str(house)]
    assert calls == [str(house)]  # nothing else asked: it works offline


def test_real_credentials_masked_everywhere(server):
    creds = server.url.replace("://", "://alice:hunter2@")
    c = real(make_facts("none", "3.13"), server, pytorch_index=f"http://127.0.0.1:{loopback.closed_port()}/whl",
             env={"PIP_INDEX_URL": creds + "/private/simple"})
    assert (c.source, c.version) == ("configured", "2.14.1")
    assert c.index_url == server.url.replace("://", "://alice:***@") + "/private/simple"
    assert creds + "/private/simple" in c.install_args()
    _assert_no_secret(c, "hunter2")
    # A wrong password: a warning that names the index, masked, and the fallback to PyPI.
    wrong = server.url.replace("://", "://alice:wr0ng@")
    c = real(make_facts("none", "3.13"), server, pytorch_index=f"http://127.0.0.1:{loopback.closed_port()}/whl",
             env={"PIP_INDEX_URL": wrong + "/private/simple"})
    assert c.source == "pypi"
    assert any("alice:***@" in w and "access refused (HTTP 401)" in w for w in c.warnings)
    _assert_no_secret(c, "wr0ng")


def test_real_token_in_a_query_string_is_masked(server):
    c = real(make_facts("none", "3.13"), server, find_links=[server.url + "/whl/cpu/torch/?token=s3kr1t"])
    assert c.source == "find-links" and c.find_links == (server.url + "/whl/cpu/torch/?token=***",)
    _assert_no_secret(c, "s3kr1t")


# ------------------------------------------------------------------------------------------------ the target

def test_target_tags_for_free_threaded_and_glibc():
    t, warnings = target_from(make_facts("none", "3.13t", glibc="2.36"))
    assert (t.abi, t.platforms[0], t.platform_key, warnings) == ("cp313t", "manylinux_2_36_x86_64", "linux-x86_64", [])
    assert {str(x) for x in t.tags} >= {"cp313-cp313t-manylinux_2_28_x86_64", "cp313-cp313t-manylinux2014_x86_64",
                                        "py3-none-any"}
    assert not any(x.abi == "abi3" for x in t.tags)
    t, _ = target_from(make_facts("none", "3.13", "linux-aarch64", glibc="2.17"))
    assert "manylinux2014_aarch64" in t.platforms and not any(re.match(r"manylinux1_", p) for p in t.platforms)


def test_target_of_a_predicted_interpreter_and_of_none():
    facts = make_facts("none", "3.13")
    provided = PythonFacts(found=True, predicted=True, version="3.14", free_threaded=True)
    t, _ = target_from(dataclasses.replace(facts, python=provided))
    assert (t.label, t.abi, t.micro) == ("3.14t", "cp314t", None)
    with pytest.raises(UnsupportedError):
        target_from(dataclasses.replace(facts, python=PythonFacts(absent="3.14t")))


def test_table_rows_all_have_sources():
    import sys
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    data = tomllib.loads((Path(__file__).parents[1] / "src/torch_setup/data/torch_variants.toml").read_text())
    for table in ("variant", "kernels", "pypi_build", "companion"):
        for row in data[table]:
            assert row.get("source"), (table, row)
    assert data["download"]["source"]
