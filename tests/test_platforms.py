"""Every supported platform: its facts (tests/fixtures/platforms, see SOURCES.md there) and the exact commands of
its plan, for its default Python and for `--python 3.13` -- what a maintainer of that platform runs (the
commands the recipes' `source` rows cite). The whole plans are cases in tests/plans (tests/test_plan_cases.py);
here: the fixtures themselves, and the providers (python_steps) and compiler fixes (compiler_steps) piece by piece.
`plan_for` is conftest's: the assembly production runs."""
from __future__ import annotations

import json

import pytest

from conftest import plan_for, FIXTURES, assert_bad_recipe, changed
from torch_setup.planning import compiler as compiler_fix
from torch_setup.planning import provide as provision
from torch_setup.recipes import load as recipes_mod
from torch_setup.errors import ExitCode, UnsupportedError
from torch_setup.facts.host import parse_os_release, parse_sw_vers
from torch_setup.facts.model import Facts
from torch_setup.planning.make import make_plan
from torch_setup.request import PythonRequest, Request
from torch_setup.wheels.uv import FETCH_SCRIPT, UvWheel

PLATFORMS = FIXTURES / "platforms"
NAMES = sorted(p.stem for p in PLATFORMS.glob("*.json"))
V = "/root/.venvs/torch"
OPTS = Request(venv=V)
APT = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600"
UPDATE = "DEBIAN_FRONTEND=noninteractive apt-get update -o DPkg::Lock::Timeout=600"
UVT = "/root/.local/share/torch-setup/uv"  # provision.UV_TOOL_VENV with HOME=/root
CONDA = {"conda-miniforge": "/opt/conda/bin/conda", "micromamba": "/bin/micromamba"}  # on PATH in those images


@pytest.fixture(autouse=True)
def home_is_root(monkeypatch):
    monkeypatch.setenv("HOME", "/root")  # the fixtures are root's boxes; ~ in the plans expands to /root


def facts(name: str, **changes) -> Facts:
    """A platform's facts, with dotted-key changes: facts('rhel-8', **{'compiler.version': '8.5.0'})."""
    data = json.loads((PLATFORMS / f"{name}.json").read_text())
    return changed(data, **changes)


def lines(plan) -> list:
    """One line per step, its commands joined as a shell line: `id (root): cmd && cmd`, or `id: done`."""
    out = []
    for s in plan.steps:
        if s.status == "done":
            out.append(f"{s.id}: done")
        else:
            out.append(f"{s.id}{' (root)' if s.root else ''}: " + " && ".join(c.display() for c in s.commands))
    return out


# ------------------------------------------------------------------------------------------ the fixtures themselves

OS_FILES = {
    "debian-12": "debian-12.txt", "debian-13": "debian-13.txt", "debian-testing": "debian-testing.txt",
    "ubuntu-22.04": "ubuntu-22.04.txt", "ubuntu-24.04": "ubuntu-24.04.txt", "ubuntu-25.10": "ubuntu-25.10.txt",
    "ubuntu-26.04": "ubuntu-26.04.txt", "fedora-42": "fedora-42.txt", "fedora-43": "fedora-43.txt",
    "fedora-44": "fedora-44.txt", "rhel-8": "rhel-8.txt", "rocky-8": "rocky-8.txt", "rhel-9": "rhel-9.txt",
    "rocky-9": "rocky-9.txt", "almalinux-9": "almalinux-9.txt", "rhel-10": "rhel-10.txt",
    "rocky-10": "rocky-10.txt", "almalinux-10": "almalinux-10.txt", "amzn-2023": "amzn-2023.txt",
    "amzn-2": "amzn-2.txt", "opensuse-tumbleweed": "opensuse-tumbleweed.txt",
    "opensuse-leap-15.6": "opensuse-leap-15.6.txt", "opensuse-leap-16.0": "opensuse-leap-16.0.txt",
    "arch": "arch.txt", "alpine-3.22": "alpine-3.22.txt", "macos-14-homebrew": "macos-14-sw_vers.txt",
    "macos-15-homebrew": "macos-15-sw_vers.txt", "python-3.13": "debian-13.txt",
    "python-3.13-slim": "debian-13.txt", "nvidia-cuda-ubuntu24.04": "ubuntu-24.04.txt",
    "conda-miniforge": "ubuntu-24.04.txt", "micromamba": "debian-12.txt", "uv-managed": "debian-12.txt",
    "pyenv": "debian-12.txt",
}


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_valid_facts_of_its_real_os_release(name):
    f = facts(name)  # Facts.from_dict validates every key and type
    text = (FIXTURES / "os-release" / OS_FILES[name]).read_text()
    expected = parse_sw_vers(text) if "sw_vers" in OS_FILES[name] else parse_os_release(text)
    assert (f.os.id, f.os.version, f.os.like, f.os.name) == (expected.id, expected.version, expected.like,
                                                             expected.name)
    assert Facts.from_dict(f.to_dict()) == f


