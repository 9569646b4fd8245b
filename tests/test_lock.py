"""Two real torch-setup processes on one target: the second says who runs (pid, since when), waits, and fails
with exit 13 past its timeout; the lock of a killed run is taken over; the host-wide package lock is one file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import fakehost
from torch_setup import lock
from torch_setup.errors import BusyError, ExitCode

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="flock and /proc")


fake = fakehost.fake  # the fixture
wait_for = fakehost.wait_for


def started(host):
    return host["pids"].exists() and host["pids"].read_text().strip()


def second(host, timeout, seconds="0"):
    env = dict(host["env"], TORCH_SETUP_LOCK_TIMEOUT=str(timeout), FAKE_UV_SECONDS=seconds)
    return subprocess.run([sys.executable, "-m", "torch_setup", "install", "--yes", "--no-verify", *host["args"]],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_second_install_on_the_same_venv_is_refused_with_the_first_ones_pid(fake):
    first = fakehost.start(fake)
    try:
        assert wait_for(lambda: started(fake)), first.communicate()
        p = second(fake, 0.5)
        assert p.returncode == ExitCode.BUSY == 13, p.stderr
        assert f"another torch-setup is running on {fake['venv']} (pid {first.pid}, since " in p.stderr
        assert "waiting up to 0.5 s" in p.stderr
        assert "Traceback" not in p.stderr and "removed" not in p.stderr
        assert os.path.isdir(fake["venv"])  # the first run's venv is not the second's to remove
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 143


def test_the_second_waits_for_the_first_and_then_runs(fake):
    first = fakehost.start(fake)
    assert wait_for(lambda: started(fake)), first.communicate()
    waiter = subprocess.Popen(
        [sys.executable, "-m", "torch_setup", "install", "--yes", "--no-verify", *fake["args"]],
        env=dict(fake["env"], TORCH_SETUP_LOCK_TIMEOUT="60", FAKE_UV_SECONDS="0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert waiter.poll() is None  # it waits
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=30)
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    assert "waiting up to 60 s" in err and "ok: torch" in err


def test_the_lock_of_a_killed_run_is_taken_over(fake):
    first = fakehost.start(fake)
    assert wait_for(lambda: started(fake)), first.communicate()
    first.kill()  # SIGKILL: no cleanup, the lock file stays
    first.communicate(timeout=30)
    fakehost.reap(fake)
    assert os.listdir(fake["env"]["TORCH_SETUP_LOCK_DIR"])
    p = second(fake, 0.5)
    assert p.returncode == 0, p.stderr
    assert "another torch-setup" not in p.stderr


def test_two_processes_share_the_host_package_lock(tmp_path):
    env = {"TORCH_SETUP_LOCK_DIR": str(tmp_path)}
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from torch_setup import lock\n"
        f"with lock.hold(lock.packages_path({env!r}), 'pm', timeout=0):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError) as e:
            with lock.HostLock(dict(env, TORCH_SETUP_LOCK_TIMEOUT="0.3")).step():
                pass
        assert f"pid {holder.pid}" in e.value.message and "package manager" in e.value.message
    finally:
        holder.kill()
        holder.wait()
    with lock.HostLock(dict(env, TORCH_SETUP_LOCK_TIMEOUT="0.3")).step():
        pass


def test_a_killed_run_whose_command_still_runs_holds_the_lock_till_it_ends(fake):
    """`kill -9` of torch-setup alone: its uv (its own process group) runs on; the rerun waits for it instead of
    installing beside it, and says why."""
    first = fakehost.start(fake)
    assert wait_for(lambda: started(fake)), first.communicate()
    uv_pid, _ = map(int, fake["pids"].read_text().split())
    first.kill()
    first.communicate(timeout=30)
    assert fakehost.alive(uv_pid)
    p = second(fake, 0.5)
    assert p.returncode == ExitCode.BUSY, p.stderr
    assert f"(pid {first.pid}, since " in p.stderr and "has ended; a command it started still runs" in p.stderr
    fakehost.reap(fake)
    assert wait_for(lambda: not fakehost.alive(uv_pid), 10)
    p = second(fake, 5)
    assert p.returncode == 0, p.stderr


def test_a_run_started_at_the_same_moment_names_the_holder_once_it_has_written_who_it_is(tmp_path):
    """Two installs started together: the loser may look between the winner's flock and its record (CI saw "pid
    unknown"). It waits for the record before it says who runs. The holder here takes the lock as a run does,
    then writes its record 0.5 s late."""
    path = str(tmp_path / "t.lock")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({path!r}, os.O_RDWR | os.O_CREAT)\n"
        "os.pwrite(fd, b'1 1\\n', 0)\n"  # a record left by a run that ended: never to be shown
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0)\n"
        "print('held', flush=True); time.sleep(0.5)\n"
        "os.pwrite(fd, f'{os.getpid()} {time.time():.0f}\\n'.encode(), 0)\n"
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    said = []
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError):
            with lock.hold(path, "/v", timeout=1.5, say=said.append):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert len(said) == 1 and said[0].startswith(f"another torch-setup is running on /v (pid {holder.pid}, since "), \
        said


def test_a_lock_given_back_keeps_no_record_of_its_holder(tmp_path):
    path = str(tmp_path / "t.lock")
    with lock.hold(path, "/v", timeout=0):
        assert open(path).read().split()[0] == str(os.getpid())
    assert open(path).read() == ""
