"""Bundles, without the internet: `bundle` of another host's facts against a loopback index (real uv resolving, real
downloads, sha256, manifest, requirements and PEP 751 lock), then `install --from`'s plan of the bundle alone; a
bundle that lacks something or is damaged is refused by name (exit 14). The apt half reads real captured output
(tests/fixtures/bundle); the real offline install into a Debian 13 root is tests/e2e/test_bundle.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, detected_with_dpkg_status, fixture_text, payload
from lab import serve, serve_folder
from torch_setup import pipeline
from torch_setup.bundle import apt, make, offline, wheels
from torch_setup.errors import BundleError, ExitCode
from torch_setup.facts import packages
from torch_setup.facts.model import Facts
from torch_setup.request import Request

try:
    import tomllib  # type: ignore[import-not-found]
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
STATUS = fixture_text("dpkg", "status-interrupted")


def wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires=(), files=None) -> str:
    """A small installable wheel (METADATA, WHEEL, RECORD; Requires-Dist as given)."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    content = dict(files or {f"{name.replace('-', '_')}/__init__.py": f"VERSION = {version!r}\n"})
    content[f"{dist}.dist-info/METADATA"] = meta
    content[f"{dist}.dist-info/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in content.items():
            z.writestr(n, text)
        z.writestr(f"{dist}.dist-info/RECORD", "".join(f"{n},,\n" for n in content) + f"{dist}.dist-info/RECORD,,\n")
    return str(path)


@pytest.fixture
def index(tmp_path):
    """A loopback index with a (tiny) torch 2.15.0 for CPython 3.13 manylinux_2_28 x86_64, its dependency, pip and
    a uv wheel (a shell script for a binary)."""
    w = tmp_path / "wheels-src"
    w.mkdir()
    uv = wheel(w, "uv", "0.0.1", "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64",
               files={"uv-0.0.1.data/scripts/uv": "#!/bin/sh\necho 'uv 0.0.1 (fake)'\n"})
    tree = {"torch": [wheel(w, "torch", "2.15.0", "cp313-cp313-manylinux_2_28_x86_64", ["tinydep>=1"]),
                      wheel(w, "torch", "2.15.0", "cp312-cp312-manylinux_2_28_x86_64", ["tinydep>=1"])],
            "tinydep": [wheel(w, "tinydep", "1.2")], "pip": [wheel(w, "pip", "25.0")], "uv": [uv]}
    with serve({"simple": tree}) as lab:
        yield lab


def other_host(tmp_path, lab, name="host.json", python=None, **host) -> Path:
    """Facts of a Debian 13 host (a real detect's, tests/fixtures/platforms) whose headers and compiler are there
    (no .debs to resolve: that needs Debian's archive), whose pip configuration names the loopback index."""
    data = json.loads((FIXTURES / "platforms" / "debian-13.json").read_text())
    data["python"].update(has_headers=True, **(python or {}))
    data["compiler"].update(ok=True, toolchain_ok=True, path="/usr/bin/g++", family="gcc", version="14.2.0")
    data["host"].update(ca_bundle=True, openssl="/usr/bin/openssl", **host)
    data["config"] = {"env": {"PIP_INDEX_URL": lab.url("simple")}, "pip": ""}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def run_cli(*args, env=None, cwd=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_")) and "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "torch_setup", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=600, cwd=cwd or REPO)


@pytest.fixture
def built(tmp_path, index):
    facts = other_host(tmp_path, index)
    out = tmp_path / "bundle"
    env = {"TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}
    res = run_cli("bundle", "--facts", str(facts), "--index-url", index.url("simple"), "--output", str(out),
                  "--json", env=env)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-2000:]
    return out, facts, payload(res.stdout, "bundle"), env


def test_bundle_of_another_host_holds_its_plan_and_every_file_once_with_its_hash(built, index):
    out, facts, data, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    (host,) = manifest["hosts"]
    assert host["label"] == str(facts) and host["os"] == {"id": "debian", "version": "13", "codename": "trixie"}
    assert [s["id"] for s in host["plan"]["steps"] if s["status"] == "todo"] == ["uv", "venv", "torch"]
    assert host["debs"] is None and host["uv"] == "uv/uv-0.0.1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    target = manifest["targets"][host["wheels"]]
    assert target["python"] == "3.13" and target["platform"] == "x86_64-manylinux_2_40"
    assert {(w["name"], w["version"]) for w in target["wheels"]} == {("torch", "2.15.0"), ("tinydep", "1.2"),
                                                                      ("pip", "25.0")}
    for path, meta in manifest["files"].items():  # each file there, its size and sha256 as the manifest says
        assert (out / path).stat().st_size == meta["size"]
        assert subprocess.run(["sha256sum", str(out / path)], capture_output=True, text=True).stdout.split()[0] \
            == meta["sha256"]
        assert meta["source"].startswith(index.url("simple"))
    assert sorted(os.listdir(out / "wheels")) == sorted(os.path.basename(w["path"]) for w in target["wheels"])
    assert data["files"] == 4 and data["total_bytes"] == manifest["bytes"]
    assert (out / "torch-setup.pyz").stat().st_size == manifest["pyz"]["size"]


def test_the_lock_files_are_pep_751_and_hash_checking_requirements(built):
    out, _, _, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    target = next(iter(manifest["targets"].values()))
    lock = tomllib.loads((out / target["lock"]).read_text())
    assert lock["lock-version"] == "1.0" and lock["created-by"].startswith("torch-setup")
    by_name = {p["name"]: p for p in lock["packages"]}
    assert set(by_name) == {"torch", "tinydep", "pip"}
    (w,) = by_name["torch"]["wheels"]
    assert (out / target["lock"]).parent.joinpath(w["path"]).resolve() == (out / "wheels" / w["name"]).resolve()
    assert w["hashes"]["sha256"] == manifest["files"]["wheels/" + w["name"]]["sha256"]
    req = (out / target["requirements_file"]).read_text()
    assert f"torch==2.15.0 --hash=sha256:{w['hashes']['sha256']}" in req


def test_the_requirements_install_with_no_index_and_a_changed_wheel_is_refused(built, tmp_path):
    """uv installs the set from the bundle's wheels alone, checking each hash (for the target's Python and
    platform, into a folder); one wheel changed and uv refuses."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    out, _, _, _ = built
    target = next(iter(json.loads((out / "manifest.json").read_text())["targets"].values()))
    argv = [uv, "pip", "install", "--no-config", "--offline", "--target", str(tmp_path / "t"), "--python-version",
            "3.13", "--python-platform", "x86_64-manylinux_2_28", "-r", str(out / target["requirements_file"]),
            "--require-hashes", "--no-index", "--find-links", str(out / "wheels")]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "UV_CACHE_DIR": str(tmp_path / "uvc")}
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t" / "torch" / "__init__.py").read_text() == "VERSION = '2.15.0'\n"
    dep = next(out.glob("wheels/tinydep-*.whl"))
    data = dep.read_bytes()
    dep.unlink()  # a hard link into the cache: replace it, do not write through it
    dep.write_bytes(data + b"\0")
    shutil.rmtree(tmp_path / "t")
    res = subprocess.run(argv, capture_output=True, text=True, env=dict(env, UV_CACHE_DIR=str(tmp_path / "uvc2")))
    assert res.returncode != 0 and "hash" in res.stderr.lower(), res.stderr


def test_a_fleet_of_mixed_hosts_shares_what_they_have_in_common(tmp_path, index, builtin_recipes):
    """Three hosts: two alike (Python 3.13), one with Python 3.12. Two targets; the pure wheels and uv once."""
    a = other_host(tmp_path, index, "a.json")
    b = other_host(tmp_path, index, "b.json")
    c = other_host(tmp_path, index, "c.json", python={"version": "3.12.8", "include_dir": "/usr/include/python3.12"})
    out = tmp_path / "fleet"
    res = run_cli("bundle", "--facts", str(a), "--facts", str(b), "--facts", str(c), "--index-url",
                  index.url("simple"), "--output", str(out), "--json",
                  env={"TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")})
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    hosts = {h["label"]: h for h in manifest["hosts"]}
    assert hosts[str(a)]["wheels"] == hosts[str(b)]["wheels"] != hosts[str(c)]["wheels"]
    assert len(manifest["targets"]) == 2
    assert sorted(manifest["files"]) == sorted([
        "uv/uv-0.0.1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "wheels/pip-25.0-py3-none-any.whl",
        "wheels/tinydep-1.2-py3-none-any.whl", "wheels/torch-2.15.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "wheels/torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl"])
    assert manifest["bytes"] == sum(m["size"] for m in manifest["files"].values()) + manifest["pyz"]["size"]
    # each host's install plan takes its own target
    for f in (a, c):
        facts = pipeline.read_facts(str(f))
        torch = next(s for s in offline.plan(Request(), facts, builtin_recipes, str(out)).todo if s.id == "torch")
        req = Path(torch.commands[0].argv[torch.commands[0].argv.index("-r") + 1])
        assert req.parent.name == hosts[str(f)]["wheels"]


def test_a_tar_output_is_the_folder_in_one_file_and_installs(tmp_path, index, builtin_recipes):
    import tarfile

    facts = other_host(tmp_path, index)
    res = run_cli("bundle", "--facts", str(facts), "--index-url", index.url("simple"), "--output",
                  str(tmp_path / "b.tar"), env={"TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "c"), "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    with tarfile.open(tmp_path / "b.tar") as t:
        names = set(t.getnames())
    assert {"b/manifest.json", "b/torch-setup.pyz", "b/wheels/pip-25.0-py3-none-any.whl"} <= names
    assert not (tmp_path / "b.d").exists()
    # install --from the tarball: this host's files extracted into the bundle cache, and planned from there
    env = {"HOME": str(tmp_path), "TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "x")}
    plan = offline.plan(Request(), pipeline.read_facts(str(facts)), builtin_recipes, str(tmp_path / "b.tar"), env=env)
    argv = next(s for s in plan.todo if s.id == "torch").commands[0].argv
    wheels_dir = Path(argv[argv.index("--find-links") + 1])
    assert wheels_dir.is_relative_to(tmp_path / "x") and (wheels_dir / "pip-25.0-py3-none-any.whl").is_file()
    assert not (wheels_dir.parent / "torch-setup.pyz").exists()  # only what the plan needs


def test_a_host_that_installs_with_pip_gets_no_uv_and_a_pip_plan(tmp_path, index, builtin_recipes):
    """TORCH_SETUP_NO_UV=1 in that host's environment: its plan uses pip, the bundle holds no uv and no seed."""
    facts = other_host(tmp_path, index, python={"venv_ok": True})
    data = json.loads(facts.read_text())
    data["config"]["env"]["TORCH_SETUP_NO_UV"] = "1"
    facts.write_text(json.dumps(data))
    out = tmp_path / "b"
    res = run_cli("bundle", "--facts", str(facts), "--index-url", index.url("simple"), "--output", str(out),
                  env={"TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "c"), "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hosts"][0]["uv"] is None and not any(p.startswith("uv/") for p in manifest["files"])
    assert {w["name"] for w in next(iter(manifest["targets"].values()))["wheels"]} == {"torch", "tinydep"}
    plan = offline.plan(Request(), pipeline.read_facts(str(facts)), builtin_recipes, str(out))
    assert [s.id for s in plan.todo] == ["venv", "torch"]
    venv, torch = (s.commands[0].argv for s in plan.todo)
    assert venv == ("/usr/bin/python3", "-m", "venv", "/root/.venvs/torch")
    assert torch[:4] == ("/root/.venvs/torch/bin/python", "-m", "pip", "install") and "--no-index" in torch


def test_dry_run_prints_the_sizes_and_makes_nothing(tmp_path, index):
    facts = other_host(tmp_path, index)
    out = tmp_path / "bundle"
    res = run_cli("bundle", "--facts", str(facts), "--index-url", index.url("simple"), "--output", str(out),
                  "--dry-run", env={"TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert "total: 4 files" in res.stdout and "MB" in res.stdout
    assert not out.exists() and not (tmp_path / "cache" / "sha256").exists()


def test_a_second_bundle_downloads_nothing(built, index, tmp_path):
    out, facts, _, env = built
    asked = len(index.asked_under("simple/files"))
    res = run_cli("bundle", "--facts", str(facts), "--index-url", index.url("simple"), "--output",
                  str(tmp_path / "again"), "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert payload(res.stdout)["downloaded_bytes"] == 0
    # uv reads wheel metadata again where no cache of its own serves it; the bundle's downloads are none
    assert not [a for a in index.asked_under("simple/files")[asked:] if "uv-0.0.1" in a]


def test_install_from_plans_from_the_bundle_alone(built, index, builtin_recipes, tmp_path):
    out, facts_path, _, _ = built
    facts = pipeline.read_facts(str(facts_path))
    plan = offline.plan(Request(), facts, builtin_recipes, str(out))
    todo = {s.id: s for s in plan.todo}
    assert list(todo) == ["uv", "venv", "torch"]
    argv = " ".join(a for s in plan.todo for c in s.commands for a in c.argv)
    assert index.url("") not in argv and "pypi" not in argv  # no index anywhere
    torch = todo["torch"].commands[0].argv
    assert torch[-6:] == ("-r", str(out / next(iter(json.loads((out / "manifest.json").read_text())["targets"]
                                                    .values()))["requirements_file"]),
                          "--require-hashes", "--no-index", "--find-links", str(out / "wheels"))
    assert todo["venv"].commands[0].argv[-3:] == ("--no-index", "--find-links", str(out / "wheels"))
    # The uv step fetches the bundle's wheel from a file:// URL, checking its sha256: run it for real.
    py, _, script, url, sha, dest = todo["uv"].commands[0].argv
    assert url.startswith("file://" + str(out))
    res = subprocess.run([sys.executable, "-c", script, url, sha, str(tmp_path / "uv")], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert subprocess.run([str(tmp_path / "uv")], capture_output=True, text=True).stdout.strip() == "uv 0.0.1 (fake)"


def test_a_bundle_for_other_hosts_says_what_it_lacks_and_for_whom_it_was_built(built, builtin_recipes):
    out, facts_path, _, _ = built
    facts = pipeline.read_facts(str(facts_path))
    older = Facts.from_dict(dict(facts.to_dict(), python=dict(facts.to_dict()["python"], version="3.12.8")))
    with pytest.raises(BundleError) as e:
        offline.plan(Request(), older, builtin_recipes, str(out))
    assert "torch wheels for Python 3.12" in e.value.message and f"built for {facts_path}: debian 13 x86_64 " \
        "Python 3.13.5" in e.value.message and e.value.code == ExitCode.BUNDLE == 14
    with pytest.raises(BundleError) as e:  # companions it does not hold
        offline.plan(Request.parse(with_="torchvision"), facts, builtin_recipes, str(out))
    assert "with torchvision" in e.value.message
    bare = Facts.from_dict(dict(facts.to_dict(), compiler=dict(facts.to_dict()["compiler"], ok=False,
                                                                 toolchain_ok=False)))
    with pytest.raises(BundleError) as e:  # g++ to install: the bundle has no .debs
        offline.plan(Request(), bare, builtin_recipes, str(out))
    assert "the .debs of g++ for debian trixie amd64" in e.value.message


def test_the_package_step_installs_the_bundles_debs_and_never_the_archives(built, builtin_recipes):
    """On a host that has the network and apt lists, `apt-get install ./x.deb` fetches the same version from the
    archive instead of the file (apt 3.0, Debian 13: "Get:1 http://deb.debian.org/... hello"); with apt's lists
    directory pointed at the bundle's debs/ (no list files there) it knows only the bundle's files and the
    installed packages, so nothing leaves the host, with the network or without."""
    import hashlib

    out, facts_path, _, _ = built
    facts = pipeline.read_facts(str(facts_path))
    bare = Facts.from_dict(dict(facts.to_dict(), compiler=dict(facts.to_dict()["compiler"], ok=False,
                                                                 toolchain_ok=False)))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "debs").mkdir()
    files = []
    for name in ("g++-14_14.2.0-19_amd64.deb", "g++_4%3a14.2.0-1_amd64.deb"):
        (out / "debs" / name).write_bytes(name.encode())
        files.append(f"debs/{name}")
        manifest["files"][f"debs/{name}"] = {"sha256": hashlib.sha256(name.encode()).hexdigest(),
                                             "size": len(name), "source": "https://deb.debian.org/debian/"}
    manifest["deb_sets"] = {"debian-trixie-amd64": {"os": "debian", "codename": "trixie", "arch": "amd64",
                                                    "packages": ["g++"], "files": files}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    plan = offline.plan(Request(), bare, builtin_recipes, str(out))
    (step,) = [s for s in plan.todo if any("apt-get" in a for c in s.commands for a in c.argv)]
    (cmd,) = step.commands
    argv = list(cmd.argv)
    at = argv.index("install")
    assert argv[at + 1:at + 3] == ["-y", "--no-install-recommends"]
    assert "Dir::State::Lists=" + str(out / "debs") in argv[at:]
    assert argv[argv.index("Dir::State::Lists=" + str(out / "debs")) - 1] == "-o"
    assert argv[-2:] == [str(out / f) for f in files] and "update" not in argv


def test_a_damaged_bundle_is_refused_before_anything_runs(built, builtin_recipes):
    out, facts_path, _, _ = built
    facts = pipeline.read_facts(str(facts_path))
    manifest = json.loads((out / "manifest.json").read_text())
    torch = next(out.glob("wheels/torch-*.whl"))
    torch.unlink()
    with pytest.raises(BundleError, match="incomplete: wheels/torch-2.15.0"):
        offline.plan(Request(), facts, builtin_recipes, str(out))
    req = out / next(iter(manifest["targets"].values()))["requirements_file"]
    req.unlink()
    req.write_text("torch\n")
    with pytest.raises(BundleError, match="damaged: targets/.*/requirements.txt"):
        offline.plan(Request(), facts, builtin_recipes, str(out))


def test_install_from_no_bundle_is_exit_14(tmp_path):
    res = run_cli("install", "--dry-run", "--json", "--from", str(tmp_path / "nothing"), env={"HOME": str(tmp_path)})
    assert res.returncode == 14, res.stderr
    data = payload(res.stdout, "install")
    assert data["error"]["code"] == 14 and "no bundle there" in data["error"]["message"]
    res = run_cli("install", "--dry-run", "--from", "http://127.0.0.1:9/bundle", env={"HOME": str(tmp_path)})
    assert res.returncode == 14 and "cannot read manifest.json" in res.stderr, res.stderr


def test_facts_without_the_installed_packages_say_so(tmp_path, index):
    """.debs are resolved against the host's installed packages: facts of an older detect have none."""
    facts = json.loads((FIXTURES / "platforms" / "debian-13.json").read_text())
    facts["config"] = {"env": {"PIP_INDEX_URL": index.url("simple")}, "pip": ""}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(facts))
    res = run_cli("bundle", "--facts", str(path), "--index-url", index.url("simple"), "--output",
                  str(tmp_path / "b"), "--dry-run", env={"HOME": str(tmp_path)})
    assert res.returncode == 14, res.stderr
    assert "carry no installed packages" in res.stderr and "detect --json" in res.stderr


# ------------------------------------------------------------------------------------------------ apt, offline

def test_the_installed_packages_are_read_from_dpkg_status():
    assert packages.parse_installed(STATUS) == [
        "apt:amd64=3.0.4;provides=apt-transport-https (= 3.0.4)",
        "base-files:amd64=13.8+deb13u8;ma=foreign;provides=base, usr-is-merged",
        "base-passwd:amd64=3.6.7;ma=foreign"]  # not the half-configured and unpacked ones


def test_detect_reads_the_installed_packages_through_the_seam(builtin_recipes):
    facts = detected_with_dpkg_status("debian13-installed-system", STATUS, builtin_recipes)
    assert facts.host.installed_packages == packages.parse_installed(STATUS)
    assert Facts.from_dict(facts.to_dict()).host.installed_packages == facts.host.installed_packages  # round trip


def test_the_status_written_for_apt_takes_the_archives_stanza_of_the_same_version():
    shown = apt._stanzas(fixture_text("bundle", "apt-cache-show-trixie"))
    assert ("gcc-14-base", "14.2.0-19", "amd64") in shown
    text = apt.status_text(["gcc-14-base:amd64=14.2.0-19;ma=same", "gcc-14-base:i386=9.9", "x:all=1;ma=foreign"],
                           shown)
    stanzas = text.strip().split("\n\n")
    assert stanzas[0].startswith("Package: gcc-14-base\nStatus: install ok installed\n")
    assert "Breaks: gnat (<< 7)" in stanzas[0] and "Filename:" not in stanzas[0] and "SHA256" not in stanzas[0]
    assert stanzas[1] == "Package: gcc-14-base\nStatus: install ok installed\nArchitecture: i386\nVersion: 9.9"
    assert stanzas[2].endswith("Multi-Arch: foreign")


def test_print_uris_lines_become_debs_with_their_sha256(monkeypatch, tmp_path):
    out = fixture_text("bundle", "print-uris-trixie")

    class Sys:
        env: dict = {}

        def which(self, name):
            return "/usr/bin/" + name

        def run(self, argv, **kw):
            from torch_setup.host.system import Result

            return Result(0, out if "--print-uris" in argv else "", "", 0.0)

    ds = apt.DebSet("debian", "trixie", "amd64", ("g++",), ("libc6:amd64=2.41-12+deb13u5;ma=same",), ("deb x",))
    items = apt.resolve(Sys(), ds, str(tmp_path))
    assert [i.path for i in items][:2] == ["debs/manpages_6.9.1-1_all.deb", "debs/gcc-14-base_14.2.0-19_amd64.deb"]
    assert items[1].size == 49432
    assert items[1].sha256 == "5b6825de4263824b78c4c51f6476414f3b4e89c2ab63e81dc8b9b5501e867cf6"
    assert items[1].url == "http://deb.debian.org/debian/pool/main/g/gcc-14/gcc-14-base_14.2.0-19_amd64.deb"
    assert (tmp_path / "debian-trixie-amd64" / "status").read_text().startswith("Package: libc6\nStatus: install")


def test_the_plans_apt_and_torch_commands_are_read_back():
    assert make.apt_packages(("sudo", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                              "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", "g++", "python3.13-dev")) \
        == ["g++", "python3.13-dev"]
    assert make.apt_packages(("apt-get", "update", "-o", "DPkg::Lock::Timeout=600")) is None
    assert wheels.split_step(("/root/.cache/torch-setup/uv-0.13.9/uv", "pip", "install", "--python",
                              "/root/.venvs/torch/bin/python", "torch==2.15.0", "torchvision==0.30.*",
                              "--index-url", "https://pypi.org/simple")) == (
        ("torch==2.15.0", "torchvision==0.30.*"), ("--index-url", "https://pypi.org/simple"))


@pytest.mark.parametrize("arch,libc,want", [("x86_64", "2.41", "x86_64-manylinux_2_40"),
                                            ("aarch64", "2.36", "aarch64-manylinux_2_36"),
                                            ("x86_64", "2.30", "x86_64-manylinux_2_28"),
                                            ("amd64", "2.17", "x86_64-manylinux_2_17")])
def test_uv_platform_of_the_facts(arch, libc, want):
    facts = Facts.from_dict({"arch": arch, "libc": {"name": "glibc", "version": libc},
                             "python": {"found": True, "version": "3.13.5"}})
    assert wheels.uv_platform(facts) == want


@pytest.fixture
def http_bundle(built):
    """The built bundle's folder served over HTTP on 127.0.0.1 (a controller serving it); records each path."""
    asked: list = []
    with serve_folder(built[0], asked) as base:
        yield f"{base}/", asked


def test_install_from_a_url_fetches_what_this_plan_needs_checked(built, http_bundle, builtin_recipes, tmp_path):
    out, facts_path, _, _ = built
    url, asked = http_bundle
    facts = pipeline.read_facts(str(facts_path))
    env = {"HOME": str(tmp_path), "TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "c")}
    plan = offline.plan(Request(), facts, builtin_recipes, url, env=env)
    torch = next(s for s in plan.todo if s.id == "torch").commands[0].argv
    local = Path(torch[torch.index("--find-links") + 1]).parent
    assert local.is_relative_to(tmp_path / "c")
    got = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    manifest = json.loads((out / "manifest.json").read_text())
    target = next(iter(manifest["targets"].values()))
    assert got == sorted([w["path"] for w in target["wheels"]] + [target["requirements_file"],
                                                                  manifest["hosts"][0]["uv"]])
    assert "/torch-setup.pyz" not in asked  # only what this host's plan needs
    # A file served that is not what the manifest says: refused by name, nothing used.
    dep = next(out.glob("wheels/tinydep-*.whl"))
    data = dep.read_bytes()
    dep.unlink()
    dep.write_bytes(data[:-1] + b"x")
    with pytest.raises(BundleError, match="tinydep-1.2-py3-none-any.whl: sha256"):
        offline.plan(Request(), facts, builtin_recipes, url,
                     env=dict(env, TORCH_SETUP_BUNDLE_CACHE=str(tmp_path / "d")))


def test_a_deb_whose_name_has_an_escaped_epoch_is_fetched_by_that_name(tmp_path):
    """apt names a .deb of version 4:14.2.0-1 `…_4%3a14.2.0-1_amd64.deb`: the URL must escape the %, or the server
    looks for `…_4:14.2.0-1…` and answers 404."""
    import hashlib

    folder = tmp_path / "b"
    (folder / "debs").mkdir(parents=True)
    name = "debs/cpp-x86-64-linux-gnu_4%3a14.2.0-1_amd64.deb"
    (folder / name).write_bytes(b"deb bytes")
    digest = hashlib.sha256(b"deb bytes").hexdigest()
    (folder / "manifest.json").write_text(json.dumps({"format": make.FORMAT, "files": {
        name: {"sha256": digest, "size": 9}}}))

    with serve_folder(folder) as base:
        env = {"HOME": str(tmp_path), "TORCH_SETUP_BUNDLE_CACHE": str(tmp_path / "c")}
        source = offline.Source(f"{base}/", env)
        source.ensure([name])
        assert Path(source.dir, name).read_bytes() == b"deb bytes"