def test_every_fixture_is_described_in_sources_md():
    text = (PLATFORMS / "SOURCES.md").read_text()
    assert set(OS_FILES) == set(NAMES)
    for name in NAMES:
        assert name in text, name


@pytest.mark.parametrize("os_file,want", [
    ("rhel-8.txt", "el8"), ("rocky-8.txt", "el8"), ("rhel-9.txt", "rhel-9"), ("rocky-9.txt", "el9"),
    ("almalinux-9.txt", "el9"), ("rhel-10.txt", "rhel-10"), ("rocky-10.txt", "el10"),
    ("almalinux-10.txt", "el10"), ("amzn-2023.txt", "amzn-2023"), ("fedora-42.txt", "fedora-41-42"),
    ("fedora-44.txt", "fedora-43-45"), ("opensuse-leap-15.6.txt", "opensuse-leap-15"),
    ("opensuse-leap-16.0.txt", "opensuse-leap-16"), ("opensuse-tumbleweed.txt", "opensuse-tumbleweed"),
    ("arch.txt", "arch"), ("alpine-3.22.txt", "alpine"), ("ubuntu-22.04.txt", "ubuntu-22.04"),
    ("ubuntu-26.04.txt", "ubuntu-26.04"), ("debian-sid.txt", "debian-testing"),
])
def test_real_os_release_finds_its_recipe(builtin_recipes, os_file, want):
    os_ = parse_os_release((FIXTURES / "os-release" / os_file).read_text())
    assert builtin_recipes.platform_for(os_.id, os_.like, os_.version).id == want


def test_the_os_id_itself_wins_over_id_like(builtin_recipes):
    # RHEL 8 says ID_LIKE="fedora" and Amazon Linux 2023 ID_LIKE="fedora": the generic Fedora entry, earlier in
    # the file, must not answer for them; a Debian derivative still gets the family entry.
    assert builtin_recipes.platform_for("rhel", ["fedora"], "8.9").id == "el8"
    assert builtin_recipes.platform_for("amzn", ["fedora"], "2023").id == "amzn-2023"
    assert builtin_recipes.platform_for("kali", ["debian"], "2024.4").id == "debian-family"


# ------------------------------------------------------------------------------------------------------ providers

def test_debian_testing_gets_python3_13_dev_not_python3_dev(builtin_recipes):
    prov = provision.python_steps(facts("debian-testing"), builtin_recipes, PythonRequest.parse("3.13"))
    argv = prov.steps[0].commands[-1].argv
    assert "python3.13-dev" in argv and "python3-dev" not in argv and "python3.13" in argv
    assert prov.python == "/usr/bin/python3.13" and prov.provider == "system"


