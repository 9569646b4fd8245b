"""The .debs a Debian-family plan installs, with their dependencies, resolved here against *that* host's installed
packages (facts.host.installed_packages, read from its dpkg status) and the archive of its suite.

apt-get runs in a private directory (its own sources.list, lists, status file and archives: nothing of this host's
apt is read or changed): the status file is written from the target's facts, `apt-get update` fetches the suite's
lists, and `apt-get install --print-uris` names every .deb the target lacks, with its sha256 and size (apt-get(8),
https://manpages.debian.org/trixie/apt/apt-get.8.en.html: --print-uris; apt.conf(5): Dir::State::status,
Dir::Etc::SourceList, Dir::Cache::Archives)."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from torch_setup.bundle.store import Item
from torch_setup.errors import BundleError
from torch_setup.facts import packages

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "i386",
        "ppc64le": "ppc64el", "s390x": "s390x"}
# Debian's archive signing keys, as Debian's debian-archive-keyring package installs them.
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SOURCES_ENV = "TORCH_SETUP_BUNDLE_APT_SOURCES"  # one `deb ...` line per line, {codename} replaced: the archive
_URI = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) (?:SHA256:)?(?P<sha>[0-9a-f]{64})\s*$")


@dataclass(frozen=True)
class DebSet:
    """The packages a plan installs on one kind of host: the same suite, architecture and installed set share one."""
    os_id: str
    codename: str
    arch: str  # Debian's name: amd64, arm64
    packages: Tuple[str, ...]
    installed: Tuple[str, ...]
    sources: Tuple[str, ...]

    @property
    def id(self) -> str:
        digest = hashlib.sha256("\n".join(self.packages + ("",) + self.installed + ("",) + self.sources)
                                .encode()).hexdigest()[:10]
        return f"{self.os_id}-{self.codename}-{self.arch}-{digest}"

    def to_dict(self) -> dict:
        return {"id": self.id, "os": self.os_id, "codename": self.codename, "arch": self.arch,
                "packages": list(self.packages), "sources": list(self.sources),
                "installed_packages_of_facts": len(self.installed)}


def default_sources(facts, env) -> Tuple[str, ...]:
    custom = [ln.strip() for ln in (env.get(SOURCES_ENV) or "").splitlines() if ln.strip()]
    codename = facts.os.codename
    if custom:
        return tuple(ln.replace("{codename}", codename) for ln in custom)
    if facts.os.id != "debian":  # Ubuntu and the others: their archive and keys are not known here
        return ()
    return (f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {codename} main",
            f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {codename}-updates main")


def deb_set(facts, packages: Sequence[str], env) -> DebSet:
    """The set for these facts, or a BundleError that names what an admin mirrors where it cannot be made here."""
    names = tuple(sorted(set(packages)))
    host = f"{facts.os.id} {facts.os.version or facts.os.codename}".strip()
    if not facts.os.codename:
        raise BundleError(f"{host}: the facts name no suite (os.codename): cannot resolve {' '.join(names)}",
                          hint="give facts from `torch-setup detect --json` on that host")
    if not facts.host.installed_packages:
        raise BundleError(f"{host}: the facts carry no installed packages (dpkg status): the .debs of "
                          f"{' '.join(names)} cannot be resolved against that host",
                          hint="gather the facts with this torch-setup's `detect --json` on that host")
    sources = default_sources(facts, env)
    if not sources:
        raise BundleError(f"{host}: no archive known here for its packages {' '.join(names)}",
                          hint=f"mirror them for that host, or give its archive in ${SOURCES_ENV} "
                          "(`deb URL {codename} main` lines)")
    arch = ARCH.get((facts.arch or "").lower(), (facts.arch or "").lower())
    return DebSet(facts.os.id, facts.os.codename, arch, names, tuple(sorted(facts.host.installed_packages)), sources)


_ARCHIVE_ONLY = ("Filename", "Size", "MD5sum", "SHA256", "SHA1", "SHA512", "Description-md5", "Tag")


def _stanzas(text: str) -> dict:
    """(package, version, arch) -> the stanza's text, of apt-cache show's archive records."""
    out = {}
    for stanza, fields in packages.stanzas(text):
        if "Filename" in fields and "Package" in fields:
            keep = []
            skip = False
            for line in stanza.splitlines():
                if line[:1] not in (" ", "\t"):
                    skip = line.partition(":")[0] in _ARCHIVE_ONLY or line.startswith("Description")
                if not skip:
                    keep.append(line)
            out[(fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""))] = "\n".join(keep)
    return out


def status_text(installed: Sequence[str], archive: Optional[dict] = None) -> str:
    """A dpkg status file of the entries facts/packages.py wrote. Where the archive has that very version, its
    stanza (Depends, Installed-Size, ...) stands for it: apt takes a version whose fields differ for another
    build of the same version, and would download it again."""
    out = []
    for entry in installed:
        head, *extra = entry.split(";")
        name_arch, _, version = head.partition("=")
        name, _, arch = name_arch.partition(":")
        known = (archive or {}).get((name, version, arch or "all"))
        if known:
            out.append(known.replace(f"Package: {name}\n", f"Package: {name}\nStatus: install ok installed\n", 1))
            continue
        stanza = [f"Package: {name}", "Status: install ok installed", f"Architecture: {arch or 'all'}",
                  f"Version: {version}"]
        for field in extra:
            key, _, value = field.partition("=")
            if key == "ma":
                stanza.append(f"Multi-Arch: {value}")
            elif key == "provides":
                stanza.append(f"Provides: {value}")
        out.append("\n".join(stanza))
    return "\n\n".join(out) + "\n"


def _apt_options(work: str, arch: str) -> List[str]:
    return ["-o", f"Dir::Etc={work}/etc", "-o", f"Dir::Etc::SourceList={work}/etc/sources.list",
            "-o", f"Dir::Etc::SourceParts={work}/etc/sources.list.d", "-o", f"Dir::Etc::Preferences={work}/etc/prefs",
            "-o", f"Dir::Etc::PreferencesParts={work}/etc/preferences.d",
            "-o", f"Dir::State={work}/state", "-o", f"Dir::State::status={work}/status",
            "-o", f"Dir::Cache={work}/cache", "-o", f"Dir::Cache::Archives={work}/archives",
            "-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures={arch}", "-o", "Debug::NoLocking=1",
            "-o", "Acquire::Languages=none", "-o", "APT::Install-Recommends=false",
            "-o", "Acquire::ForceHash=SHA256"]  # --print-uris names the SHA256 (apt-get prints the MD5 otherwise)


def resolve(system, deb_set: DebSet, work_root: str) -> List[Item]:
    """The .debs the target lacks for `deb_set.packages` (dependencies included), with their sha256 and size, by
    apt-get in a private directory under `work_root` (its lists kept for the next bundle of that suite)."""
    apt = system.which("apt-get")
    if not apt:
        raise BundleError(f"apt-get is not on this host: the .debs of {' '.join(deb_set.packages)} for "
                          f"{deb_set.os_id} {deb_set.codename} cannot be resolved here",
                          hint="build the bundle on a Debian or Ubuntu host, or mirror these packages for the target")
    work = os.path.join(work_root, f"{deb_set.os_id}-{deb_set.codename}-{deb_set.arch}")
    for sub in ("etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "cache", "archives/partial"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    with open(os.path.join(work, "etc", "sources.list"), "w") as f:
        f.write("\n".join(deb_set.sources) + "\n")
    with open(os.path.join(work, "status"), "w") as f:
        f.write(status_text(deb_set.installed))
    opts = _apt_options(work, deb_set.arch)
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    res = system.run([apt, *opts, "update"], env=env, timeout=600)
    if not res.ok or "\nE: " in "\n" + res.stdout + res.stderr or "\nW: Failed" in "\n" + res.stderr:
        raise BundleError(f"apt-get update for {deb_set.os_id} {deb_set.codename} {deb_set.arch} failed",
                          details=(res.stdout + res.stderr)[-1500:],
                          hint=f"check the archive in {', '.join(deb_set.sources)} (or ${SOURCES_ENV})")
    names = sorted({e.split(":", 1)[0].split("=", 1)[0] for e in deb_set.installed})
    shown = system.run([system.which("apt-cache") or "apt-cache", *opts, "show", *names], env=env, timeout=600)
    with open(os.path.join(work, "status"), "w") as f:  # the archive's own stanzas for the versions installed
        f.write(status_text(deb_set.installed, _stanzas(shown.stdout)))
    res = system.run([apt, *opts, "-qq", "--print-uris", "-y", "install", *deb_set.packages], env=env, timeout=600)
    if not res.ok:
        raise BundleError(f"apt cannot install {' '.join(deb_set.packages)} on {deb_set.os_id} {deb_set.codename} "
                          f"{deb_set.arch} from its archive", details=(res.stdout + res.stderr)[-1500:])
    items = []
    for line in res.stdout.splitlines():
        m = _URI.match(line.strip())
        if m:
            items.append(Item(f"debs/{m.group('file')}", m.group("url"), m.group("sha"), int(m.group("size"))))
    if not items and deb_set.packages:
        raise BundleError(f"apt names no .deb for {' '.join(deb_set.packages)} on {deb_set.os_id} "
                          f"{deb_set.codename}: are they installed there already?", details=res.stdout[-1500:])
    return items
