"""Which torch to install: the build variant (cpu, cu130, rocm7.2, ...), the exact version, and the index.

The rules, and why:
- Variant: what the GPU can use (variants.py).
- Version: the newest torch that (a) has a wheel for the *target* interpreter's tags (computed from the facts,
  not from this process), (b) supports torch.compile on that Python (recipes/torch.toml), (c) exists for the
  variant, within the user's range and any pip constraint file. Among several runnable CUDA variants the newest
  torch wins, then the newest CUDA (so a Volta box gets torch 2.14 from cu126 rather than 2.9 from cu129).
- Index: an explicit --find-links / --index-url first; then the PyTorch index for the variant when it answers;
  then what the user configured for pip/uv; then PyPI. A source that does not answer is a warning, not a failure
  (uv's --torch-backend fails after 11 s here because download.pytorch.org is unreachable).
Tables with their sources: data/torch_variants.toml. Credentials never reach a reason, warning or display field.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from torch_setup.wheels import indexes
from torch_setup.errors import NoTorchError, TlsError, UnsupportedError
from torch_setup.wheels.indexes import File, IndexUnreachable, Listing, Source, mask, mask_text
from torch_setup.wheels.variants import Policy, Table, load_table, wanted
from torch_setup.wheels.tags import Target, target_from

PYTORCH_INDEX = "https://download.pytorch.org/whl"
PYTORCH_INDEX_ENV = indexes.PYTORCH_INDEX_ENV  # a mirror of it, like --pytorch-index (BASE/cu130, BASE/cpu, ...)
Fetch = Callable[[Source, str], Listing]
COMPANIONS = ("torchvision", "torchaudio")

# ------------------------------------------------------------------------------------------------ candidates


@dataclass(frozen=True)
class Cand:
    file: File
    version: Version  # with its local label
    variant: Optional[str]
    tier: int  # 0: a wanted build; 1: a build that runs but is not the one wanted (CUDA on a CPU box)
    rank: int  # position of the variant in the policy (lower = newer)
    tag: str
    source: Source


@dataclass
class Ctx:
    table: Table
    target: Target
    policy: Policy
    spec: SpecifierSet
    allow_pre: bool
    window: Optional[Tuple[Version, Optional[Version]]]  # torch.compile: (min, max) for the target Python
    companions: Tuple[str, ...]
    recipes: Any = None  # recipes.load.Recipes: which Pythons a torch release supports
    answered: List[Tuple[Listing, Optional[str]]] = field(default_factory=list)  # for the error message


def _upto(v: Version, hi: Optional[Version]) -> bool:
    """v <= hi, where "2.11" means any 2.11.x."""
    if hi is None:
        return True
    n = len(hi.release)
    return v.release[:n] <= hi.release


def _variant_of(table: Table, target: Target, version: Version, index_variant: Optional[str]) -> Optional[str]:
    if version.local:
        return version.local
    if index_variant:
        return index_variant
    return table.pypi_build(target.platform_key, Version(version.public))


def _judge(ctx: Ctx, f: File, source: Source, index_variant: Optional[str]) -> Optional[Cand]:
    """A Cand when `f` is a wheel the target can install, of a wanted build, in every range that applies."""
    if not f.filename.endswith(".whl") or f.yanked:
        return None
    try:
        _, version, _, ftags = parse_wheel_filename(f.filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    public = Version(version.public)
    variant = _variant_of(ctx.table, ctx.target, version, index_variant)
    tier = _tier(ctx, variant, public)
    if tier is None:
        return None
    if (public.is_prerelease or public.is_devrelease) and not ctx.allow_pre:
        return None
    if not ctx.spec.contains(public, prereleases=True):
        return None
    tag = next((t for t in ftags if t in ctx.target.tags), None)
    if tag is None:
        return None
    if f.requires_python:
        try:
            if not SpecifierSet(f.requires_python).contains(ctx.target.full, prereleases=True):
                return None
        except InvalidSpecifier:
            pass
    if ctx.window is None or public < ctx.window[0] or not _upto(public, ctx.window[1]):
        return None
    if not _companions_ok(ctx, public):
        return None
    rank = ctx.policy.preferred.index(variant) if variant in ctx.policy.preferred else len(ctx.policy.preferred)
    return Cand(f, version, variant, tier, rank, str(tag), source)


def _tier(ctx: Ctx, variant: Optional[str], public: Version) -> Optional[int]:
    p = ctx.policy
    if variant in p.preferred:
        if p.check_kernels and p.cc is not None:
            rows = ctx.table.kernels_for(variant, public, ctx.target.arch)
            if rows and not any(all(k.covers(c) for c in (p.ccs or (p.cc,))) for k in rows):
                return None  # kernels for every GPU on the box, not just the lowest
        return 0
    return 1 if p.any_build_runs else None


def _companions_ok(ctx: Ctx, public: Version) -> bool:
    """torchvision / torchaudio asked for: only a torch that has a matching release of each (others: no table)."""
    row = ctx.table.companions.get(f"{public.major}.{public.minor}", {})
    return all(name in row for name in ctx.companions if name in COMPANIONS)


def _best(cands: Sequence[Cand]) -> Optional[Cand]:
    """Wanted builds first, then the newest torch, then the newest variant, then the first source asked."""
    if not cands:
        return None
    tier = min(c.tier for c in cands)
    pool = [c for c in cands if c.tier == tier]
    newest = max(Version(c.version.public) for c in pool)
    return min((c for c in pool if Version(c.version.public) == newest), key=lambda c: c.rank)  # min: first wins


def _judge_listing(ctx: Ctx, listing: Listing, index_variant: Optional[str] = None) -> List[Cand]:
    ctx.answered.append((listing, index_variant))
    out = []
    for f in listing.files:
        cand = _judge(ctx, f, listing.source, index_variant)
        if cand:
            out.append(cand)
    return out


# ------------------------------------------------------------------------------------------------ the choice


@dataclass(frozen=True)
class Choice:
    """The torch to install and where from. Display fields are masked; the `*_real` ones are for the command only
    (kept out of repr) -- print `to_dict()` or the display fields, never the real ones."""

    variant: str  # the build chosen: cpu, cu130, rocm7.2, xpu
    version: str  # public torch version: "2.14.1"
    requirement: str  # "torch==2.14.1+cpu": the local label pinned when the wheel has one, so pip and uv agree
    extras: Tuple[str, ...]  # ("torchvision==0.29.*",)
    index_url: Optional[str]  # masked, for display
    extra_index_urls: Tuple[str, ...]  # masked
    find_links: Tuple[str, ...]  # masked
    wheel: str  # the wheel's filename
    source: str  # where from: find-links, index-url, pytorch, platform (the Jetson AI Lab index), configured, pypi
    reasons: Tuple[str, ...]
    warnings: Tuple[str, ...]
    index_url_real: Optional[str] = field(default=None, repr=False)
    extra_index_urls_real: Tuple[str, ...] = field(default=(), repr=False)
    find_links_real: Tuple[str, ...] = field(default=(), repr=False)
    # What pip and uv need to trust what the choice trusted (SSL_CERT_FILE, PIP_CERT): trust.Trust.command_env
    env: Tuple[Tuple[str, str], ...] = ()

    def install_args(self, uv: bool = False) -> List[str]:
        """Requirements and index options for `pip install` / `uv pip install` (real URLs: do not print)."""
        return [self.requirement, *self.extras, *self.index_args(uv)]

    def index_args(self, uv: bool = False) -> List[str]:
        """The index options alone (for `uv venv --seed`, which fetches pip from the same places).

        uv, unlike pip, stops at the first index that has a project at all and searches extra indexes before the
        primary one (https://docs.astral.sh/uv/configuration/indexes/#searching-across-multiple-indexes): an extra
        index holding some other torch would hide the one chosen. With extra indexes uv is told to search them
        all as pip does (`--index-strategy unsafe-best-match`); the requirement pins the chosen version."""
        args: List[str] = []
        if uv and self.extra_index_urls_real:
            args += ["--index-strategy", "unsafe-best-match"]
        if self.index_url_real:
            args += ["--index-url", self.index_url_real]
        for u in self.extra_index_urls_real:
            args += ["--extra-index-url", u]
        for u in self.find_links_real:
            args += ["--find-links", u]
        return args

    def to_dict(self) -> Dict[str, object]:
        """For `plan --json`: display fields only."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
               if not k.endswith("_real") and k != "env"}
        if self.env:
            out["env"] = dict(self.env)
        return out


