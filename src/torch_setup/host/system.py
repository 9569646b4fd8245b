"""The one seam for side effects: processes, files, the environment, the clock and the network's one question.

Everything else takes a `System` and stays pure, so tests hand it a `host.replay.FakeSystem` built from output
captured on real machines (tests/fixtures/hosts/*.json).
"""
from __future__ import annotations

import codecs
import errno
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from torch_setup.host import children


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


NOT_FOUND = 127


def _not_started(e: OSError, seconds: float = 0.0) -> Result:
    """A program that could not be started, as a shell says it: 127 when it is missing, 126 when it may not run."""
    return Result(NOT_FOUND if isinstance(e, FileNotFoundError) else 126, "", str(e), seconds)


_PTY_LOCK = threading.Lock()  # steps may run in parallel: the note that there is no pty comes once
NEWLINE = re.compile(r"\r\n|\r|\n")
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B])")


class System:
    """The real host."""

    tty = False  # True on a terminal: streamed commands run on a pty (their own progress bars)
    notice: Optional[Callable[[str], None]] = None  # a line for the person watching (the reporter's), not a step's

    def __init__(self, env: Optional[Mapping[str, str]] = None):
        self.env: Dict[str, str] = dict(os.environ if env is None else env)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        input: Optional[str] = None,
        on_line: Optional[Callable[[str], None]] = None,
        cwd: Optional[str] = None,
    ) -> Result:
        """Run argv; a missing program is rc 127, a timeout rc 124, never an exception."""
        full_env = dict(self.env)
        full_env.update(env or {})
        start = time.monotonic()
        try:
            if on_line is None:
                p = subprocess.run(
                    list(argv), env=full_env, timeout=timeout, input=input, capture_output=True,
                    text=True, errors="replace", cwd=cwd, pass_fds=children.kept(),
                )
                return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - start)
            pty = self._pty(on_line) if self.tty else None
            if pty is not None:
                return self._run_on_pty(argv, full_env, cwd, on_line, start, pty)
            return self._run_to_file(argv, full_env, cwd, on_line, start, timeout)
        except OSError as e:  # missing, not executable, not a program at all (Exec format error)
            return _not_started(e, time.monotonic() - start)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Result(124, out, f"timed out after {timeout} s", time.monotonic() - start)

    def _run_to_file(self, argv, env, cwd, on_line, start, timeout) -> Result:
        """Streamed without a terminal: stderr folded into stdout, so progress and errors keep their order, and
        both go to an unlinked file this process reads as it grows, never to a pipe. A pipe dies with its reader:
        after a bare `kill -9` of torch-setup, dpkg's next "Setting up ..." line would kill it with SIGPIPE in the
        middle of configuring; a file lets it finish (its lock, inherited, keeps a rerun waiting). A grandchild
        that keeps the output open (a daemon a postinst starts) cannot hold the run either: it ends with the
        command."""
        out = tempfile.TemporaryFile(prefix="torch-setup-out-")
        try:
            proc = subprocess.Popen(
                list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                start_new_session=True,  # its own process group: a signal to torch-setup stops it and its children
                pass_fds=children.kept(),  # the run's locks live as long as the command (host/children.py)
            )
        except BaseException:
            out.close()
            raise
        children.register(proc)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        deadline = None if timeout is None else start + timeout
        chunks: List[str] = []
        pending, pos, note = "", 0, ""
        try:
            while True:
                rc = proc.poll()  # asked before the read: once it has ended, the reads below get all it wrote
                data = os.pread(out.fileno(), 65536, pos)
                if data:
                    pos += len(data)
                    text = decoder.decode(data)
                    chunks.append(text)
                    buf = pending + text
                    held = "\r" if buf.endswith("\r") else ""  # its \n may come in the next read
                    *done, pending = NEWLINE.split(buf[:len(buf) - len(held)])  # \r too, as text mode reads
                    pending += held
                    for line in done:
                        on_line(line)
                    continue
                if rc is not None:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    children.kill_group(proc)
                    proc.wait()
                    rc, note = 124, f"timed out after {timeout} s"
                    break
                time.sleep(0.05)
        finally:
            children.unregister(proc)
            out.close()
        last = decoder.decode(b"", final=True)
        chunks.append(last)
        tail = (pending + last).rstrip("\r")
        if tail:
            on_line(tail)
        return Result(rc, NEWLINE.sub("\n", "".join(chunks)), note, time.monotonic() - start)

    def openpty(self) -> tuple:
        """(master, slave) file descriptors of a new pseudo-terminal; OSError where none can be opened."""
        if not hasattr(os, "openpty"):
            raise OSError(errno.ENOSYS, "no os.openpty on this platform")
        return os.openpty()

    def _pty(self, on_line) -> Optional[tuple]:
        """A pty for the next command, or None: where none can be opened (a chroot or a minimal container without
        /dev/pts: ENODEV, ENOENT) commands write plain lines to a file from then on, and on_line hears it once."""
        try:
            return self.openpty()
        except OSError as e:
            with _PTY_LOCK:
                if self.tty:
                    self.tty = False
                    (self.notice or on_line)(f"(no pseudo-terminal here: {e.strerror or e}; commands print "
                                             "plain lines)")
            return None

    def _run_on_pty(self, argv, env, cwd, on_line, start, pty) -> Result:
        """On a terminal: the command gets a pty, so pip, uv and apt show their own progress; each redraw
        (ended by \\r or \\n) comes through on_line, without colour codes."""
        master, slave = pty
        try:
            proc = subprocess.Popen(list(argv), env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                                    cwd=cwd, start_new_session=True, pass_fds=children.kept())
        finally:
            os.close(slave)
        children.register(proc)
        lines, pending = [], b""
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the pty
                    break
                if not data:
                    break
                *parts, pending = re.split(rb"[\r\n]", pending + data)
                for part in parts:
                    text = ANSI.sub("", part.decode(errors="replace")).rstrip()
                    if text:
                        on_line(text)
                        if not lines or lines[-1] != text:
                            lines.append(text)
        finally:
            os.close(master)
            children.unregister(proc)
        rc = proc.wait()
        tail = ANSI.sub("", pending.decode(errors="replace")).strip()
        lines += [tail] if tail else []
        return Result(rc, "\n".join(lines) + "\n", "", time.monotonic() - start)

    def start(self, argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None) -> "Job":
        """Start argv in the background; Job.finish sends it one line and waits for its Result."""
        full_env = dict(self.env)
        full_env.update(env or {})
        return Job(list(argv), full_env)

    def read_text(self, path: str) -> Optional[str]:
        try:
            return Path(path).read_text(errors="replace")
        except (OSError, UnicodeError):
            return None

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def realpath(self, path: str) -> str:
        """The path with its symbolic links resolved (g++ -> g++-14, a venv's python -> the base)."""
        return os.path.realpath(path)

    def temp_dir(self, prefix: str) -> str:
        """A new private directory (the caller removes it with remove_tree)."""
        return tempfile.mkdtemp(prefix=prefix)

    def write_text(self, path: str, text: str) -> bool:
        """Best effort (a cache): False when it cannot be written."""
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            Path(tmp).write_text(text)
            os.replace(tmp, path)
            return True
        except OSError:
            return False

    def which(self, name: str) -> Optional[str]:
        return shutil.which(name, path=self.env.get("PATH"))

    def glob(self, pattern: str) -> List[str]:
        import glob

        return glob.glob(pattern)

    def mtime(self, path: str) -> Optional[float]:
        try:
            return os.stat(path).st_mtime
        except OSError:
            return None

    def listdir(self, path: str) -> list:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def now(self) -> float:
        return time.time()

    def lock_holder(self, path: str) -> Optional[int]:
        """The pid of a process holding a POSIX record lock (fcntl F_SETLK, as dpkg and apt take theirs) on path,
        0 when none does, None when that can not be asked (no such file, not readable, not POSIX). It only asks
        (F_GETLK): it never takes the lock, so a package manager starting meanwhile never fails on it."""
        import sys

        if sys.platform != "linux":  # struct flock's layout differs elsewhere (macOS puts l_type last)
            return None
        import fcntl
        import struct

        fmt = "hhqqi"  # struct flock on Linux (l_type, l_whence, l_start, l_len, l_pid); fcntl's buffer is larger
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            l_type, _, _, _, pid = struct.unpack(fmt, got[:struct.calcsize(fmt)])
        except (OSError, ValueError, struct.error):
            return None
        finally:
            os.close(fd)
        return 0 if l_type == fcntl.F_UNLCK else (pid or -1)

    def disk_free_gb(self, path: str) -> Optional[float]:
        try:
            return shutil.disk_usage(path).free / 1e9
        except OSError:
            return None

    def inodes_free(self, path: str) -> Optional[Tuple[int, int]]:
        """(inodes free to unprivileged users, inodes in all) of the filesystem holding `path`; None where it does not
        count inodes (btrfs, some network filesystems) or cannot be asked."""
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return (st.f_favail, st.f_files) if st.f_files else None

    def http_error(self, url: str, timeout: float = 3, trust=None) -> Optional[str]:
        """None when url answers (any HTTP status below 500), else why not, briefly. `trust` (wheels.trust.Trust,
        default: from this environment): the certificates it is verified with, as the choice of torch does; a
        certificate that does not verify is said to be one ("TLS verification failed with ...")."""
        if url.startswith("file://"):
            return None if os.path.exists(url[7:]) else "no such directory"
        import requests  # imported here: most commands never touch the network

        from torch_setup.wheels import trust as trusting

        trust = trust or trusting.from_config(self.env)
        try:
            r = trusting.session(trust).head(url, timeout=timeout, allow_redirects=True, verify=trust.verify)
            return None if r.status_code < 500 else f"HTTP {r.status_code}"
        except requests.RequestException as e:
            if trusting.is_tls_failure(e):
                return f"TLS verification failed with {trust.label}"
            return type(e).__name__
        except OSError:  # a CA file that does not exist
            if trust.ca_file and not os.path.isfile(trust.ca_file):
                return f"TLS verification failed: the CA file {trust.ca_file} ({trust.origin}) does not exist"
            raise

    def euid(self) -> int:
        return os.geteuid() if hasattr(os, "geteuid") else -1

    def platform(self) -> tuple:
        """(platform.system(), platform.machine(), platform.libc_ver()) of this process's host."""
        import platform

        return platform.system(), platform.machine(), platform.libc_ver()

    def glibc(self) -> Optional[str]:
        """'glibc 2.41', or None (musl, macOS)."""
        try:
            return os.confstr("CS_GNU_LIBC_VERSION")
        except (AttributeError, ValueError, OSError):
            return None

    def same_root(self) -> Optional[bool]:
        """False inside a chroot: / is not the root of PID 1 (needs /proc and root to tell)."""
        try:
            a, b = os.stat("/"), os.stat("/proc/1/root/.")
            return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        except OSError:
            return None


