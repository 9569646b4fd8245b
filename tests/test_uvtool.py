"""uvtool: choosing a uv wheel from a real PyPI listing (tests/fixtures/uv/pypi-uv.json) for several targets,
resolving it over the user's indexes then PyPI, finding an earlier fetch, and FETCH_SCRIPT run for real against a
wheel served on 127.0.0.1, by this Python and by a CPython 3.6 and 3.7 (pyenv's), the python3 of RHEL 8 and
openSUSE Leap 15, where the plan's uv step runs the script with the box's own interpreter."""
from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from conftest import FIXTURES, changed, host_facts_dict
from lab import serve_folder
from torch_setup import run
from torch_setup.wheels import indexes
from torch_setup.wheels import uv as uvtool
from torch_setup.facts.host import cached_uv
from torch_setup.facts.model import Facts
from torch_setup.planning.steps import Plan
from torch_setup.planning.make import make_plan
from torch_setup.request import Request
from torch_setup.report import Reporter
from torch_setup.host.replay import FakeSystem
from torch_setup.host.system import System
from torch_setup.wheels.tags import target_from

PYPI_UV = json.loads((FIXTURES / "uv" / "pypi-uv.json").read_text())
PYPI_SOURCE = indexes.Source(indexes.PYPI, "index", "PyPI")


def pypi_files():
    return tuple(indexes.File(f["filename"], f["url"], f["requires_python"], f["yanked"], f["size"], f["sha256"])
                 for f in PYPI_UV["files"])


def version_of(filename: str) -> Version:
    return parse_wheel_filename(filename)[1]


def wheels(files=None):
    return [f for f in (files or pypi_files()) if f.filename.endswith(".whl")]


NEWEST = max(version_of(f.filename) for f in wheels())


def facts(**changes) -> Facts:
    """debian13-minbase (x86_64, glibc 2.41) with dotted-key changes."""
    data = host_facts_dict("debian13-minbase")
    return changed(data, **changes)


TARGETS = {
    "linux x86_64 glibc 2.41": facts(),
    "linux aarch64 glibc 2.41": facts(arch="aarch64"),
    "alpine x86_64 musl 1.2.5": facts(**{"libc.name": "musl", "libc.version": "1.2.5", "os.id": "alpine"}),
    "alpine aarch64 musl 1.2.5": facts(arch="aarch64", **{"libc.name": "musl", "libc.version": "1.2.5"}),
    "macos 15 arm64": facts(arch="arm64", **{"os.system": "Darwin", "os.id": "darwin", "os.version": "15.5",
                                             "libc.name": None, "libc.version": None}),
    "windows amd64": facts(arch="AMD64", **{"os.system": "Windows", "os.id": "windows", "libc.name": None,
                                            "libc.version": None}),
}
# What each target must get, as the wheel's platform part says it (independent of packaging's tag lists).
WANT_PLATFORM = {
    "linux x86_64 glibc 2.41": ("manylinux", "x86_64"),
    "linux aarch64 glibc 2.41": ("manylinux", "aarch64"),
    "alpine x86_64 musl 1.2.5": ("musllinux_1_1_x86_64",),
    "alpine aarch64 musl 1.2.5": ("musllinux_1_1_aarch64",),
    "macos 15 arm64": ("macosx_11_0_arm64",),
    "windows amd64": ("win_amd64",),
}


def tags_of(f: Facts):
    return target_from(f)[0].tags


def test_the_fixture_is_a_real_trimmed_pypi_listing():
    files = pypi_files()
    assert 40 <= len(files) <= 300
    assert all(f.sha256 and len(f.sha256) == 64 and f.size for f in files)
    assert all(f.url.startswith("https://files.pythonhosted.org/") for f in files)
    assert any(f.filename.endswith(".tar.gz") for f in files)
    versions = {version_of(f.filename) for f in wheels()}
    assert Version("0.10.0") in versions and Version("0.9.30") in versions  # 0.10 must beat 0.9 by version


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_choose_the_newest_wheel_for_each_target(name):
    wheel = uvtool.choose(pypi_files(), tags_of(TARGETS[name]))
    assert wheel is not None
    assert Version(wheel.version) == NEWEST
    assert all(part in wheel.filename for part in WANT_PLATFORM[name]), wheel.filename
    f = next(f for f in pypi_files() if f.filename == wheel.filename)
    assert (wheel.url, wheel.sha256, wheel.size) == (f.url, f.sha256, f.size)
    assert wheel.dest("/home/ada") == f"/home/ada/.cache/torch-setup/uv-{wheel.version}/uv"


