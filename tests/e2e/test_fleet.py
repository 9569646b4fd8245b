"""deploy/ansible/torch-setup.yml over SSH for a fleet with no internet, from ONE bundle built on the controller.

Three fresh Debian 13 roots (minbase, python3, openssh-server), each running sshd in its own network namespace
whose only link is a veth pair to this host (the controller): 10.213.N.2/30 there, 10.213.N.1/30 here, no default
route, so nothing there reaches the internet. Per host, a `python3 -m http.server` bound to 10.213.N.1 serves the
bundle folder, and its log is the proof of what that host fetched. ansible-core (the test venv's) runs the playbook
with `-e torch_setup_bundle=true` over SSH with a key this test makes:

1. `detect --json` on each host, 2. one `bundle --facts x3` here, 3. `install --yes --from http://10.213.N.1:8000/b/`
on each host in batches of two (`serial: 2`). A fourth inventory host ("broken", the first root's address with a
pyz that is not one) fails in the first batch: the other hosts still install, the reports and the summary name it,
and the run fails at the end. torch.compile then passes in each venv the play made (this test's own script, run in
that host's namespace). Namespaces, veths, servers, sshd and roots are removed in `finally`, also on failure.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.roots import cache_dir, debian_root, payload
from tests.e2e.checks import COMPILE, REACH

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "deploy" / "ansible" / "torch-setup.yml"
N = 3
PORT = 8000
PACKAGES = ("python3", "openssh-server", "openssh-sftp-server")




def sh(*argv: str) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


def _kill_in_root(root_path: Path) -> None:
    """Kill what still runs with its root in this Debian root (sshd sessions, Ansible's async wrappers): all
    started by this test."""
    top = os.path.realpath(root_path)
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.readlink(f"/proc/{pid}/root") == top:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


class Host:
    def __init__(self, n: int, root, tag: str):
        self.n, self.root = n, root
        self.ns, self.veth, self.peer = f"tsfleet{n}-{tag}", f"tsf{tag}{n}h", f"tsf{tag}{n}g"
        self.here, self.there = f"10.213.{n}.1", f"10.213.{n}.2"
        self.procs: list = []

    def in_ns(self, argv, timeout=900) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, "chroot", str(self.root.path), *argv],
                              env=self.root.env(), capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def wired(host: Host, pubkey: str, serve_dir: Path, log: Path):
    """host's namespace, its veth pair, sshd in it (in the root), and the bundle's server on this side."""
    try:
        sh("ip", "netns", "add", host.ns)
        sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", host.peer)
        sh("ip", "link", "set", host.peer, "netns", host.ns)
        sh("ip", "addr", "add", f"{host.here}/30", "dev", host.veth)
        sh("ip", "link", "set", host.veth, "up")
        for argv in (["ip", "addr", "add", f"{host.there}/30", "dev", host.peer],
                     ["ip", "link", "set", host.peer, "up"], ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", host.ns, *argv)
        r = host.root
        r.run(["ssh-keygen", "-A"], check=True)
        r.run(["mkdir", "-p", "-m", "0755", "/run/sshd"], check=True)
        r.run(["mkdir", "-p", "-m", "0700", "/root/.ssh"], check=True)
        r.host_path("/root/.ssh/authorized_keys").write_text(pubkey)
        host.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", host.ns, "chroot", str(r.path), "/usr/sbin/sshd", "-D", "-e",
             "-o", f"ListenAddress={host.there}", "-o", "PermitRootLogin=prohibit-password"],
            stdout=subprocess.DEVNULL, stderr=open(log.with_suffix(".sshd"), "w"), start_new_session=True))
        host.procs.append(subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", host.here, "--directory", str(serve_dir), str(PORT)],
            stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True))
        yield host
    finally:
        for p in host.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
        _kill_in_root(host.root.path)
        subprocess.run(["ip", "link", "del", host.veth], capture_output=True)  # takes its peer with it
        subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)


def _wait_for_ssh(host: Host, key: Path) -> None:
    for _ in range(60):
        res = subprocess.run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                              "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3",
                              f"root@{host.there}", "true"], capture_output=True, text=True, timeout=30)
        if res.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"sshd on {host.there} does not answer: {res.stderr}")


@pytest.fixture(scope="module")
def ansible_bin() -> Path:
    here = Path(sys.executable).parent
    if not (here / "ansible-playbook").exists():
        pytest.fail("ansible-core is needed (the test extra: scripts/test installs it)")
    return here


def test_fleet_of_three_over_ssh_from_one_bundle(ansible_bin, tmp_path):
    for n in range(1, N + 1):
        assert f"10.213.{n}." not in sh("ip", "-o", "addr") + sh("ip", "route"), "10.213.N.0/30 is in use here"
    pyz = tmp_path / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(pyz)], check=True,
                   capture_output=True, timeout=600)
    broken = tmp_path / "broken.pyz"
    broken.write_bytes(b"not a zip archive\n")
    key = tmp_path / "id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    serve = tmp_path / "serve"
    serve.mkdir()
    reports = tmp_path / "reports"
    tag = str(os.getpid() % 10000)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        hosts = []
        for n in range(1, N + 1):
            root = stack.enter_context(debian_root("trixie", tmp_path / f"r{n}", include=PACKAGES))
            hosts.append(stack.enter_context(wired(Host(n, root, tag), key.with_suffix(".pub").read_text(),
                                                   serve, tmp_path / f"http-{n}.log")))
        for h in hosts:
            _wait_for_ssh(h, key)
            res = h.in_ns(["python3", "-c", REACH], timeout=120)  # the control: nothing gets out of there
            assert res.returncode == 0, res.stdout + res.stderr
            assert "default" not in sh("ip", "netns", "exec", h.ns, "ip", "route")

        ssh_args = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ControlMaster=no "
                    "-o ControlPath=none -o ServerAliveInterval=15")
        common = {"ansible_user": "root", "ansible_ssh_private_key_file": str(key),
                  "ansible_ssh_common_args": ssh_args, "ansible_python_interpreter": "/usr/bin/python3"}
        inv_hosts = {"broken": dict(common, ansible_host=hosts[0].there, torch_setup_pyz=str(broken),
                                    torch_setup_bundle_url=f"http://{hosts[0].here}:{PORT}/b/")}
        for h in hosts:
            inv_hosts[f"trixie{h.n}"] = dict(common, ansible_host=h.there,
                                             torch_setup_bundle_url=f"http://{h.here}:{PORT}/b/")
        # the good pyz for all, as a group var: -e would beat broken's own host var
        inventory = {"all": {"vars": {"torch_setup_pyz": str(pyz)}, "hosts": inv_hosts,
                             "children": {"fleet": {"hosts": {k: {} for k in inv_hosts}}}}}
        (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PIP_", "UV_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_SSH_ARGS="-o ControlMaster=no",
                   TORCH_SETUP_BUNDLE_CACHE=str(cache_dir() / "bundle"))
        res = subprocess.run(
            [str(ansible_bin / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(PLAYBOOK),
             "-e", "torch_setup_bundle=true", "-e", f"torch_setup_bundle_dir={serve / 'b'}",
             "-e", f"torch_setup_reports_dir={reports}",
             "-e", f"torch_setup_controller_python={sys.executable}", "-e", "torch_setup_serial=2",
             "-e", "torch_setup_hosts=fleet"],
            capture_output=True, text=True, env=env, timeout=3600)
        play_s = time.monotonic() - start
        print(res.stdout[-8000:], res.stderr[-3000:])
        assert res.returncode == 2, "broken failed, so the run must fail at the end, after all hosts"

        bundle = payload((reports / "bundle.json").read_text())
        assert len(bundle["hosts"]) == N, bundle["hosts"]  # one bundle from the three hosts' facts
        summary = {r["host"]: r for r in json.loads((reports / "summary.json").read_text())}
        assert summary["broken"]["status"] == "failed" and summary["broken"]["cause"].startswith("exit "), summary
        lines = [ln.strip().strip('",') for ln in res.stdout.splitlines()]
        assert any(ln.startswith("FAILED  broken: exit ") for ln in lines), lines[-40:]
        for h in hosts:
            name = f"trixie{h.n}"
            report = payload((reports / f"{name}.json").read_text())
            assert report["ok"] is True and report["verify"]["ok"] is True, report.get("error")
            assert summary[name]["status"] == "ready" and summary[name]["torch"], summary
            assert any(ln.startswith(f"READY   {name}: torch ") for ln in lines), lines[-40:]
            # What the host fetched, in its own server's log: the manifest and torch, from this side of its veth.
            log = (tmp_path / f"http-{h.n}.log").read_text()
            gets = re.findall(rf'^{re.escape(h.there)} - - \[[^]]+\] "GET (\S+) HTTP/1\.[01]" 200', log, re.M)
            assert "/b/manifest.json" in gets and any(g.startswith("/b/wheels/torch-") for g in gets), log[-2000:]
            res = h.in_ns(["/root/.venvs/torch/bin/python", "-c", COMPILE], timeout=900)
            assert res.returncode == 0 and "COMPILE-OK" in res.stdout, res.stderr[-3000:]
        print(f"\nfleet e2e: {N} hosts from one bundle ({bundle.get('total_bytes')} bytes), "
              f"ansible-playbook {play_s:.0f} s")
    assert not sh("ip", "netns", "list").count(f"-{tag}"), "namespaces left behind"
