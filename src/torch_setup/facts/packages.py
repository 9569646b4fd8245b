"""Package state, not files: packages an interrupted package manager left half-installed. A kill while apt
configures leaves the files in place (the compiler runs) and dpkg's database saying "half-configured"; the next
apt-get refuses to work until `dpkg --configure -a` has run.

dpkg's status file (/var/lib/dpkg/status, dpkg(1) "PACKAGE STATES", https://manpages.debian.org/trixie/dpkg/dpkg.1.en.html):
each stanza's `Status: WANT FLAG STATE`; `dpkg --audit` lists the states below and the reinst-required flag.
"""
from __future__ import annotations

from typing import List

DPKG_STATUS = "/var/lib/dpkg/status"
BROKEN_STATES = {"half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"}


def parse_dpkg_status(text: str) -> List[str]:
    """Names of the packages `dpkg --audit` would list, in file order. One pass over the lines (a status file is
    a few MB on a full box)."""
    broken, name = [], ""
    for line in text.splitlines():
        if line.startswith("Package:"):
            name = line[8:].strip()
        elif line.startswith("Status:"):
            words = line[7:].split()
            if len(words) == 3 and (words[2] in BROKEN_STATES or words[1] == "reinstreq") and name:
                broken.append(name)
    return broken


def parse_installed(text: str) -> List[str]:
    """dpkg's installed packages, one `NAME:ARCH=VERSION` a package, with `;ma=MULTI-ARCH` and `;provides=...`
    where the stanza has them: what apt needs to resolve another package's dependencies against this host
    (`bundle` does, on another box). Stanzas in the "installed" state only."""
    out: List[str] = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Status", "").split()[-1:] != ["installed"] or not fields.get("Package"):
            continue
        entry = f"{fields['Package']}:{fields.get('Architecture', 'all')}={fields.get('Version', '')}"
        if fields.get("Multi-Arch"):
            entry += f";ma={fields['Multi-Arch']}"
        if fields.get("Provides"):
            entry += f";provides={fields['Provides']}"
        out.append(entry)
    return out


def installed(system, package_manager) -> List[str]:
    """This host's installed packages (dpkg's; [] for other managers): see parse_installed."""
    if package_manager != "apt":
        return []
    text = system.read_text(DPKG_STATUS)
    return parse_installed(text) if text else []


def interrupted(system, package_manager) -> List[str]:
    """This host's half-installed packages (dpkg's today; rpm has no such state between transactions)."""
    if package_manager != "apt":
        return []
    text = system.read_text(DPKG_STATUS)
    return parse_dpkg_status(text) if text else []
