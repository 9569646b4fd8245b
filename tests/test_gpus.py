"""Every GPU seen (the PCI bus, nvidia-smi, KFD), the installed torch's build read from its library and judged
against every GPU, and what doctor and the plan make of it: the repair (the venv copied aside first), the guard
against a torch swapped later, the choice for boxes whose GPUs need an older or a particular build."""
from __future__ import annotations

import dataclasses
import os
import sys

import pytest

from conftest import FIXTURES, fixture_text, host_facts
from test_torch_choice import FakeFetch, SMI
from torch_setup import doctor, pipeline, torchbuild
from torch_setup.facts import accelerator, gpus
from torch_setup.facts.model import Facts, TorchFacts
from torch_setup.host.replay import FakeSystem, pci_sysfs
from torch_setup.host.system import Result
from torch_setup.recipes import load as recipes_mod
from torch_setup.request import Request
from torch_setup.wheels.choose import choose

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src", "torch_setup", "facts"))
import probe_python  # noqa: E402  (the probe runs as a script inside the target; its functions are plain Python)

RECIPES = recipes_mod.load()
PROC_580 = fixture_text("accelerator", "proc-version-open-580.95.05.txt")


def arch(name: str) -> list:
    return fixture_text("gpus", f"arch-flags-{name}.txt").split()


def box(lspci: str = "", smi: str = "", proc: str = "", env=None, kfd: str = "") -> FakeSystem:
    files, links = pci_sysfs(fixture_text("gpus", lspci)) if lspci else ({}, {})
    if proc:
        files["/proc/driver/nvidia/version"] = proc
    if kfd:
        files["/sys/class/kfd/kfd/topology/nodes/0/properties"] = "cpu_cores_count 96\ngfx_target_version 0\n"
        files["/sys/class/kfd/kfd/topology/nodes/4/properties"] = kfd
    commands = {SMI: Result(0, smi)} if smi else {}
    return FakeSystem(files=files, links=links, commands=commands, env=dict(env or {}))


def with_gpu(system: FakeSystem, torch: TorchFacts = None, name: str = "debian13-installed-venv") -> Facts:
    facts = host_facts(name)
    return dataclasses.replace(facts, accelerator=accelerator.detect(system, "x86_64", "Linux"),
                               torch=torch if torch is not None else facts.torch)


# ------------------------------------------------------------------------------------------------ every GPU seen

def test_a_card_without_a_driver_is_seen_on_the_pci_bus():
    acc = accelerator.detect(box("lspci-gtx1080ti-no-driver.txt"), "x86_64", "Linux")
    assert (acc.kind, acc.driver_state, acc.driver_version) == ("nvidia", "absent", None)
    [card] = acc.devices
    assert (card.vendor, card.pci, card.device_id, card.pci_class, card.kernel_driver) == \
        ("nvidia", "0000:01:00.0", "0x1b06", "0x030000", None)
    assert "no kernel driver" in acc.source


def test_bound_cards_and_their_audio_functions():
    acc = accelerator.detect(box("lspci-rtx3090x2-nvidia.txt", proc=PROC_580), "x86_64", "Linux")
    assert (acc.kind, acc.driver_state, acc.driver_version) == ("nvidia", "present", "580.95.05")
    assert [(d.pci, d.kernel_driver) for d in acc.devices] == [("0000:05:00.0", "nvidia"), ("0000:0a:00.0", "nvidia")]


def test_cuda_visible_devices_hides_no_card_from_the_check():
    smi = fixture_text("accelerator", "nvidia-smi-mixed-2gpu.csv")
    acc = accelerator.detect(box(smi=smi, proc=PROC_580, env={"CUDA_VISIBLE_DEVICES": "1"}), "x86_64", "Linux")
    assert [d.compute_capability for d in acc.devices] == ["7.0", "8.9"]
    assert acc.compute_capability == "7.0"


