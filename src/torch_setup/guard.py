"""The guard: after torch goes into a venv on a GPU box, that venv's pip keeps the installed build.

A later `pip install -r requirements.txt` (a `torch>=…` line, `-U`, a plain `torch` from PyPI after
`--force-reinstall`) would otherwise swap the CUDA/ROCm build for another one, and nothing would notice until
"Torch not compiled with CUDA enabled". The plan's `torch-guard` step, run by the target interpreter once torch is
in, writes `VENV/torch-setup-constraints.txt` pinning torch and the companions installed with it to their exact
installed versions (`torch==2.15.0+cu132`: PEP 440's `==` with a local label matches only that build; a version
without one, as PyPI's CUDA builds have, is pinned `torch===2.7.1`, string equality, since `==2.7.1` also matches
2.7.1+cpu), with the build torch/version.py names (`# torch build: 2.7.1+cu126`, what doctor compares), and lists
that file under `constraint` in the venv's own pip configuration `VENV/pip.conf` (pip's "site" file,
`sys.prefix`/pip.conf: https://pip.pypa.io/en/stable/topics/configuration/#location). Every pip of the venv then
refuses a swap, naming the constraint ("The user requested (constraint) torch==2.15.0+cu132").

uv reads no pip.conf, and no configuration of a venv: its settings come from the project's `uv.toml` /
`pyproject.toml` `[tool.uv]` (`constraint-dependencies`), the user's uv.toml, or `UV_CONSTRAINT`
(https://docs.astral.sh/uv/configuration/files/ , https://docs.astral.sh/uv/reference/environment/). For uv the
same file is passed: `uv pip install -c VENV/torch-setup-constraints.txt …` or `UV_CONSTRAINT=…`; doctor's
`torch-guard` check names drift whoever caused it.

To lift it: `VENV/bin/python -m pip config --site unset global.constraint` (or edit the pins in the file).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence, Tuple

from torch_setup.planning.steps import Command, Step

FILE = "torch-setup-constraints.txt"
STEP_ID = "torch-guard"
GPU_KINDS = ("nvidia", "rocm", "xpu")

# Run by the target interpreter: argv[1] the venv, argv[2:] the distributions to pin (torch first).
SCRIPT = r'''
import configparser, os, sys
import re
from importlib import metadata
prefix, names = sys.argv[1], sys.argv[2:]
pins = []
for name in names:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "torch":
            sys.exit("torch-guard: torch is not installed in " + prefix)
        continue
    # `==2.7.1` also matches 2.7.1+cpu (PEP 440 ignores the candidate's local label): no label, string equality
    pins.append("%s%s%s" % (name, "==" if "+" in version else "===", version))
build = ""
try:
    text = metadata.distribution("torch").locate_file(os.path.join("torch", "version.py")).read_text()
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    build = found.group(1) if found else ""
except (OSError, ValueError):
    pass
path = os.path.join(prefix, "torch-setup-constraints.txt")
def write(dest, text):
    with open(dest + ".tmp", "w") as f:
        f.write(text)
    os.replace(dest + ".tmp", dest)
write(path, "# Written by torch-setup: pip in this venv keeps these builds (listed in pip.conf).\n"
            "# To lift: python -m pip config --site unset global.constraint\n"
            + ("# torch build: %s\n" % build if build else "") + "".join(p + "\n" for p in pins))
conf = os.path.join(prefix, "pip.conf")
parser = configparser.RawConfigParser()
parser.read(conf)
sections = ["global"] + [s for s in parser.sections() if s != "global" and parser.has_option(s, "constraint")]
for section in sections:
    if not parser.has_section(section):
        parser.add_section(section)
    old = parser.get(section, "constraint", fallback="").split()
    if path not in old:
        parser.set(section, "constraint", " ".join(old + [path]))
with open(conf + ".tmp", "w") as f:
    parser.write(f)
os.replace(conf + ".tmp", conf)
print("pinned " + " ".join(pins) + " in " + path)
'''


def constraints_path(prefix: str) -> str:
    return os.path.join(prefix.rstrip("/") or "/", FILE)


def companion_names(extras: Iterable[str]) -> Tuple[str, ...]:
    """'torchvision==0.29.*' -> 'torchvision': the names installed with torch, pinned with it."""
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in extras:
        try:
            names.append(Requirement(text).name)
        except InvalidRequirement:
            continue
    return tuple(dict.fromkeys(n for n in names if n != "torch"))


def wanted(facts) -> bool:
    """A GPU box: its torch build is worth keeping (a CPU box's CPU torch is not swapped for a worse one)."""
    return facts.accelerator.kind in GPU_KINDS


def step(python: str, prefix: str, names: Sequence[str], after: Tuple[str, ...]) -> Step:
    path = constraints_path(prefix)
    pinned = " ".join(("torch",) + tuple(n for n in names if n != "torch"))
    return Step(STEP_ID, f"Keep this torch build: pin {pinned} in {path}", "todo",
                (Command((python, "-c", SCRIPT, prefix, "torch", *[n for n in names if n != "torch"])),), False,
                f"a later pip install in {prefix} must not swap this build for another one: {prefix}/pip.conf lists "
                f"the pins as a constraint (uv reads no pip.conf: pass -c {path}, or UV_CONSTRAINT={path}); to "
                f"lift it: {python} -m pip config --site unset global.constraint", after)


def listed(pip_config: str, prefix: str) -> bool:
    """Is the venv's constraints file in the merged pip configuration (`section.key='value'` lines)?"""
    path = constraints_path(prefix)
    return any(line.split("=", 1)[0].endswith(".constraint") and path in line for line in pip_config.splitlines())


def parse_pins(text: Optional[str]) -> dict:
    """The constraints file -> {name: version} (`==` or `===` pins)."""
    pins = {}
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.lstrip("=").strip()
    return pins


def parse_build(text: Optional[str]) -> Optional[str]:
    """The torch build the guard recorded (`# torch build: 2.7.1+cu126`, torch/version.py's), None: not recorded."""
    for line in (text or "").splitlines():
        if line.startswith("# torch build:"):
            return line.split(":", 1)[1].strip() or None
    return None


def check(facts, pins_text: Optional[str], plan) -> Tuple[str, str, Optional[str], Tuple[str, ...], str]:
    """doctor's `torch-guard`: (status, message, fix step id, its commands, advice). `pins_text`: the venv's
    constraints file, None when there is none."""
    torch, py = facts.torch, facts.python
    if not wanted(facts) or not torch.version or not py.in_venv or not py.prefix:
        return "n/a", "no torch in a venv on a GPU box to keep", None, (), ""
    path = constraints_path(py.prefix)
    fix = next((s for s in (plan.todo if plan else ()) if s.id == STEP_ID), None)
    fix_id, commands = (fix.id, tuple(c.display() for c in fix.commands)) if fix else (None, ())
    pins = parse_pins(pins_text)
    if pins_text is None or not listed(facts.config.pip, py.prefix):
        return ("warn", f"nothing keeps torch {torch.version}'s build in {py.prefix}: a later pip install can swap "
                f"it for another build", fix_id, commands, "torch-setup install pins it (step torch-guard)")
    pinned = parse_build(pins_text) or pins.get("torch")  # the build: PyPI's 2.7.1 is 2.7.1+cu126
    if pinned and pinned != torch.version:
        return ("warn", f"torch {torch.version} is installed, but install pinned {pinned} in {path}: something "
                "swapped it (uv, which reads no pip.conf, or pip with the constraint lifted)", fix_id, commands,
                f"reinstall torch=={pinned} with -c {path}, or run torch-setup install again")
    if facts.config.env.get("PIP_CONSTRAINT", None) is not None:
        return ("warn", f"PIP_CONSTRAINT is set: it replaces the venv's constraint {path}, so pip can swap torch "
                f"{torch.version}", None, (), f"add {path} to PIP_CONSTRAINT")
    return ("ok", f"torch {torch.version} is pinned in {path} (this venv's pip keeps it; for uv pass -c {path} "
            f"or UV_CONSTRAINT={path})", None, (), "")


def for_replacement(pip_config: str, prefix: Optional[str]) -> dict:
    """The environment of torch-setup's own pip run that replaces torch in a guarded venv: PIP_CONSTRAINT names
    the venv's other constraint files (pip ignores an empty value, so none at all is os.devnull, an empty file);
    the guard step after it pins the new build. {} where the venv is not guarded."""
    import ast

    if not prefix or not listed(pip_config, prefix):
        return {}
    ours, others = constraints_path(prefix), []
    for line in pip_config.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".constraint"):
            try:
                files = str(ast.literal_eval(value)).split()
            except (ValueError, SyntaxError):
                files = value.split()
            others += [f for f in files if f != ours and f not in others]
    return {"PIP_CONSTRAINT": " ".join(others) or os.devnull}