def _default_read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _user_spec(torch_range: str) -> SpecifierSet:
    text = (torch_range or "").strip()
    if not text:
        return SpecifierSet("")
    try:
        if re.match(r"^\d+(\.\d+)*$", text):
            return SpecifierSet(f"=={text}.*" if text.count(".") < 2 else f"=={text}")
        if re.match(r"^[A-Za-z]", text):
            return Requirement(text).specifier
        return SpecifierSet(text)
    except (InvalidSpecifier, InvalidRequirement):
        raise UnsupportedError(f"--torch {torch_range!r} is not a version range",
                               hint="for example: --torch '>=2.6,<2.12' or --torch 2.13") from None


def _constraints(paths: Sequence[str], read: Callable[[str], Optional[str]]) -> Tuple[SpecifierSet, List[str]]:
    """torch lines of pip/uv constraint files: the host's admin may cap torch (e.g. `torch<=2.14.1`)."""
    spec, notes = SpecifierSet(""), []
    for path in paths:
        for line in (read(path) or "").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) == "torch" and str(req.specifier):
                spec &= req.specifier
                notes.append(f"the constraint file {mask(path)} limits torch to {req.specifier}")
    return spec, notes


def _companion_names(with_: Sequence[str]) -> Tuple[str, ...]:
    names = []
    for item in with_:
        names += [canonicalize_name(x) for x in str(item).split(",") if x.strip()]
    return tuple(dict.fromkeys(names))