def test_glibc_wheel_is_not_taken_for_musl_and_the_reverse():
    gnu = uvtool.choose(pypi_files(), tags_of(TARGETS["linux x86_64 glibc 2.41"]))
    musl = uvtool.choose(pypi_files(), tags_of(TARGETS["alpine x86_64 musl 1.2.5"]))
    assert "musllinux" not in gnu.filename
    assert "manylinux" not in musl.filename


def test_a_glibc_older_than_any_wheel_gets_none():
    old = facts(**{"libc.version": "2.12"})  # CentOS 6: uv's Linux wheels need glibc 2.17
    assert uvtool.choose(pypi_files(), tags_of(old)) is None


def _newest_x86(files):
    tags = tags_of(TARGETS["linux x86_64 glibc 2.41"])
    return uvtool.choose(files, tags)


def _with(files, filename, **changes):
    return tuple(dataclasses.replace(f, **changes) if f.filename == filename else f for f in files)


@pytest.mark.parametrize("change", [{"yanked": True}, {"sha256": None}])
def test_yanked_or_unhashed_wheels_are_skipped(change):
    files = pypi_files()
    first = _newest_x86(files)
    second = _newest_x86(_with(files, first.filename, **change))
    assert second is not None and Version(second.version) < Version(first.version)
    assert second.filename != first.filename and "x86_64" in second.filename


def test_prereleases_are_skipped():
    # PyPI has no uv prerelease today: one made from the newest real x86_64 file, with a higher version
    files = pypi_files()
    first = _newest_x86(files)
    real = next(f for f in files if f.filename == first.filename)
    pre = dataclasses.replace(real, filename=real.filename.replace(f"uv-{first.version}-", "uv-99.0.0rc1-"))
    assert version_of(pre.filename).is_prerelease
    assert _newest_x86(files + (pre,)).filename == first.filename
    final = dataclasses.replace(pre, filename=pre.filename.replace("99.0.0rc1", "99.0.0"))
    assert _newest_x86(files + (final,)).version == "99.0.0"  # the same file as a final release is taken


def test_versions_compare_as_versions_not_strings():
    files = tuple(f for f in pypi_files() if version_of_any(f.filename) < Version("0.11"))
    wheel = _newest_x86(files)
    assert wheel.version == "0.10.0"  # "0.9.30" > "0.10.0" as strings


def version_of_any(filename):
    return version_of(filename) if filename.endswith(".whl") else Version(filename[3:-len(".tar.gz")])


def test_sdists_and_bad_names_are_never_chosen():
    sdists = tuple(f for f in pypi_files() if not f.filename.endswith(".whl"))
    assert sdists and _newest_x86(sdists) is None
    bad = indexes.File("uv-not-a-wheel-name.whl", "https://x/uv.whl", sha256="0" * 64)
    assert _newest_x86((bad,)) is None


# --------------------------------------------------------------------------------------------- resolve

