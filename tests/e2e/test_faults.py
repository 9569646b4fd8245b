"""Faults, for real, on one Debian 13 minbase root, run the README's way (`python3 torch-setup.pyz install --yes`
inside the root), in this order (each test starts from what the one before left, as an operator's rerun would):

1. SIGKILL to the tool and every process in the root (as a cgroup kill or a power cut) while apt's dpkg unpacks:
   `dpkg --audit` lists packages, and `plan` and `doctor` show "Finish the interrupted package installation".
2. The rerun runs that step, then is killed the same way while apt's dpkg configures packages: `dpkg --audit`
   lists packages again and `plan` shows the step again.
3. The next rerun is killed with a bare `kill -9 PID` (the tool alone) while that step's dpkg configures: the
   dpkg runs on and finishes; a rerun started at once waits for it (the documented message), then converges with
   no repair left: exit 0, torch.compile verified, `dpkg --audit` clean.
3b. An admin's `dpkg -i` in its postinst when torch-setup starts: work in progress, not an interrupted dpkg.
4. With the venv and uv's cache gone (a box without torch again), SIGTERM during the torch download: exit 143, one
   line saying what was interrupted, the venv this run made removed.
5. The same with SIGINT (Ctrl-C, to the tool's process group): exit 130.
6. Two installs started at once: one waits for the other with the documented message, neither removes the other's
   venv, both exit 0 with torch.compile verified: the convergence of 4 and 5.
Every test ends with no process left in the root (no uv, pip, apt or dpkg running on, found in /proc).
"""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.e2e.roots import build_pyz_in, debian_root, payload

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(os.geteuid() != 0, reason="chroot and mount need root")]

VENV = "/root/.venvs/torch"
REPAIR = "Finish the interrupted package installation"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with debian_root("trixie", tmp_path_factory.mktemp("faults")) as r:
        try:
            yield r
        finally:  # a failed test may leave a run going: nothing may hold the root's mounts at teardown
            kill_everything(r)


@pytest.fixture(scope="module")
def pyz(root) -> str:
    return build_pyz_in(root)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-logs")


def install(root, pyz, logs, env=None):
    return root.start(["python3", pyz, "install", "--yes"], logs, env=env)


def kill_everything(root) -> None:
    """SIGKILL to every process in the root until none is left."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        procs = root.processes()
        if not procs:
            return
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    pytest.fail(f"processes survive SIGKILL in the root: {root.processes()}")


def wait_until(what, predicate, job, timeout):
    """Poll predicate (every 20 ms: a dpkg step lasts seconds) until it holds; fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if job.poll() is not None:
            pytest.fail(f"the run ended (rc {job.returncode}) before {what}:\n{job.stderr[-4000:]}")
        time.sleep(0.02)
    pytest.fail(f"no {what} within {timeout} s:\n{job.stderr[-4000:]}")


def dpkg_running(root, action):
    """A dpkg that apt runs (`dpkg --status-fd N ... --unpack|--configure ...`), not torch-setup's own repair."""
    return [pid for pid, argv in root.processes()
            if os.path.basename(argv[0]) == "dpkg" and "--status-fd" in argv and any(a == action for a in argv)]


def no_process_left(root) -> None:
    deadline = time.monotonic() + 15
    while root.processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert root.processes() == [], "left running in the root"


def journal(root) -> list:
    """dpkg's journal entries (/var/lib/dpkg/updates/NNNN): status changes not yet folded into its status file."""
    try:
        return [p for p in root.host_path("/var/lib/dpkg/updates").iterdir() if p.name.isdigit()]
    except OSError:
        return []


