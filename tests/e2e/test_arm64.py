"""The main job on a second architecture, for real: a Debian 13 arm64 minbase root (debootstrap --arch=arm64, its
binaries run by qemu-user through binfmt_misc), nothing in it but its python3.

1. The README's bare-box command inside it: `python3 scripts/build-zipapp` with the root's python3, then
   `python3 dist/torch-setup.pyz install --yes`.
2. torch.compile passes in the environment it made (our own check, tests/e2e/checks.py, not the
   product's), and the torch it chose is the one the plan said, for the reason it gave.
3. A second install has nothing to do.

Marker `arm64`: neither the default selection nor `-m e2e` runs it; `scripts/test --arch arm64` does (it installs
qemu-user-static and binfmt-support when missing). Everything runs emulated, so it is slow: 20 min on 2 quiet cores
with the root tarball cached (README, "Where it runs"). What emulation changes is handled here, in the setup, never
by the product:
- The CPU topology torch's cpuinfo reads from /sys/devices/system/cpu is the host's x86 one (no `regs/identification/
  midr_el1`): the setup mounts a small tmpfs there that describes the emulated CPUs as an aarch64 kernel would.
- uv's cache is a host directory the tests keep (bind-mounted at /root/.cache/uv), so the wheels are fetched once.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.e2e.roots import build_pyz_in, cache_dir, debian_root, ensure_emulation, payload
from tests.e2e.checks import COMPILE

pytestmark = pytest.mark.arm64
ARCH = "arm64"
VENV_PYTHON = "/root/.venvs/torch/bin/python"
# The product's verification waits 900 s for the first torch.compile; emulated on 2 loaded cores it takes longer
# (the first run of this test timed out at 900 s with the load at 9): the documented knob gives it an hour.
SLOW = {"TORCH_SETUP_VERIFY_TIMEOUT": "3600"}
# qemu-user's aarch64 "max" CPU: MIDR_EL1 as QEMU reports it for -cpu max (implementer 0x00 = reserved for
# software; see https://www.qemu.org/docs/master/system/arm/cpu-features.html); the same value a real kernel would
# expose per CPU under regs/identification/ (https://docs.kernel.org/arch/arm64/cpu-feature-registers.html).
MIDR_EL1 = "0x00000000000f0510"


def fake_cpu_sysfs(root) -> None:
    """The emulated CPUs as an aarch64 kernel lists them: possible/present/online and each CPU's MIDR_EL1, on a tmpfs
    mounted over the host's (x86) /sys/devices/system/cpu of the root's read-only sysfs."""
    cpu = root.host_path("/sys/devices/system/cpu")
    res = os.system(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs '{cpu}'")
    assert res == 0, "mounting a tmpfs over the root's /sys/devices/system/cpu failed"
    n = os.cpu_count() or 1
    span = "0" if n == 1 else f"0-{n - 1}"
    for name in ("possible", "present", "online"):
        (cpu / name).write_text(span + "\n")
    (cpu / "kernel_max").write_text("511\n")
    for i in range(n):
        ident = cpu / f"cpu{i}" / "regs" / "identification"
        ident.mkdir(parents=True)
        (ident / "midr_el1").write_text(MIDR_EL1 + "\n")
        (ident / "revidr_el1").write_text("0x0000000000000000\n")
        (cpu / f"cpu{i}" / "online").write_text("1\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    ensure_emulation(ARCH)
    with debian_root("trixie", tmp_path_factory.mktemp("trixie-arm64"), arch=ARCH) as r:
        fake_cpu_sysfs(r)
        r.bind(cache_dir() / f"uv-cache-{ARCH}", "/root/.cache/uv")
        r.timings["start"] = time.monotonic()
        yield r
        print(f"\narm64 e2e: {time.monotonic() - r.timings['start']:.0f} s from a fresh root")


@pytest.fixture(scope="module")
def pyz(root) -> str:
    return build_pyz_in(root)


def test_the_root_is_arm64(root):
    res = root.run(["sh", "-c", "uname -m; dpkg --print-architecture; python3 -c 'import platform; "
                    "print(platform.machine())'"], timeout=300)
    assert res.stdout.split() == ["aarch64", "arm64", "aarch64"], res.stdout + res.stderr


def test_the_plan_says_which_torch_and_why(root, pyz):
    res = root.run(["sh", "-c", "cd /root/torch-setup && python3 dist/torch-setup.pyz plan --json"], timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    torch = payload(res.stdout)["torch"]
    assert torch["version"] and torch["variant"], torch
    root.timings["choice"] = torch
    if torch["source"] == "pypi" and torch["variant"] == "cpu":
        # download.pytorch.org did not answer: PyPI's aarch64 torch is CPU-only up to 2.10, and the plan says so,
        # with the newer CUDA build's size and how to get it.
        assert any("newest cpu-only Linux aarch64 torch" in w and "GB to download" in w for w in torch["warnings"]), \
            torch["warnings"]
    else:  # the PyTorch index answered: its CPU build
        assert (torch["source"], torch["variant"]) == ("pytorch", "cpu"), torch


def test_install_makes_torch_compile_work(root, pyz):
    start = time.monotonic()
    res = root.run(["sh", "-c", "cd /root/torch-setup && python3 dist/torch-setup.pyz install --yes"], env=SLOW,
                   timeout=5400)
    print(f"install: {time.monotonic() - start:.0f} s", res.stdout[-3000:], res.stderr[-6000:])
    assert res.returncode == 0
    assert "torch.compile verified" in res.stdout
    assert root.host_path("/usr/include/python3.13/Python.h").exists()
    start = time.monotonic()
    res = root.run([VENV_PYTHON, "-c", COMPILE], timeout=3600)
    print(f"our own torch.compile check: {time.monotonic() - start:.0f} s")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "COMPILE-OK" in res.stdout
    assert "Error in cpuinfo" not in res.stderr, res.stderr[-3000:]  # the emulated CPUs are described (setup)
    version = res.stdout.split("COMPILE-OK", 1)[1].split()[0]
    choice = root.timings.get("choice")
    if choice:
        assert version.split("+")[0] == choice["version"], (version, choice)


def test_second_install_has_nothing_to_do(root, pyz):
    res = root.run(["python3", pyz, "install", "--yes", "--json"], env=SLOW, timeout=5400)
    assert res.returncode == 0, res.stderr[-3000:]
    report = payload(res.stdout)
    assert report["changed"] is False
    assert [s["status"] for s in report["plan"]["steps"]] == ["done"] * len(report["plan"]["steps"])
    assert report["verify"]["ok"] is True
    assert report["verify"]["recorded"] is not None, report["verify"]
    assert "Nothing to do" in res.stderr
