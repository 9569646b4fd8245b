"""What the user asked for, parsed once by the CLI: the target Python, where a missing one comes from, the venv,
and which torch. Facts never carry it; every planning function receives it."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from torch_setup.errors import UnsupportedError, UsageError

DEFAULT_VENV = "~/.venvs/torch"
PROVIDERS = ("system", "uv", "pyenv", "conda")
_VERSION = re.compile(r"^3\.(\d+)(t?)$")  # the one pattern for `--python X.Y[t]`
_OTHER_MAJOR = re.compile(r"^(?:python)?[12](?:\.\d+)*$")  # 2.7, python2: not Python 3, refused as unsupported
# A distribution name (PEP 508, https://packaging.python.org/en/latest/specifications/name-normalization/).
_DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.I)


def parse_torch_range(text: str) -> str:
    """`--torch`: a version specifier set for torch (">=2.6,<2.15", "==2.7.1", "2.7.1", "torch>=2.6"); names of
    other projects, URLs, extras and markers are refused (UsageError), never taken as "any torch"."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    text = (text or "").strip()
    if not text:
        return ""
    why = ""
    try:
        return str(SpecifierSet(text)) if text[0] in "<>=!~" else f"=={Version(text)}"
    except (InvalidSpecifier, InvalidVersion):
        pass
    try:
        req = Requirement(text)
    except InvalidRequirement:
        why = "not a version range"
    else:
        if req.name.lower() != "torch" and not str(req.specifier):
            why = "not a version range"
        elif req.name.lower() != "torch":
            why = f"a range for {req.name}, not for torch"
        elif req.url:
            why = "a URL, not a version range"
        elif req.marker or req.extras:
            why = "markers and extras are not a version range"
        elif not str(req.specifier):
            return ""
        else:
            return str(req.specifier)
    raise UsageError(f"--torch {text!r}: {why}", hint="give a version range for torch, such as '>=2.6,<2.15' or "
                     "'==2.7.1'")


def parse_index_url(text: Optional[str], exists=os.path.isdir) -> Optional[str]:
    """`--index-url`: an http(s) URL with a host, a file:// URL, or an existing folder (made a file:// URL's path
    as it is); anything else is a UsageError, never a silent fallback to PyPI."""
    from urllib.parse import urlsplit

    if text is None:
        return None
    value = text.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is not None and parts.scheme in ("http", "https") and host:
        return value
    if parts is not None and parts.scheme == "file":
        return value
    if value and "://" not in value and not value.startswith("-") and exists(os.path.expanduser(value)):
        return value
    from torch_setup.masking import mask

    what = "no such folder" if value and "://" not in value else "not an http(s) or file:// URL"
    raise UsageError(f"--index-url {mask(value)!r}: {what}", hint="give an index such as "
                     "https://download.pytorch.org/whl/cpu, a file:// URL, or an existing folder of wheels")


def parse_with(text: str) -> Tuple[str, ...]:
    """`--with torchvision,torchaudio`: distribution names only (an option such as --index-url=... is refused)."""
    names = tuple(w.strip() for w in (text or "").split(",") if w.strip())
    for name in names:
        if not _DIST_NAME.match(name):
            raise UsageError(f"--with {name!r}: not a distribution name", hint="companions such as "
                             "torchvision,torchaudio (names only: the versions are matched to torch)")
    return names


