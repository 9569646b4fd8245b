"""Real Debian minbase roots for end-to-end tests.

``cached_tarball(suite)`` debootstraps a root once and caches it as a tarball;
``debian_root(suite, workdir)`` untars a fresh copy, mounts what pip/apt/gcc need and
runs commands in it with chroot. ``arch="arm64"`` (any Debian architecture other than the
host's) builds and runs a foreign root under qemu-user through binfmt_misc
(``ensure_emulation``). Teardown unmounts everything under the root and
refuses to delete the tree while any mount remains (``rm -rf`` through a live mount
deletes whatever is mounted there). Stdlib only; needs root.
"""
from __future__ import annotations

import json
import contextlib
import fcntl
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Union

log = logging.getLogger(__name__)

SUITES = ("bookworm", "trixie", "forky", "sid")
MIRROR = "http://deb.debian.org/debian"
CA_IN_ROOT = "/usr/local/share/torch-setup-test/host-ca.crt"
APT_CONF = "/etc/apt/apt.conf.d/99torch-setup-test"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_TIMEOUT = 1800  # a hung mirror must not eat the whole CI budget
FOREIGN_BUILD_TIMEOUT = 3600  # the second stage runs emulated: 283 s here on 2 idle cores, ~14 min loaded
# Debian architecture -> the binfmt_misc entry qemu-user-static registers for it.
QEMU_BINFMT = {"arm64": "qemu-aarch64", "armhf": "qemu-arm", "ppc64el": "qemu-ppc64le",
               "riscv64": "qemu-riscv64", "s390x": "qemu-s390x"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# (name, major, minor): the nodes minbase needs; debootstrap creates them, tar keeps them.
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
             ("urandom", 1, 9), ("tty", 5, 0), ("ptmx", 5, 2))


class RootError(RuntimeError):
    """A root could not be built, set up or safely torn down."""