class Indexes:
    """A fake `fetch(source)`: each URL answers a listing, or raises IndexUnreachable."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def __call__(self, source):
        self.asked.append(source.url)
        answer = self.answers[source.url]
        if isinstance(answer, str):
            raise indexes.IndexUnreachable(source, answer)
        return answer


MIRROR = "https://mirror.example/simple"


def test_resolve_skips_an_unreachable_index_then_asks_pypi():
    fetch = Indexes({MIRROR: "no connection within 3.05 s",
                     indexes.PYPI: indexes.Listing(PYPI_SOURCE, pypi_files())})
    wheel = uvtool.resolve(facts(), {"PIP_INDEX_URL": MIRROR}, fetch=fetch)
    assert fetch.asked == [MIRROR, indexes.PYPI]
    assert wheel == _newest_x86(pypi_files())


def test_resolve_takes_the_users_index_first_when_it_has_uv():
    mirrored = tuple(dataclasses.replace(f, url=f.url.replace("https://files.pythonhosted.org", MIRROR))
                     for f in pypi_files() if version_of_any(f.filename) == Version("0.13.8"))
    fetch = Indexes({MIRROR: indexes.Listing(indexes.Source(MIRROR), mirrored)})
    wheel = uvtool.resolve(facts(), {"UV_DEFAULT_INDEX": MIRROR}, fetch=fetch)
    assert fetch.asked == [MIRROR]  # PyPI never asked
    assert wheel.version == "0.13.8" and wheel.url.startswith(MIRROR)


def test_resolve_asks_the_index_url_flag_first():
    """`install --index-url MIRROR` on a box that reaches only MIRROR: uv comes from there, not PyPI."""
    mirrored = tuple(dataclasses.replace(f, url=f.url.replace("https://files.pythonhosted.org", MIRROR))
                     for f in pypi_files() if version_of_any(f.filename) == Version("0.13.8"))
    fetch = Indexes({MIRROR: indexes.Listing(indexes.Source(MIRROR), mirrored)})
    wheel = uvtool.resolve(facts(), {}, fetch=fetch, index_url=MIRROR)
    assert fetch.asked == [MIRROR] and wheel.url.startswith(MIRROR)
    from torch_setup import pipeline

    plan_wheel = pipeline.resolve_uv(facts(), uvtool_recipes(), Request.parse(index_url=MIRROR),
                                     fetch=lambda source, project: fetch(source))
    assert plan_wheel == wheel


def test_resolve_goes_on_when_the_index_has_no_uv_and_skips_local_folders():
    fetch = Indexes({MIRROR: indexes.Listing(indexes.Source(MIRROR), (), found=False),
                     indexes.PYPI: indexes.Listing(PYPI_SOURCE, pypi_files())})
    env = {"PIP_INDEX_URL": "file:///srv/wheelhouse", "PIP_EXTRA_INDEX_URL": MIRROR}
    assert uvtool.resolve(facts(), env, fetch=fetch) is not None
    assert fetch.asked == [MIRROR, indexes.PYPI]


def test_resolve_nothing_answers():
    fetch = Indexes({indexes.PYPI: "the host name does not resolve"})
    assert uvtool.resolve(facts(), {}, fetch=fetch) is None
    assert fetch.asked == [indexes.PYPI]


@pytest.mark.parametrize("value,asks", [("1", False), ("yes", False), ("0", True), ("", True)])
def test_torch_setup_no_uv(value, asks):
    fetch = Indexes({indexes.PYPI: indexes.Listing(PYPI_SOURCE, pypi_files())})
    wheel = uvtool.resolve(facts(), {uvtool.NO_UV_ENV: value}, fetch=fetch)
    assert (wheel is not None) is asks
    assert bool(fetch.asked) is asks


def test_resolve_without_a_known_python_version_is_none():
    unknown = facts(**{"python.version": None, "python.executable": "/opt/odd/python"})
    fetch = Indexes({indexes.PYPI: indexes.Listing(PYPI_SOURCE, pypi_files())})
    assert uvtool.resolve(unknown, {}, fetch=fetch) is None


# --------------------------------------------------------------------------------------------- cached

def test_cached_picks_the_newest_by_version():
    root = "/root/.cache/torch-setup"
    system = FakeSystem(files={f"{root}/uv-0.9.10/uv": "", f"{root}/uv-0.13.9/uv": "", f"{root}/uv-0.4.30/uv": "",
                               f"{root}/uv-0.14.0/uv.part": "",  # an interrupted fetch: no binary
                               f"{root}/uv-latest/uv": "", f"{root}/compiler-check.json": "{}"})
    assert system.listdir(root) == ["compiler-check.json", "uv-0.13.9", "uv-0.14.0", "uv-0.4.30", "uv-0.9.10",
                                    "uv-latest"]
    assert cached_uv("/root", system) == f"{root}/uv-0.13.9/uv"


def test_cached_none():
    assert cached_uv("/root", FakeSystem()) is None
    assert cached_uv("/root", FakeSystem(files={"/root/.cache/torch-setup/uv-1.0/README": ""})) is None


# --------------------------------------------------------------------------------------------- FETCH_SCRIPT

UV_SCRIPT = "#!/bin/sh\necho 'uv 0.0.1 (fake)'\n"


def make_wheel(folder: Path, with_binary: bool = True) -> Path:
    path = folder / "uv-0.0.1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    with zipfile.ZipFile(path, "w") as z:
        if with_binary:
            z.writestr("uv-0.0.1.data/scripts/uv", UV_SCRIPT)
        z.writestr("uv-0.0.1.dist-info/METADATA", "Metadata-Version: 2.3\nName: uv\nVersion: 0.0.1\n")
        z.writestr("uv/__init__.py", "")
    return path


@pytest.fixture
def served(tmp_path):
    """Files in tmp_path/www served over HTTP on 127.0.0.1; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    with serve_folder(www) as base:
        yield www, base


