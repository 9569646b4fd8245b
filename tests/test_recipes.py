"""Recipes: the built-in ones load and say what the issue needs; a malformed one is an error naming the file and
the entry; a user's directory comes first."""
from __future__ import annotations

import pytest

from conftest import DEBIAN_FAMILY, FIXTURES, assert_bad_recipe, debian_only
from torch_setup import pipeline
from torch_setup.recipes import load as recipes_mod
from torch_setup.errors import ExitCode, RecipeError
from torch_setup.facts.host import parse_os_release

BAD = FIXTURES / "recipes-bad"
USER = FIXTURES / "recipes-user"


def test_builtin_recipes_load(builtin_recipes):
    r = builtin_recipes
    ids = [p.id for p in r.platforms]
    for pid in ("debian-12", "debian-13", "debian-testing", "ubuntu", "debian-family"):
        assert pid in ids
    # specific entries before the catch-alls that would shadow them
    assert ids.index("debian-13") < ids.index("debian-family") and ids.index("debian-testing") < ids.index(
        "debian-family")
    apt = r.managers["apt"]
    assert apt.binary == "apt-get"
    assert "{packages}" in apt.install and "--no-install-recommends" in apt.install and "-y" in apt.install
    assert "DPkg::Lock::Timeout=600" in apt.install  # wait for the dpkg lock rather than fail
    assert apt.env == {"DEBIAN_FRONTEND": "noninteractive"}
    assert ("apt", "apt-get") in r.manager_binaries()
    for p in debian_only(r).platforms:
        assert set(p.packages) == set(recipes_mod.NEEDS), p.id  # headers, venv, cxx, ca for every Debian entry
        assert p.manager == "apt" and p.source and p.origin.endswith("debian.toml")


def test_builtin_torch_rows(builtin_recipes):
    rows = {(t.python, t.free_threaded): t for t in builtin_recipes.torch_python}
    assert rows[("3.13", False)].min_torch == "2.6"
    ft = rows[("3.13", True)]
    assert (ft.min_torch, ft.max_torch, ft.min_python) == ("2.6", "2.12", "3.13.3")
    assert builtin_recipes.torch_for("3.8", False) is None
    assert builtin_recipes.torch_for("3.16", False) is None


@pytest.mark.parametrize("os_file,want", [
    ("debian-12.txt", "debian-12"),
    ("debian-13.txt", "debian-13"),
    ("debian-testing.txt", "debian-testing"),
    ("debian-sid.txt", "debian-testing"),
    ("ubuntu-22.04.txt", "ubuntu"),
    ("ubuntu-24.04.txt", "ubuntu"),
    ("ubuntu-25.10.txt", "ubuntu"),
    ("ubuntu-26.04.txt", "ubuntu"),
])
def test_platform_for_debian_and_ubuntu(builtin_recipes, os_file, want):
    os_ = parse_os_release((FIXTURES / "os-release" / os_file).read_text())
    found = builtin_recipes.platform_for(os_.id, os_.like, os_.version)
    assert found.id == want or (want == "ubuntu" and found.id.startswith("ubuntu"))
    assert found.manager == "apt" and os_.id in found.os


@pytest.mark.parametrize("os_file", ["fedora-42.txt", "rhel-9.txt", "rocky-9.txt", "almalinux-10.txt",
                                     "amzn-2023.txt", "opensuse-leap-15.6.txt", "alpine-3.22.txt", "arch.txt"])
def test_no_debian_recipe_for_other_systems(builtin_recipes, os_file):
    os_ = parse_os_release((FIXTURES / "os-release" / os_file).read_text())
    found = builtin_recipes.platform_for(os_.id, os_.like, os_.version)
    assert found is None or not set(found.os) & DEBIAN_FAMILY
    assert debian_only(builtin_recipes).platform_for(os_.id, os_.like, os_.version) is None


def test_a_debian_derivative_gets_the_family_entry(builtin_recipes):
    # Kali: ID=kali, ID_LIKE=debian, VERSION_ID="2024.4"
    assert builtin_recipes.platform_for("kali", ["debian"], "2024.4").id == "debian-family"
    # Pop!_OS: ID_LIKE="ubuntu debian"
    assert builtin_recipes.platform_for("pop", ["ubuntu", "debian"], "22.04").id.startswith("ubuntu")