def test_debian12_with_a_uv_wheel_fetches_uv_instead_of_a_venv(builtin_recipes):
    wheel = UvWheel("0.13.9", "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl", "https://pypi.example/uv.whl",
                    "ab" * 32, 20_000_000)
    plan = plan_for(facts("debian-12"), builtin_recipes, OPTS, python="3.13", uv=wheel)
    uv = "/root/.cache/torch-setup/uv-0.13.9/uv"
    assert [(s.id, s.after) for s in plan.steps] == [
        ("python-packages", ()), ("uv", ("python-packages",)), ("python", ("uv",)),
        ("system-packages", ("python",)), ("torch", ("python",))]
    assert lines(plan)[0] == f"python-packages (root): {APT} g++ ca-certificates openssl"  # no python3-venv
    fetch = plan.steps[1].commands[0].argv
    assert fetch == ("/usr/bin/python3", "-c", FETCH_SCRIPT, wheel.url, wheel.sha256, uv)
    assert plan.steps[2].commands[0].argv == (uv, "python", "install", "3.13")
    assert plan.steps[-1].commands[0].argv[:5] == (uv, "pip", "install", "--python", V + "/bin/python")


def test_debian12_pyenv(builtin_recipes):
    plan = plan_for(facts("debian-12"), builtin_recipes, OPTS, python="3.13", provider="pyenv")
    build = ("make build-essential libssl-dev zlib1g-dev libbz2-dev libreadline-dev libsqlite3-dev curl git "
             "libncursesw5-dev xz-utils tk-dev libxml2-dev libxmlsec1-dev libffi-dev liblzma-dev")
    assert lines(plan) == [
        f"python-packages (root): {APT} {build} g++ ca-certificates openssl",
        "pyenv: git clone --depth 1 https://github.com/pyenv/pyenv.git /root/.pyenv",
        "python: /root/.pyenv/bin/pyenv install --skip-existing 3.13 && sh -c "
        "'exec \"$(\"$0\" root)/versions/$(\"$0\" latest \"$1\")/bin/python$1\" -m venv \"$2\"' "
        f"/root/.pyenv/bin/pyenv 3.13 {V}",
        "system-packages: done",
        f"torch: {V}/bin/python -m pip install 'torch>=2.6'",
    ]


def test_debian12_pyenv_already_on_path(builtin_recipes):
    prov = provision.python_steps(facts("debian-12", **{"host.pyenv": "/usr/local/bin/pyenv"}), builtin_recipes,
                                  PythonRequest.parse("3.13"), "pyenv", venv=V)
    assert [s.id for s in prov.steps] == ["python-packages", "python"]
    assert prov.steps[1].commands[0].argv == ("/usr/local/bin/pyenv", "install", "--skip-existing", "3.13")


def test_debian12_conda(builtin_recipes):
    plan = plan_for(facts("debian-12", **{"host.conda": "/opt/miniforge3/bin/conda"}), builtin_recipes, OPTS,
                    python="3.13", provider="conda")
    env = "/root/.conda/envs/torch-py313"
    assert lines(plan) == [
        f"python: /opt/miniforge3/bin/conda create -y -p {env} -c conda-forge python=3.13 gxx gcc "
        "'sysroot_linux-64>=2.28'",
        f"system-packages (root): {APT} ca-certificates openssl",  # the box's, not the env's
        f"torch: {env}/bin/python -m pip install 'torch>=2.6'",
    ]
    assert plan.steps[0].root is False and plan.steps[0].creates == env
    assert f"CXX={env}/bin/g++ CC={env}/bin/gcc" in plan.notes[0]


def test_conda_without_a_conda_binary_is_refused(builtin_recipes):
    with pytest.raises(UnsupportedError, match="no conda, mamba or micromamba") as e:
        provision.python_steps(facts("debian-12"), builtin_recipes, PythonRequest.parse("3.13"), "conda")
    assert "Miniforge" in e.value.hint


def test_system_provider_where_the_platform_has_no_3_13(builtin_recipes):
    with pytest.raises(UnsupportedError, match="does not package Python 3.13") as e:
        provision.python_steps(facts("debian-12"), builtin_recipes, PythonRequest.parse("3.13"), "system")
    assert "--python-from uv" in e.value.hint


