"""Recipes: data files saying which packages and commands fix what, per platform. Loaded and validated here.

Built-in recipes live in `recipes/` (in the wheel: `torch_setup/recipes`); a user's own directory comes first,
so an entry there with the same id replaces the built-in one. An invalid file is an error that names the file
and the entry.

Tables a recipe file may hold:

- `[manager.NAME]`: a package manager (apt, dnf, ... and the environment managers conda/mamba/micromamba).
- `[[platform]]`: what a platform (an OS release, or a Python source such as a conda env) installs per need, which
  Python versions it packages, the repositories those need, its compiler floor and the upgrade past it.
- `[repo.NAME]`: a package repository a platform can enable (EPEL, CRB, the deadsnakes PPA), with the check that
  says whether it is enabled already.
- `[[refuse]]`: what cannot work (musl, old glibc, Intel macOS, ...), with the reason and the way forward.
- `[[python]]`: the oldest torch whose torch.compile supports each Python.
- `[[program]]`: a program torch.compile runs besides the compiler (openssl), and the torch releases that run it;
  its `name` is also the need whose packages provide it.

Package names and commands are templates. Placeholders: `{minor}` (3.13), `{nodot}` (313), `{arch}` (x86_64),
`{major}` (the OS release's major version: 9 for RHEL 9.6) and `{prefix}` (a conda environment's prefix).
"""
from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from torch_setup.errors import RecipeError
from torch_setup.recipes import names
from torch_setup.recipes.fields import FIELD_PLACEHOLDERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

NEEDS = ("headers", "venv", "cxx", "ca", "openssl")  # what a platform's packages provide, in install order
PYTHON = "python"  # the interpreter package itself: a key of `by_python` next to the needs
PLACEHOLDERS = ("minor", "nodot", "arch", "major", "prefix")
MANAGER_KINDS = ("system", "env")  # env: conda and friends, which install into an environment, not the OS
DEFAULT_COMPILER_MIN = 10  # the oldest g++ that accepts -std=c++20 [S42]
ADVISED_COMPILER = 11  # ... and the one advised there


def fill(template: str, **values: str) -> str:
    """A template with its placeholders replaced by `values` (resolve.values: all a field may hold, which the
    loader checked it holds no more than); `{nodot}` comes from `minor` when not given."""
    if "minor" in values and "nodot" not in values:
        values["nodot"] = values["minor"].replace(".", "")
    try:
        return template.format(**values)
    except (KeyError, IndexError) as e:  # a field filled without the values its kind allows: a bug here
        raise AssertionError(f"{template!r}: no value for {e}") from None


@dataclass(frozen=True)
class Manager:
    name: str
    binary: str
    install: Tuple[str, ...]
    refresh: Tuple[str, ...] = ()
    refresh_max_age_s: Optional[float] = None
    clean: Tuple[Tuple[str, ...], ...] = ()
    env: Dict[str, str] = field(default_factory=dict)
    source: str = ""
    root: bool = True  # False: runs as the user (Homebrew refuses root; conda writes to the user's env)
    kind: str = "system"  # "system": the OS's package manager; "env": installs into an environment ({prefix})
    create: Tuple[str, ...] = ()  # env managers: make a new environment with {packages} at {prefix}
    repair: Tuple[Tuple[str, ...], ...] = ()  # argvs that finish what an interrupted run left half-installed

    def install_argv(self, packages: Sequence[str], **values: str) -> Tuple[str, ...]:
        return _expand(self.install, packages, values)

    def create_argv(self, packages: Sequence[str], **values: str) -> Tuple[str, ...]:
        return _expand(self.create, packages, values)


def _expand(argv: Sequence[str], packages: Sequence[str], values: Mapping[str, str]) -> Tuple[str, ...]:
    out: List[str] = []
    for arg in argv:
        out += list(packages) if arg == "{packages}" else [fill(arg, **values)]
    return tuple(out)


@dataclass(frozen=True)
class CxxUpgrade:
    """A newer compiler next to a system one that is too old, and where it lives (CXX/CC to set)."""
    packages: Tuple[str, ...]
    env: Dict[str, str]
    source: str