class Job:
    """A command running in the background. Its output goes to files, so it never blocks on a full pipe however
    long it waits for its line."""

    def __init__(self, argv: list, env: Dict[str, str]):
        self.started = time.monotonic()
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # bytes: decoded leniently
        self.result: Optional[Result] = None  # set once it has ended (or could not start)
        try:
            self.proc: Optional[subprocess.Popen] = subprocess.Popen(
                argv, env=env, stdin=subprocess.PIPE, stdout=self.out, stderr=self.err, text=True,
                start_new_session=True, pass_fds=children.kept())
            children.register(self.proc)
        except OSError as e:
            self.proc = None
            self.out.close()
            self.err.close()
            self.result = _not_started(e)

    def finish(self, line: str, timeout: Optional[float] = None) -> Result:
        """Send line (the command may have ended already), then wait for the end; rc 124 on a timeout."""
        if self.result is not None:
            return self.result
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.close()
        except OSError:  # it ended without reading: its output says why
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
            note = ""
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc, note = 124, f"timed out after {timeout} s\n"
        return self._collect(rc, note)

    def cancel(self) -> None:
        if self.result is None:
            children.kill_group(self.proc)
            self._collect(self.proc.wait(), "cancelled\n")

    def _collect(self, rc: int, note: str) -> Result:
        children.unregister(self.proc)
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
            f.close()
        self.result = Result(rc, texts[0], texts[1] + note, time.monotonic() - self.started)
        return self.result