def test_uv_on_a_box_that_has_uv_and_the_python_already(builtin_recipes):
    prov = provision.python_steps(facts("debian-13"), builtin_recipes, PythonRequest.parse("3.13"))
    assert prov.steps == () and prov.provider == "" and prov.python == "/usr/bin/python3"


def test_homebrew_uv_comes_from_brew(builtin_recipes):
    plan = plan_for(facts("macos-15-homebrew"), builtin_recipes, OPTS, python="3.13", provider="uv")
    assert lines(plan)[:2] == [
        "python-packages: NONINTERACTIVE=1 brew install uv libomp",
        f"python: uv python install 3.13 && uv venv --seed --allow-existing --python 3.13 {V}",
    ]


def test_free_threaded_from_uv(builtin_recipes):
    plan = plan_for(facts("debian-13"), builtin_recipes, OPTS, python="3.13t")
    assert lines(plan)[2] == (f"python: {UVT}/bin/uv python install 3.13t && "
                              f"{UVT}/bin/uv venv --seed --allow-existing --python 3.13t {V}")
    assert lines(plan)[-1].endswith(" 'torch>=2.6,<=2.12.99'")  # torch.toml: cp313t wheels stop at 2.12


@pytest.mark.parametrize("minor,provider,words", [
    ("3.13t", "system", "cannot provide the free-threaded"),
    ("3.16t", None, "no torch release supports torch.compile on Python 3.16t"),
    ("3.16", None, "no torch release supports torch.compile on Python 3.16"),
])
def test_python_steps_refuse_what_they_cannot_give(builtin_recipes, minor, provider, words):
    with pytest.raises(UnsupportedError, match=words) as e:
        provision.python_steps(facts("debian-13"), builtin_recipes, PythonRequest.parse(minor), provider)
    assert e.value.code == ExitCode.UNSUPPORTED and e.value.hint


def test_an_unknown_provider_is_refused_when_the_request_is_made():
    with pytest.raises(UnsupportedError, match="unknown provider") as e:
        Request(python=PythonRequest.parse("3.13"), provider="brew")
    assert e.value.code == ExitCode.UNSUPPORTED and e.value.hint


@pytest.mark.parametrize("name,want", [
    ("debian-12", "uv"), ("debian-testing", "system"), ("ubuntu-24.04", "system"), ("arch", "uv"),
    ("rhel-8", "uv"), ("rhel-9", "system"), ("opensuse-leap-15.6", "uv"), ("conda-miniforge", "conda"),
    ("pyenv", "pyenv"), ("uv-managed", "uv"), ("macos-14-homebrew", "system"), ("macos-15-homebrew", "system"),
    ("nvidia-cuda-ubuntu24.04", "system"),
])
def test_default_provider(builtin_recipes, name, want):
    assert provision.default_provider(facts(name), builtin_recipes, "3.12" if name in (
        "conda-miniforge", "pyenv", "uv-managed", "macos-14-homebrew") else "3.13") == want


def test_checks_say_whether_a_repository_is_enabled(builtin_recipes):
    ubuntu = provision.python_steps(facts("ubuntu-24.04"), builtin_recipes, PythonRequest.parse("3.13"))
    assert ubuntu.steps[0].id == "python-repos"
    assert ubuntu.steps[0].checks == (("grep", "-rqs", "deadsnakes/ppa", "/etc/apt/sources.list.d"),)
    rocky = provision.python_steps(facts("rocky-9"), builtin_recipes, PythonRequest.parse("3.13"))
    assert rocky.steps[0].checks == (("sh", "-c", "dnf repolist --enabled | grep -qw crb"),
                                     ("rpm", "-q", "epel-release"))
    rhel = provision.python_steps(facts("rhel-9", arch="aarch64"), builtin_recipes, PythonRequest.parse("3.13"))
    assert rhel.steps[0].commands[-1].argv == (
        "subscription-manager", "repos", "--enable", "codeready-builder-for-rhel-9-aarch64-rpms")