def test_smi_rows_fill_the_pci_devices_in_bus_order():
    devices = gpus.scan_pci(box("lspci-rtx3090x2-nvidia.txt"))
    merged = gpus.merge(devices, gpus.parse_smi_rows("580.95.05, 8.6, NVIDIA GeForce RTX 3090\n" * 2), [])
    assert [(d.pci, d.compute_capability) for d in merged] == [("0000:05:00.0", "8.6"), ("0000:0a:00.0", "8.6")]


def test_smi_rows_go_to_the_pci_device_of_their_bus_id_not_the_next_one_in_order():
    """The capture's two cards, and between them on the bus a third NVIDIA card nvidia-smi does not list (bound to
    vfio-pci for a VM, or one NVML cannot open: "Unable to determine the device handle for GPU3"). By order the
    RTX 4070 Ti's row would land on 04:00.0 and 07:00.0 would look unnamed."""
    rows = gpus.parse_smi_rows(fixture_text("gpus", "smi-busid-rtx2060-rtx4070ti.csv"))
    assert rows == [(None, None, "NVIDIA GeForce RTX 2060", "0000:01:00.0"),
                    (None, None, "NVIDIA GeForce RTX 4070 Ti", "0000:07:00.0")]  # the header line is no row
    lspci = ("01:00.0 VGA compatible controller [0300]: NVIDIA Corporation TU106 [10de:1f08]\n"
             "\tKernel driver in use: nvidia\n"
             "04:00.0 VGA compatible controller [0300]: NVIDIA Corporation GA102 [10de:2206]\n"
             "\tKernel driver in use: vfio-pci\n"
             "07:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD104 [10de:2782]\n"
             "\tKernel driver in use: nvidia\n")
    files, links = pci_sysfs(lspci)
    merged = gpus.merge(gpus.scan_pci(FakeSystem(files=files, links=links)), rows, [])
    assert [(d.pci, d.name, d.kernel_driver) for d in merged] == [
        ("0000:01:00.0", "NVIDIA GeForce RTX 2060", "nvidia"), ("0000:04:00.0", "", "vfio-pci"),
        ("0000:07:00.0", "NVIDIA GeForce RTX 4070 Ti", "nvidia")]


@pytest.mark.parametrize("text, bus", [("00000000:0A:00.0", "0000:0a:00.0"), ("0000:c1:00.0", "0000:c1:00.0"),
                                       ("00000001:1B:00.0", "0001:1b:00.0"), ("10000:e1:00.0", "10000:e1:00.0"),
                                       ("01:00.0", None), ("580.95.05", None)])
def test_bus_ids_are_compared_in_one_form(text, bus):
    assert gpus.normalise_bus_id(text) == bus


def test_detect_asks_for_the_bus_id_and_places_each_row_by_it():
    """nvidia-smi's own form (8-digit upper-case domain) against sysfs's, through detect: the rows come in an
    order other than the bus's, and the capabilities still land on their cards."""
    smi = ("00000000:0A:00.0, 580.95.05, 8.6, NVIDIA GeForce RTX 3090\n"
           "00000000:05:00.0, 580.95.05, 6.1, NVIDIA GeForce GTX 1080\n")
    acc = accelerator.detect(box("lspci-rtx3090x2-nvidia.txt", smi=smi, proc=PROC_580), "x86_64", "Linux")
    assert [(d.pci, d.compute_capability) for d in acc.devices] == [("0000:05:00.0", "6.1"), ("0000:0a:00.0", "8.6")]
    assert acc.compute_capability == "6.1" and acc.driver_version == "580.95.05"
    assert SMI.split()[1] == gpus.SMI_QUERY


def test_a_row_whose_card_the_bus_scan_did_not_see_is_its_own_device():
    merged = gpus.merge([], gpus.parse_smi_rows("00000000:3B:00.0, 580.95.05, 9.0, NVIDIA H200\n"), [])
    assert [(d.pci, d.compute_capability) for d in merged] == [("0000:3b:00.0", "9.0")]