@dataclass(frozen=True)
class Repo:
    """A repository to enable before its packages install: prerequisite packages (through the platform's
    manager), then commands, then the manager's refresh when `refresh`. `check` exits 0 when it is enabled."""
    id: str
    title: str
    packages: Tuple[str, ...]
    commands: Tuple[Tuple[str, ...], ...]
    check: Tuple[str, ...]
    refresh: bool
    externally_managed: Optional[bool]  # the PEP 668 marker of its Pythons, when it differs from the platform's
    source: str
    origin: str


@dataclass(frozen=True)
class Platform:
    id: str
    os: Tuple[str, ...]
    versions: Optional[Tuple[str, ...]]
    manager: str
    packages: Dict[str, Tuple[str, ...]]
    pythons: Optional[Tuple[str, ...]]  # the Python versions the platform's manager installs (after `repos`)
    source: str
    origin: str  # file it came from
    majors: Optional[Tuple[str, ...]] = None  # match on the major version: "9" matches 9.5 and 9.6
    arches: Optional[Tuple[str, ...]] = None
    systems: Optional[Tuple[str, ...]] = None  # platform.system(): Linux, Darwin
    sources: Optional[Tuple[str, ...]] = None  # a Python source (conda): the entry is for Pythons of that source
    python_packages: Tuple[str, ...] = ()  # the interpreter package(s): python{minor}, python{nodot}, python@{minor}
    by_python: Dict[str, Dict[str, Tuple[str, ...]]] = field(default_factory=dict)  # per version: need -> packages
    repos: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # per version: repo ids its packages need
    python_executable: str = "/usr/bin/python{minor}"  # where python_packages put the interpreter
    python_include: str = "/usr/include/python{minor}"
    externally_managed: bool = False  # its Pythons carry the PEP 668 marker
    compiler_min: int = DEFAULT_COMPILER_MIN
    compiler_default: Optional[int] = None  # the gcc major that packages.cxx installs, when known
    cxx_upgrade: Optional[CxxUpgrade] = None  # what to install when compiler_default/the found gcc is too old
    cxx_env: Dict[str, str] = field(default_factory=dict)  # CXX/CC to set when packages.cxx provide the compiler
    uv_packages: Tuple[str, ...] = ()  # the platform's own uv package, where it has one
    uv_bootstrap: Tuple[str, ...] = ()  # what the default python3 needs to make the venv that carries uv
    pyenv_packages: Tuple[str, ...] = ()  # the platform's own pyenv package, where it has one
    pyenv_build: Tuple[str, ...] = ()  # pyenv's suggested build environment [S33]

    def matches(self, os_id: str, like: Sequence[str], version: str, *, arch: Optional[str] = None,
                system: Optional[str] = None, source: Optional[str] = None) -> bool:
        """An entry with `match.source` is only for Pythons of that source; `match.arch`/`match.system` need the
        caller to name them. Callers that pass only the OS get only the OS entries, as before."""
        if self.sources is not None and source not in self.sources:
            return False
        if self.arches is not None and arch not in self.arches:
            return False
        if self.systems is not None and system not in self.systems:
            return False
        if self.os and os_id not in self.os and not set(like) & set(self.os):
            return False
        if self.majors is not None and version.split(".")[0] not in self.majors:
            return False
        return self.versions is None or version in self.versions

    def packages_for(self, need: str, values: Mapping[str, str]) -> Tuple[str, ...]:
        """The package names for a need ("headers", ..., or "python": the interpreter), with the per-version
        overrides of `by_python` applied and the placeholders filled in (`values`: resolve.values, whose
        "minor" is the Python version)."""
        override = self.by_python.get(values["minor"], {})
        if need in override:
            names = override[need]
        elif need == PYTHON:
            names = self.python_packages
        else:
            names = self.packages.get(need, ())
        return tuple(fill(n, **values) for n in names)

    def repos_for(self, minor: str) -> Tuple[str, ...]:
        return self.repos.get(minor, ())

    def packages_python(self, minor: str) -> bool:
        return minor in (self.pythons or ())


@dataclass(frozen=True)
class TorchPython:
    python: str
    free_threaded: bool
    min_torch: str
    max_torch: Optional[str]
    min_python: Optional[str]
    source: str