def audit(root) -> str:
    res = root.run(["dpkg", "--audit"], timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def plan_steps(root, pyz) -> list:
    res = root.run(["python3", pyz, "plan", "--json"], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return payload(res.stdout)["steps"]


def assert_repair_planned(root, pyz) -> None:
    steps = plan_steps(root, pyz)
    first = steps[0]
    assert first["id"] == "package-repair" and first["status"] == "todo" and first["title"] == REPAIR, steps
    assert ["dpkg", "--configure", "-a"] in [c["argv"] for c in first["commands"]], first


def uv_downloading(root):
    """The pid of the torch step's `uv pip install` while its reads grow (it is downloading), else None."""
    for pid, argv in root.processes():
        if os.path.basename(argv[0]) == "uv" and argv[1:3] == ["pip", "install"] \
                and any(a.startswith("torch") for a in argv):
            before = _rchar(pid)
            time.sleep(0.5)
            after = _rchar(pid)
            if before is not None and after is not None and after - before > 1_000_000:
                return pid
    return None


def _rchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return None


def interrupted_line(err: str, name: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("torch-setup: interrupted")]
    assert len(lines) == 1, err[-4000:]
    assert lines[0].startswith(f"torch-setup: interrupted by {name} during step 'torch'"), lines[0]
    return lines[0]


def test_1_killed_while_apt_unpacks(root, pyz, logs):
    job = install(root, pyz, logs)
    # A package dpkg has begun to unpack (an entry in its journal), the rest not: however fast this machine is.
    wait_until("apt's dpkg --unpack under way", lambda: dpkg_running(root, "--unpack") and journal(root), job, 600)
    job.signal_group(signal.SIGKILL)
    kill_everything(root)
    no_process_left(root)
    assert audit(root).strip(), "a kill while dpkg unpacks leaves packages dpkg --audit lists"
    assert_repair_planned(root, pyz)
    res = root.run(["python3", pyz, "doctor", "--json"], timeout=300)
    check = next(c for c in payload(res.stdout)["checks"] if c["id"] == "packages")
    assert res.returncode == 10 and check["status"] == "problem" and check["fix"] == "package-repair", check


def test_2_the_rerun_finishes_it_then_is_killed_while_apt_configures(root, pyz, logs):
    job = install(root, pyz, logs)
    wait_until("apt's dpkg --configure after the repair",
               lambda: "ok: package-repair" in job.stderr and dpkg_running(root, "--configure"), job, 900)
    job.signal_group(signal.SIGKILL)
    kill_everything(root)
    no_process_left(root)
    assert f"==> {REPAIR}" in job.stderr and "apt-get install -f" in job.stderr  # both of the repair's commands
    assert "dpkg was interrupted" not in job.stderr
    assert audit(root).strip(), "a kill while dpkg configures leaves packages dpkg --audit lists"
    assert_repair_planned(root, pyz)


def test_3_kill_9_of_the_tool_alone_then_the_rerun_waits_for_what_it_left_and_converges(root, pyz, logs):
    """`kill -9 PID` of torch-setup alone while its repair's dpkg configures: that dpkg runs on in its own
    process group and finishes its work (its output is not a pipe that died with torch-setup). A rerun started
    at once waits for it (it holds the run's lock), instead of failing on dpkg's lock or installing torch beside
    it, then converges with nothing left to repair. The dpkg is held stopped (SIGSTOP) from before the kill until
    the rerun says it waits, so the order does not depend on how fast this machine configures packages."""
    job = install(root, pyz, logs)
    found = wait_until("the repair's dpkg --configure -a",
                       lambda: [p for p, argv in root.processes() if argv[:3] == ["dpkg", "--configure", "-a"]],
                       job, 900)
    os.killpg(found[0], signal.SIGSTOP)  # it leads its group (with its maintainer scripts)
    try:
        os.kill(job.pid, signal.SIGKILL)
        job.wait(30)
        left = [argv[0] for _, argv in root.processes()]
        assert "dpkg" in left, left  # the orphans a bare kill -9 leaves
        rerun = install(root, pyz, logs)
        waiting = rf"^another torch-setup is running on /root/\.venvs/torch \(pid {job.pid}, since " \
                  r"\d\d:\d\d:\d\d, has ended; a command it started still runs\): waiting up to 600 s$"
        wait_until("the rerun's wait", lambda: re.search(waiting, rerun.stderr, re.M), rerun, 600)
    finally:
        os.killpg(found[0], signal.SIGCONT)
    rc = rerun.wait(1800)
    assert rc == 0, rerun.stderr[-5000:]
    assert f"==> {REPAIR}" not in rerun.stderr, rerun.stderr[-5000:]  # the orphan finished configuring
    assert "dpkg frontend lock" not in rerun.stderr
    assert "torch.compile verified" in rerun.stdout, rerun.stdout[-3000:]
    assert audit(root) == ""
    assert not [s for s in plan_steps(root, pyz) if s["status"] == "todo"]
    no_process_left(root)


def test_3b_an_admins_dpkg_running_meanwhile_is_not_an_interrupted_one(root, pyz, logs):
    """An admin's package install (or unattended-upgrades at boot) in the middle of configuring when torch-setup
    starts: its package is half-configured, dpkg's journal dirty, its lock held. That is work in progress: the
    run plans no repair (which would fail on dpkg's lock), and the admin's install ends well."""
    deb = root.host_path("/tmp/t19-slow/DEBIAN")
    deb.mkdir(parents=True)
    (deb / "control").write_text("Package: t19-slow\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
                                 "Description: a postinst that waits\n")
    (deb / "postinst").write_text("#!/bin/sh\nsleep 600 || true\n")  # till the test ends its sleep
    (deb / "postinst").chmod(0o755)
    res = root.run(["dpkg-deb", "--build", "/tmp/t19-slow", "/tmp/t19-slow.deb"], timeout=120)
    assert res.returncode == 0, res.stderr
    admin = root.start(["dpkg", "-i", "/tmp/t19-slow.deb"], logs)
    sleeping = wait_until("the admin's postinst",
                          lambda: [p for p, argv in root.processes() if argv[:2] == ["sleep", "600"]], admin, 120)
    res = root.run(["python3", pyz, "install", "--yes"], timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "package-repair" not in res.stderr and "dpkg frontend lock" not in res.stderr, res.stderr[-3000:]
    assert admin.poll() is None and "t19-slow" in audit(root)  # it ran beside a dpkg in the middle of its work
    os.kill(sleeping[0], signal.SIGTERM)  # the postinst goes on and ends well
    assert admin.wait(120) == 0, admin.stderr
    assert audit(root) == ""
    no_process_left(root)
    assert root.run(["dpkg", "--purge", "t19-slow"], timeout=120).returncode == 0


@pytest.mark.parametrize("sig, code, to_group", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)],
                         ids=["4-SIGTERM", "5-SIGINT"])
def test_a_signal_during_the_torch_download(root, pyz, logs, sig, code, to_group):
    # A box without torch: no venv, and no wheel in uv's cache, so the torch step downloads for real.
    assert root.run(["rm", "-rf", VENV, "/root/.cache/uv"]).returncode == 0
    job = install(root, pyz, logs)
    wait_until("uv downloading torch", lambda: uv_downloading(root), job, 600)
    if to_group:  # Ctrl-C: the terminal signals the foreground process group
        job.signal_group(sig)
    else:  # `timeout`, a CI cancel, systemd: the main process
        os.kill(job.pid, sig)
    assert job.wait(60) == code, job.stderr[-4000:]
    line = interrupted_line(job.stderr, signal.Signals(sig).name)
    assert f"removed {VENV} (made by this run)" in line, line
    assert "Traceback" not in job.stderr and "unexpected" not in job.stderr
    assert not root.host_path(VENV).exists()
    no_process_left(root)  # uv stopped with the tool: nothing installs torch a minute later
    assert audit(root) == ""


def test_6_two_installs_at_once_wait_for_each_other_and_converge(root, pyz, logs):
    env = {"TORCH_SETUP_LOCK_TIMEOUT": "1800"}
    jobs = [install(root, pyz, logs, env), install(root, pyz, logs, env)]
    for job in jobs:
        job.wait(1800)
    for job in jobs:
        assert job.returncode == 0, job.stderr[-5000:]
        assert "torch.compile verified" in job.stdout, job.stdout[-3000:]
        assert "removed" not in job.stderr, job.stderr[-3000:]
    waits = [(job, re.search(r"^another torch-setup is running on /root/\.venvs/torch \(pid (\d+), since "
                             r"\d\d:\d\d:\d\d\): waiting up to 1800 s$", job.stderr, re.M)) for job in jobs]
    waited = [(job, m) for job, m in waits if m]
    assert len(waited) == 1, [j.stderr[-2000:] for j in jobs]
    waiter, match = waited[0]
    other = next(j for j in jobs if j is not waiter)
    assert int(match.group(1)) == other.pid  # chroot execs python: the pid in the root is the one started
    assert "Nothing to do" in waiter.stderr  # it ran from the state the first left
    assert root.host_path(f"{VENV}/bin/python").exists()
    res = root.run(["python3", pyz, "doctor", "--json"], timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert audit(root) == ""
    no_process_left(root)
