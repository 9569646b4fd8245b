"""`install` on a terminal in a chroot without /dev/pts (no pseudo-terminal can be opened there: os.openpty fails
with ENODEV): the README's command completes, its commands print plain lines, and says so once.

The terminal is a real one: util-linux `script` runs the chroot on a pty of the host, so torch-setup's stdout and
stderr are a tty, while inside the root /dev/pts is not mounted and /dev/ptmx has no devpts instance beside it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.roots import build_pyz_in, debian_root

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
NOTE = "(no pseudo-terminal here: No such device; commands print plain lines)"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    if not shutil.which("script"):
        pytest.skip("util-linux `script` is needed to give the chroot a terminal")
    with debian_root("trixie", tmp_path_factory.mktemp("nopts")) as r:
        build_pyz_in(r)
        subprocess.run(["umount", str(r.path / "dev" / "pts")], check=True)
        yield r


def on_a_terminal(root, command: str, timeout: float) -> subprocess.CompletedProcess:
    env = " ".join(f"{k}={v}" for k, v in root.env({"TERM": "xterm"}).items())
    inner = f"chroot {root.path} /usr/bin/env -i {env} /bin/sh -c '{command}'"
    return subprocess.run(["script", "-qefc", inner, "/dev/null"], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_the_root_has_no_pty(root):
    res = root.run(["python3", "-c", "import os; os.openpty()"])
    assert res.returncode != 0 and "No such device" in res.stderr, res.stderr


def test_install_on_a_terminal_without_dev_pts_completes_with_plain_lines(root):
    res = on_a_terminal(root, "cd /root/torch-setup && python3 dist/torch-setup.pyz install --yes", 3600)
    out = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]", "", res.stdout)  # the terminal reporter's colours and redraws
    flat = re.sub(r"\s+", " ", out)  # and its wrapping at the terminal's width
    assert res.returncode == 0, out[-4000:]
    assert "OSError" not in out and "Errno 19" not in out, out[-4000:]
    assert flat.count(NOTE) == 1, (flat.count("pseudo"), out[:3000])
    assert "torch.compile" in out