def test_amd_gfx_from_the_kfd_topology_without_rocm_userspace():
    system = box(kfd=fixture_text("gpus", "kfd-properties-mi300x.txt"))
    acc = accelerator.detect(system, "x86_64", "Linux")
    assert (acc.kind, acc.gfx, acc.source) == ("rocm", "gfx942", "KFD topology")
    assert "rocm_agent_enumerator" not in system.calls


@pytest.mark.parametrize("value, gfx", [(90402, "gfx942"), (90010, "gfx90a"), (110000, "gfx1100"),
                                        (100300, "gfx1030"), (120001, "gfx1201"), (0, None)])
def test_kfd_target_versions(value, gfx):
    assert gpus.gfx_of_target_version(value) == gfx


def test_intel_arc_is_an_xpu_and_integrated_graphics_is_not():
    # an Arc B580: "xe 0000:03:00.0: [drm] Found BATTLEMAGE (device ID e20b)"
    # (geerlingguy/raspberry-pi-pcie-devices#695)
    arc = {"/sys/bus/pci/devices/0000:03:00.0/class": "0x030000\n",
           "/sys/bus/pci/devices/0000:03:00.0/vendor": "0x8086\n",
           "/sys/bus/pci/devices/0000:03:00.0/device": "0xe20b\n"}
    assert accelerator.detect(FakeSystem(files=arc), "x86_64", "Linux").kind == "xpu"
    igpu = {k.replace("03:00.0", "00:02.0"): v.replace("0xe20b", "0x9b41") for k, v in arc.items()}
    acc = accelerator.detect(FakeSystem(files=igpu), "x86_64", "Linux")
    assert acc.kind == "none" and acc.devices[0].vendor == "intel"


# ------------------------------------------------------------------------------------------ the installed build

@pytest.mark.parametrize("name", ["2.15.0-cu132-x86_64", "2.14.1-cu130-x86_64", "2.9.1-cu128-x86_64"])
def test_arch_flags_are_read_from_the_library_without_importing_torch(tmp_path, name):
    text = fixture_text("gpus", f"arch-flags-{name}.txt").strip()
    lib = tmp_path / "libtorch_python.so"
    lib.write_bytes(os.urandom(4096).replace(b"\0", b"\1") + b"\0" + text.encode() + b"\0" + b"\1" * 64)
    want = text[text.index("sm_"):]
    assert probe_python.arch_flags(str(lib)) == want


def test_a_cpu_build_has_no_arch_flags(tmp_path):
    lib = tmp_path / "libtorch_python.so"
    lib.write_bytes(b"\0sm_ is not a list\0" + b"\1" * 64)
    assert probe_python.arch_flags(str(lib)) is None


@pytest.mark.parametrize("cc, covered", [((7, 5), True), ((8, 9), True), ((12, 1), True), ((6, 1), False),
                                         ((7, 0), False)])
def test_cubins_cover_the_same_major(cc, covered):
    assert torchbuild.covers(arch("2.15.0-cu132-x86_64"), cc) is covered


def test_ptx_covers_newer_capabilities_and_arch_specific_targets_only_their_own():
    assert torchbuild.covers(["sm_80", "compute_90"], (12, 0))  # PTX is JIT-compiled for newer GPUs
    assert not torchbuild.covers(["sm_90a"], (10, 0)) and torchbuild.covers(["sm_90a"], (9, 0))
    assert torchbuild.covers(["sm_100f"], (10, 3)) and not torchbuild.covers(["sm_100f"], (12, 0))


GTX1080 = fixture_text("gpus", "smi-gtx1080.csv")


def test_gtx_1080_with_a_cu130_torch_has_no_kernels():
    torch = TorchFacts(version="2.12.0+cu130", cuda="13.0", location="/opt/venv/lib/python3.13/site-packages",
                       arch_list=arch("2.14.1-cu130-x86_64"))
    verdict = torchbuild.judge(with_gpu(box(smi=GTX1080, proc=PROC_580), torch))
    assert not verdict.ok and verdict.problem == "kernels-missing"
    assert "NVIDIA GeForce GTX 1080 (sm_61)" in verdict.message and "no kernel image" in verdict.message
    assert "the installed build" in verdict.message


