"""Package names in recipes match their manager's grammar: an option (`-o`, `--allow-unauthenticated`,
`Dpkg::Pre-Invoke::=...`), an empty or blank name is a recipe error (exit 4) naming the file and the entry, before
anything runs as root."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from torch_setup.cli import app
from torch_setup.errors import ExitCode, RecipeError
from torch_setup.recipes import load as recipes_mod
from torch_setup.recipes import names

PLATFORM = """[[platform]]
id = "debian-13"
match = {{ os = ["debian"], version = ["13"] }}
manager = "{manager}"
pythons = ["3.13"]
source = "test: a user's recipe"
packages = {{ headers = ["python{{minor}}-dev"], cxx = [{cxx}] }}
"""

BAD = ["-o", "--allow-unauthenticated", "Dpkg::Pre-Invoke::=touch /tmp/x", "", "   ", "g++ -o x", "-y",
       "--force-yes", "x", "G++", "pkg;rm -rf /"]


def write(tmp_path, cxx, manager="apt"):
    d = tmp_path / "recipes"
    d.mkdir(exist_ok=True)
    (d / "mine.toml").write_text(PLATFORM.format(manager=manager, cxx=", ".join(f"'{n}'" for n in cxx)))
    return d


@pytest.mark.parametrize("bad", BAD)
def test_a_bad_apt_package_name_is_a_recipe_error_naming_file_and_entry(tmp_path, bad):
    d = write(tmp_path, ["g++", bad])
    with pytest.raises(RecipeError) as e:
        recipes_mod.load([d])
    assert str(d / "mine.toml") in e.value.message and "platform 'debian-13' packages.cxx" in e.value.message


@pytest.mark.parametrize("bad", ["-o", "Dpkg::Pre-Invoke::=touch /tmp/x", ""])
def test_the_cli_exits_4(tmp_path, bad):
    d = write(tmp_path, [bad])
    result = CliRunner().invoke(app, ["plan", "--recipes", str(d), "--facts", "/dev/null"])
    assert result.exit_code == ExitCode.BAD_RECIPE, result.output
    assert "mine.toml" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("manager, good, bad", [
    ("apt", ["g++", "libstdc++-14-dev", "python3.13-dev", "gcc:amd64"], ["--no-install-recommends", "Gcc"]),
    ("dnf", ["gcc-c++", "python3.13-devel", "@development-tools", "pkgconfig(openssl)"], ["-y", "a b"]),
    ("pacman", ["gcc", "python", "lib32-glibc"], ["--noconfirm", ".hidden"]),
    ("brew", ["python@3.13", "llvm", "homebrew/core/gcc"], ["--cask", "Python"]),
    ("conda", ["python=3.13", "gxx_linux-64", "conda-forge::compilers", "python>=3.10,<3.14"], ["-c", "a b"]),
])
def test_each_managers_grammar(manager, good, bad):
    names.check(manager, good, "here")
    for name in bad:
        with pytest.raises(RecipeError):
            names.check(manager, [name], "here")


def test_the_built_in_recipes_pass():
    recipes_mod.load()
