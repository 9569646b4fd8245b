"""The wheels of a plan's torch step for one (torch build x Python x platform): resolved by `uv pip compile` for
the target's Python and platform (https://docs.astral.sh/uv/reference/cli/#uv-pip-compile: --python-version,
--python-platform, --only-binary, --format pylock.toml), with the step's own requirements and index options, in a
clean environment (this host's pip and uv configuration play no part: the plan already holds the target's)."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from torch_setup.bundle.store import Item
from torch_setup.errors import BundleError

# uv's --python-platform values for glibc Linux (`uv pip compile --help`): manylinux_2_17, _2_28, _2_31 to _2_40.
MANYLINUX = (17, 28) + tuple(range(31, 41))
INDEX_FLAGS = ("--index-url", "--extra-index-url", "--find-links", "--index-strategy", "-i", "-f")


@dataclass(frozen=True)
class WheelSet:
    """What one torch step installs, for one Python and platform: the same build on the same kind of host shares it."""
    requirements: Tuple[str, ...]  # as the plan's step names them: ("torch==2.15.0", "torchvision==0.30.*")
    index_args: Tuple[str, ...]  # real URLs: never printed unmasked
    python: str  # "3.13", "3.13t"
    platform: str  # uv's --python-platform: x86_64-manylinux_2_40
    seed: Tuple[str, ...]  # what `uv venv --seed` puts into a venv: pip (and setuptools, wheel before 3.12)

    @property
    def id(self) -> str:
        digest = hashlib.sha256("\n".join(self.requirements + self.index_args + self.seed).encode()).hexdigest()[:10]
        return f"cp{self.python.replace('.', '')}-{self.platform}-{digest}"


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    item: Item  # the wheel: wheels/<filename>, its url, sha256, size


def uv_platform(facts) -> str:
    """uv's --python-platform for the facts' host."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get((facts.arch or "").lower(), (facts.arch or "").lower())
    system = (facts.os.system or "Linux").lower()
    if system == "darwin":
        return f"{'aarch64' if arch in ('aarch64', 'arm64') else 'x86_64'}-apple-darwin"
    if system != "linux" or arch not in ("x86_64", "aarch64"):
        raise BundleError(f"no wheels can be resolved here for {facts.os.system} {facts.arch}",
                          hint="bundles hold Linux x86_64/aarch64 and macOS hosts")
    if facts.libc.name == "musl":
        return f"{arch}-unknown-linux-musl"
    nums = [int(x) for x in re.findall(r"\d+", facts.libc.version or "2.28")][:2]
    minor = nums[1] if len(nums) == 2 else 28
    fits = [m for m in MANYLINUX if m <= minor]
    if not fits:
        raise BundleError(f"glibc {facts.libc.version} is older than manylinux_2_17: no wheels fit that host")
    return f"{arch}-manylinux_2_{fits[-1]}"


