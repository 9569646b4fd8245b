"""Corporate networks, for real: a fresh Debian 13 root (python3 only) installs from package indexes this test
starts on loopback (tests/lab.py), serving the real wheels of torch 2.15.0 (PyPI's cp313 manylinux x86_64 build,
CUDA 13.2) and its dependencies, downloaded once from PyPI into ~/.cache/torch-setup-tests/wheels.

Every command in the root runs with a clean environment: the test CA (made by the test) is trusted only through
SSL_CERT_FILE, and HTTPS_PROXY is a loopback proxy that refuses everything and records what it was asked (NO_PROXY
is 127.0.0.1), so PyPI and download.pytorch.org are out of reach on any network and a try to reach them is seen.
apt reads neither and uses Debian's archive as usual.

One root for every case, one torch venv alive at a time: each case removes the venv and pip's and uv's caches
first, so each install downloads torch from the index under test.

a. `python3 torch-setup.pyz install --yes --index-url LAB` with a wrong CA file stops (exit 12) naming TLS, the URL
   and the fix, before changing anything; with the test CA it installs and verifies.
b. An extra index holding torch 2.13.0 (the real wheel) beside a primary holding 2.15.0, from a pip configuration
   file: `install` installs the torch the plan names, with uv and with pip (TORCH_SETUP_NO_UV=1).
c. `--pytorch-index LAB/whl`, a mirror of the PyTorch index serving the wheels under cu132/: with `auto` on this
   CPU box the plan asks the mirror's cpu/ first and says what it found; `install --torch-backend cu132` takes
   torch from the mirror's cu132/ and asks no other index for torch (the loopback indexes' record, the proxy's).
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Dict, Optional

import pytest

from tests import lab as labs
from tests.e2e.roots import ROOT_PATH, build_pyz_in, debian_root, payload

pytestmark = pytest.mark.e2e
PYZ = "/root/torch-setup/dist/torch-setup.pyz"
VENV = "/root/.venvs/torch"
CA = "/usr/local/share/lab/ca.pem"
WRONG_CA = "/usr/local/share/lab/wrong-ca.pem"
TORCH_WHEEL = "torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl"
VERSION = "import importlib.metadata as m; print(m.version('torch'))"


@pytest.fixture(scope="module")
def wheels():
    return {"new": labs.pypi_wheels(labs.TOOLS + labs.TORCH_215), "old": labs.pypi_wheels(labs.TORCH_213)}


def _projects(paths) -> Dict[str, list]:
    out: Dict[str, list] = {}
    for p in paths:
        out.setdefault(labs._pin_of(os.path.basename(p))[0], []).append(p)
    return out


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return labs.make_ca(d / "lab"), labs.make_ca(d / "wrong", "some other CA")


@pytest.fixture(scope="module")
def lab(wheels, certs):
    new = _projects(wheels["new"])
    trees = {
        "simple": new,  # the primary index: torch 2.15.0, what it needs, pip and uv
        "extra": {"torch": wheels["old"]},  # an extra index with an older torch
        "whl/cu132": {k: v for k, v in new.items() if k != "uv"},  # a mirror of the PyTorch index, cu132/ only
    }
    with labs.serve(trees, tls=certs[0]) as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy():
    with labs.refusing_proxy() as p:
        yield p


@pytest.fixture(scope="module")
def root(tmp_path_factory, certs):
    with debian_root("trixie", tmp_path_factory.mktemp("networks")) as r:
        build_pyz_in(r)  # with the root's usual CA settings: the pyz's own pure-Python wheels come from PyPI
        r.copy_in(certs[0].ca, CA)
        r.copy_in(certs[1].ca, WRONG_CA)
        yield r


def run(root, argv, proxy, env: Optional[dict] = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """A command in the root with nothing of the host's environment: the test CA only through SSL_CERT_FILE,
    every host but loopback behind the refusing proxy."""
    clean = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
             "SSL_CERT_FILE": CA, "HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost",
             "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    clean.update(env or {})
    res = subprocess.run(["chroot", str(root.path), *argv], env=clean, capture_output=True, text=True,
                         timeout=timeout)
    print("$", " ".join(argv), "->", res.returncode, "\n", res.stdout[-4000:], res.stderr[-6000:])
    return res


def fresh(root, lab, proxy) -> None:
    """No torch venv, no pip or uv cache (each case downloads torch from its index); the records start empty."""
    assert root.run(["rm", "-rf", VENV, "/root/.cache/uv", "/root/.cache/pip"]).returncode == 0
    lab.asked.clear()
    proxy.asked.clear()


def torch_in_venv(root) -> str:
    res = root.run([f"{VENV}/bin/python", "-c", VERSION])
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def files_asked(lab, prefix: str):
    return [a.rsplit("/", 1)[-1] for a in lab.asked_under(prefix + "/files")]


def test_a_wrong_ca_file_stops_with_tls_the_url_and_the_fix(root, lab, proxy):
    fresh(root, lab, proxy)
    res = run(root, ["python3", PYZ, "install", "--yes", "--index-url", lab.url("simple")], proxy,
              {"SSL_CERT_FILE": WRONG_CA}, timeout=600)
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    assert res.returncode == 12, out[-3000:]  # TLS (README: exit codes)
    assert "TLS verification failed" in out and lab.url("simple/torch/") in out, out[-3000:]
    assert WRONG_CA in out and "SSL_CERT_FILE=/path/to/ca.pem" in out, out[-3000:]
    assert "Traceback" not in out and "no index answered" not in out
    assert not root.host_path(VENV).exists()  # stopped at the plan: nothing was done
    assert not root.host_path("/usr/bin/g++").exists()
    assert lab.asked == []  # the handshake failed: no request reached the loopback index


def test_a_the_readme_command_installs_and_verifies_trusting_the_lab_only_through_ssl_cert_file(root, lab, proxy):
    fresh(root, lab, proxy)
    res = run(root, ["python3", PYZ, "install", "--yes", "--index-url", lab.url("simple")], proxy, timeout=2400)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "torch.compile verified" in res.stdout
    assert torch_in_venv(root) == "2.15.0"
    assert TORCH_WHEEL in files_asked(lab, "simple")  # downloaded from the loopback index over HTTPS
    assert any(f.startswith("uv-0.13.9-") for f in files_asked(lab, "simple"))  # the uv it fetched, too
    assert proxy.asked == []  # nothing else was asked (neither PyPI nor download.pytorch.org)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_b_an_extra_index_with_an_older_torch_installs_the_torch_the_plan_names(root, lab, proxy, installer):
    fresh(root, lab, proxy)
    # pip >= 24.2 verifies with truststore, which cannot check a certificate for an IP address
    # (https://github.com/pypa/pip/issues/12906): pip is given the loopback index by name (the certificate names both).
    url = lab.url if installer == "uv" else (lambda prefix: lab.url(prefix).replace("127.0.0.1", "localhost"))
    conf = f"[global]\nindex-url = {url('simple')}\nextra-index-url = {url('extra')}\n"
    root.host_path("/etc/pip.conf").write_text(conf)
    # The PyTorch index is the loopback server's too (a mirror with no cpu/: it answers 404), so the plan is the same on
    # every network.
    env = {"PIP_CONFIG_FILE": "/etc/pip.conf", "TORCH_SETUP_PYTORCH_INDEX": url("whl")}
    if installer == "pip":
        env["TORCH_SETUP_NO_UV"] = "1"
    try:
        plan = run(root, ["python3", PYZ, "plan", "--json"], proxy, env, timeout=600)
        assert plan.returncode == 0, plan.stderr[-3000:]
        data = payload(plan.stdout)
        torch = data["torch"]
        assert (torch["version"], torch["requirement"]) == ("2.15.0", "torch==2.15.0"), torch
        step = next(s for s in data["steps"] if s["id"] == "torch")
        argv = step["commands"][0]["argv"]
        assert (installer == "uv") == ("uv" in os.path.basename(argv[0])), argv
        assert url("extra") in argv, argv
        lab.asked.clear()
        res = run(root, ["python3", PYZ, "install", "--yes", "--no-verify"], proxy, env, timeout=2400)
        assert res.returncode == 0, res.stderr[-4000:]
        assert torch_in_venv(root) == torch["version"]
        assert TORCH_WHEEL in files_asked(lab, "simple")
        assert files_asked(lab, "extra") == []  # 2.13.0's wheel was never taken
        assert "/extra/torch/" in lab.asked  # but the extra index was searched, as pip searches it
        assert proxy.asked == []
    finally:
        root.host_path("/etc/pip.conf").unlink()


def test_c_auto_on_a_cpu_box_asks_the_mirrors_cpu_first_and_says_what_it_found(root, lab, proxy):
    lab.asked.clear()
    proxy.asked.clear()
    # A plan for a venv without torch (never made: a plan changes nothing), so torch is chosen.
    res = run(root, ["python3", PYZ, "plan", "--json", "--venv", "/root/.venvs/planned", "--pytorch-index",
                     lab.url("whl")], proxy, {"PIP_INDEX_URL": lab.url("simple")}, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    torch = payload(res.stdout)["torch"]
    pages = [a for a in lab.asked if a.endswith("/torch/")]
    assert pages[0] == "/whl/cpu/torch/", lab.asked  # the mirror's cpu/ first: no GPU here
    assert f"{lab.url('whl/cpu')} answered, without torch" in torch["reasons"], torch["reasons"]
    # Then the user's index: PyPI's torch there is a CUDA build, which runs here on the CPU (and says so).
    assert (torch["version"], torch["source"], torch["index_url"]) == ("2.15.0", "configured", lab.url("simple"))
    assert any("CUDA build" in w for w in torch["warnings"]), torch["warnings"]
    assert proxy.asked == []


def test_c_install_cu132_takes_torch_from_the_mirror_and_asks_no_other_index_for_it(root, lab, proxy):
    fresh(root, lab, proxy)
    # The root's only other index is the loopback primary index (for uv itself); PyPI and download.pytorch.org are
    # behind the refusing proxy.
    res = run(root, ["python3", PYZ, "install", "--yes", "--no-verify", "--json", "--pytorch-index",
                     lab.url("whl"), "--torch-backend", "cu132"], proxy, {"PIP_INDEX_URL": lab.url("simple")},
              timeout=2400)
    assert res.returncode == 0, res.stderr[-4000:]
    torch = payload(res.stdout)["plan"]["torch"]
    assert (torch["version"], torch["variant"], torch["source"]) == ("2.15.0", "cu132", "pytorch"), torch
    assert torch["index_url"] == lab.url("whl/cu132")
    assert any("(a mirror: --pytorch-index" in r for r in torch["reasons"]), torch["reasons"]
    assert torch_in_venv(root) == "2.15.0"
    assert TORCH_WHEEL in files_asked(lab, "whl/cu132")  # the wheel came from the mirror's cu132/
    torch_pages = [a for a in lab.asked if a.endswith("/torch/")]
    assert set(torch_pages) == {"/whl/cu132/torch/"}, lab.asked  # neither the primary nor cpu/ was asked for it
    assert proxy.asked == []  # nor any other host
