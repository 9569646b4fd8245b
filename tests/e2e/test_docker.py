"""deploy/docker/debian13.Dockerfile, built for real, and torch.compile in the image it makes.

The test machines have no Docker engine and cannot pull from an image registry, so:
- the base is a debootstrap trixie root, imported with `podman import`;
- the build uses `podman build --isolation chroot --network host`;
- the image is checked without `podman run` (which fails here): `podman create` plus `podman mount` give a
  writable copy of the image's tree, and we chroot into it with /proc mounted and the image's own ENV.
The example Dockerfile is built exactly as shipped. The CA of the intercepting HTTPS proxy the test machines
sit behind comes in through a test-only base layer passed as BASE, so nothing about it is written into the example.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.roots import cached_tarball, mounts_under
from tests.e2e.checks import COMPILE

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "debian13.Dockerfile"
CA_IN_IMAGE = "/usr/local/share/torch-setup-test/host-ca.crt"  # outside the image's own trust store
BUILD_TIMEOUT = 1800



def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed (rc={res.returncode}):\n{res.stderr[-3000:]}")
    return res


def image_ids() -> set:
    return set(podman("images", "-a", "-q", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    """The build context the README gives users: a directory holding only torch-setup.pyz (dist/)."""
    ctx = tmp_path_factory.mktemp("context")
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(ctx / "torch-setup.pyz")],
                   check=True)
    return ctx


@pytest.fixture(scope="module")
def tag():
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install -y podman); it builds the Dockerfile here")
    if os.geteuid() != 0:
        pytest.skip("needs root: podman build --isolation chroot, podman mount and chroot")
    return "t" + uuid.uuid4().hex[:10]  # a tag of our own: we delete only what this test made


def _ca_base(base: str, tag: str, workdir: Path) -> str:
    """base plus the proxy's CA, as a test machine behind an intercepting proxy needs it for pip's HTTPS. This
    layer exists only in the test."""
    host_ca = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if not os.path.isfile(host_ca):
        return base
    ctx = workdir / "ca"
    ctx.mkdir()
    shutil.copy(host_ca, ctx / "host-ca.crt")
    (ctx / "Containerfile").write_text(
        f"FROM {base}\nCOPY host-ca.crt {CA_IN_IMAGE}\n"
        f"ENV SSL_CERT_FILE={CA_IN_IMAGE} REQUESTS_CA_BUNDLE={CA_IN_IMAGE} PIP_CERT={CA_IN_IMAGE}\n")
    image = f"localhost/trixie-min-ca:{tag}"
    podman("build", "--isolation", "chroot", "--pull=never", "-q", "-t", image, str(ctx))
    return image


def _unmount_inside(top: str) -> None:
    """Unmount what we mounted under podman's mount point, but leave the mount point itself to podman."""
    for mp in mounts_under(top):
        if mp != os.path.realpath(top):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mp], capture_output=True)
    left = [m for m in mounts_under(top) if m != os.path.realpath(top)]
    assert not left, f"mounts remain under {top}: {left}"


def test_debian13_dockerfile_builds_and_torch_compile_passes_in_the_image(context, tag, tmp_path, record_property):
    before = image_ids()
    base = f"localhost/trixie-min:{tag}"
    image = f"localhost/torch-setup-debian13:{tag}"
    made = [image]
    t = {"start": time.monotonic()}
    try:
        # The base image: Debian 13 minbase with python3, from the tarball the other e2e tests use.
        podman("import", "-q", str(cached_tarball("trixie")), base, timeout=600)
        made.append(base)
        build_base = _ca_base(base, tag, tmp_path)
        if build_base != base:
            made.append(build_base)

        start = t["import"] = time.monotonic()
        # --layers=false: one image and no intermediate ones left to clean up. --pull=never: no registry here.
        build = subprocess.run(
            ["podman", "build", "--isolation", "chroot", "--network", "host", "--pull=never", "--layers=false",
             "--build-arg", f"BASE={build_base}", "-f", str(DOCKERFILE), "-t", image, str(context)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BUILD_TIMEOUT)
        build_s = time.monotonic() - start
        (tmp_path / "build.log").write_text(build.stdout)
        assert build.returncode == 0, build.stdout[-6000:]
        assert "torch.compile verified" in build.stdout, build.stdout[-4000:]
        assert "\x1b[" not in build.stdout, "no terminal in a build: torch-setup must print plain lines"

        inspect = json.loads(podman("image", "inspect", image).stdout)[0]
        size = int(inspect["Size"])
        record_property("docker_build_s", round(build_s, 1))
        record_property("docker_image_bytes", size)
        print(f"\ndebian13.Dockerfile: podman build {build_s:.0f} s, image {size / 2**30:.2f} GiB "
              f"(base import {t['import'] - t['start']:.0f} s)")
        env = [e for e in inspect["Config"]["Env"]]
        assert any(e.startswith("PATH=/opt/venv/bin:") for e in env), env

        check = time.monotonic()
        _check_in_image(image, env)
        print(f"torch.compile in the image: {time.monotonic() - check:.0f} s")
    finally:
        cleanup = time.monotonic()
        for name in made:
            podman("rmi", "-f", name, check=False)
        # --layers=false leaves no intermediate images, but a failed build may; remove only ones that are new.
        for left in image_ids() - before:
            podman("rmi", "-f", left, check=False)
    print(f"image cleanup: {time.monotonic() - cleanup:.0f} s")
    assert not (image_ids() - before), "images from this test remain"


def _check_in_image(image: str, env: list) -> None:
    cid = podman("create", image, "/bin/true").stdout.strip()
    try:
        top = podman("mount", cid).stdout.strip()  # container layer over the image: writable, thrown away with it
        try:
            root = Path(top)
            # Cleaned in the same layer: no apt lists, no pip cache.
            lists = [p.name for p in (root / "var/lib/apt/lists").glob("*")
                     if p.name not in ("lock", "partial", "auxfiles")]
            assert not lists, lists
            assert not (root / "root/.cache").exists()
            assert (root / "usr/include/python3.13/Python.h").exists()

            subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
            (root / "dev/shm").mkdir(mode=0o1777, exist_ok=True)  # Python's multiprocessing wants it
            # `python` found through the image's ENV PATH, as it is for RUN and CMD in images built from this one.
            argv = ["chroot", top, "/usr/bin/env", "-i", "HOME=/root", *env, "python", "-c", COMPILE]
            res = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            assert res.returncode == 0, res.stderr[-4000:]
            assert "COMPILE-OK" in res.stdout and res.stdout.strip().endswith("/opt/venv/bin/python"), res.stdout
        finally:
            _unmount_inside(top)
            podman("umount", cid, check=False)
    finally:
        podman("rm", "-f", cid, check=False)
