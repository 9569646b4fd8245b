"""The Debian test roots themselves: a trixie root reproduces the bare box we fix, and
teardown leaves nothing mounted or on disk."""
import os
import subprocess
import time

import pytest

from . import roots
from .roots import CA_IN_ROOT, Root, RootError, cached_tarball, debian_root, mounts_under

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mount need root"),
]


@pytest.fixture(scope="module")
def trixie_tarball():
    start = time.monotonic()
    tarball = cached_tarball("trixie")
    print(f"trixie tarball ready in {time.monotonic() - start:.1f}s: {tarball}")
    return tarball


@pytest.fixture
def trixie(trixie_tarball, tmp_path):
    with debian_root("trixie", tmp_path) as root:
        print(f"trixie root: extract {root.timings['extract_s']:.1f}s, ready {root.timings['ready_s']:.1f}s")
        yield root


def test_trixie_is_the_bare_box(trixie):
    res = trixie.run(["python3", "-c", "import sys; print(sys.version)"], check=True)
    assert res.stdout.startswith("3.13."), res.stdout
    assert not (trixie.path / "usr/include/python3.13/Python.h").exists()
    assert trixie.run(["sh", "-c", "command -v g++"]).returncode != 0
    venv = trixie.run(["python3", "-m", "venv", "/tmp/v"])
    assert venv.returncode != 0
    assert "ensurepip" in venv.stdout + venv.stderr
    assert (trixie.path / "usr/lib/python3.13/EXTERNALLY-MANAGED").is_file()


def test_root_env_and_devices(trixie):
    env = trixie.env({"FOO": "1"})
    assert env["HOME"] == "/root" and env["FOO"] == "1"
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["PIP_CERT"] == CA_IN_ROOT
    res = trixie.run('test -s "$SSL_CERT_FILE" && test -s /etc/resolv.conf && echo x > /dev/null '
                     '&& head -c1 /dev/urandom >/dev/null && test -d /proc/self && echo ok', check=True)
    assert res.stdout.strip() == "ok"
    assert trixie.run(["cat"], input="piped").stdout == "piped"


def test_teardown_unmounts_and_removes(trixie_tarball, tmp_path):
    with debian_root("trixie", tmp_path) as root:
        assert mounts_under(root.path)  # proc and friends are live inside
        path = root.path
    assert not path.exists()
    assert mounts_under(tmp_path) == []


def test_teardown_on_exception(trixie_tarball, tmp_path):
    with pytest.raises(KeyError):
        with debian_root("trixie", tmp_path) as root:
            path = root.path
            raise KeyError("boom")
    assert not path.exists()
    assert mounts_under(tmp_path) == []


def test_teardown_spares_host_files_behind_a_bind_mount(trixie_tarball, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "canary").write_text("keep me")
    with debian_root("trixie", tmp_path / "w") as root:
        (root.path / "mnt/host").mkdir()
        subprocess.run(["mount", "--bind", str(host), str(root.path / "mnt/host")], check=True)
    assert (host / "canary").read_text() == "keep me"
    assert mounts_under(tmp_path) == []


def test_teardown_refuses_to_delete_while_mounted(trixie_tarball, tmp_path, monkeypatch):
    root = Root.create("trixie", tmp_path)
    try:
        real_run = roots.subprocess.run
        monkeypatch.setattr(roots.subprocess, "run",
                            lambda argv, **kw: subprocess.CompletedProcess(argv, 32)
                            if argv[0] == "umount" else real_run(argv, **kw))
        with pytest.raises(RootError, match="refusing to delete"):
            root.teardown()
        assert (root.path / "etc/os-release").exists()
    finally:
        monkeypatch.undo()
        root.teardown()
    assert not root.path.exists()