def clean_env():
    drop = {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"}
    return {k: v for k, v in os.environ.items() if k not in drop and "proxy" not in k.lower()}


@functools.lru_cache(maxsize=None)
def pyenv_root() -> str:
    """$PYENV_ROOT, else what `pyenv root` says, else ~/.pyenv (pyenv's own default)."""
    if os.environ.get("PYENV_ROOT"):
        return os.environ["PYENV_ROOT"]
    try:
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or os.path.expanduser("~/.pyenv")


@functools.lru_cache(maxsize=None)
def old_python(minor: str) -> str:
    """A CPython `minor` (3.6, 3.7) from pyenv's versions, checked by running it; "" when there is none."""
    for exe in sorted(glob.glob(os.path.join(pyenv_root(), "versions", f"{minor}.*", "bin", f"python{minor}"))):
        try:
            said = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if said == minor:
            return exe
    return ""


@pytest.fixture(params=["this", "3.6", "3.7"])
def python(request) -> str:
    """The interpreter that runs FETCH_SCRIPT: this one, or an old CPython that a plan's uv step meets as a box's
    python3 (3.6 on RHEL 8 and openSUSE Leap 15)."""
    if request.param == "this":
        return sys.executable
    exe = old_python(request.param)
    if not exe:
        pytest.skip(f"no CPython {request.param} here (looked for {pyenv_root()}/versions/{request.param}.*/bin/"
                    f"python{request.param}; `pyenv install {request.param}` makes one)")
    return exe


def fetch_script(url, sha256, dest, python=sys.executable):
    return subprocess.run([python, "-c", uvtool.FETCH_SCRIPT, url, sha256, str(dest)], capture_output=True,
                          text=True, timeout=60, env=clean_env())


def test_fetch_script_unpacks_an_executable_uv(served, tmp_path, python):
    www, base = served
    wheel = make_wheel(www)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dest = tmp_path / "home" / ".cache" / "torch-setup" / "uv-0.0.1" / "uv"
    p = fetch_script(f"{base}/{wheel.name}", digest, dest, python)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"uv unpacked to {dest}\n"
    assert dest.read_text() == UV_SCRIPT
    assert os.access(dest, os.X_OK) and dest.stat().st_mode & stat.S_IXUSR
    assert os.listdir(dest.parent) == ["uv"]  # no .part left
    assert subprocess.run([str(dest)], capture_output=True, text=True).stdout == "uv 0.0.1 (fake)\n"


def test_fetch_script_refuses_a_wrong_sha256(served, tmp_path, python):
    www, base = served
    wheel = make_wheel(www)
    good = hashlib.sha256(wheel.read_bytes()).hexdigest()
    bad = hashlib.sha256(b"something else").hexdigest()
    dest = tmp_path / "home" / ".cache" / "torch-setup" / "uv-0.0.1" / "uv"
    p = fetch_script(f"{base}/{wheel.name}", bad, dest, python)
    assert p.returncode != 0
    assert f"sha256 {good}, expected {bad}" in p.stderr
    assert not dest.exists() and not dest.parent.exists()


def test_fetch_script_fails_on_a_wheel_without_the_binary(served, tmp_path, python):
    www, base = served
    wheel = make_wheel(www, with_binary=False)
    dest = tmp_path / "uv-0.0.1" / "uv"
    p = fetch_script(f"{base}/{wheel.name}", hashlib.sha256(wheel.read_bytes()).hexdigest(), dest, python)
    assert p.returncode != 0 and not dest.exists()
    assert "StopIteration" in p.stderr  # the script's next() finds no .data/scripts/uv (no SyntaxError on 3.6)


def test_the_plans_uv_step_runs_for_real(served, tmp_path):
    """The uv step of a plan, as make_plan writes it, run by the runner on this machine: the binary lands where
    the venv and torch steps will look for it."""
    www, base = served
    wheel = make_wheel(www)
    uv = uvtool.UvWheel("0.0.1", wheel.name, f"{base}/{wheel.name}",
                        hashlib.sha256(wheel.read_bytes()).hexdigest(), wheel.stat().st_size)
    home = tmp_path / "home"
    f = facts(**{"host.home": str(home), "python.executable": sys.executable})
    plan = make_plan(f, uvtool_recipes(), Request(venv=str(tmp_path / "venv")), uv=uv)
    uv_step = next(s for s in plan.steps if s.id == "uv")
    venv_step = next(s for s in plan.steps if s.id == "venv")
    assert venv_step.commands[0].argv[0] == uv.dest(str(home))
    out = io.StringIO()
    runs = run.execute(System(env=clean_env()), Plan((uv_step,), None, None), f, Reporter(out))
    assert [(r.id, r.status) for r in runs] == [("uv", "ran")]
    assert os.access(uv.dest(str(home)), os.X_OK)
    assert "uv unpacked to" in out.getvalue()
    assert "<script: torch-setup: fetch the uv wheel" in out.getvalue()  # the script shows as its first line


@pytest.mark.parametrize("where", ["PATH", "cache"])
def test_no_uv_installs_with_pip_even_where_a_uv_is_on_the_box(tmp_path, where):
    """TORCH_SETUP_NO_UV=1 on a box where uv is on PATH, or cached by an earlier run: pip makes the venv and
    installs torch; without the variable, that uv does."""
    uv = "/usr/local/bin/uv" if where == "PATH" else "/root/.cache/torch-setup/uv-0.13.9/uv"
    for env, want in (({}, uv), ({"TORCH_SETUP_NO_UV": "1"}, None)):
        f = facts(**{"host.uv": uv, "config.env": env})
        plan = make_plan(f, uvtool_recipes(), Request(venv=str(tmp_path / "venv")))
        steps = {s.id: s for s in plan.steps}
        torch_argv, venv_argv = steps["torch"].commands[0].argv, steps["venv"].commands[0].argv
        if want:
            assert torch_argv[:2] == (uv, "pip") and venv_argv[:2] == (uv, "venv")
        else:
            assert uv not in torch_argv and torch_argv[1:4] == ("-m", "pip", "install"), torch_argv
            assert venv_argv[1:3] == ("-m", "venv") and not any(s.id == "uv" for s in plan.steps)


def uvtool_recipes():
    from torch_setup.recipes import load as recipes

    return recipes.load()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/uv.whl", "file:///no/such/uv.whl"])
def test_the_fetch_script_fails_in_one_line_without_a_traceback(tmp_path, url):
    import subprocess
    import sys

    from torch_setup.wheels.uv import FETCH_SCRIPT

    p = subprocess.run([sys.executable, "-c", FETCH_SCRIPT, url, "0" * 64, str(tmp_path / "uv")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("uv wheel: cannot fetch or unpack it: URLError")