def test_without_the_library_the_table_stands_in_and_says_so():
    torch = TorchFacts(version="2.15.0+cu132", cuda="13.2")
    verdict = torchbuild.judge(with_gpu(box(smi=GTX1080, proc=PROC_580), torch))
    assert not verdict.ok and verdict.from_table and "data/torch_variants.toml" in verdict.message


def test_a_cpu_torch_in_a_cuda_box_is_a_problem_with_the_plan_s_fix():
    torch = dataclasses.replace(host_facts("debian13-installed-venv").torch, version="2.15.0+cpu", cuda=None)
    facts = with_gpu(box(smi="580.159.03, 9.0, NVIDIA H200\n", proc=PROC_580), torch)
    plan = pipeline.assemble(Request(), facts, RECIPES)
    results = {c.id: c for c in doctor.checks(facts, RECIPES, plan, doctor.Extras())}
    check = results["torch-gpu"]
    assert check.status == doctor.PROBLEM and "CPU build" in check.message
    assert check.fix == "torch" and plan.step_for("torch").status == "todo"
    rollback = next(s for s in plan.steps if s.id == "torch-rollback")
    prefix = facts.python.prefix
    assert rollback.commands[0].argv[-2:] == (prefix, prefix + ".torch-setup-previous")
    assert "torch-rollback" in plan.step_for("torch").after
    assert f"mv {prefix}.torch-setup-previous {prefix}" in check.advice


def test_the_kept_torch_says_it_covers_every_gpu():
    facts = with_gpu(box(smi="580.159.03, 9.0, NVIDIA H200\n", proc=PROC_580))
    assert facts.torch.version.endswith("+cu132")
    plan = pipeline.assemble(Request(), facts, RECIPES)
    torch = next(s for s in plan.steps if s.id == "torch")
    assert torch.status == "done" and "kernels for every GPU" in torch.why


def test_doctor_names_a_torch_swapped_since_the_verification():
    extras = doctor.Extras(verified_at=1_800_000_000.0, verified_holds=False, verified_torch="2.15.0+cu132",
                           torch_now="2.15.0+cpu")
    check = doctor._verified_check(extras)
    assert check.status == doctor.WARN and "2.15.0+cu132" in check.message and "2.15.0+cpu" in check.message


def test_driver_states():
    absent = with_gpu(box("lspci-gtx1080ti-no-driver.txt"))
    state = torchbuild.driver_state(absent)
    assert state.status == "absent" and "installs no GPU driver" in state.advice
    old = with_gpu(box(smi="440.95.01, 6.1, GeForce GTX 1080 Ti\n",
                       proc=fixture_text("accelerator", "proc-version-proprietary-440.95.01.txt")))
    assert torchbuild.driver_state(old).status == "too-old"
    assert torchbuild.driver_state(with_gpu(box(smi=GTX1080, proc=PROC_580))).status == "present"


# ------------------------------------------------------------------------------------------------ the choice

def _choice(facts):
    return choose(facts, RECIPES, fetch=FakeFetch(), env={})


def test_pascal_gets_the_last_build_with_its_kernels_and_says_why():
    c = _choice(with_gpu(box(smi=GTX1080, proc=PROC_580)))
    assert (c.variant, c.version) == ("cu126", "2.14.1")
    assert any("compute capability 6.1 has kernels in cu126," in r and "not in cu132, cu130" in r
               for r in c.reasons)


def test_a_mixed_box_gets_a_build_for_both_cards():
    smi = "580.95.05, 6.1, NVIDIA GeForce GTX 1080\n580.95.05, 9.0, NVIDIA H100 PCIe\n"
    c = _choice(with_gpu(box(smi=smi, proc=PROC_580)))
    assert (c.variant, c.version) == ("cu126", "2.14.1")
    assert any("compute capabilities 6.1, 9.0 (every GPU)" in r for r in c.reasons)