def _extras(table: Table, public: Version, names: Sequence[str]) -> Tuple[Tuple[str, ...], List[str], List[str]]:
    row = table.companions.get(f"{public.major}.{public.minor}", {})
    extras, reasons, warnings = [], [], []
    for name in names:
        if name not in COMPANIONS:
            extras.append(name)
            warnings.append(f"{name}: no version table on file; left for the installer to match to torch {public}")
            continue
        ver = row[name]
        extras.append(f"{name}=={ver}.*" if ver.count(".") == 1 else f"{name}=={ver}")
        reasons.append(f"{name} {ver} goes with torch {public.major}.{public.minor}")
        if name == "torchaudio" and ver.count(".") == 2 and not ver.startswith(f"{public.major}.{public.minor}."):
            warnings.append(f"torchaudio's last release is {ver}; it declares torch>=2.11 but was not built with "
                            f"torch {public.major}.{public.minor}")
    return tuple(extras), reasons, warnings


def choose(facts, recipes, *, backend: str = "auto", torch_range: str = "", with_: Sequence[str] = (),
           index_url: Optional[str] = None, find_links: Optional[Sequence[str]] = None,
           fetch: Optional[Fetch] = None, env: Optional[Mapping[str, str]] = None, pip_config: str = "",
           read_text: Callable[[str], Optional[str]] = _default_read, pytorch_index: str = PYTORCH_INDEX,
           pypi: str = indexes.PYPI, table: Optional[Table] = None, trust=None) -> Choice:
    """Choose torch for the target described by `facts`. Raises NoTorchError when nothing fits.

    `fetch(source, project)` returns a Listing or raises IndexUnreachable (default: indexes.fetch, over the
    network); `env` and `pip_config` (captured `pip config list` text) say what the user configured;
    `pytorch_index` replaces https://download.pytorch.org/whl (a mirror of it, or a test server); `trust` (a
    trust.Trust, default: from `env` and `pip_config`) says which certificates the indexes are verified with.
    A certificate that does not verify stops the choice with TlsError, whatever else answered.
    """
    from torch_setup.wheels import trust as trusting

    env = os.environ if env is None else env
    trust = trust or trusting.from_config(env, pip_config)
    fetch = fetch or (lambda source, project: indexes.fetch(source, project, trust=trust))
    table = table or load_table()
    target, warnings = target_from(facts)
    policy = wanted(facts, table, target, (backend or "auto").lower(), env)
    warnings += policy.warnings

    if isinstance(find_links, str):
        find_links = [find_links]
    conf = indexes.configured(index_url=index_url, find_links=list(find_links or ()), env=env, pip_config=pip_config,
                              home=facts.host.home)
    cspec, cnotes = _constraints(conf.constraints, read_text)
    spec = _user_spec(torch_range) & cspec
    reasons = list(policy.reasons) + cnotes
    allow_pre = any(_is_pre(s.version) for s in spec)
    tp = recipes.torch_for(target.minor_str, target.free_threaded)
    window = (Version(tp.min_torch), Version(tp.max_torch) if tp.max_torch else None) if tp else None
    if tp and tp.min_python and target.micro is not None and Version(target.full) < Version(tp.min_python):
        window = None  # e.g. free-threaded 3.13.1: Dynamo needs 3.13.3
    ctx = Ctx(table, target, policy, spec, allow_pre, window, _companion_names(with_), recipes)

    stages = _stages(ctx, conf, pytorch_index, pypi)
    unreachable: List[IndexUnreachable] = []
    chosen: Optional[Cand] = None
    stage_name = ""
    cands: List[Cand] = []
    for stage_name, sources in stages:
        cands = _run_stage(ctx, stage_name, sources, fetch, unreachable, reasons)
        chosen = _best(cands)
        if chosen:
            break
    tls = [u for u in unreachable if u.tls]
    if tls:
        raise _tls_error(tls, trust)
    if chosen is None:
        raise _no_torch(ctx, tp, unreachable)
    return replace(_finish(ctx, chosen, stage_name, conf, pypi, tp, reasons, warnings, unreachable,
                           _newer_elsewhere(ctx, chosen, cands)),
                   env=tuple(sorted(trust.command_env().items())))