def split_step(argv: Sequence[str]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(requirements, index options) of a plan's `pip install` / `uv pip install` argv."""
    words = list(argv)
    start = next((i + 1 for i, w in enumerate(words) if w == "install"), None)
    if start is None:
        raise BundleError("the torch step is no pip or uv install: " + " ".join(words[:4]))
    reqs, index = [], []
    i = start
    while i < len(words):
        w = words[i]
        if w in ("--python", "-p"):
            i += 2
            continue
        if w in INDEX_FLAGS:
            index += [w, words[i + 1]]
            i += 2
            continue
        if not w.startswith("-"):
            reqs.append(w)
        i += 1
    return tuple(reqs), tuple(index)


def clean_env(env) -> dict:
    """This host's environment without its pip and uv settings (the compile runs with the plan's options only)."""
    return {k: v for k, v in env.items() if not k.startswith(("UV_", "PIP_"))} | {"UV_NO_CONFIG": "1"}


def compile_set(system, uv: str, wheel_set: WheelSet, work: str) -> List[Locked]:
    """Every wheel the set installs, pinned, with url, sha256 and size, by `uv pip compile --format pylock.toml`."""
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    from torch_setup.masking import mask_text

    os.makedirs(work, exist_ok=True)
    req_in = os.path.join(work, "requirements.in")
    out = os.path.join(work, "pylock.toml")
    with open(req_in, "w") as f:
        f.write("\n".join(wheel_set.requirements + wheel_set.seed) + "\n")
    argv = [uv, "pip", "compile", req_in, "-o", out, "--format", "pylock.toml", "--quiet", "--no-header",
            "--python-version", wheel_set.python.rstrip("t"), "--python-platform", wheel_set.platform,
            "--only-binary", ":all:", *wheel_set.index_args]
    res = system.run(argv, env=clean_env(system.env), timeout=900)
    if not res.ok:
        raise BundleError(f"uv cannot resolve {' '.join(wheel_set.requirements)} for Python {wheel_set.python} on "
                          f"{wheel_set.platform}", details=mask_text((res.stdout + res.stderr)[-2000:]))
    with open(out, "rb") as f:
        lock = tomllib.load(f)
    found = []
    for pkg in lock.get("packages", []):
        wheels = pkg.get("wheels") or []
        if not wheels:
            raise BundleError(f"{pkg.get('name')} {pkg.get('version')} has no wheel for Python {wheel_set.python} on "
                              f"{wheel_set.platform}", hint="bundles hold wheels only (nothing is built offline)")
        w = wheels[0]
        url = w.get("url") or ""
        filename = w.get("name") or url.rsplit("/", 1)[-1].split("#", 1)[0]
        sha = (w.get("hashes") or {}).get("sha256")
        if not sha:
            raise BundleError(f"{filename}: the index gives no sha256", hint="use an index that lists sha256 hashes")
        found.append(Locked(pkg["name"], str(pkg.get("version", "")), Item(f"wheels/{filename}", url, sha,
                                                                         w.get("size"))))
    return found


def uv_for_here(system, this_facts, cache: str) -> str:
    """A uv for this host's resolution: on PATH, else one an earlier run fetched, else its wheel fetched (checked)
    and unpacked into the cache. `this_facts`: a function giving this host's facts (probed only when needed)."""
    from torch_setup.wheels import uv as uvtool

    found = system.which("uv")
    if found:
        return found
    facts = this_facts()
    if facts.host.uv:
        return facts.host.uv
    wheel = uvtool.resolve(facts, {k: v for k, v in facts.config.env.items() if k != uvtool.NO_UV_ENV})
    if wheel is None:
        raise BundleError("no uv here, and no uv wheel for this host on its indexes: uv resolves the wheels",
                          hint="install uv (https://docs.astral.sh/uv/) and run again")
    dest = os.path.join(cache, f"uv-{wheel.version}", "uv")
    if not os.path.exists(dest):
        import sys

        res = system.run([sys.executable, "-c", uvtool.FETCH_SCRIPT, wheel.url, wheel.sha256, dest], timeout=600)
        if not res.ok:
            raise BundleError("cannot fetch uv for this host", details=(res.stdout + res.stderr)[-800:])
    return dest


def seed_for(python: str) -> Tuple[str, ...]:
    """What `uv venv --seed` installs (https://docs.astral.sh/uv/reference/cli/#uv-venv--seed): pip, and
    setuptools and wheel for Python < 3.12."""
    minor = int(python.rstrip("t").split(".")[1])
    return ("pip",) if minor >= 12 else ("pip", "setuptools", "wheel")


def requirements_txt(locked: Sequence[Locked]) -> str:
    """pip's and uv's hash-checking requirements (https://pip.pypa.io/en/stable/topics/secure-installs/)."""
    lines = ["# torch-setup bundle: install with --no-index --find-links <bundle>/wheels --require-hashes"]
    for lk in sorted(locked, key=lambda x: x.name):
        lines.append(f"{lk.name}=={lk.version} --hash=sha256:{lk.item.sha256}")
    return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _has_credentials(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return bool(parts.username or parts.password or parts.query)
    except ValueError:
        return True


def pylock_toml(locked: Sequence[Locked], python: str, rel: str, created_by: str = "torch-setup") -> str:
    """A PEP 751 lock file (https://peps.python.org/pep-0751/) for one target: each package with its one wheel,
    at `path` (relative to the lock file: `rel` is the way to the bundle's root) and at the `url` it came from
    (left out where that URL carries credentials: a lock file is shared)."""
    out = ['lock-version = "1.0"', f"created-by = {_toml_str(created_by)}",
           f"requires-python = {_toml_str('==' + python.rstrip('t') + '.*')}", ""]
    for lk in sorted(locked, key=lambda x: x.name):
        name = os.path.basename(lk.item.path)
        size = f", size = {lk.item.size}" if lk.item.size else ""
        url = f", url = {_toml_str(lk.item.url)}" if lk.item.url and not _has_credentials(lk.item.url) else ""
        out += ["[[packages]]", f"name = {_toml_str(lk.name)}", f"version = {_toml_str(lk.version)}",
                f"wheels = [{{ name = {_toml_str(name)}, path = {_toml_str(rel + '/' + lk.item.path)}"
                f"{url}{size}, hashes = {{ sha256 = {_toml_str(lk.item.sha256)} }} }}]", ""]
    return "\n".join(out)
