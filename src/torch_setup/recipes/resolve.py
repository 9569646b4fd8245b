"""Where a recipe becomes argv for one host: a platform's templates filled with the host's values, a manager's
command as root (through sudo where needed) or as the user, its refresh when its lists are stale.

The loader (load.py) checks every field of a recipe against the placeholders this module fills for that field
(`fields.FIELD_PLACEHOLDERS`, what `values` below fills), so a recipe that loads always plans correctly."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from torch_setup.facts.model import Facts
from torch_setup.planning.steps import Command

if TYPE_CHECKING:
    from torch_setup.recipes.load import Manager


def values(facts: Facts, minor: str = "", prefix: Optional[str] = None) -> Dict[str, str]:
    """Every placeholder a platform or repository field may hold, for this host and Python `minor` ("3.13");
    `prefix`: an environment's (conda), for the fields of its source platform."""
    out = {"minor": minor, "nodot": minor.replace(".", ""), "arch": facts.arch or "",
           "major": (facts.os.version or "").split(".")[0]}
    return dict(out, prefix=prefix) if prefix is not None else out


def root_command(argv: Tuple[str, ...], env: Dict[str, str], facts: Facts) -> Command:
    """As root: run as is; else through sudo, with the environment on the command line (sudo resets it)."""
    if facts.host.is_root or not facts.host.sudo:
        return Command(argv, env)
    return Command(("sudo",) + (("env",) + tuple(f"{k}={v}" for k, v in env.items()) if env else ()) + argv)


def manager_command(facts: Facts, manager: "Manager", argv: Tuple[str, ...]) -> Command:
    """A package manager's command: as root (sudo where needed), or as the user for Homebrew and conda."""
    return root_command(argv, manager.env, facts) if manager.root else Command(argv, dict(manager.env))


def stale(facts: Facts, manager: "Manager") -> bool:
    """Does the manager's refresh run before an install? apt's by the lists' age; the others' always."""
    age = facts.host.apt_lists_age_s if manager.name == "apt" else None
    return bool(manager.refresh) and (manager.refresh_max_age_s is None or age is None
                                      or age > manager.refresh_max_age_s)


def install_commands(facts: Facts, manager: "Manager", packages, refreshed: bool = False) -> List[Command]:
    """The manager's refresh when its lists are stale (and no earlier step refreshed them), then its install."""
    commands = [manager_command(facts, manager, manager.refresh)] if stale(facts, manager) and not refreshed else []
    return commands + [manager_command(facts, manager, manager.install_argv(packages))]


def expand_home(path: str, facts: Facts) -> str:
    """~ as the planned host's home (`plan --facts` may describe another box)."""
    if not (path == "~" or path.startswith("~/")) or facts.host.home == "~":
        return path  # home "~": a host known from a log only (fixhost.py), whose home the plan shows as ~
    if facts.host.home is not None and not facts.host.home.startswith("/"):
        from torch_setup.errors import UsageError

        raise UsageError(f"HOME is {facts.host.home!r}, not an absolute path: {path} (the venv, the caches) has no "
                         "home to go in",
                         hint="set HOME to an absolute path, or give --venv an absolute path")
    return (facts.host.home or "/").rstrip("/") + path[1:]