def cache_dir() -> Path:
    env = os.environ.get("TORCH_SETUP_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "torch-setup-tests"


def _debootstrap() -> str:
    # /usr/sbin is not on every PATH (e.g. sudo-less user shells), so look there too.
    exe = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not exe:
        raise RootError("debootstrap is not installed; install it with: apt-get install -y debootstrap")
    return exe


def _script_for(suite: str, exe: str) -> list:
    # Older debootstrap (Debian 12's) has no script for newer suites such as forky;
    # they all work with sid's script.
    scripts = Path(exe).resolve().parents[1] / "share" / "debootstrap" / "scripts"
    if not scripts.is_dir():
        scripts = Path("/usr/share/debootstrap/scripts")
    return [] if (scripts / suite).exists() else [str(scripts / "sid")]


def host_arch() -> str:
    """This machine's Debian architecture name (amd64, arm64, ...)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el"}.get(machine, machine)


def _binfmt_entry(arch: str) -> dict:
    """The binfmt_misc entry for ``arch`` as {"enabled": bool, "interpreter": str, "flags": str}; {} if none."""
    entry = BINFMT_DIR / QEMU_BINFMT.get(arch, f"qemu-{arch}")
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        return {}
    out = {"enabled": bool(lines) and lines[0].strip() == "enabled", "interpreter": "", "flags": ""}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key in ("interpreter", "flags:"):
            out[key.rstrip(":")] = value.strip()
    return out


def ensure_emulation(arch: str) -> dict:
    """Make ``arch`` binaries runnable on this host (nothing to do for the host's own architecture): mount
    binfmt_misc if it is not, enable qemu-user-static's entry if it is disabled; raise RootError naming the
    packages to install when there is none. Returns the entry (its interpreter and flags)."""
    if arch == host_arch():
        return {}
    if arch not in QEMU_BINFMT:
        raise RootError(f"no qemu-user entry known for architecture {arch!r}; known: {sorted(QEMU_BINFMT)}")
    if not (BINFMT_DIR / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True)
    entry = _binfmt_entry(arch)
    if entry and not entry["enabled"] and shutil.which("update-binfmts", path="/usr/sbin:/sbin:/usr/bin"):
        subprocess.run(["update-binfmts", "--enable", QEMU_BINFMT[arch]], capture_output=True)
        entry = _binfmt_entry(arch)
    if not entry or not entry["enabled"] or not os.path.exists(entry["interpreter"]):
        raise RootError(f"{arch} binaries cannot run here: no enabled binfmt_misc entry {QEMU_BINFMT[arch]}; "
                        "install them with: apt-get install -y qemu-user-static binfmt-support "
                        "(or run scripts/test --arch arm64, which does)")
    return entry


def place_interpreter(root_dir: Union[str, Path], arch: str) -> Optional[str]:
    """Without binfmt_misc's F flag the kernel opens the qemu interpreter by its path inside the chroot: copy
    the (static) interpreter there. Returns the path in the root, or None when none is needed."""
    entry = ensure_emulation(arch)
    if not entry or "F" in entry["flags"]:
        return None
    rel = entry["interpreter"].lstrip("/")
    dest = Path(root_dir) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    shutil.copy2(os.path.realpath(entry["interpreter"]), dest)
    return "/" + rel


def tarball_name(suite: str, include: Iterable[str] = ("python3",), arch: Optional[str] = None) -> str:
    """The cache name: ``trixie-minbase-python3`` for the host's architecture (the name the cache always had),
    ``trixie-arm64-minbase-python3`` for another."""
    pkgs = sorted(set(include))  # sorted so equal sets share one cache entry
    tag = "" if arch in (None, host_arch()) else f"-{arch}"
    return f"{suite}{tag}-minbase" + (f"-{','.join(pkgs)}" if pkgs else "")


def cached_tarball(suite: str, include: Iterable[str] = ("python3",), arch: Optional[str] = None) -> Path:
    """Path to a cached tarball of a debootstrap minbase root of ``suite`` (of ``arch``, the host's by default);
    builds it if absent."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {SUITES}")
    arch = arch or host_arch()
    pkgs = sorted(set(include))
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    name = tarball_name(suite, pkgs, arch)
    tarball = cache / f"{name}.tar"
    if tarball.exists():
        return tarball
    exe = _debootstrap()
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building it
        if tarball.exists():
            return tarball
        _build(suite, pkgs, exe, cache, tarball, cache / f"{name}.log", arch)
    return tarball


def _build(suite: str, pkgs: list, exe: str, cache: Path, tarball: Path, logfile: Path,
           arch: Optional[str] = None) -> None:
    foreign = arch not in (None, host_arch())
    for stale in cache.glob(f".build-{tarball.stem}@*"):  # left by a killed build; we hold the lock
        stale.unlink() if stale.is_file() else remove_tree(stale)
    build = Path(tempfile.mkdtemp(prefix=f".build-{tarball.stem}@", dir=cache))
    tmp_tar = build.parent / (build.name + ".tar")
    argv = [exe, "--variant=minbase"] + ([f"--include={','.join(pkgs)}"] if pkgs else [])
    argv += [f"--arch={arch}"] if foreign else []
    argv += [suite, str(build / "root"), MIRROR] + _script_for(suite, exe)
    timeout = FOREIGN_BUILD_TIMEOUT if foreign else BUILD_TIMEOUT
    start = time.monotonic()
    try:
        # debootstrap's second stage chroots into the new root: a foreign one needs qemu's interpreter there
        # (unless binfmt_misc holds it open, flag F); it is removed again before the tarball is made.
        interp = place_interpreter(build / "root", arch) if foreign and arch else None
        with open(logfile, "w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            try:
                proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RootError(f"debootstrap {suite} timed out after {timeout}s; see {logfile}") from None
        if proc.returncode != 0:
            tail = logfile.read_text(errors="replace")[-3000:]
            raise RootError(f"debootstrap {suite} failed (rc={proc.returncode}); see {logfile}:\n{tail}")
        built = time.monotonic() - start
        # debootstrap unmounts its proc/sys on exit; never tar a live /proc.
        assert_no_mounts(build)
        if interp:
            (build / "root" / interp.lstrip("/")).unlink()
        os.chmod(build / "root", 0o755)
        subprocess.run(["tar", "-C", str(build / "root"), "--numeric-owner", "-cf", str(tmp_tar), "."],
                       check=True)
        os.replace(tmp_tar, tarball)  # atomic: readers see no tarball or a complete one
        line = (f"built {tarball.name}: debootstrap {built:.1f}s, "
                f"total {time.monotonic() - start:.1f}s, {tarball.stat().st_size >> 20} MiB")
        with open(logfile, "a") as out:
            out.write(line + "\n")
        log.warning("%s", line)  # warning so pytest shows it: a rebuild costs CI time
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_tar.unlink()
        remove_tree(build)


# --- mounts and safe removal -------------------------------------------------------------

def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Union[str, Path]) -> list:
    """Mount points at or below ``path``, deepest (and most recently mounted) first."""
    top = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape(line.split()[4])
            if mp == top or mp.startswith(top.rstrip("/") + "/"):
                found.append(mp)
    # Reverse first so stacked mounts on one point come off newest first; the stable sort
    # then puts deeper paths before their parents.
    return sorted(reversed(found), key=lambda m: m.count("/"), reverse=True)


def assert_no_mounts(path: Union[str, Path]) -> None:
    left = mounts_under(path)
    if left:
        raise RootError(f"mounts remain under {path}, refusing to delete it: {left}")


def unmount_all(path: Union[str, Path]) -> None:
    """Unmount everything at or below ``path``; raise if anything is still mounted."""
    for mp in mounts_under(path):
        if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
            # Busy (a process left running in the root): detach it now, the kernel frees it later.
            subprocess.run(["umount", "-l", mp], capture_output=True)
    assert_no_mounts(path)


def remove_tree(path: Union[str, Path]) -> None:
    """Delete ``path`` only after proving nothing is mounted below it."""
    path = Path(path)
    if not path.exists():
        return
    if os.path.realpath(path) == "/":
        raise RootError("refusing to remove /")
    unmount_all(path)
    shutil.rmtree(path)


# --- a root you can run commands in ----------------------------------------------------

class Root:
    """A fresh copy of a cached Debian root, set up for chroot; see ``debian_root``."""

    def __init__(self, path: Path, suite: str, arch: Optional[str] = None):
        self.path = Path(path)
        self.suite = suite
        self.arch = arch or host_arch()
        self.ca_in_root: Optional[str] = None
        self.timings: dict = {}

    @classmethod
    def create(cls, suite: str, workdir: Union[str, Path], include: Iterable[str] = ("python3",),
               arch: Optional[str] = None) -> "Root":
        tarball = cached_tarball(suite, include, arch)
        Path(workdir).mkdir(parents=True, exist_ok=True)
        arch = arch or host_arch()
        tag = "" if arch == host_arch() else f"{arch}-"
        root = cls(Path(tempfile.mkdtemp(prefix=f"{suite}-{tag}root-", dir=workdir)), suite, arch)
        try:
            start = time.monotonic()
            subprocess.run(["tar", "-C", str(root.path), "--numeric-owner", "-xpf", str(tarball)], check=True)
            root.timings["extract_s"] = time.monotonic() - start
            root._setup()
            root.timings["ready_s"] = time.monotonic() - start
            log.info("%s root ready in %.1fs at %s", suite, root.timings["ready_s"], root.path)
        except BaseException:
            root.teardown()
            raise
        return root

    def _setup(self) -> None:
        os.chmod(self.path, 0o755)  # mkdtemp made it 0700; apt's _apt user must traverse /
        if self.arch != host_arch():
            place_interpreter(self.path, self.arch)
        self._mount("proc", "proc", "proc")
        self._mount("sysfs", "sys", "sysfs", "ro")  # read-only: tools read CPU facts, none write
        self._ensure_dev()
        # A private devpts instance (not a bind of the host's /dev): apt/dpkg want a pty,
        # and nothing under it maps to host files.
        self._mount("devpts", "dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=620")
        os.chmod(self.path / "dev/shm", 0o1777)  # as on a real box (a tmpfs), for non-root users
        self.copy_in("/etc/resolv.conf", "/etc/resolv.conf")
        # The archive reachable here can lag the clock; sid/forky Release files then count as
        # expired and `apt-get update` refuses them. Stable suites carry no Valid-Until.
        self.host_path(APT_CONF).write_text('Acquire::Check-Valid-Until "false";\n')
        host_ca = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
        if os.path.isfile(host_ca):
            # Outside /usr/local/share/ca-certificates on purpose: the root's own trust store
            # stays Debian's, only our env vars point here.
            self.copy_in(host_ca, CA_IN_ROOT)
            self.ca_in_root = CA_IN_ROOT

    def _mount(self, source: str, target: str, fstype: str, options: str = "") -> None:
        dest = self.path / target
        dest.mkdir(parents=True, exist_ok=True)
        argv = ["mount", "-t", fstype] + (["-o", options] if options else []) + [source, str(dest)]
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise RootError(f"{' '.join(argv)} failed: {res.stderr.strip()}")

    def _ensure_dev(self) -> None:
        # debootstrap creates these nodes and tar (as root) keeps them; recreate any that
        # are missing rather than bind-mounting the host's /dev.
        for name, major, minor in DEV_NODES:
            node = self.path / "dev" / name
            try:
                if stat.S_ISCHR(node.lstat().st_mode):
                    continue
                node.unlink()
            except FileNotFoundError:
                pass
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))

    def env(self, extra: Optional[Mapping[str, str]] = None) -> dict:
        """A clean environment for commands in the root (the host's is not inherited)."""
        env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive"}
        if self.ca_in_root:
            env.update(SSL_CERT_FILE=self.ca_in_root, REQUESTS_CA_BUNDLE=self.ca_in_root,
                       PIP_CERT=self.ca_in_root)
        env.update(extra or {})
        return env

    def run(self, argv: Union[str, Sequence[str]], env: Optional[Mapping[str, str]] = None,
            check: bool = False, timeout: Optional[float] = None,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` (a string goes through ``/bin/sh -c``) as root inside the root."""
        if isinstance(argv, str):
            argv = ["/bin/sh", "-c", argv]
        return subprocess.run(["chroot", str(self.path), *argv], env=self.env(env), check=check,
                              timeout=timeout, input=input, text=True, capture_output=True)

    def start(self, argv: Union[str, Sequence[str]], logs: Union[str, Path],
              env: Optional[Mapping[str, str]] = None) -> "Started":
        """Start ``argv`` inside the root in the background, Popen-like, so a test can signal it: it leads its
        own session (its process group is its pid, as a shell's job), stdin is empty, stdout and stderr go to
        files under ``logs`` (never a pipe nobody reads, which would stall a long install)."""
        if isinstance(argv, str):
            argv = ["/bin/sh", "-c", argv]
        return Started(["chroot", str(self.path), *argv], self.env(env), Path(logs))

    def processes(self) -> list:
        """(pid, argv) of every process running inside this root (its /proc/PID/root is the root), found on the
        host's /proc: what a test asserts is gone after a kill."""
        top = os.path.realpath(self.path)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/root") != top:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            except OSError:  # gone meanwhile, or a kernel thread
                continue
            if argv:  # a zombie has no cmdline: it runs nothing
                found.append((int(entry), argv))
        return found

    def host_path(self, path_in_root: str) -> Path:
        """Host path of ``path_in_root``; raises if its directory resolves outside the root."""
        rel = path_in_root.strip("/")
        dest = self.path / rel
        top = os.path.realpath(self.path)
        parent = os.path.realpath(dest.parent)
        if rel and parent != top and not parent.startswith(top + "/"):
            raise RootError(f"{path_in_root} resolves outside the root ({parent})")
        return dest

    def copy_in(self, host_path: Union[str, Path], path_in_root: str) -> Path:
        """Copy a file or directory from the host to ``path_in_root``; returns the host-side path."""
        self.host_path(os.path.dirname(path_in_root.rstrip("/")) or "/").mkdir(parents=True, exist_ok=True)
        dest = self.host_path(path_in_root)
        if dest.is_symlink():
            dest.unlink()  # an absolute symlink in the root would point the copy at the host
        if Path(host_path).is_dir():
            shutil.copytree(host_path, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(host_path, dest)
        return dest

    def bind(self, host_dir: Union[str, Path], path_in_root: str) -> Path:
        """Bind-mount a host directory at ``path_in_root`` (a cache the tests keep); teardown unmounts it before
        anything is deleted, so the host directory survives."""
        Path(host_dir).mkdir(parents=True, exist_ok=True)
        dest = self.host_path(path_in_root)
        dest.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(["mount", "--bind", str(host_dir), str(dest)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RootError(f"mount --bind {host_dir} {dest} failed: {res.stderr.strip()}")
        return dest

    def teardown(self) -> None:
        """Unmount everything under the root, verify none remain, then delete it."""
        remove_tree(self.path)


class Started:
    """A command started by ``Root.start``: a Popen with its output in files."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], logs: Path):
        logs.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="run-", dir=logs)
        os.close(fd)
        self.stdout_path, self.stderr_path = Path(name + ".out"), Path(name + ".err")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True)
        self.pid = self.proc.pid

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        return self.proc.wait(timeout)

    def signal_group(self, sig: int) -> None:
        """``sig`` to its whole process group, as a terminal's Ctrl-C or ``kill -SIG -PGID``."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@contextlib.contextmanager
def debian_root(suite: str, workdir: Union[str, Path], include: Iterable[str] = ("python3",),
                arch: Optional[str] = None) -> Iterator[Root]:
    """A fresh root of ``suite`` (of ``arch``, the host's by default) under ``workdir``, removed (mounts first)
    on exit."""
    root = Root.create(suite, workdir, include, arch)
    try:
        yield root
    finally:
        root.teardown()


def payload(text: str) -> dict:
    """A torch-setup command's JSON envelope ({version, command, ok, data, error}) as the tests read it: its data,
    with the envelope's ok and error beside it."""
    env = json.loads(text)
    assert {"version", "command", "ok", "data", "error"} == set(env), sorted(env)
    return {"ok": env["ok"], "error": env["error"], **env["data"]}  # a data key of the same name wins


def build_pyz_in(root: "Root") -> str:
    """The README's bare-box command, first half, inside `root`: the project's files (as a clone has them) and
    `python3 scripts/build-zipapp`, with nothing but the root's python3. Returns the pyz's path in the root."""
    repo = Path(__file__).resolve().parents[2]
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        if (repo / name).is_file():
            root.copy_in(repo / name, f"/root/torch-setup/{name}")
    res = root.run(["sh", "-c", "cd /root/torch-setup && python3 scripts/build-zipapp"], timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return "/root/torch-setup/dist/torch-setup.pyz"
