"""Refuse what cannot work, before anything is installed: a pure function of facts and recipes.

The cases are data (`[[refuse]]` in recipes/refusals.toml): musl, glibc older than 2.28, Intel macOS, macOS older
than 14, a Python without torch.compile support, a free-threaded build outside torch's support. The first entry
whose conditions all hold raises UnsupportedError (exit code 5): its message is the reason, its hint the way
forward.
"""
from __future__ import annotations

import string
from typing import Dict, Optional

from packaging.version import InvalidVersion, Version

from torch_setup.errors import UnsupportedError
from torch_setup.facts.model import Facts
from torch_setup.recipes.load import Recipes, Refusal


def check(facts: Facts, recipes: Recipes) -> None:
    """Raise UnsupportedError for the first refusal that applies to these facts; return None otherwise."""
    hit = first(facts, recipes)
    if hit:
        values = _values(facts, recipes)
        raise UnsupportedError(_fill(hit.reason, values), hint=_fill(hit.hint, values),
                               details=f"refusal {hit.id!r} ({hit.source})")


def first(facts: Facts, recipes: Recipes) -> Optional[Refusal]:
    """The refusal that applies, if any (for `detect`/`doctor`, which report rather than raise)."""
    return next((r for r in recipes.refusals if applies(r, facts, recipes)), None)


def applies(refusal: Refusal, facts: Facts, recipes: Recipes) -> bool:
    return all(_holds(key, value, facts, recipes) for key, value in refusal.when.items())


def _holds(key: str, value, facts: Facts, recipes: Recipes) -> bool:
    py = facts.python
    if key == "libc":
        return facts.libc.name in value
    if key == "libc_below":
        return _older(facts.libc.version, value)
    if key == "system":
        return facts.os.system in value
    if key == "arch":
        return facts.arch in value
    if key == "os":
        return facts.os.id in value
    if key == "os_below":
        return _older(facts.os.version, value)
    if not py.found:  # the conditions below are about the target Python; without one, none holds
        return False
    implementation = (py.implementation or "cpython").lower()
    if key == "implementation_not":
        return implementation not in [v.lower() for v in value]
    minor = py.minor or ""
    if key == "python_unsupported":
        return value == (not py.free_threaded and recipes.torch_for(minor, False) is None)
    row = recipes.torch_for(minor, True) if py.free_threaded else None
    if key == "free_threaded_unsupported":
        return value == (py.free_threaded and row is None)
    if key == "free_threaded_too_old":
        return value == bool(py.free_threaded and row and row.min_python
                             and _older(py.version, row.min_python))
    raise AssertionError(f"unknown refusal condition {key!r}")  # recipes.py validates the keys


def _older(version: Optional[str], than: str) -> bool:
    """Is `version` older than `than`? Unknown or unparsable versions are never refused."""
    if not version:
        return False
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


def _values(facts: Facts, recipes: Recipes) -> Dict[str, str]:
    py = facts.python
    known = sorted({t.python for t in recipes.torch_python if not t.free_threaded}, key=Version)
    row = recipes.torch_for(py.minor or "", True) if py.free_threaded else None
    return {
        "os_name": facts.os.name or facts.os.id, "os_version": facts.os.version, "arch": facts.arch,
        "libc": facts.libc.name or "", "libc_version": facts.libc.version or "",
        "python": f"{py.minor}{'t' if py.free_threaded else ''}" if py.minor else "",
        "version": py.version or "", "minor": py.minor or "", "executable": py.executable or "",
        "implementation": py.implementation or "", "oldest": known[0] if known else "",
        "newest": known[-1] if known else "", "min_python": (row.min_python or "") if row else "",
    }


class _Blank(dict):
    def __missing__(self, key):  # an unknown placeholder prints as itself rather than failing the refusal
        return "{" + key + "}"


def _fill(template: str, values: Dict[str, str]) -> str:
    return string.Formatter().vformat(template, (), _Blank(values))