def test_deadsnakes_python_is_not_externally_managed_but_noble_s_own_is(builtin_recipes):
    prov = provision.python_steps(facts("ubuntu-24.04"), builtin_recipes, PythonRequest.parse("3.13"))
    assert prov.facts.python.externally_managed is False and prov.facts.python.source == "system"
    prov = provision.python_steps(facts("debian-testing"), builtin_recipes, PythonRequest.parse("3.13"))
    assert prov.facts.python.externally_managed is True


def test_provided_facts_are_valid_facts(builtin_recipes):
    for name in ("debian-12", "ubuntu-24.04", "rhel-8", "macos-15-homebrew"):
        prep = provision.prepare(facts(name), builtin_recipes, Request(python=PythonRequest.parse("3.13"), venv=V))
        assert Facts.from_dict(prep.facts.to_dict()) == prep.facts
        assert prep.facts.python.found and prep.facts.python.minor == "3.13"


def test_as_a_user_with_sudo_the_root_steps_go_through_sudo(builtin_recipes):
    f = facts("ubuntu-24.04", **{"host.is_root": False, "host.sudo": True})
    prov = provision.python_steps(f, builtin_recipes, PythonRequest.parse("3.13"))
    assert prov.steps[0].commands[2].argv == (
        "sudo", "env", "DEBIAN_FRONTEND=noninteractive", "add-apt-repository", "-y", "ppa:deadsnakes/ppa")


# ------------------------------------------------------------------------------------------------------ compilers

def test_rhel8_gcc8_found_gets_gcc_toolset(builtin_recipes):
    f = facts("rhel-8", **{"compiler.path": "/usr/bin/g++", "compiler.family": "gcc", "compiler.version": "8.5.0",
                           "compiler.error": "g++: error: unrecognized command line option '-std=c++20'"})
    fix = compiler_fix.compiler_steps(f, builtin_recipes)
    assert fix.env == {"CXX": "/opt/rh/gcc-toolset-13/root/usr/bin/g++",
                       "CC": "/opt/rh/gcc-toolset-13/root/usr/bin/gcc"}
    assert [c.argv for c in fix.step.commands] == [("dnf", "install", "-y", "gcc-toolset-13-gcc-c++")]
    assert fix.step.root and "g++ 8.5.0 cannot build Inductor's C++20" in fix.step.why
    assert fix.facts.compiler.cxx == fix.env["CXX"] and fix.facts.compiler.toolchain_ok
    plan = plan_for(f, builtin_recipes, OPTS)
    assert "CXX=/opt/rh/gcc-toolset-13/root/usr/bin/g++" in plan.notes[-1]


def test_rhel8_with_cxx_already_set_to_the_toolset_needs_nothing(builtin_recipes):
    f = facts("rhel-8", **{"compiler.cxx": "/opt/rh/gcc-toolset-13/root/usr/bin/g++",
                           "compiler.path": "/opt/rh/gcc-toolset-13/root/usr/bin/g++", "compiler.family": "gcc",
                           "compiler.version": "13.3.1", "compiler.toolchain_ok": True, "compiler.error": None})
    assert compiler_fix.compiler_steps(f, builtin_recipes) is None


def test_leap15_gcc7_gets_gcc13(builtin_recipes):
    f = facts("opensuse-leap-15.6", **{"compiler.path": "/usr/bin/g++", "compiler.family": "gcc",
                                       "compiler.version": "7.5.0"})
    fix = compiler_fix.compiler_steps(f, builtin_recipes)
    assert fix.env == {"CXX": "g++-13", "CC": "gcc-13"}
    assert fix.step.commands[0].argv == ("zypper", "--non-interactive", "install", "gcc13-c++")


