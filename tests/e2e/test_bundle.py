"""Download once, install with no network: a bundle made here from the facts of a fresh Debian 13 root, installed
inside that root in a network namespace that has nothing but loopback.

1. `detect --json` in the root (itself with no network) gives its facts.
2. `bundle --facts` of them, made here with the network (the wheels and .debs cached by sha256 in the tests' cache:
   a rerun downloads nothing, and the bundle is hard links into that cache).
3. The bundle is bind-mounted read-only at /bundle; in `unshare -n` (a new network namespace: loopback only, down),
   first the control: PyPI and deb.debian.org do not answer from there, and an online `plan` cannot choose a torch.
   Then `python3 /bundle/torch-setup.pyz install --yes --from /bundle` installs the headers, the compiler, uv, the
   venv and torch from the bundle alone and verifies torch.compile; our own compile script passes in that venv.
4. A second `install --from` has nothing to do; a damaged bundle is refused (exit 14) before anything runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.roots import cache_dir, debian_root, payload
from tests.e2e.checks import COMPILE, REACH

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]




def offline(root, argv, timeout=1800, env=None):
    """argv in the root, in a new network namespace (loopback only): nothing can leave it."""
    return subprocess.run(["unshare", "--net", "chroot", str(root.path), *argv], env=root.env(env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def measures():
    out: dict = {}
    yield out
    print("\nbundle e2e measures: " + json.dumps(out, indent=1))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with debian_root("trixie", tmp_path_factory.mktemp("trixie-offline")) as r:
        yield r


@pytest.fixture(scope="module")
def host_pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyz") / "torch-setup.pyz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build-zipapp"), "-o", str(out)], check=True,
                   capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def facts_file(root, host_pyz, tmp_path_factory) -> Path:
    root.copy_in(host_pyz, "/tmp/torch-setup.pyz")
    res = offline(root, ["python3", "/tmp/torch-setup.pyz", "detect", "--json"], timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    root.run(["rm", "-f", "/tmp/torch-setup.pyz"])  # the root is bare again: only what the bundle brings
    facts = payload(res.stdout)
    assert facts["os"]["codename"] == "trixie" and facts["host"]["installed_packages"], facts["host"]
    path = tmp_path_factory.mktemp("facts") / "trixie.json"
    path.write_text(res.stdout)
    return path


@pytest.fixture(scope="module")
def bundle(facts_file, tmp_path_factory, measures) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    env = dict(os.environ, TORCH_SETUP_BUNDLE_CACHE=str(cache_dir() / "bundle"))
    for var in [k for k in env if k.startswith(("PIP_", "UV_"))]:
        del env[var]  # this box's own pip and uv settings play no part in the bundle
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "torch_setup", "bundle", "--facts", str(facts_file), "--output",
                          str(out), "--json"], env=env, capture_output=True, text=True, timeout=3600, cwd=REPO)
    measures["bundle_s"] = round(time.monotonic() - start, 1)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    data = payload(res.stdout)
    measures.update(bundle_bytes=data["total_bytes"], downloaded_bytes=data["downloaded_bytes"], files=data["files"])
    manifest = json.loads((out / "manifest.json").read_text())
    for part in ("wheels", "debs", "uv"):
        sizes = [m["size"] for p, m in manifest["files"].items() if p.startswith(part + "/")]
        measures[part] = {"files": len(sizes), "bytes": sum(sizes)}
    return out


@pytest.fixture(scope="module")
def mounted(root, bundle):
    """The bundle at /bundle in the root, read-only (teardown unmounts everything under the root)."""
    target = root.host_path("/bundle")
    target.mkdir()
    subprocess.run(["mount", "--bind", str(bundle), str(target)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
    return "/bundle"


def test_the_bundle_holds_what_the_plan_fetches(bundle, facts_file):
    manifest = json.loads((bundle / "manifest.json").read_text())
    (host,) = manifest["hosts"]
    assert host["label"] == str(facts_file) and host["os"]["codename"] == "trixie"
    target = manifest["targets"][host["wheels"]]
    names = {w["name"] for w in target["wheels"]}
    assert {"torch", "pip"} <= names and target["torch"]["version"]
    debs = manifest["deb_sets"][host["debs"]]
    assert {"g++", "python3.13-dev"} <= set(debs["packages"])
    assert any(p.startswith("debs/g++-14_") for p in debs["files"]), debs["files"]
    assert host["uv"].startswith("uv/uv-") and (bundle / host["uv"]).is_file()
    lock = (bundle / target["lock"]).read_text()
    assert lock.startswith('lock-version = "1.0"') and "[[packages]]" in lock
    for path, meta in manifest["files"].items():
        assert (bundle / path).stat().st_size == meta["size"], path
    assert (bundle / "torch-setup.pyz").is_file()


def test_no_network_in_the_namespace(root, mounted):
    res = offline(root, ["python3", "-c", REACH], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    # An online plan cannot choose a torch there: what the bundle brings is all there is.
    res = offline(root, ["python3", "/bundle/torch-setup.pyz", "plan", "--json"], timeout=300)
    assert res.returncode != 0 or payload(res.stdout)["torch"] is None, res.stdout[-2000:]


def test_install_from_the_bundle_with_no_network(root, mounted, measures):
    start = time.monotonic()
    res = offline(root, ["python3", "/bundle/torch-setup.pyz", "install", "--yes", "--from", "/bundle"],
                  timeout=3000)
    measures["install_s"] = round(time.monotonic() - start, 1)
    print(res.stdout[-4000:], res.stderr[-6000:])
    measures["steps"] = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith(("ok: ", "==> "))]
    assert res.returncode == 0
    assert "torch.compile verified" in res.stdout
    assert root.host_path("/usr/include/python3.13/Python.h").exists()
    res = offline(root, ["/root/.venvs/torch/bin/python", "-c", COMPILE], timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "COMPILE-OK" in res.stdout
    measures["venv_bytes"] = int(root.run(["du", "-sb", "/root/.venvs/torch"]).stdout.split()[0])


def test_second_install_has_nothing_to_do(root, mounted):
    res = offline(root, ["python3", "/bundle/torch-setup.pyz", "install", "--yes", "--json", "--from", "/bundle"],
                  timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    report = payload(res.stdout)
    assert report["changed"] is False
    assert [s["status"] for s in report["plan"]["steps"]] == ["done"] * len(report["plan"]["steps"])
    assert report["verify"]["ok"] is True


def test_a_damaged_bundle_is_refused(root, bundle, tmp_path):
    """A copy of the bundle whose requirements file was changed: refused by name, exit 14, before any step runs."""
    copy = root.host_path("/bundle-damaged")
    shutil.copytree(bundle, copy, copy_function=os.link)
    manifest = json.loads((copy / "manifest.json").read_text())
    req = copy / next(iter(manifest["targets"].values()))["requirements_file"]
    req.unlink()
    req.write_text("torch\n")
    root.run(["rm", "-rf", "/root/.venvs/torch"])  # torch to install again: the plan needs the wheels
    res = offline(root, ["python3", "/bundle-damaged/torch-setup.pyz", "install", "--yes", "--from",
                         "/bundle-damaged"], timeout=600)
    assert res.returncode == 14, res.stdout[-2000:] + res.stderr[-2000:]
    assert "damaged" in res.stderr and "requirements.txt" in res.stderr, res.stderr
    assert not root.host_path("/root/.venvs/torch").exists()