def _newer_elsewhere(ctx: Ctx, chosen: Cand, cands: Sequence[Cand]) -> str:
    """A CPU build chosen over a newer build that also runs here (PyPI's aarch64 torch: CPU-only up to 2.10, CUDA
    builds from 2.11) is said, with both sizes and how to get the newer one: never an old build silently."""
    if chosen.tier != 0 or not ctx.policy.any_build_runs:
        return ""
    public = Version(chosen.version.public)
    newer = [c for c in cands if c.tier == 1 and Version(c.version.public) > public]
    if not newer:
        return ""
    top = max(newer, key=lambda c: (Version(c.version.public), -c.rank))
    kind = top.variant or "unknown"
    if kind.startswith("cu"):
        gb, installed = ctx.table.cuda_size(ctx.target.platform_key)
        cost = f"a CUDA build ({kind}): about {gb:g} GB to download (~{installed:g} GB installed)"
    else:
        cost = f"a {kind} build"
    mb = f" ({chosen.file.size / 1e6:.0f} MB wheel)" if chosen.file.size else ""
    return (f", whose newest {chosen.variant or 'cpu'}-only {ctx.target.platform_name} torch is {public}{mb}; its "
            f"newer torch {Version(top.version.public)} is {cost}, which also runs here on the CPU: "
            f"--torch '>={public.major}.{public.minor + 1}' installs that one")


