"""The host: OS (through distro), package manager, privileges, container or chroot."""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from typing import Iterable, Optional, Tuple

from torch_setup.facts.model import HostFacts, OsFacts
from torch_setup.facts import packages
from torch_setup.host.system import System

CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine
)


def parse_os_release(text: str) -> OsFacts:
    """Through distro, so its quirks (quoting, VERSION_CODENAME fallbacks) are handled once, upstream."""
    import distro

    with tempfile.NamedTemporaryFile("w", suffix="-os-release", delete=False) as f:
        f.write(text)
    try:
        d = distro.LinuxDistribution(
            include_lsb=False, include_uname=False, include_oslevel=False,
            os_release_file=f.name, distro_release_file=os.devnull,
        )
        info = d.info()
    finally:
        os.unlink(f.name)
    version = d.os_release_attr("version_id") or ""
    return OsFacts(
        id=info["id"],
        version=version,
        codename=info.get("codename") or "",
        like=info["like"].split() if info.get("like") else [],
        name=d.name(),
    )


def parse_sw_vers(text: str) -> OsFacts:
    """macOS `sw_vers`: ProductName / ProductVersion lines."""
    kv = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        kv[k.strip()] = v.strip()
    return OsFacts(id="macos", version=kv.get("ProductVersion", ""), name=kv.get("ProductName", "macOS"),
                   system="Darwin")


def detect_os(system: System, system_name: str) -> OsFacts:
    if system_name == "Darwin":
        res = system.run(["sw_vers"], timeout=10)
        return parse_sw_vers(res.stdout) if res.ok else OsFacts(id="macos", system="Darwin")
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = system.read_text(path)
        if text:
            return replace(parse_os_release(text), system=system_name)
    return OsFacts(id="unknown", system=system_name)


def package_manager(which, managers: Iterable[Tuple[str, str]]) -> Optional[str]:
    """The first manager (name, binary) in recipe order whose binary is on PATH."""
    for name, binary in managers:
        if which(binary):
            return name
    return None


def parse_container(env: dict, dockerenv: bool, containerenv: bool, cgroup: Optional[str]) -> Optional[str]:
    if env.get("container"):
        return env["container"]  # systemd-nspawn, podman and lxc set it for PID 1
    if containerenv:
        return "podman"
    if dockerenv:
        return "docker"
    for word in ("docker", "kubepods", "containerd", "lxc", "libpod"):
        if cgroup and word in cgroup:
            return {"kubepods": "kubernetes", "libpod": "podman"}.get(word, word)
    return None


def detect_host(system: System, managers) -> Tuple[HostFacts, Optional[str]]:
    uid = system.euid()
    home = system.env.get("HOME", "/")  # one home for the uv cache and the venv (HOME unset: as Python's own)
    is_root = uid == 0
    sudo = False
    if not is_root and system.which("sudo"):
        sudo = system.run(["sudo", "-n", "true"], timeout=10).ok
    container = parse_container(
        system.env, system.exists("/.dockerenv"), system.exists("/run/.containerenv"),
        system.read_text("/proc/1/cgroup"),
    )
    same = system.same_root()
    lists = system.mtime("/var/lib/apt/lists/partial")  # apt-get update touches it on every run
    pm = package_manager(system.which, managers)
    return HostFacts(
        is_root=is_root,
        sudo=sudo,
        container=container,
        chroot=same is False,
        uv=system.which("uv") or (cached_uv(home, system) if home.startswith("/") else None),
        apt_lists_age_s=(system.now() - lists) if (lists is not None and pm == "apt") else None,
        ca_bundle=any(system.exists(p) for p in CA_BUNDLES),
        home=home,
        conda=system.which("conda") or system.which("mamba") or system.which("micromamba"),
        pyenv=system.which("pyenv"),
        openssl=system.which("openssl"),
        interrupted_packages=packages.interrupted(system, pm),
        installed_packages=packages.installed(system, pm),
    ), pm


def cached_uv(home: str, system) -> Optional[str]:
    """The newest uv an earlier run fetched (under ~/.cache/torch-setup/uv-VERSION/)."""
    from packaging.version import InvalidVersion, Version

    root = os.path.join(home, ".cache", "torch-setup")
    found = []
    for name in system.listdir(root):
        try:
            version = Version(name[3:]) if name.startswith("uv-") else None
        except InvalidVersion:
            continue
        if version and system.exists(os.path.join(root, name, "uv")):
            found.append((version, os.path.join(root, name, "uv")))
    return max(found)[1] if found else None
