"""Package state, not files: packages an interrupted package manager left half-installed. A kill while apt
configures leaves the files in place (the compiler runs) and dpkg's database saying "half-configured"; the next
apt-get refuses to work until `dpkg --configure -a` has run.

dpkg's status file (/var/lib/dpkg/status, dpkg(1) "PACKAGE STATES", https://manpages.debian.org/trixie/dpkg/dpkg.1.en.html):
each stanza's `Status: WANT FLAG STATE`; `dpkg --audit` lists the states below and the reinst-required flag.

The status file alone is not the state: while it runs, dpkg writes each package's new record to its journal,
/var/lib/dpkg/updates/NNNN, and folds the journal into the status file only at checkpoints
(https://git.dpkg.org/cgit/dpkg/dpkg.git/tree/lib/dpkg/dbmodify.c, modstatdb_parse_updates). A kill while apt
unpacks leaves the unpacked and half-installed packages in the journal only, the status file saying nothing; apt
then refuses ("dpkg was interrupted, you must manually run 'dpkg --configure -a'") whenever the journal holds any
all-digit file (https://salsa.debian.org/apt-team/apt/-/blob/main/apt-pkg/deb/debsystem.cc, CheckUpdates).
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Sequence, Tuple

DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_UPDATES = "/var/lib/dpkg/updates"
# dpkg's own lock and the frontend lock apt holds for a whole run (dpkg(1) FILES; apt-get(8) DPkg::Lock::Timeout)
DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock")
BROKEN_STATES = {"half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"}


def _records(text: str) -> Iterator[Tuple[Tuple[str, str], List[str]]]:
    """((name, architecture), status words) of each stanza, in file order. One pass over the lines (a status
    file is a few MB on a full box)."""
    name, arch, words = "", "", []  # type: str, str, List[str]
    for line in text.splitlines() + [""]:
        if not line.strip():
            if name:
                yield (name, arch), words
            name, arch, words = "", "", []
        elif line.startswith("Package:"):
            name = line[8:].strip()
        elif line.startswith("Architecture:"):
            arch = line[13:].strip()
        elif line.startswith("Status:"):
            words = line[7:].split()


def _broken(words: List[str]) -> bool:
    return len(words) == 3 and (words[2] in BROKEN_STATES or words[1] == "reinstreq")


def parse_dpkg_status(text: str, journal: Sequence[str] = ()) -> List[str]:
    """Names of the packages `dpkg --audit` would list, in file order: the status file with dpkg's journal records
    (the texts of updates/NNNN, in the order of their names) on top, each a package's newer record."""
    state: Dict[Tuple[str, str], List[str]] = {}
    for record in [text, *journal]:
        for key, words in _records(record):
            state[key] = words
    broken: List[str] = []
    for (name, _), words in state.items():
        if _broken(words) and name not in broken:
            broken.append(name)
    return broken


def stanzas(text: str) -> List[Tuple[str, Dict[str, str]]]:
    """The stanzas of a deb822 file (dpkg's status, apt-cache show) with each one's first-line field values
    (continuation lines are left in the stanza's text)."""
    out = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        out.append((stanza, fields))
    return out


def parse_installed(text: str) -> List[str]:
    """dpkg's installed packages, one `NAME:ARCH=VERSION` a package, with `;ma=MULTI-ARCH` and `;provides=...`
    where the stanza has them: what apt needs to resolve another package's dependencies against this host
    (`bundle` does, on another box). Stanzas in the "installed" state only."""
    out: List[str] = []
    for stanza, fields in stanzas(text):
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


def journal_names(names: Sequence[str]) -> List[str]:
    """The journal's entries among a listing of updates/, in dpkg's order: all-digit names only (apt and dpkg skip
    the rest, such as the tmp.i of a record being written)."""
    return sorted((n for n in names if n.isdigit()), key=lambda n: (len(n), n))


def running(system) -> bool:
    """Is a package manager running now (dpkg's or apt's lock held: an admin's apt, unattended-upgrades at boot)?
    Then its half-done packages are in progress, not interrupted: a repair now would fail on dpkg's lock ("dpkg
    frontend lock was locked by ..."), while the install step waits for it (apt's DPkg::Lock::Timeout)."""
    return any((system.lock_holder(path) or 0) != 0 for path in DPKG_LOCKS)


def interrupted(system, package_manager) -> List[str]:
    """This host's half-installed packages (dpkg's today; rpm has no such state between transactions). A journal
    that is not folded in means an interrupted dpkg even where every record in it says installed: then its
    packages are named (apt refuses to run until `dpkg --configure -a` has folded it in). None while a package
    manager runs (`running`)."""
    if package_manager != "apt" or running(system):
        return []
    journal = [system.read_text(f"{DPKG_UPDATES}/{n}") or "" for n in journal_names(system.listdir(DPKG_UPDATES))]
    text = system.read_text(DPKG_STATUS) or ""
    broken = parse_dpkg_status(text, journal)
    if broken or not journal:
        return broken
    names: List[str] = []
    for record in journal:
        names += [key[0] for key, _ in _records(record) if key[0] not in names]
    return names or ["(dpkg's journal)"]