def _tls_error(failed: List[IndexUnreachable], trust) -> TlsError:
    from torch_setup.wheels import trust as trusting

    used = failed[0].trust or trust
    urls = ", ".join(dict.fromkeys(u.url for u in failed))
    why = "; ".join(dict.fromkeys(u.reason for u in failed if u.reason != "TLS verification failed"))
    return TlsError(mask_text(f"TLS verification failed for {urls}" + (f" ({why})" if why else "")
                              + f" with {used.label}"),
                    hint=mask_text(trusting.fix_hint(used)))


def _is_pre(text: str) -> bool:
    try:
        return Version(text.rstrip(".*")).is_prerelease
    except InvalidVersion:
        return False


def _stages(ctx: Ctx, conf: indexes.Configured, pytorch_index: str, pypi: str):
    """(name, sources) in the order they are asked; a stage with a wanted wheel ends the search."""
    explicit_links = tuple(s for s in conf.find_links if s.origin == "--find-links")
    explicit_index = conf.index if conf.index and conf.index.origin == "--index-url" else None
    stages = []
    if explicit_links:
        stages.append(("find-links", explicit_links))
    if explicit_index:
        stages.append(("index-url", (explicit_index,)))
    elif ctx.policy.index:
        url, display = ctx.policy.index
        stages.append(("platform", (Source(url, "index", display),)))
    elif not ctx.policy.skip_pytorch_index:
        base = pytorch_index.rstrip("/")
        stages.append(("pytorch", tuple(Source(f"{base}/{v}", "index", f"PyTorch index for {v}")
                                        for v in ctx.policy.preferred)))
    rest = tuple(s for s in conf.sources() if s not in explicit_links and s is not explicit_index)
    if rest:
        stages.append(("configured", rest))
    if all(s.url.rstrip("/") != pypi.rstrip("/") for s in rest):
        stages.append(("pypi", (Source(pypi, "index", "PyPI"),)))
    return stages


def _run_stage(ctx: Ctx, stage: str, sources, fetch: Fetch, unreachable: List[IndexUnreachable],
               reasons: List[str]) -> List[Cand]:
    cands: List[Cand] = []
    dead_hosts = set()
    for source in sources:
        index_variant = ctx.policy.preferred[0] if stage == "platform" else None  # its wheels carry no label
        if stage == "pytorch":
            index_variant = source.url.rstrip("/").rsplit("/", 1)[-1]
            host = source.url.split("/")[2] if "://" in source.url else ""
            if host in dead_hosts:
                continue  # one host for every variant: once it does not answer, none will
            v = ctx.table.variant(index_variant)
            if v is not None and v.known and ctx.target.platform_key not in v.platforms:
                continue
            best = _best(cands)
            upper = _upper(v.torch) if v is not None else None
            if best is not None and upper is not None and upper <= Version(best.version.public):
                continue  # this variant's last torch is older than what a newer variant already offers
        try:
            listing = fetch(source, "torch")
        except IndexUnreachable as e:
            unreachable.append(e)
            if stage == "pytorch":
                dead_hosts.add(source.url.split("/")[2] if "://" in source.url else source.url)
            continue
        found = _judge_listing(ctx, listing, index_variant)
        if not listing.found:
            reasons.append(f"{source.display} answered, without torch")
        elif not found:
            reasons.append(f"{source.display} answered but has no torch wheel that fits")
        cands += found
    return cands


def _upper(spec: SpecifierSet) -> Optional[Version]:
    """The exclusive upper bound a torch range states, if any ("<2.10" -> 2.10; "==2.10.*" -> 2.11)."""
    bounds = []
    for s in spec:
        try:
            if s.operator == "<":
                bounds.append(Version(s.version))
            elif s.operator == "==" and s.version.endswith(".*"):
                v = Version(s.version[:-2])
                bounds.append(Version(f"{v.major}.{v.minor + 1}"))
        except InvalidVersion:
            continue
    return min(bounds) if bounds else None


