"""Recipes: data files saying which packages and commands fix what, per platform. Loaded and validated here.

Built-in recipes live in `recipes/` (in the wheel: `torch_setup/recipes`); a user's own directory comes first,
so an entry there with the same id replaces the built-in one. An invalid file is an error that names the file
and the entry.
"""
from __future__ import annotations

import sys
from importlib import resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from torch_setup.errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

NEEDS = ("headers", "venv", "cxx", "ca")  # what a platform's packages provide, in install order


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


@dataclass(frozen=True)
class Platform:
    id: str
    os: Tuple[str, ...]
    versions: Optional[Tuple[str, ...]]
    manager: str
    packages: Dict[str, Tuple[str, ...]]
    pythons: Optional[Tuple[str, ...]]
    source: str
    origin: str  # file it came from

    def matches(self, os_id: str, like: Sequence[str], version: str) -> bool:
        if os_id not in self.os and not set(like) & set(self.os):
            return False
        return self.versions is None or version in self.versions


@dataclass(frozen=True)
class TorchPython:
    python: str
    free_threaded: bool
    min_torch: str
    max_torch: Optional[str]
    min_python: Optional[str]
    source: str


@dataclass(frozen=True)
class Recipes:
    managers: Dict[str, Manager]
    platforms: Tuple[Platform, ...]
    torch_python: Tuple[TorchPython, ...]

    def platform_for(self, os_id: str, like: Sequence[str], version: str) -> Optional[Platform]:
        return next((p for p in self.platforms if p.matches(os_id, like, version)), None)

    def manager_binaries(self) -> List[Tuple[str, str]]:
        return [(m.name, m.binary) for m in self.managers.values()]

    def torch_for(self, minor: str, free_threaded: bool) -> Optional[TorchPython]:
        return next((t for t in self.torch_python if t.python == minor and t.free_threaded == free_threaded), None)


def builtin_dir():
    """The packaged recipes (a wheel or the zipapp: maybe inside a zip file), else a source checkout's."""
    packaged = resources.files("torch_setup") / "recipes"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "recipes"


def load(extra_dirs: Sequence[Path] = ()) -> Recipes:
    files: list = []
    for d in [Path(x) for x in extra_dirs] + [builtin_dir()]:
        if not d.is_dir():
            raise RecipeError(f"recipe directory {d} does not exist")
        files += sorted((f for f in d.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    managers: Dict[str, Manager] = {}
    platforms: Dict[str, Platform] = {}
    torch_python: List[TorchPython] = []
    for f in files:
        try:
            data = tomllib.loads(f.read_text())
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as e:
            raise RecipeError(f"{f}: not valid TOML: {e}") from None
        unknown = set(data) - {"manager", "platform", "python"}
        if unknown:
            raise RecipeError(f"{f}: unknown table(s) {', '.join(sorted(unknown))}")
        for name, m in data.get("manager", {}).items():
            managers.setdefault(name, _manager(f, name, m))
        for i, p in enumerate(_list(f, data, "platform")):
            plat = _platform(f, i, p)
            platforms.setdefault(plat.id, plat)  # earlier directories win
        torch_python += [_torch_python(f, i, t) for i, t in enumerate(_list(f, data, "python"))]
    for p in platforms.values():
        if p.manager not in managers:
            raise RecipeError(f"{p.origin}: platform {p.id!r}: unknown manager {p.manager!r}")
    return Recipes(managers, tuple(platforms.values()), tuple(torch_python))


def _list(f: Path, data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise RecipeError(f"{f}: [{key}] must be an array of tables ([[{key}]])")
    return value


def _need(f: Path, where: str, entry: dict, key: str, kind, required=True):
    if key not in entry:
        if required:
            raise RecipeError(f"{f}: {where}: missing {key!r}")
        return None
    value = entry[key]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecipeError(f"{f}: {where}: {key!r} must be a list of strings")
        return tuple(value)
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise RecipeError(f"{f}: {where}: {key!r} must be a non-empty {kind.__name__}")
    return value


def _check_keys(f: Path, where: str, entry: dict, allowed: set) -> None:
    if not isinstance(entry, dict):
        raise RecipeError(f"{f}: {where}: must be a table")
    unknown = set(entry) - allowed
    if unknown:
        raise RecipeError(f"{f}: {where}: unknown key(s) {', '.join(sorted(unknown))}")


def _manager(f: Path, name: str, m: dict) -> Manager:
    where = f"manager {name!r}"
    _check_keys(f, where, m, {"binary", "install", "refresh", "refresh_max_age_s", "clean", "env", "source"})
    install = _need(f, where, m, "install", list)
    if "{packages}" not in install:
        raise RecipeError(f"{f}: {where}: 'install' must contain \"{{packages}}\"")
    clean = m.get("clean", [])
    if not isinstance(clean, list) or not all(isinstance(c, list) for c in clean):
        raise RecipeError(f"{f}: {where}: 'clean' must be a list of argv lists")
    env = m.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise RecipeError(f"{f}: {where}: 'env' must be a table of strings")
    age = m.get("refresh_max_age_s")
    if age is not None and not isinstance(age, (int, float)):
        raise RecipeError(f"{f}: {where}: 'refresh_max_age_s' must be a number")
    return Manager(
        name=name, binary=_need(f, where, m, "binary", str), install=install,
        refresh=_need(f, where, m, "refresh", list, required=False) or (),
        refresh_max_age_s=age, clean=tuple(tuple(c) for c in clean), env=dict(env),
        source=_need(f, where, m, "source", str),
    )


def _platform(f: Path, i: int, p: dict) -> Platform:
    where = f"platform #{i + 1} ({p.get('id', 'no id') if isinstance(p, dict) else '?'})"
    _check_keys(f, where, p, {"id", "match", "manager", "packages", "pythons", "source"})
    match = p.get("match")
    if not isinstance(match, dict):
        raise RecipeError(f"{f}: {where}: 'match' must be a table")
    _check_keys(f, where + " match", match, {"os", "version"})
    packages = p.get("packages", {})
    if not isinstance(packages, dict):
        raise RecipeError(f"{f}: {where}: 'packages' must be a table")
    unknown = set(packages) - set(NEEDS)
    if unknown:
        raise RecipeError(f"{f}: {where}: unknown need(s) {', '.join(sorted(unknown))}; known: {', '.join(NEEDS)}")
    return Platform(
        id=_need(f, where, p, "id", str),
        os=_need(f, where, match, "os", list),
        versions=_need(f, where, match, "version", list, required=False),
        manager=_need(f, where, p, "manager", str),
        packages={k: _need(f, f"{where} packages", packages, k, list) for k in packages},
        pythons=_need(f, where, p, "pythons", list, required=False),
        source=_need(f, where, p, "source", str),
        origin=str(f),
    )


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