# (fixture dir, words the message must hold: the file and the entry)
BAD_CASES = {
    "bad-toml": ["fedora.toml", "not valid TOML"],
    "unknown-key": ["fedora.toml", "platform #1 (fedora)", "pkgs"],
    "missing-source": ["fedora.toml", "platform #1 (fedora)", "'source'"],
    "unknown-manager": ["fedora.toml", "'fedora'", "'no-such-pm'"],
    "unknown-need": ["fedora.toml", "platform #1 (fedora)", "compiler"],
    "install-without-packages": ["managers.toml", "manager 'mypm'", "{packages}"],
    "unknown-table": ["extra.toml", "platforms"],
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_recipe_names_file_and_entry(case):
    with pytest.raises(RecipeError) as e:
        recipes_mod.load([BAD / case])
    message = e.value.message
    for word in BAD_CASES[case]:
        assert word in message, f"{word!r} not in {message!r}"
    assert str(BAD / case) in message  # the full path of the file
    assert e.value.code == ExitCode.BAD_RECIPE


def test_every_bad_fixture_is_tested():
    assert {p.name for p in BAD.iterdir()} == set(BAD_CASES)


@pytest.mark.parametrize("body,words", [
    ('[[platform]]\nid = "x"\nmatch = "debian"\nmanager = "apt"\nsource = "s"\n', ["platform #1 (x)", "'match'"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["debian"], release = ["13"] }\nmanager = "apt"\nsource = "s"\n',
     ["platform #1 (x) match", "release"]),
    ('[[platform]]\nid = "x"\nmatch = { os = "debian" }\nmanager = "apt"\nsource = "s"\n',
     ["platform #1 (x)", "'os' must be a list of strings"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["debian"] }\nmanager = "apt"\nsource = "s"\n'
     'packages = { headers = "python3-dev" }\n', ["platform #1 (x) packages", "'headers'"]),
    ('platform = { id = "x" }\n', ["[platform] must be an array of tables"]),
    ('[[python]]\npython = "3.13"\nfree_threaded = "yes"\nmin_torch = "2.6"\nsource = "s"\n',
     ["python #1", "'free_threaded'"]),
    ('[[python]]\npython = "3.13"\nsource = "s"\n', ["python #1", "'min_torch'"]),
    ('[manager.mypm]\nbinary = "mypm"\ninstall = ["mypm", "{packages}"]\nsource = "s"\nclean = ["dnf clean all"]\n',
     ["manager 'mypm'", "'clean'"]),
    ('[manager.mypm]\nbinary = "mypm"\ninstall = ["mypm", "{packages}"]\nsource = "s"\nrefresh_max_age_s = "1d"\n',
     ["manager 'mypm'", "refresh_max_age_s"]),
    ('[manager.mypm]\ninstall = ["mypm", "{packages}"]\nsource = "s"\n', ["manager 'mypm'", "'binary'"]),
    ('[[program]]\nname = "sha512sum"\nmin_torch = "2.8"\nsource = "s"\n', ["program #1", "'sha512sum'"]),
    ('[[program]]\nname = "openssl"\nmin_torch = "two"\nsource = "s"\n', ["program #1", "'min_torch'", "'two'"]),
    ('[[program]]\nname = "openssl"\nmin_torch = "2.8"\n', ["program #1", "'source'"]),
])
def test_more_malformed_entries(tmp_path, body, words):
    assert_bad_recipe(tmp_path, body, words)


def test_torch_programs_say_which_releases_run_openssl(builtin_recipes):
    """recipes/torch.toml: torch's own source is cited, with the first release that runs openssl."""
    (prog,) = [p for p in builtin_recipes.programs if p.name == "openssl"]
    assert (prog.min_torch, prog.max_torch) == ("2.8", None)
    assert "github.com/pytorch/pytorch/blob/v2.8.0/torch/_inductor/codecache.py#L" in prog.source
    runs = {v: builtin_recipes.torch_runs("openssl", v) for v in ("2.7.1", "2.7.1+cpu", "2.8.0", "2.15.0+cu132",
                                                                  "2.16.0.dev20270101", None)}
    assert runs == {"2.7.1": False, "2.7.1+cpu": False, "2.8.0": True, "2.15.0+cu132": True,
                    "2.16.0.dev20270101": True, None: True}
    assert not builtin_recipes.torch_runs("sha512sum", "2.15.0")


def test_missing_recipe_directory(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        recipes_mod.load([tmp_path / "nope"])


def test_user_directory_overrides_a_builtin_platform(builtin_recipes):
    r = recipes_mod.load([USER])
    ids = [p.id for p in r.platforms]
    assert ids.count("debian-13") == 1 and "sitelinux" in ids
    d13 = r.platform_for("debian", [], "13")
    assert d13.packages["headers"] == ("libpython{minor}-dev",)
    assert d13.origin == str(USER / "site.toml")
    # the other built-in entries are still there, unchanged
    assert r.platform_for("debian", [], "12") == builtin_recipes.platform_for("debian", [], "12")
    # and a platform can bring its own manager
    assert r.managers["sitepm"].install == ("sitepm", "install", "--yes", "{packages}")
    assert r.platform_for("sitelinux", [], "1").manager == "sitepm"
    assert ("sitepm", "sitepm") in r.manager_binaries()


def test_a_user_platform_may_use_a_builtin_manager(tmp_path):
    (tmp_path / "mint.toml").write_text(
        '[[platform]]\nid = "mint"\nmatch = { os = ["linuxmint"] }\nmanager = "apt"\nsource = "s"\n'
        'packages = { headers = ["python{minor}-dev"] }\n')
    r = recipes_mod.load([tmp_path])
    assert r.platform_for("linuxmint", ["ubuntu", "debian"], "22").id == "mint"


def test_recipes_from_the_environment(monkeypatch):
    r = pipeline.load_recipes([], {pipeline.RECIPES_ENV: str(USER)})
    assert r.platform_for("sitelinux", [], "1").id == "sitelinux"
    with pytest.raises(RecipeError):
        pipeline.load_recipes([], {pipeline.RECIPES_ENV: str(BAD / "unknown-need")})


# ------------------------------------------------------------------------------ placeholders, field by field

@pytest.mark.parametrize("body,words", [
    # what the old loader accepted, and planned as `--target-release=` (empty) and a literal `{minor}`
    ('[manager.apt]\nbinary = "apt-get"\ninstall = ["apt-get", "install", "-y", "--target-release={major}", '
     '"{packages}"]\nsource = "s"\n', ["manager 'apt'", "'install'", "{major}", "allowed here: {packages}"]),
    ('[manager.apt]\nbinary = "apt-get"\ninstall = ["apt-get", "install", "{packages}"]\n'
     'refresh = ["apt-get", "update", "-o", "Acquire::Languages={minor}"]\nsource = "s"\n',
     ["manager 'apt'", "'refresh'", "{minor}", "allowed here: none"]),
    ('[manager.apt]\nbinary = "apt-get"\ninstall = ["apt-get", "install", "{packages}"]\n'
     'env = { LANG = "{minor}" }\nsource = "s"\n', ["manager 'apt'", "'env'", "{minor}"]),
    ('[[platform]]\nid = "x"\nmatch = { os = ["debian"] }\nmanager = "apt"\nsource = "s"\n'
     'packages = { headers = ["python{minor}-dev-{prefix}"] }\n', ["platform #1 (x)", "{prefix}"]),
    ('[repo.r]\ntitle = "t"\ncommands = [["add", "{packages}"]]\ncheck = ["true"]\nsource = "s"\n',
     ["repo 'r'", "{packages}"]),
])
def test_a_placeholder_a_field_is_never_filled_with_is_refused_at_load(tmp_path, body, words):
    assert_bad_recipe(tmp_path, body, words)


def test_every_placeholder_a_field_allows_is_filled(tmp_path):
    """A site recipe using every placeholder its fields may hold plans with each one filled: no `{` is left in
    any argv and none comes out empty."""
    import dataclasses
    import json

    from torch_setup.facts.model import Facts
    from torch_setup.recipes.fields import FIELD_PLACEHOLDERS
    from torch_setup.request import PythonRequest, Request

    every = "-".join("{" + p + "}" for p in FIELD_PLACEHOLDERS["platform"])
    (tmp_path / "site.toml").write_text(
        '[repo.r]\ntitle = "t"\n'
        f'packages = ["repo-{every}"]\ncommands = [["enable", "{every}"]]\ncheck = ["check", "{every}"]\n'
        'source = "s"\n'
        '[[platform]]\nid = "every"\nmatch = { os = ["debian"], version = ["12"] }\nmanager = "apt"\nsource = "s"\n'
        f'pythons = ["3.13"]\nrepos = {{ "3.13" = ["r"] }}\npython_packages = ["py-{every}"]\n'
        f'python_executable = "/usr/bin/python-{every}"\npython_include = "/usr/include/py-{every}"\n'
        f'packages = {{ headers = ["h-{every}"], venv = ["v-{every}"], cxx = ["c-{every}"], ca = ["ca-{every}"], '
        f'openssl = ["o-{every}"] }}\n')
    recipes = pipeline.load_recipes([str(tmp_path)], {})
    data = json.loads((FIXTURES / "platforms" / "debian-12.json").read_text())
    facts = Facts.from_dict(data)
    facts = dataclasses.replace(facts, host=dataclasses.replace(facts.host, ca_bundle=False, openssl=None),
                                compiler=dataclasses.replace(facts.compiler, toolchain_ok=False))
    plan = pipeline.assemble(Request(python=PythonRequest.parse("3.13"), provider="system"), facts, recipes)
    words = [a for s in plan.steps for c in s.commands for a in c.argv] + [a for s in plan.steps for c in s.checks
                                                                             for a in c]
    filled = "3.13-313-x86_64-12"
    for word in (f"repo-{filled}", "enable", filled, f"py-{filled}", f"h-{filled}", f"v-{filled}", f"c-{filled}",
                 f"ca-{filled}", f"o-{filled}", f"/usr/bin/python-{filled}"):
        assert word in words, word
    assert ("check", filled) in [c for s in plan.steps for c in s.checks]
    assert not [w for w in words if "{" in w or "}" in w]