def _finish(ctx: Ctx, c: Cand, stage: str, conf: indexes.Configured, pypi: str, tp, reasons: List[str],
            warnings: List[str], unreachable: List[IndexUnreachable], newer: str = "") -> Choice:
    public = Version(c.version.public)
    target = ctx.target
    where = "PyPI" if c.source.origin == "PyPI" else c.source.display
    variant = c.variant or "unknown"
    size = ""
    if c.tier == 1 and variant.startswith("cu"):
        gb, installed = ctx.table.cuda_size(target.platform_key)
        size = (f", whose {target.platform_name} torch {public} is a CUDA build ({variant}): about "
                f"{gb:g} GB to download (~{installed:g} GB installed), run here on the CPU")
    elif c.tier == 1:
        size = f"; the torch there is a {variant} build, not {', '.join(ctx.policy.preferred)}"
    else:
        size = newer
    if unreachable:
        text = "; ".join(f"{u.source.display} did not answer ({u.reason})" for u in unreachable)
        warnings.append(text + f"; falling back to {where}" + size)
    elif size:
        warnings.append(f"torch comes from {where}" + size)

    reasons.append({
        "find-links": f"torch comes from the wheelhouse {c.source.display} (--find-links), asked first",
        "index-url": f"torch comes from {c.source.display} (--index-url)",
        "pytorch": f"torch comes from {c.source.display}, the PyTorch index for {variant}"
                   + ("" if c.source.url.startswith(PYTORCH_INDEX + "/") else
                      " (a mirror: --pytorch-index, " + PYTORCH_INDEX_ENV + " or pip config "
                      + indexes.PYTORCH_INDEX_CONFIG + ")") + ", which answered",
        "platform": f"torch comes from {c.source.display}, {c.source.origin}, which answered",
        "configured": f"torch comes from {c.source.display} ({c.source.origin})",
        "pypi": "torch comes from PyPI",
    }[stage])
    window = f"torch >= {tp.min_torch}" + (f", <= {tp.max_torch}.x" if tp.max_torch else "")
    line = (f"torch {public} ({variant} build) is the newest with a {c.tag} wheel there that supports "
            f"torch.compile on Python {target.label} ({window}, recipes/torch.toml)")
    if str(ctx.spec):
        line += f" and matches {ctx.spec}"
    reasons.append(line)
    extras, ereasons, ewarnings = _extras(ctx.table, public, ctx.companions)
    reasons += ereasons
    warnings += ewarnings

    # The install command. From a PyTorch index: that index alone, as PyTorch's own instructions do (mixing in
    # PyPI would let torchvision come as a different build: astral-sh/uv#13179). Otherwise the chosen index
    # first and the user's other indexes (PyPI by default) for dependencies, less any that did not answer.
    dead = {u.source.url for u in unreachable}
    base = [s for s in [conf.index or Source(pypi, "index", "PyPI"), *conf.extra] if s.url not in dead]
    index: Optional[Source]
    if stage in ("pytorch", "platform"):  # the Jetson AI Lab index (devpi) also serves PyPI's projects
        index, extra = c.source, []
    elif c.source.kind == "index":
        index, extra = c.source, [s for s in base if s.url != c.source.url]
    else:
        index, extra = (base[0] if base else None), base[1:]
    links = list(conf.find_links)
    if c.source.kind == "find-links" and c.source not in links:
        links.insert(0, c.source)
    requirement = f"torch=={c.version}"
    return Choice(
        variant=variant, version=str(public), requirement=requirement, extras=extras,
        index_url=index.display if index else None, extra_index_urls=tuple(s.display for s in extra),
        find_links=tuple(s.display for s in links), wheel=c.file.filename, source=stage,
        reasons=tuple(mask_text(r) for r in reasons), warnings=tuple(mask_text(w) for w in warnings),
        index_url_real=index.url if index else None, extra_index_urls_real=tuple(s.url for s in extra),
        find_links_real=tuple(s.url for s in links),
    )