def test_no_driver_is_not_planned_as_a_cpu_box():
    c = _choice(with_gpu(box("lspci-gtx1080ti-no-driver.txt")))
    assert c.variant.startswith("cu")
    assert any("installs no GPU driver" in w and "--torch-backend cu126" in w for w in c.warnings)
    assert any("no NVIDIA driver loaded" in r for r in c.reasons)


def test_fixtures_have_sources():
    for path in sorted((FIXTURES / "gpus").glob("*.*")):
        if path.suffix in (".txt", ".csv"):
            assert path.read_text().startswith("# source: "), path.name


def test_declared_capabilities_where_no_gpu_can_be_asked():
    """A Docker build for a Pascal box: the driver and the GPUs' capabilities declared, nothing probed."""
    system = FakeSystem(env={"TORCH_SETUP_CUDA_DRIVER": "580.95.05", "TORCH_SETUP_CUDA_CAPABILITY": "6.1,9.0"})
    acc = accelerator.detect(system, "x86_64", "Linux")
    assert (acc.kind, acc.driver_state, acc.compute_capability) == ("nvidia", "present", "6.1")
    assert [d.compute_capability for d in acc.devices] == ["6.1", "9.0"]
    c = _choice(dataclasses.replace(host_facts("debian13-installed-venv"), accelerator=acc))
    assert (c.variant, c.version) == ("cu126", "2.14.1")
    bad = FakeSystem(env={"TORCH_SETUP_CUDA_DRIVER": "580.95.05", "TORCH_SETUP_CUDA_CAPABILITY": "sm_61"})
    assert accelerator.detect(bad, "x86_64", "Linux").devices == []


def test_an_intel_arc_box_gets_the_xpu_build():
    arc = {"/sys/bus/pci/devices/0000:03:00.0/class": "0x030000\n",
           "/sys/bus/pci/devices/0000:03:00.0/vendor": "0x8086\n",
           "/sys/bus/pci/devices/0000:03:00.0/device": "0xe20b\n"}
    facts = with_gpu(FakeSystem(files=arc), TorchFacts())
    c = _choice(facts)
    assert (c.variant, c.index_url) == ("xpu", "https://download.pytorch.org/whl/xpu")
    assert any("Intel GPU" in r for r in c.reasons)


def test_a_torch_swapped_after_the_verification_is_named_by_doctor():
    """The record keys torch's version and files: a +cpu torch put in later makes it not hold, and doctor says
    which torch passed and which is there now, beside the torch-gpu problem."""
    from torch_setup import record
    from torch_setup.verify import Verification

    h200 = box(smi="580.159.03, 9.0, NVIDIA H200\n", proc=PROC_580)
    before = with_gpu(h200)
    python = before.python.executable
    system = FakeSystem(files={"/proc/sys/kernel/random/boot_id": "b0\n", "/etc/machine-id": "m0\n"},
                        mtimes={python: 1_700_000_000.0})
    assert record.save(system, before, python, {}, Verification(True, python, torch=before.torch.version))
    after = dataclasses.replace(before, torch=dataclasses.replace(before.torch, version="2.15.0+cpu", cuda=None))
    assert record.lookup(system, after, python, {}) is None
    extras = doctor.gather_extras(system, after, "~/.venvs/torch", check_index=False)
    results = {c.id: c for c in doctor.checks(after, RECIPES, pipeline.assemble(Request(), after, RECIPES), extras)}
    assert results["verified"].status == doctor.WARN
    assert "with torch 2.15.0+cu132" in results["verified"].message and "2.15.0+cpu now" in results["verified"].message
    assert results["torch-gpu"].status == doctor.PROBLEM