def test_a_new_enough_gcc_that_fails_is_packages_cxx_business(builtin_recipes):
    # Ubuntu 24.04's g++ 13 failing (say libgomp's dev files missing): `g++` again is the fix, not an upgrade.
    f = facts("ubuntu-24.04", **{"compiler.path": "/usr/bin/g++", "compiler.family": "gcc",
                                 "compiler.version": "13.3.0"})
    assert compiler_fix.compiler_steps(f, builtin_recipes) is None
    f = facts("rhel-9", **{"compiler.path": "/usr/bin/g++", "compiler.family": "gcc", "compiler.version": "11.5.0"})
    assert compiler_fix.compiler_steps(f, builtin_recipes) is None


def test_a_conda_python_without_a_known_conda_gets_the_system_compiler(builtin_recipes):
    assert compiler_fix.compiler_steps(facts("conda-miniforge", **{"host.conda": None}), builtin_recipes) is None


def test_macos_conda_gets_llvm_openmp_and_omp_prefix(builtin_recipes):
    f = facts("macos-14-homebrew", **{"python.source": "conda", "python.executable": "/Users/dev/mf/bin/python",
                                      "python.prefix": "/Users/dev/mf", "python.base_prefix": "/Users/dev/mf"})
    with_mamba = changed(f.to_dict(), **{"host.conda": "/Users/dev/mf/bin/mamba"})
    fix = compiler_fix.compiler_steps(with_mamba, builtin_recipes)
    assert fix.step.commands[0].argv == ("/Users/dev/mf/bin/mamba", "install", "-y", "-p", "/Users/dev/mf",
                                         "-c", "conda-forge", "llvm-openmp")
    assert fix.env == {"OMP_PREFIX": "/Users/dev/mf"} and not fix.step.root


# ----------------------------------------------------------------------------------------------------- composition

def test_provisioning_steps_run_one_after_the_other_and_the_plan_waits(builtin_recipes):
    plan = plan_for(facts("ubuntu-24.04"), builtin_recipes, OPTS, python="3.13")
    assert [(s.id, s.after) for s in plan.steps] == [
        ("python-repos", ()), ("python-packages", ("python-repos",)), ("system-packages", ("python-packages",)),
        ("venv", ("python-packages",)), ("torch", ("venv",))]


def test_a_plan_without_provisioning_is_make_plan_s(builtin_recipes):
    f = facts("debian-13")
    assert plan_for(f, builtin_recipes, OPTS) == make_plan(f, builtin_recipes, OPTS)
    assert plan_for(f, builtin_recipes, OPTS, python="3.13") == make_plan(f, builtin_recipes, OPTS)


# ----------------------------------------------------------------------------------------------- the recipes' data

def test_managers(builtin_recipes):
    m = builtin_recipes.managers
    assert builtin_recipes.manager_binaries() == [("apt", "apt-get"), ("dnf", "dnf"), ("zypper", "zypper"),
                                                  ("pacman", "pacman"), ("apk", "apk"), ("brew", "brew")]
    assert m["brew"].root is False and m["conda"].root is False and m["apt"].root is True
    assert {n for n, x in m.items() if x.kind == "env"} == {"conda", "mamba", "micromamba"}
    assert m["dnf"].install_argv(["gcc"]) == ("dnf", "install", "-y", "gcc")
    assert m["micromamba"].create_argv(["python=3.13"], prefix="/e") == (
        "micromamba", "create", "-y", "-p", "/e", "-c", "conda-forge", "python=3.13")
    for x in m.values():
        assert x.source


def test_every_platform_has_every_need_and_a_source(builtin_recipes):
    for p in builtin_recipes.platforms:
        assert set(p.packages) == set(recipes_mod.NEEDS), p.id
        assert p.source, p.id
        for minor in p.pythons or ():
            assert p.packages_for("python", {"minor": minor}), (p.id, minor)


