"""Replaying and recording hosts: `FakeSystem` answers from a capture ("anything not listed is missing"), and
`RecordingSystem` writes down what the real host answered, so `scripts/capture-host` turns a run into a fixture.
Test doubles and capture tools, kept out of the product's seam (host/system.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from torch_setup.host.system import NOT_FOUND, Result, System


def command_key(argv: Sequence[str]) -> str:
    """How a command is named in captured fixtures: a script sent with -c is named by its first line."""
    parts = list(argv)
    if "-c" in parts[:-1]:
        i = parts.index("-c") + 1
        if "\n" in parts[i]:
            parts[i] = "<script: " + parts[i].strip().splitlines()[0][:60] + ">"
    return " ".join(parts)



def pci_sysfs(lspci: str, domain: str = "0000") -> tuple:
    """The /sys/bus/pci/devices files (class, vendor, device) and `driver` links that a captured `lspci -nn` or
    `lspci -nnk` listing describes, for a FakeSystem: lspci reads exactly these (its class [0300] is the top 16 bits
    of the class file's 0x030000). Returns (files, links)."""
    import re

    files: Dict[str, str] = {}
    links: Dict[str, str] = {}
    current = None
    for line in lspci.splitlines():
        m = re.match(r"^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*?\[([0-9a-f]{4})\]: .*"
                     r"\[([0-9a-f]{4}):([0-9a-f]{4})\]", line.strip())
        if m:
            current = f"/sys/bus/pci/devices/{m.group(1) or domain}:{m.group(2)}"
            files[current + "/class"] = f"0x{m.group(3)}00\n"
            files[current + "/vendor"] = f"0x{m.group(4)}\n"
            files[current + "/device"] = f"0x{m.group(5)}\n"
            continue
        k = re.match(r"^\s+Kernel driver in use: (\S+)", line)
        if k and current:
            links[current + "/driver"] = f"/sys/bus/pci/drivers/{k.group(1)}"
    return files, links


@dataclass
class FakeSystem(System):
    """A host replayed from captured output: files and command results; anything not listed is missing."""

    locks = False  # no lock files on this machine for a replayed host (lock.py is tested with real processes)

    files: Dict[str, str] = field(default_factory=dict)
    commands: Dict[str, Result] = field(default_factory=dict)  # key: " ".join(argv)
    programs: Dict[str, str] = field(default_factory=dict)  # name -> path, for which()
    env: Dict[str, str] = field(default_factory=dict)
    uid: int = 0
    root_same: Optional[bool] = True
    clock: float = 1_800_000_000.0
    mtimes: Dict[str, float] = field(default_factory=dict)
    disk: Dict[str, float] = field(default_factory=dict)
    inodes: Dict[str, tuple] = field(default_factory=dict)  # path -> (free, total), as System.inodes_free gives
    http: Dict[str, Optional[str]] = field(default_factory=dict)  # url -> error (absent: it answers)
    calls: list = field(default_factory=list)
    links: Dict[str, str] = field(default_factory=dict)  # symlink -> what it resolves to
    machine_platform: tuple = ("Linux", "x86_64", ("glibc", "2.41"))
    gnu_libc: Optional[str] = "glibc 2.41"
    lock_pids: Dict[str, int] = field(default_factory=dict)  # lock file -> the pid holding it (absent: none)

    @classmethod
    def from_dict(cls, data: dict) -> "FakeSystem":
        return cls(
            files=data.get("files", {}),
            commands={k: Result(**v) for k, v in data.get("commands", {}).items()},
            programs=data.get("programs", {}), env=data.get("env", {}), uid=data.get("uid", 0),
            root_same=data.get("root_same", True), clock=data.get("clock", 1_800_000_000.0),
            mtimes=data.get("mtimes", {}), links=data.get("links", {}),
        )

    def run(self, argv, *, env=None, timeout=None, input=None, on_line=None, cwd=None) -> Result:
        key = command_key(argv)
        self.calls.append(key)
        for pattern, result in self.commands.items():
            if key == pattern or (pattern.endswith("*") and key.startswith(pattern[:-1])):
                if on_line:
                    for line in result.output.splitlines():
                        on_line(line)
                return result
        return Result(NOT_FOUND, "", f"{argv[0]}: not found (not in the captured host)")

    def start(self, argv, *, env=None):
        return FakeJob(self, argv, env)

    def read_text(self, path):
        return self.files.get(path)

    def write_text(self, path, text):
        self.files[path] = text
        return True

    def realpath(self, path):
        return self.links.get(path, path)

    def temp_dir(self, prefix):
        path = f"/tmp/{prefix}{sum(1 for f in self.files if f.startswith('/tmp/' + prefix))}"
        self.files[path + "/.made"] = ""  # exists() until remove_tree
        return path

    def remove_tree(self, path):
        self.calls.append(f"remove_tree {path}")
        for f in [f for f in self.files if f == path or f.startswith(path.rstrip("/") + "/")]:
            del self.files[f]

    def exists(self, path):
        return path in self.files or any(f.startswith(path.rstrip("/") + "/") for f in self.files)

    def which(self, name):
        return self.programs.get(name)

    def glob(self, pattern):
        import fnmatch

        return [f for f in self.files if fnmatch.fnmatchcase(f, pattern)]

    def mtime(self, path):
        return self.mtimes.get(path)

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        return sorted({f[len(prefix):].split("/", 1)[0] for f in self.files if f.startswith(prefix)})

    def now(self):
        return self.clock

    def disk_free_gb(self, path):
        return self.disk.get(path)

    def inodes_free(self, path):
        return self.inodes.get(path)

    def http_error(self, url, timeout=3, trust=None):
        return self.http.get(url)

    def euid(self):
        return self.uid

    def platform(self):
        return self.machine_platform

    def glibc(self):
        return self.gnu_libc

    def lock_holder(self, path):
        return self.lock_pids.get(path, 0 if path in self.files else None)

    def same_root(self):
        return self.root_same


class FakeJob:
    """Replays a started command: it runs (through FakeSystem.run) when finished, not when started."""

    def __init__(self, system: FakeSystem, argv, env):
        self.system, self.argv, self.env = system, list(argv), env
        self.sent: Optional[str] = None
        self.cancelled = False
        system.calls.append("start " + command_key(argv))

    def finish(self, line: str, timeout=None) -> Result:
        self.sent = line
        return self.system.run(self.argv, env=self.env, timeout=timeout)

    def cancel(self) -> None:
        self.cancelled = True
        self.system.calls.append("cancel " + command_key(self.argv))


class _Env(dict):
    """Remembers which variables were read, so a capture keeps only those."""

    def __init__(self, data, seen):
        super().__init__(data)
        self.seen = seen

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


class RecordingSystem(System):
    """The real host, writing down every answer: `scripts/capture-host` turns a run into a fixture."""

    def __init__(self):
        super().__init__()
        self.seen_env: set = set()
        self.env = _Env(self.env, self.seen_env)
        self.record: dict = {"files": {}, "commands": {}, "programs": {}, "mtimes": {}, "links": {}}

    def run(self, argv, **kw):
        res = super().run(argv, **kw)
        self.record["commands"][command_key(argv)] = {"rc": res.rc, "stdout": res.stdout, "stderr": res.stderr}
        return res

    def read_text(self, path):
        if path.endswith("compiler-check.json"):
            return None  # a cache, not a fact of the host: the capture must see the build test itself
        text = super().read_text(path)
        if text is not None:
            self.record["files"][path] = text
        return text

    def exists(self, path):
        found = super().exists(path)
        if found and path not in self.record["files"]:
            self.record["files"][path] = ""
        return found

    def which(self, name):
        path = super().which(name)
        if path:
            self.record["programs"][name] = path
        return path

    def glob(self, pattern):
        found = super().glob(pattern)
        for path in found:
            self.record["files"].setdefault(path, "")
        return found

    def listdir(self, path):
        names = super().listdir(path)
        for name in names:
            self.record["files"].setdefault(os.path.join(path, name), "")
        return names

    def realpath(self, path):
        real = super().realpath(path)
        if real != path:
            self.record["links"][path] = real
        return real

    def mtime(self, path):
        value = super().mtime(path)
        if value is not None:
            self.record["mtimes"][path] = value
        return value

    def now(self):
        if "clock" not in self.record:  # replays must see the time the facts were computed with
            self.record["clock"] = super().now()
        return self.record["clock"]

    def fixture(self) -> dict:
        env = {k: dict.get(self.env, k) for k in sorted(self.seen_env) if dict.get(self.env, k) is not None}
        return dict(self.record, env=env, uid=self.euid(), root_same=self.same_root(), clock=self.now())