def test_keep_torch_keeps_a_build_that_cannot_use_the_gpus_and_says_so(tmp_path):
    import json

    from typer.testing import CliRunner

    from torch_setup.cli import app

    facts = FIXTURES / "gpus" / "facts" / "h200-venv-torch-cpu.json"
    res = CliRunner().invoke(app, ["plan", "--facts", str(facts), "--keep-torch", "--json"])
    assert res.exit_code == 0, res.output
    steps = {s["id"]: s for s in json.loads(res.stdout)["data"]["steps"]}
    assert steps["torch"]["status"] == "done" and "torch-rollback" not in steps
    assert "kept (--keep-torch), though torch 2.15.0+cpu is a CPU build" in steps["torch"]["why"]
    plain = pipeline.assemble(Request(), Facts.from_dict(json.loads(facts.read_text())), RECIPES)
    assert plain.step_for("torch").status == "todo"  # without it: replaced


def test_a_rocm_build_is_judged_by_its_gfx_list():
    rocm = TorchFacts(version="2.9.1+rocm7.2.4", hip="7.2.4", arch_list=arch("2.9.1-rocm7.2.4"))
    mi300x = box(kfd=fixture_text("gpus", "kfd-properties-mi300x.txt"))
    assert torchbuild.judge(with_gpu(mi300x, rocm)).ok
    navi10 = FakeSystem(commands={"rocm_agent_enumerator": Result(0, fixture_text("accelerator",
                                                                                   "rocm-agents-navi10.txt"))})
    verdict = torchbuild.judge(with_gpu(navi10, rocm))
    assert not verdict.ok and verdict.problem == "rocm-gfx-missing" and "gfx1010" in verdict.message
    cpu = torchbuild.judge(with_gpu(mi300x, TorchFacts(version="2.15.0+cpu")))
    assert not cpu.ok and cpu.problem == "cpu-build"


def test_facts_with_a_device_capability_that_is_not_one_are_refused():
    import json

    from torch_setup.errors import FactsError

    data = json.loads((FIXTURES / "gpus" / "facts" / "gtx1080-driver580.json").read_text())
    data["accelerator"]["devices"][0]["compute_capability"] = "sm_61"
    with pytest.raises(FactsError, match=r"devices\[0\]\.compute_capability"):
        Facts.from_dict(data)


def test_kfd_nodes_are_matched_to_pci_devices_by_their_location():
    """location_id is bus << 8 | device << 3 | function (the KFD topology's own encoding): node 4 at 0xc1:00.0."""
    files = {"/sys/bus/pci/devices/0000:03:00.0/class": "0x030000\n",  # a Radeon on the desk
             "/sys/bus/pci/devices/0000:03:00.0/vendor": "0x1002\n",
             "/sys/bus/pci/devices/0000:03:00.0/device": "0x744c\n",
             "/sys/bus/pci/devices/0000:c1:00.0/class": "0x038000\n",  # an MI300X: a display controller, not VGA
             "/sys/bus/pci/devices/0000:c1:00.0/vendor": "0x1002\n",
             "/sys/bus/pci/devices/0000:c1:00.0/device": "0x74a1\n",
             "/sys/class/kfd/kfd/topology/nodes/4/properties":
                 fixture_text("gpus", "kfd-properties-mi300x.txt") + f"location_id {0xc1 << 8}\ndomain 0\n",
             "/sys/class/kfd/kfd/topology/nodes/5/properties": "gfx_target_version 110000\nlocation_id 768\n"}
    acc = accelerator.detect(FakeSystem(files=files), "x86_64", "Linux")
    assert [(d.pci, d.gfx) for d in acc.devices] == [("0000:03:00.0", "gfx1100"), ("0000:c1:00.0", "gfx942")]
    assert acc.kind == "rocm"
    c = _choice(with_gpu(FakeSystem(files=files), TorchFacts()))
    assert c.variant == "rocm7.14" and any("AMD GPU gfx1100, gfx942" in r and "for each" in r for r in c.reasons)


def test_detect_prints_every_gpu(capsys):
    import json

    from torch_setup import cli

    data = json.loads((FIXTURES / "gpus" / "facts" / "gtx1080ti-no-driver.json").read_text())
    cli._print_facts(Facts.from_dict(data))
    out = capsys.readouterr().out
    assert "accelerator: nvidia (no driver loaded)" in out and "gpu: NVIDIA GPU 0x1b06 at 0000:01:00.0" in out