@dataclass(frozen=True)
class PythonRequest:
    """`--python`: "" (the active venv or conda env, else python3), a version "3.13"/"3.13t", or a path or
    command name (taken as it is)."""
    text: str = ""
    minor: Optional[str] = None  # "3.13" for a version request
    free_threaded: bool = False

    @classmethod
    def parse(cls, text: Optional[str]) -> "PythonRequest":
        text = (text or "").strip()
        m = _VERSION.match(text)
        if m:
            return cls(text, f"3.{m.group(1)}", bool(m.group(2)))
        if _OTHER_MAJOR.match(text):
            raise UnsupportedError(f"--python {text}: not supported; torch.compile needs Python 3",
                                   hint="give a Python 3 version such as 3.13, or the path of one")
        if text.startswith("-"):
            raise UsageError(f"--python {text!r}: not a version, path or command name",
                             hint="a version such as 3.13, or the path of an interpreter")
        return cls(text)  # a path, or a command name such as python3.13 (or 2.7: none answers to it)

    @property
    def is_version(self) -> bool:
        return self.minor is not None

    @property
    def label(self) -> str:
        """'3.13t': how package and binary names spell a version request; the text for a path."""
        return f"{self.minor}{'t' if self.free_threaded else ''}" if self.minor else (self.text or "(default)")

    def accepts(self, version: Optional[str], free_threaded: bool) -> bool:
        """Does an interpreter of this version answer the request? Paths and names answer themselves."""
        if not self.minor:
            return True
        return bool(version) and version.split(".")[:2] == self.minor.split(".") and \
            free_threaded == self.free_threaded

    def candidates(self, env: Mapping[str, str]) -> List[str]:
        """Executables to try, best first; `*` patterns are globbed (pyenv's and uv's install folders)."""
        active = [os.path.join(env[v], "bin", "python") for v in ("VIRTUAL_ENV", "CONDA_PREFIX") if env.get(v)]
        if not self.text:
            return active + ["python3"]
        if not self.minor:
            return [self.text]
        label, name = self.label, f"python{self.label}"
        home = env.get("HOME", "~")
        pyenv_root = env.get("PYENV_ROOT") or os.path.join(home, ".pyenv")
        uv_dir = env.get("UV_PYTHON_INSTALL_DIR") or os.path.join(
            env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "uv", "python")
        return active + [name, "python3",
                         os.path.join(pyenv_root, "versions", f"{label}*", "bin", name),
                         os.path.join(uv_dir, f"cpython-{label}.*", "bin", name)]


@dataclass(frozen=True)
class Request:
    """One command's request. Defaults are what a bare `torch-setup install` asks for."""
    python: PythonRequest = PythonRequest()
    provider: Optional[str] = None  # --python-from: where a missing --python X.Y comes from
    venv: str = DEFAULT_VENV  # where a venv goes when the target may not be written to
    venv_given: bool = False  # --venv was passed: a venv even for a Python that could be written to
    torch: str = ""  # a version range such as ">=2.6,<2.15"; "" for the newest the Python supports
    break_system_packages: bool = False
    backend: str = ""  # "" = $TORCH_SETUP_TORCH_BACKEND of the planned host, else auto
    with_: Tuple[str, ...] = ()  # companions: torchvision, torchaudio
    index_url: Optional[str] = None
    find_links: Tuple[str, ...] = ()
    pytorch_index: Optional[str] = None  # --pytorch-index: a mirror of https://download.pytorch.org/whl
    keep_torch: bool = False  # --keep-torch: an installed torch stays even when its build cannot use the GPUs

    def __post_init__(self):
        if self.provider is not None and self.provider not in PROVIDERS:
            raise UnsupportedError(f"--python-from {self.provider}: unknown provider",
                                   hint="one of " + ", ".join(PROVIDERS))

    @classmethod
    def parse(cls, *, python: Optional[str] = "", provider: Optional[str] = None, venv: Optional[str] = None,
              torch: str = "", break_system_packages: bool = False, backend: str = "", with_: str = "",
              index_url: Optional[str] = None, find_links=(), pytorch_index: Optional[str] = None,
              env: Optional[Mapping[str, str]] = None, keep_torch: bool = False) -> "Request":
        """From the CLI's option values; `env`: this host's environment, whose HOME must be absolute where set."""
        home = (env or {}).get("HOME")
        if home is not None and not home.startswith("/"):
            raise UsageError(f"HOME is {home!r}, not an absolute path: the venv and the caches have no home to go in",
                             hint="set HOME to an absolute path (and --venv to one, or leave its default)")
        if env and "TORCH_SETUP_VERIFY_TIMEOUT" in env:
            from torch_setup.verify import timeout_of

            timeout_of(env)  # a bad value stops here, before anything is installed
        return cls(python=PythonRequest.parse(python), provider=provider, venv=venv or DEFAULT_VENV,
                   venv_given=venv is not None, torch=parse_torch_range(torch),
                   break_system_packages=break_system_packages, backend=backend or "", with_=parse_with(with_),
                   index_url=parse_index_url(index_url), find_links=tuple(find_links or ()),
                   pytorch_index=(pytorch_index or "").strip() or None, keep_torch=keep_torch)