@dataclass(frozen=True)
class TorchProgram:
    """A program torch.compile runs besides the compiler, found on PATH, and the torch releases that run it."""
    name: str  # the program, and the need whose packages provide it
    min_torch: str
    max_torch: Optional[str]
    source: str

    def run_by(self, torch_version: Optional[str]) -> bool:
        """Does this torch run it? None (not chosen yet) counts as the newest torch, which a fresh install takes."""
        if not torch_version:
            return self.max_torch is None
        from packaging.version import InvalidVersion, Version

        try:
            v = Version(Version(torch_version).base_version)
        except InvalidVersion:
            return True
        return v >= Version(self.min_torch) and (self.max_torch is None or v < Version(self.max_torch + ".99"))


@dataclass(frozen=True)
class Refusal:
    """Something that cannot work. `when` holds the conditions (all must hold); see refuse.py for their meaning.
    `reason` and `hint` (the way forward) are templates filled from the facts."""
    id: str
    when: Dict[str, Any]
    reason: str
    hint: str
    source: str
    origin: str


REFUSE_CONDITIONS = {
    "libc": list, "libc_below": str, "system": list, "arch": list, "os": list, "os_below": str,
    "python_unsupported": bool, "free_threaded_unsupported": bool, "free_threaded_too_old": bool,
    "implementation_not": list,
}


@dataclass(frozen=True)
class Recipes:
    managers: Dict[str, Manager]
    platforms: Tuple[Platform, ...]
    torch_python: Tuple[TorchPython, ...]
    repos: Dict[str, Repo] = field(default_factory=dict)
    refusals: Tuple[Refusal, ...] = ()
    programs: Tuple[TorchProgram, ...] = ()

    def torch_runs(self, program: str, torch_version: Optional[str]) -> bool:
        """Does torch.compile of this torch release (None: the newest) run `program`?"""
        return any(p.name == program and p.run_by(torch_version) for p in self.programs)

    def platform_for(self, os_id: str, like: Sequence[str], version: str, *, arch: Optional[str] = None,
                     system: Optional[str] = None, source: Optional[str] = None) -> Optional[Platform]:
        """The first entry for this OS; entries naming the OS id itself come before those matched by ID_LIKE,
        so a file's name or order cannot make the Fedora entry answer for RHEL (ID_LIKE=fedora)."""
        kw = dict(arch=arch, system=system, source=source)
        candidates = [p for p in self.platforms if p.matches(os_id, like, version, **kw)]
        exact = [p for p in candidates if not p.os or os_id in p.os]
        return (exact or candidates or [None])[0]

    def platform_for_facts(self, facts) -> Optional[Platform]:
        """The entry for the facts' OS, or, for a Python of a source with its own entry (a conda env), that one."""
        kw = dict(arch=facts.arch or None, system=facts.os.system or None)
        py = facts.python
        if py.found and py.source:
            own = self.source_platform(py.source, **kw)
            if own:
                return own
        return self.platform_for(facts.os.id, facts.os.like, facts.os.version, **kw)

    def os_platform_for_facts(self, facts) -> Optional[Platform]:
        """The entry for the facts' OS, whatever the Python's source."""
        return self.platform_for(facts.os.id, facts.os.like, facts.os.version, arch=facts.arch or None,
                                 system=facts.os.system or None)

    def source_platform(self, source: str, *, arch: Optional[str] = None,
                        system: Optional[str] = None) -> Optional[Platform]:
        return next((p for p in self.platforms if p.sources is not None and source in p.sources
                     and p.matches("", [], "", arch=arch, system=system, source=source)), None)

    def manager_binaries(self) -> List[Tuple[str, str]]:
        """The OS package managers, in detection order (environment managers such as conda are no OS's)."""
        return [(m.name, m.binary) for m in self.managers.values() if m.kind == "system"]

    def torch_for(self, minor: str, free_threaded: bool) -> Optional[TorchPython]:
        return next((t for t in self.torch_python if t.python == minor and t.free_threaded == free_threaded), None)


def builtin_dir():
    """The packaged recipes (a wheel or the unpacked zipapp: torch_setup/recipes/builtin), a source checkout's
    (recipes/ at its root), or inside a zip file."""
    here = Path(__file__).resolve().parent
    for d in (here / "builtin", here.parent.parent.parent / "recipes"):
        if d.is_dir():
            return d
    from importlib import resources  # ~20 ms to import: only for a zip that could not be unpacked

    return resources.files("torch_setup.recipes") / "builtin"


