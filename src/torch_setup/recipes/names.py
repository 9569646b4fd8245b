"""Package names in recipes checked against their manager's own grammar, so a recipe (a user's own above all) can
never hand a package manager an option: `-o`, `--allow-unauthenticated` or `Dpkg::Pre-Invoke::=...` in a package
list would reach apt's argv, which runs as root. (Shell metacharacters never reach a shell: commands are argv.)

The grammars, from each manager's documentation:
- Debian (apt): Debian Policy 5.6.1, "Package names ... must consist only of lower case letters (a-z), digits
  (0-9), plus (+) and minus (-) signs, and periods (.). They must be at least two characters long and must start
  with an alphanumeric character" https://www.debian.org/doc/debian-policy/ch-controlfields.html#source ; apt
  also takes `name:arch`.
- RPM (dnf, zypper): names of letters, digits and `._+-`, not starting with `-`
  https://docs.fedoraproject.org/en-US/packaging-guidelines/Naming/ ; dnf also takes a provide such as
  `pkgconfig(foo)`, a group `@name` and an https URL of a .rpm (epel-release).
- pacman and apk: lower-case letters, digits and `@._+-`, not starting with `-` or `.`
  https://wiki.archlinux.org/title/Arch_package_guidelines#Package_naming
- Homebrew: formula names of lower-case letters, digits and `@._+-`, optionally `tap/owner/`
  https://docs.brew.sh/Formula-Cookbook
- conda: names of lower-case letters, digits and `._-`, optionally `channel::`, with a version spec (`=3.13`)
  https://docs.conda.io/projects/conda-build/en/stable/resources/package-spec.html
A placeholder ({minor}, {nodot}, ...) stands for letters and digits.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Tuple

from torch_setup.errors import RecipeError

_DEB = r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?"
_RPM = r"@?[A-Za-z0-9_+][A-Za-z0-9._+-]*(\([A-Za-z0-9._:/+-]+\))?|https://[A-Za-z0-9._~:/@%+-]+\.rpm"
_PACMAN = r"[a-z0-9@_+][a-z0-9@._+-]*"
_BREW = r"([a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*/)?[a-z0-9][a-z0-9@._+-]*"
_CONDA = r"([a-z0-9][a-z0-9._-]*::)?[a-z0-9_][a-z0-9._-]*([=<>!~]=?[A-Za-z0-9.*_+!]+(,[=<>!~]=?[A-Za-z0-9.*_+!]+)*)?"
GRAMMARS: Dict[str, str] = {"apt": _DEB, "dnf": _RPM, "yum": _RPM, "zypper": _RPM, "pacman": _PACMAN,
                            "apk": _PACMAN, "brew": _BREW, "conda": _CONDA, "mamba": _CONDA, "micromamba": _CONDA}
_ANY = r"[A-Za-z0-9_@+][A-Za-z0-9@._+:/=<>!*()~,-]*"  # a manager of a user's own: at least no option, no space
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def check(manager: str, names: Iterable[str], where: str) -> None:
    """RecipeError naming `where` (file: entry) for an empty, blank, option-like or ill-formed package name."""
    grammar = re.compile(f"^(?:{GRAMMARS.get(manager, _ANY)})$")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise RecipeError(f"{where}: an empty package name", hint="remove it, or name the package")
        if name.lstrip().startswith("-"):
            raise RecipeError(f"{where}: {name!r} is an option, not a package name",
                              hint="package lists hold package names only; a manager's options go in its "
                                   "[manager.NAME] install argv")
        if not grammar.match(_PLACEHOLDER.sub("x0", name)):
            raise RecipeError(f"{where}: {name!r} is not a {manager} package name",
                              hint=f"a {manager} package name matches {GRAMMARS.get(manager, _ANY)}")


def check_platform(p, repos) -> None:
    """Every package list of a platform (and of the repositories it enables) against its manager's grammar."""
    lists: Tuple[Tuple[str, Iterable[str]], ...] = (
        *((f"packages.{need}", names) for need, names in p.packages.items()),
        ("python_packages", p.python_packages), ("uv_packages", p.uv_packages),
        ("pyenv_packages", p.pyenv_packages),
        *((f"by_python {minor!r} {need}", names) for minor, table in p.by_python.items()
          for need, names in table.items()),
        *((("cxx_upgrade.packages", p.cxx_upgrade.packages),) if p.cxx_upgrade else ()),
    )
    for field, names in lists:
        check(p.manager, names, f"{p.origin}: platform {p.id!r} {field}")
    for ids in p.repos.values():
        for r in ids:
            repo = repos[r]
            check(p.manager, repo.packages, f"{repo.origin}: repo {r!r} packages")