# ------------------------------------------------------------------------------------------------ no torch


def _no_torch(ctx: Ctx, tp, unreachable: List[IndexUnreachable]) -> NoTorchError:
    target = ctx.target
    asked = ", ".join(u.source.display for u in unreachable)
    if not ctx.answered:
        return NoTorchError(f"no index answered ({asked}), so no torch could be chosen",
                            hint="check the network or name a reachable index with --index-url, or a wheelhouse "
                                 "with --find-links")
    if tp is None:
        why = f"torch.compile supports Python {target.label} in no torch release on file (recipes/torch.toml)"
    elif ctx.window is None:
        why = (f"torch.compile needs CPython >= {tp.min_python} for Python {target.label}; "
               f"this is {target.full}")
    else:
        window = f"torch >= {tp.min_torch}" + (f", <= {tp.max_torch}.x" if tp.max_torch else "")
        why = (f"no torch wheel for CPython {target.label} ({target.abi}, {target.platforms[0]}) "
               f"in {', '.join(ctx.policy.preferred)} that supports torch.compile ({window})")
        if str(ctx.spec):
            why += f" within {ctx.spec}"
        wanted = [n for n in ctx.companions if n in COMPANIONS]
        if wanted:
            why += f" with a matching {', '.join(wanted)}"
    newest = _newest_python(ctx)
    hint = f"Python {newest[0]} would work (torch {newest[1]})" if newest else \
        "no Python has a fitting torch wheel in the indexes that answered"
    if ctx.policy.kind in ("cuda", "rocm", "xpu") and not newest:
        hint += "; --torch-backend cpu may have one"
    if ctx.policy.kind == "jetson" and ctx.policy.index:
        down = any(u.source.url == ctx.policy.index[0] for u in unreachable)
        hint += ("; PyPI's aarch64 torch cannot use a Jetson GPU on JetPack 6 (its CUDA builds are CUDA 13): "
                 + ("make the Jetson AI Lab index reachable, or " if down else "")
                 + "--torch-backend cpu for a CPU-only torch")
    if asked:
        hint += f"; these did not answer: {asked}"
    return NoTorchError(mask_text(why), hint=mask_text(hint))


def _newest_python(ctx: Ctx) -> Optional[Tuple[str, str]]:
    """The newest Python (regular builds first) for which the listings that answered hold a fitting wheel."""
    best: Dict[Tuple[int, bool], Version] = {}
    plats = set(ctx.target.platforms)
    recipes = ctx.recipes
    for listing, index_variant in ctx.answered:
        for f in listing.files:
            try:
                _, version, _, ftags = parse_wheel_filename(f.filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            public = Version(version.public)
            variant = _variant_of(ctx.table, ctx.target, version, index_variant)
            if f.yanked or _tier(ctx, variant, public) is None or not ctx.spec.contains(public, prereleases=True):
                continue
            if (public.is_prerelease or public.is_devrelease) and not ctx.allow_pre:
                continue
            if not _companions_ok(ctx, public):
                continue
            for t in ftags:
                m = re.match(r"^cp(\d)(\d+)$", t.interpreter)
                if not m or t.platform not in plats or not t.abi.startswith("cp"):
                    continue
                minor, ft = int(m.group(2)), t.abi.endswith("t")
                tp = recipes.torch_for(f"{m.group(1)}.{minor}", ft) if recipes else None
                if tp is None or public < Version(tp.min_torch) or not _upto(
                        public, Version(tp.max_torch) if tp.max_torch else None):
                    continue
                key = (minor, ft)
                if key not in best or public > best[key]:
                    best[key] = public
    if not best:
        return None
    regular = [k for k in best if not k[1]]
    key = max(regular or best, key=lambda k: k[0])
    return f"3.{key[0]}" + ("t" if key[1] else ""), str(best[key])