def load(extra_dirs: Sequence[Path] = ()) -> Recipes:
    files: list = []
    for d in [Path(x) for x in extra_dirs] + [builtin_dir()]:
        if not d.is_dir():
            raise RecipeError(f"recipe directory {d} does not exist")
        files += sorted((f for f in d.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    managers: Dict[str, Manager] = {}
    platforms: Dict[str, Platform] = {}
    repos: Dict[str, Repo] = {}
    refusals: Dict[str, Refusal] = {}
    torch_python: List[TorchPython] = []
    programs: Dict[str, TorchProgram] = {}
    for f in files:
        try:
            data = tomllib.loads(f.read_text())
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as e:
            raise RecipeError(f"{f}: not valid TOML: {e}") from None
        unknown = set(data) - {"manager", "platform", "python", "repo", "refuse", "program"}
        if unknown:
            raise RecipeError(f"{f}: unknown table(s) {', '.join(sorted(unknown))}")
        for key in ("manager", "repo"):
            if not isinstance(data.get(key, {}), dict):
                raise RecipeError(f"{f}: [{key}] must be a table of tables ([{key}.NAME])")
        for name, m in data.get("manager", {}).items():
            managers.setdefault(name, _manager(f, name, m))
        for name, r in data.get("repo", {}).items():
            repos.setdefault(name, _repo(f, name, r))
        for i, p in enumerate(_list(f, data, "platform")):
            plat = _platform(f, i, p)
            platforms.setdefault(plat.id, plat)  # earlier directories win
        for i, r in enumerate(_list(f, data, "refuse")):
            ref = _refusal(f, i, r)
            refusals.setdefault(ref.id, ref)
        torch_python += [_torch_python(f, i, t) for i, t in enumerate(_list(f, data, "python"))]
        for i, t in enumerate(_list(f, data, "program")):
            prog = _torch_program(f, i, t)
            programs.setdefault(prog.name, prog)
    for p in platforms.values():
        if p.manager not in managers:
            raise RecipeError(f"{p.origin}: platform {p.id!r}: unknown manager {p.manager!r}")
        for minor, ids in p.repos.items():
            for r in ids:
                if r not in repos:
                    raise RecipeError(f"{p.origin}: platform {p.id!r}: repos {minor!r}: unknown repo {r!r}")
        names.check_platform(p, repos)
    return Recipes(managers, tuple(platforms.values()), tuple(torch_python), repos, tuple(refusals.values()),
                   tuple(programs.values()))


def _list(f: Path, data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RecipeError(f"{f}: [{key}] must be an array of tables ([[{key}]])")
    return value


def _need(f: Path, where: str, entry: dict, key: str, kind, required=True, allowed: Sequence[str] = ()):
    if key not in entry:
        if required:
            raise RecipeError(f"{f}: {where}: missing {key!r}")
        return None
    value = entry[key]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecipeError(f"{f}: {where}: {key!r} must be a list of strings")
        for v in value:
            _template(f, where, key, v, allowed)
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{f}: {where}: {key!r} must be true or false")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise RecipeError(f"{f}: {where}: {key!r} must be a positive integer")
        return value
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise RecipeError(f"{f}: {where}: {key!r} must be a non-empty {kind.__name__}")
    if kind is str and allowed:
        _template(f, where, key, value, allowed)
    return value


def _template(f: Path, where: str, key: str, value: str, allowed: Sequence[str] = ()) -> None:
    """Only the placeholders resolve.py fills for this kind of field, and well-formed braces: a typo or a value
    the field never gets is an error at load, not a wrong command at install."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as e:
        raise RecipeError(f"{f}: {where}: {key!r}: {value!r}: {e}") from None
    for name in names:
        if name not in allowed:
            known = ", ".join("{" + p + "}" for p in allowed) or "none"
            raise RecipeError(f"{f}: {where}: {key!r}: placeholder {{{name}}} in {value!r} is not one this field "
                              f"is filled with; allowed here: {known}")


def _argv_list(f: Path, where: str, entry: dict, key: str, allowed: Sequence[str] = ()) -> Tuple[Tuple[str, ...], ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(c, list) and c and all(isinstance(a, str) for a in c)
                                              for c in value):
        raise RecipeError(f"{f}: {where}: {key!r} must be a list of argv lists")
    for c in value:
        for a in c:
            _template(f, where, key, a, allowed)
    return tuple(tuple(c) for c in value)


def _str_table(f: Path, where: str, entry: dict, key: str, allowed: Sequence[str] = ()) -> Dict[str, str]:
    value = entry.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RecipeError(f"{f}: {where}: {key!r} must be a table of strings")
    for v in value.values():
        _template(f, where, key, v, allowed)
    return dict(value)


def _check_keys(f: Path, where: str, entry: dict, allowed: set) -> None:
    if not isinstance(entry, dict):
        raise RecipeError(f"{f}: {where}: must be a table")
    unknown = set(entry) - allowed
    if unknown:
        raise RecipeError(f"{f}: {where}: unknown key(s) {', '.join(sorted(unknown))}")


def _manager(f: Path, name: str, m: dict) -> Manager:
    where = f"manager {name!r}"
    _check_keys(f, where, m, {"binary", "install", "refresh", "refresh_max_age_s", "clean", "env", "source",
                              "root", "kind", "create", "repair"})
    kind = m.get("kind", "system")
    if kind not in MANAGER_KINDS:
        raise RecipeError(f"{f}: {where}: 'kind' must be one of {', '.join(MANAGER_KINDS)}")
    env_kind = "env " if kind == "env" else ""
    install = _need(f, where, m, "install", list, allowed=FIELD_PLACEHOLDERS[f"{env_kind}manager install"])
    if "{packages}" not in install:
        raise RecipeError(f"{f}: {where}: 'install' must contain \"{{packages}}\"")
    clean = _argv_list(f, where, m, "clean", FIELD_PLACEHOLDERS["manager clean"])
    env = _str_table(f, where, m, "env", FIELD_PLACEHOLDERS["manager env"])
    age = m.get("refresh_max_age_s")
    if age is not None and not isinstance(age, (int, float)):
        raise RecipeError(f"{f}: {where}: 'refresh_max_age_s' must be a number")
    if kind != "env" and "create" in m:
        raise RecipeError(f"{f}: {where}: 'create' is for env managers (kind = \"env\") only")
    create = _need(f, where, m, "create", list, required=False,
                   allowed=FIELD_PLACEHOLDERS["env manager create"]) or ()
    if kind == "env":
        for key, argv in (("install", install), ("create", create)):
            if "{packages}" not in argv or not any("{prefix}" in a for a in argv):
                raise RecipeError(f"{f}: {where}: an env manager's {key!r} must contain \"{{packages}}\" and "
                                  "\"{prefix}\"")
    root = m.get("root", True)
    if not isinstance(root, bool):
        raise RecipeError(f"{f}: {where}: 'root' must be true or false")
    return Manager(
        name=name, binary=_need(f, where, m, "binary", str), install=install,
        refresh=_need(f, where, m, "refresh", list, required=False,
                      allowed=FIELD_PLACEHOLDERS["manager refresh"]) or (),
        refresh_max_age_s=age, clean=clean, env=env,
        source=_need(f, where, m, "source", str), root=root, kind=kind, create=create,
        repair=_repair(f, where, m),
    )


def _repair(f: Path, where: str, m: dict) -> Tuple[Tuple[str, ...], ...]:
    """`repair`: a list of argv lists, run in order (one argv list is one command)."""
    value = m.get("repair", [])
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        value = [value]
    return _argv_list(f, where, {"repair": value}, "repair", FIELD_PLACEHOLDERS["manager refresh"])


def _repo(f: Path, name: str, r: dict) -> Repo:
    where = f"repo {name!r}"
    _check_keys(f, where, r, {"title", "packages", "commands", "check", "refresh", "externally_managed", "source"})
    allowed = FIELD_PLACEHOLDERS["repo"]
    packages = _need(f, where, r, "packages", list, required=False, allowed=allowed) or ()
    commands = _argv_list(f, where, r, "commands", allowed)
    if not packages and not commands:
        raise RecipeError(f"{f}: {where}: needs 'packages' or 'commands' (or both)")
    check = _need(f, where, r, "check", list, allowed=allowed)
    if not check:
        raise RecipeError(f"{f}: {where}: 'check' must be an argv (exit 0: the repository is enabled)")
    refresh = r.get("refresh", False)
    em = r.get("externally_managed")
    for key, value in (("refresh", refresh), ("externally_managed", em)):
        if value is not None and not isinstance(value, bool):
            raise RecipeError(f"{f}: {where}: {key!r} must be true or false")
    return Repo(id=name, title=_need(f, where, r, "title", str), packages=packages, commands=commands,
                check=check, refresh=refresh, externally_managed=em, source=_need(f, where, r, "source", str),
                origin=str(f))


PLATFORM_KEYS = {
    "id", "match", "manager", "packages", "pythons", "source", "python_packages", "by_python", "repos",
    "python_executable", "python_include", "externally_managed", "compiler_min", "compiler_default", "cxx_upgrade",
    "cxx_env", "uv_packages", "uv_bootstrap", "pyenv_packages", "pyenv_build",
}


def _platform(f: Path, i: int, p: dict) -> Platform:
    where = f"platform #{i + 1} ({p.get('id', 'no id') if isinstance(p, dict) else '?'})"
    _check_keys(f, where, p, PLATFORM_KEYS)
    match = p.get("match")
    if not isinstance(match, dict):
        raise RecipeError(f"{f}: {where}: 'match' must be a table")
    _check_keys(f, where + " match", match, {"os", "version", "major", "arch", "system", "source"})
    sources = _need(f, where, match, "source", list, required=False)
    os_ids = _need(f, where, match, "os", list, required=sources is None)  # a source entry may name no OS
    allowed = FIELD_PLACEHOLDERS["source platform" if sources is not None else "platform"]
    packages = p.get("packages", {})
    if not isinstance(packages, dict):
        raise RecipeError(f"{f}: {where}: 'packages' must be a table")
    unknown = set(packages) - set(NEEDS)
    if unknown:
        raise RecipeError(f"{f}: {where}: unknown need(s) {', '.join(sorted(unknown))}; known: {', '.join(NEEDS)}")
    by_python = p.get("by_python", {})
    if not isinstance(by_python, dict) or not all(isinstance(v, dict) for v in by_python.values()):
        raise RecipeError(f"{f}: {where}: 'by_python' must be a table of tables (version -> need -> packages)")
    overrides = {}
    for minor, table in by_python.items():
        bad = set(table) - set(NEEDS) - {PYTHON}
        if bad:
            raise RecipeError(f"{f}: {where}: by_python {minor!r}: unknown need(s) {', '.join(sorted(bad))}; "
                              f"known: {', '.join(NEEDS + (PYTHON,))}")
        overrides[minor] = {k: _need(f, f"{where} by_python {minor!r}", table, k, list, allowed=allowed) for k in table}
    repos = p.get("repos", {})
    if not isinstance(repos, dict):
        raise RecipeError(f"{f}: {where}: 'repos' must be a table (version -> repo ids)")
    repo_ids = {minor: _need(f, f"{where} repos", repos, minor, list) for minor in repos}
    upgrade = None
    if "cxx_upgrade" in p:
        u = p["cxx_upgrade"]
        uw = f"{where} cxx_upgrade"
        _check_keys(f, uw, u, {"packages", "env", "source"})
        env = _str_table(f, uw, u, "env", allowed)
        if "CXX" not in env:
            raise RecipeError(f"{f}: {uw}: 'env' must set CXX (the compiler Inductor is to use)")
        upgrade = CxxUpgrade(_need(f, uw, u, "packages", list, allowed=allowed), env, _need(f, uw, u, "source", str))
    em = p.get("externally_managed", False)
    if not isinstance(em, bool):
        raise RecipeError(f"{f}: {where}: 'externally_managed' must be true or false")
    return Platform(
        id=_need(f, where, p, "id", str),
        os=os_ids or (),
        versions=_need(f, where, match, "version", list, required=False),
        manager=_need(f, where, p, "manager", str),
        packages={k: _need(f, f"{where} packages", packages, k, list, allowed=allowed) for k in packages},
        pythons=_need(f, where, p, "pythons", list, required=False),
        source=_need(f, where, p, "source", str),
        origin=str(f),
        majors=_need(f, where, match, "major", list, required=False),
        arches=_need(f, where, match, "arch", list, required=False),
        systems=_need(f, where, match, "system", list, required=False),
        sources=sources,
        python_packages=_need(f, where, p, "python_packages", list, required=False, allowed=allowed) or (),
        by_python=overrides,
        repos=repo_ids,
        python_executable=_need(f, where, p, "python_executable", str, required=False, allowed=allowed)
        or "/usr/bin/python{minor}",
        python_include=_need(f, where, p, "python_include", str, required=False, allowed=allowed)
        or "/usr/include/python{minor}",
        externally_managed=em,
        compiler_min=_need(f, where, p, "compiler_min", int, required=False) or DEFAULT_COMPILER_MIN,
        compiler_default=_need(f, where, p, "compiler_default", int, required=False),
        cxx_upgrade=upgrade,
        cxx_env=_str_table(f, where, p, "cxx_env", allowed),
        uv_packages=_need(f, where, p, "uv_packages", list, required=False, allowed=allowed) or (),
        uv_bootstrap=_need(f, where, p, "uv_bootstrap", list, required=False, allowed=allowed) or (),
        pyenv_packages=_need(f, where, p, "pyenv_packages", list, required=False, allowed=allowed) or (),
        pyenv_build=_need(f, where, p, "pyenv_build", list, required=False, allowed=allowed) or (),
    )


def _refusal(f: Path, i: int, r: dict) -> Refusal:
    where = f"refuse #{i + 1} ({r.get('id', 'no id') if isinstance(r, dict) else '?'})"
    _check_keys(f, where, r, {"id", "when", "reason", "hint", "source"})
    when = r.get("when")
    if not isinstance(when, dict) or not when:
        raise RecipeError(f"{f}: {where}: 'when' must be a non-empty table")
    _check_keys(f, where + " when", when, set(REFUSE_CONDITIONS))
    for key, kind in REFUSE_CONDITIONS.items():
        if key in when:
            value = when[key]
            ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind is list else \
                isinstance(value, kind)
            if not ok:
                raise RecipeError(f"{f}: {where} when: {key!r} must be "
                                  + {list: "a list of strings", str: "a string", bool: "true or false"}[kind])
    return Refusal(id=_need(f, where, r, "id", str), when=dict(when), reason=_need(f, where, r, "reason", str),
                   hint=_need(f, where, r, "hint", str), source=_need(f, where, r, "source", str), origin=str(f))


def _torch_python(f: Path, i: int, t: dict) -> TorchPython:
    where = f"python #{i + 1}"
    _check_keys(f, where, t, {"python", "free_threaded", "min_torch", "max_torch", "min_python", "source"})
    ft = t.get("free_threaded", False)
    if not isinstance(ft, bool):
        raise RecipeError(f"{f}: {where}: 'free_threaded' must be true or false")
    return TorchPython(
        python=_need(f, where, t, "python", str), free_threaded=ft,
        min_torch=_need(f, where, t, "min_torch", str),
        max_torch=_need(f, where, t, "max_torch", str, required=False),
        min_python=_need(f, where, t, "min_python", str, required=False),
        source=_need(f, where, t, "source", str),
    )


def _torch_program(f: Path, i: int, t: dict) -> TorchProgram:
    where = f"program #{i + 1}"
    _check_keys(f, where, t, {"name", "min_torch", "max_torch", "source"})
    name = _need(f, where, t, "name", str)
    if name not in NEEDS:
        raise RecipeError(f"{f}: {where}: name {name!r} is no need a platform's packages provide; known: "
                          f"{', '.join(NEEDS)}")
    from packaging.version import InvalidVersion, Version  # here, not at import: `detect` does without it

    for key in ("min_torch", "max_torch"):
        value = _need(f, where, t, key, str, required=key == "min_torch")
        try:
            if value is not None:
                Version(value)
        except InvalidVersion:
            raise RecipeError(f"{f}: {where}: {key!r} must be a version such as \"2.8\", not {value!r}") from None
    return TorchProgram(name=name, min_torch=t["min_torch"], max_torch=t.get("max_torch"),
                        source=_need(f, where, t, "source", str))