def test_packages_for_applies_by_python_and_nodot(builtin_recipes):
    f42 = builtin_recipes.platform_for("fedora", [], "42")
    assert f42.packages_for("headers", {"minor": "3.13"}) == ("python3-devel",)
    assert f42.packages_for("python", {"minor": "3.13"}) == ("python3",)
    tw = builtin_recipes.platform_for("opensuse-tumbleweed", [], "20240823")
    assert tw.packages_for("headers", {"minor": "3.13"}) == ("python313-devel",)
    assert tw.packages_for("python", {"minor": "3.13"}) == ("python313",)


@pytest.mark.parametrize("body,words", [
    ('[[platform]]\nid = "x"\nmatch = { os = ["x"] }\nmanager = "apt"\nsource = "s"\n'
     'packages = { headers = ["python{minr}-dev"] }\n',
     ["platform #1 (x)", "placeholder {minr}", "allowed here: {minor}"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["x"] }\nmanager = "apt"\nsource = "s"\n'
     'repos = { "3.13" = ["ppa"] }\n', ["platform 'x'", "unknown repo 'ppa'"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["x"] }\nmanager = "dnf"\nsource = "s"\n'
     'cxx_upgrade = { packages = ["gcc-toolset-13-gcc-c++"], env = { CC = "gcc" }, source = "s" }\n',
     ["platform #1 (x) cxx_upgrade", "CXX"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["x"] }\nmanager = "apt"\nsource = "s"\n'
     'by_python = { "3.13" = { devel = ["x"] } }\n', ["platform #1 (x)", "by_python '3.13'", "devel"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["x"] }\nmanager = "apt"\nsource = "s"\ncompiler_min = "10"\n',
     ["platform #1 (x)", "compiler_min"]),
    ('[[platform]]\nid = "x"\nmatch = { source = ["conda"], arch = "x86_64" }\nmanager = "conda"\nsource = "s"\n',
     ["platform #1 (x)", "'arch' must be a list"]),
    ('[manager.pixi]\nbinary = "pixi"\nkind = "env"\ninstall = ["pixi", "add", "{packages}"]\nsource = "s"\n',
     ["manager 'pixi'", "{prefix}"]),
    ('[manager.pkg]\nbinary = "pkg"\nkind = "ports"\ninstall = ["pkg", "{packages}"]\nsource = "s"\n',
     ["manager 'pkg'", "'kind'"]),
    ('[repo.ppa]\ntitle = "t"\ncommands = [["add-apt-repository", "-y", "ppa:x/y"]]\nsource = "s"\n',
     ["repo 'ppa'", "'check'"]),
    ('[repo.ppa]\ntitle = "t"\ncheck = ["true"]\nsource = "s"\n', ["repo 'ppa'", "'packages' or 'commands'"]),
    ('repo = [1]\n', ["[repo] must be a table"]),
])
def test_malformed_new_entries_name_file_and_entry(tmp_path, body, words):
    assert_bad_recipe(tmp_path, body, words)


def test_a_site_can_add_a_platform_with_its_own_repository(tmp_path, builtin_recipes):
    (tmp_path / "site.toml").write_text(
        '[[platform]]\nid = "mint-22"\nmatch = { os = ["linuxmint"], major = ["22"] }\nmanager = "apt"\n'
        'pythons = ["3.13"]\nrepos = { "3.13" = ["deadsnakes"] }\npython_packages = ["python{minor}"]\n'
        'source = "site"\npackages = { headers = ["python{minor}-dev"], venv = ["python{minor}-venv"], '
        'cxx = ["g++"], ca = ["ca-certificates"] }\n')
    r = recipes_mod.load([tmp_path])
    f = facts("ubuntu-24.04", **{"os.id": "linuxmint", "os.version": "22.1", "os.like": ["ubuntu", "debian"]})
    prov = provision.python_steps(f, r, PythonRequest.parse("3.13"))
    assert [s.id for s in prov.steps] == ["python-repos", "python-packages"]
    assert r.platform_for_facts(f).origin == str(tmp_path / "site.toml")
