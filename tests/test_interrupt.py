"""SIGINT, SIGTERM and SIGHUP during a real `install`: the child's process group stops (no orphan keeps
installing), the venv this run made goes, one line says what was interrupted and kept, exit 128 + the signal."""
from __future__ import annotations

import signal
import sys

import pytest

import fakehost

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc")


fake = fakehost.fake  # the fixture
wait_for = fakehost.wait_for


@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM"),
                                             (signal.SIGHUP, 129, "SIGHUP")])
def test_a_signal_during_the_torch_step_stops_it_and_removes_the_venv(tmp_path, fake, sig, code, name):
    host = fake
    proc = fakehost.start(host)
    assert wait_for(lambda: host["pids"].exists() and host["pids"].read_text().strip()), proc.communicate()
    uv_pid, child_pid = map(int, host["pids"].read_text().split())
    assert fakehost.alive(child_pid)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.startswith("torch-setup: interrupted")]
    assert len(lines) == 1, err
    assert f"interrupted by {name} during step 'torch'" in lines[0]
    assert f"removed {host['venv']}" in lines[0]
    assert "Traceback" not in err and "unexpected" not in err
    assert wait_for(lambda: not fakehost.alive(uv_pid) and not fakehost.alive(child_pid), 10), "an orphan runs on"
    assert not (tmp_path / "venv").exists()


def test_a_venv_that_was_there_before_is_kept(tmp_path, fake):
    host = fake
    import subprocess
    subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", host["venv"]])
    proc = fakehost.start(host)
    assert wait_for(lambda: host["pids"].exists() and host["pids"].read_text().strip()), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "removed" not in err
    assert (tmp_path / "venv" / "bin").is_dir()
