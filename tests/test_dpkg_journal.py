"""dpkg's journal: a kill while apt unpacks leaves the new records in /var/lib/dpkg/updates/NNNN, not in the status
file; the facts read both, as dpkg does, so the plan finishes the interrupted installation instead of running into
apt's "dpkg was interrupted, you must manually run 'dpkg --configure -a'" (exit 8). The fixture is the status file
and the journal of a real root killed 3 s into apt's `dpkg --unpack` (tests/fixtures/dpkg/killed-during-unpack)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import fixture_text, host_system, load_host
from torch_setup import pipeline
from torch_setup.facts import gather, packages
from torch_setup.request import PythonRequest, Request


def captured():
    """{"status": text, "updates/0000": text, ...} as captured (sections headed `==> NAME <==`)."""
    parts = re.split(r"^==> (\S+) <==\n", fixture_text("dpkg", "killed-during-unpack"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def killed_host(name="debian13-installed-system"):
    system = host_system(name)
    for path, text in captured().items():
        system.files[f"/var/lib/dpkg/{path}"] = text
    return system


def test_the_status_file_alone_says_nothing_the_journal_says_it_all():
    files = captured()
    assert packages.parse_dpkg_status(files["status"]) == []
    journal = [files[f"updates/{n}"] for n in packages.journal_names([p[8:] for p in files if p != "status"])]
    broken = packages.parse_dpkg_status(files["status"], journal)
    # what `dpkg --audit` listed in that root: the unpacked ones, the half-installed one, libc-bin's triggers
    assert sorted(broken) == sorted(
        ["binutils", "binutils-common", "binutils-x86-64-linux-gnu", "ca-certificates", "libbinutils",
         "libctf-nobfd0", "libctf0", "libgprofng0", "libisl23", "libjansson4", "libmpc3", "libmpfr6", "libsframe1",
         "openssl", "libc-bin", "cpp-14-x86-64-linux-gnu"])


def test_journal_order_and_names():
    assert packages.journal_names(["0010", "tmp.i", "0002", "10000", "0001", ".", "x1"]) == \
        ["0001", "0002", "0010", "10000"]
    newer_wins = ["Package: p\nStatus: install ok installed\n"]
    assert packages.parse_dpkg_status("Package: p\nStatus: install ok unpacked\n", newer_wins) == []
    assert packages.parse_dpkg_status("Package: p\nStatus: install ok installed\n",
                                      ["Package: p\nStatus: install ok half-configured\n"]) == ["p"]


def test_detect_reads_the_journal_through_the_seam(builtin_recipes):
    name = "debian13-installed-system"
    facts = gather.gather(killed_host(name), PythonRequest.parse(load_host(name)["spec"]),
                          builtin_recipes.manager_binaries, system_name="Linux", machine="x86_64")
    assert "cpp-14-x86-64-linux-gnu" in facts.host.interrupted_packages
    plan = pipeline.assemble(Request(), facts, builtin_recipes)
    assert plan.steps[0].id == "package-repair" and plan.steps[0].status == "todo"


def test_a_journal_of_installed_records_is_still_an_interrupted_dpkg():
    system = host_system("debian13-installed-system")
    system.files["/var/lib/dpkg/updates/0000"] = "Package: p\nStatus: install ok installed\nArchitecture: all\n"
    assert packages.interrupted(system, "apt") == ["p"]  # apt refuses until it is folded in
    system.files.pop("/var/lib/dpkg/updates/0000")
    system.files["/var/lib/dpkg/updates/tmp.i"] = ""
    assert packages.interrupted(system, "apt") == []  # what dpkg and apt skip
    assert packages.interrupted(killed_host(), "dnf") == []


def test_a_manager_repair_is_one_argv_or_several(tmp_path, builtin_recipes):
    from torch_setup.errors import RecipeError
    from torch_setup.recipes import load

    assert builtin_recipes.managers["apt"].repair[0] == ("dpkg", "--configure", "-a")
    assert builtin_recipes.managers["apt"].repair[1][:4] == ("apt-get", "install", "-f", "-y")
    base = '[manager.mypm]\nbinary = "mypm"\ninstall = ["mypm", "{packages}"]\nsource = "s"\n'
    for repair, want in (('["mypm", "fix"]', (("mypm", "fix"),)),
                         ('[["mypm", "fix"], ["mypm", "check"]]', (("mypm", "fix"), ("mypm", "check")))):
        (tmp_path / "m.toml").write_text(base + f"repair = {repair}\n")
        assert load.load([tmp_path]).managers["mypm"].repair == want
    (tmp_path / "m.toml").write_text(base + 'repair = "mypm fix"\n')
    with pytest.raises(RecipeError, match="manager 'mypm'.*'repair'"):
        load.load([tmp_path])


@pytest.mark.skipif(sys.platform != "linux", reason="struct flock of Linux")
def test_lock_holder_asks_who_holds_a_posix_lock_without_taking_it(tmp_path):
    from torch_setup.host.system import System

    path = tmp_path / "lock-frontend"
    path.write_text("")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"  # fcntl(F_SETLK): the lock dpkg and apt take
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert System().lock_holder(str(path)) == holder.pid
        assert System().lock_holder(str(path)) == holder.pid  # asking took nothing
    finally:
        holder.kill()
        holder.wait()
    assert System().lock_holder(str(path)) == 0
    assert System().lock_holder(str(tmp_path / "absent")) is None


def test_a_package_manager_running_now_is_not_an_interrupted_one():
    """An admin's apt (or unattended-upgrades) mid-run: its journal is dirty and its packages half-done, and
    `dpkg --configure -a` now would fail on its lock; the packages are in progress, no repair is planned."""
    system = killed_host()
    assert packages.interrupted(system, "apt")
    system.lock_pids["/var/lib/dpkg/lock-frontend"] = 4242
    assert packages.interrupted(system, "apt") == []
    system.lock_pids = {"/var/lib/dpkg/lock": 4243}
    assert packages.interrupted(system, "apt") == []
