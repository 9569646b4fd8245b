"""Package indexes: which ones the user configured, asking one for a project's files, and masking credentials.

Why here and not in pip/uv: the choice of torch has to know *before* installing which index answers and what it
lists (a mirror or an air-gapped site cannot reach download.pytorch.org, and uv's `--torch-backend` fails there
instead of falling back, astral-sh/uv#19569). Everything that leaves this module as text goes through `mask`.

Network rules: nothing at import; short connect timeouts so a dead host cannot hang a plan (a name that does not
resolve fails at once); the certificates trusted are trust.py's (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, pip's `cert`,
the system store), proxies are requests' own, and TLS verification is never turned off.
"""
from __future__ import annotations

import ast
import html
import json
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name

from torch_setup.masking import mask, mask_text  # noqa: F401  (mask_text: for callers of this module)

PYPI = "https://pypi.org/simple"
# (connect, read) in seconds: an unreachable host gives up after 3 s; a listing of torch (a few MB of HTML on
# download.pytorch.org) still has time to arrive.
TIMEOUT: Tuple[float, float] = (3.05, 30.0)
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"

# ---------------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One place torch can come from: a simple index (root URL) or a find-links location (folder or page)."""

    url: str = field(repr=False)  # the real URL, credentials included: for the install command only
    kind: str = "index"  # "index" or "find-links"
    origin: str = ""  # where it was configured: "--index-url", "PIP_INDEX_URL", "pip config global.index-url", ...

    @property
    def display(self) -> str:
        return mask(self.url)

    def __repr__(self) -> str:  # never the real URL, even in a traceback
        return f"Source({self.display!r}, kind={self.kind!r}, origin={self.origin!r})"


@dataclass(frozen=True)
class Configured:
    """What the user configured for pip and uv, merged; `index` None means PyPI."""

    index: Optional[Source] = None
    extra: Tuple[Source, ...] = ()
    find_links: Tuple[Source, ...] = ()
    constraints: Tuple[str, ...] = ()  # constraint files (pip `constraint`, PIP_CONSTRAINT, UV_CONSTRAINT)

    def sources(self) -> Tuple[Source, ...]:
        return ((self.index,) if self.index else ()) + self.extra + self.find_links


def parse_pip_config_list(text: str) -> Dict[str, str]:
    """`pip config list` output -> {"global.extra-index-url": "file:///a file:///b", ":env:.find-links": ...}.

    pip prints `key=repr(value)`; values are read back with literal_eval (never eval), and a line that is not in
    that shape is skipped rather than guessed at.
    """
    out: Dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not re.match(r"^[\w:.-]+\.[\w-]+$", key):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        if isinstance(value, str):
            out[key] = value
    return out


def _pip_option(cfg: Mapping[str, str], option: str) -> Tuple[Optional[str], str]:
    """pip's own precedence for `pip install`: [install] over [global]; env vars (`:env:`) are read from env."""
    for section in ("install", "global"):
        key = f"{section}.{option}"
        if key in cfg:
            return cfg[key], f"pip config {key}"
    return None, ""


PYTORCH_INDEX_ENV = "TORCH_SETUP_PYTORCH_INDEX"
PYTORCH_INDEX_CONFIG = "torch-setup.pytorch-index"  # pip.conf: [torch-setup] pytorch-index = URL (pip ignores it)


def pytorch_mirror(flag: Optional[str], env: Mapping[str, str], pip_config: str = "") -> Optional[str]:
    """The mirror of the PyTorch index the user named: --pytorch-index, else $TORCH_SETUP_PYTORCH_INDEX, else
    `pytorch-index` in the `[torch-setup]` section of the pip configuration files (what a fleet already deploys
    to every box; pip ignores sections it does not know). None: https://download.pytorch.org/whl."""
    for value in (flag, env.get(PYTORCH_INDEX_ENV), parse_pip_config_list(pip_config).get(PYTORCH_INDEX_CONFIG)):
        if value and value.strip():
            return value.strip()
    return None


def _uv_index_entries(value: str) -> List[str]:
    """UV_INDEX: space-separated `[name=]url` entries."""
    out = []
    for item in value.split():
        m = re.match(r"^([A-Za-z0-9_.-]+)=(.+)$", item)
        out.append(m.group(2) if m and "://" in m.group(2) else item)
    return out


def _local(location: str, home: Optional[str] = None) -> str:
    """A find-links value as pip accepts it: a path, a file:// URL or an http(s) URL; paths made absolute. `~` is
    `home` where given: the planned host's (`plan --facts` may describe another box), not this user's."""
    if "://" in location:
        return location
    if home and (location == "~" or location.startswith("~/")):
        location = home.rstrip("/") + location[1:]
    return os.path.abspath(os.path.expanduser(location))


def configured(*, index_url: Optional[str] = None, find_links: Sequence[str] = (),
               env: Optional[Mapping[str, str]] = None, pip_config: str = "",
               home: Optional[str] = None) -> Configured:
    """Merge the flags, pip's and uv's environment variables and `pip config list` output (captured text).
    `home`: the planned host's HOME, for find-links under `~` (default: this user's).

    The first primary index wins in this order: --index-url, UV_DEFAULT_INDEX, UV_INDEX_URL, PIP_INDEX_URL, pip
    config; the others the user set are kept as extra indexes (pip and uv each read only their own, but the
    command torch-setup writes has to work with either). Duplicates are dropped, first one kept.
    """
    env = os.environ if env is None else env
    cfg = parse_pip_config_list(pip_config)
    primaries: List[Source] = []
    extra: List[Source] = []
    links: List[Source] = []
    if index_url:
        primaries.append(Source(index_url, "index", "--index-url"))
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if env.get(var, "").strip():
            primaries.append(Source(_uv_index_entries(env[var])[0], "index", var))
    value, origin = _pip_option(cfg, "index-url")
    if value and value.strip():
        primaries.append(Source(value.split()[0], "index", origin))
    for var in ("UV_INDEX", "UV_EXTRA_INDEX_URL"):
        extra += [Source(u, "index", var) for u in _uv_index_entries(env.get(var, ""))]
    extra += [Source(u, "index", "PIP_EXTRA_INDEX_URL") for u in env.get("PIP_EXTRA_INDEX_URL", "").split()]
    value, origin = _pip_option(cfg, "extra-index-url")
    extra += [Source(u, "index", origin) for u in (value or "").split()]
    links += [Source(_local(p, home), "find-links", "--find-links") for p in find_links if p]
    links += [Source(_local(p.strip(), home), "find-links", "UV_FIND_LINKS")
              for p in env.get("UV_FIND_LINKS", "").split(",") if p.strip()]
    links += [Source(_local(p, home), "find-links", "PIP_FIND_LINKS") for p in env.get("PIP_FIND_LINKS", "").split()]
    value, origin = _pip_option(cfg, "find-links")
    links += [Source(_local(p, home), "find-links", origin) for p in (value or "").split()]
    constraints = [p for var in ("PIP_CONSTRAINT", "UV_CONSTRAINT") for p in env.get(var, "").split()]
    value, _ = _pip_option(cfg, "constraint")
    constraints += (value or "").split()

    primary = primaries[0] if primaries else None
    seen = {_norm(primary.url)} if primary else set()
    extras = []
    for s in primaries[1:] + extra:
        if _norm(s.url) not in seen:
            seen.add(_norm(s.url))
            extras.append(s)
    link_seen, uniq_links = set(), []
    for s in links:
        if _norm(s.url) not in link_seen:
            link_seen.add(_norm(s.url))
            uniq_links.append(s)
    return Configured(primary, tuple(extras), tuple(uniq_links), tuple(dict.fromkeys(constraints)))


def _norm(url: str) -> str:
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------------- listings


@dataclass(frozen=True)
class File:
    filename: str
    url: str = field(repr=False)  # absolute; may carry the index's credentials
    requires_python: Optional[str] = None
    yanked: bool = False
    size: Optional[int] = None
    sha256: Optional[str] = None  # from PEP 691 "hashes" or a PEP 503 "#sha256=" fragment


@dataclass(frozen=True)
class Listing:
    source: Source
    files: Tuple[File, ...] = ()
    found: bool = True  # False: the index answered, but has no such project (HTTP 404)


class IndexUnreachable(Exception):
    """The source did not answer (DNS, refused, timeout, TLS, 401/403, 5xx). `reason` is short and masked.
    `tls`: the certificate did not verify with `trust` (a trust.Trust), or its CA file cannot be read; `url` is
    the address asked (masked)."""

    def __init__(self, source: Source, reason: str, *, tls: bool = False, url: str = "", trust=None):
        super().__init__(f"{source.display}: {reason}")
        self.source = source
        self.reason = mask_text(reason)
        self.tls = tls
        self.url = mask(url) if url else source.display
        self.trust = trust


class _Anchors(HTMLParser):
    """PEP 503 pages: each <a href> is a file; data-requires-python and data-yanked ride along."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: List[Tuple[str, Dict[str, Optional[str]], str]] = []
        self._open: Optional[Tuple[str, Dict[str, Optional[str]]]] = None
        self._text: List[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            a = dict(attrs)
            if a.get("href"):
                self._open, self._text = (a["href"], a), []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open:
            self.links.append((self._open[0], self._open[1], "".join(self._text).strip()))
            self._open = None


def parse_simple_html(text: str, base_url: str) -> List[File]:
    parser = _Anchors()
    parser.feed(text)
    files = []
    for href, attrs, label in parser.links:
        url = urljoin(base_url, href)
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or label
        rp = attrs.get("data-requires-python")
        frag = urlsplit(url).fragment
        sha = frag[7:] if frag.startswith("sha256=") else None
        files.append(File(name, url.split("#", 1)[0], html.unescape(rp) if rp else None, "data-yanked" in attrs,
                          sha256=sha))
    return files


def parse_simple_json(data: dict, base_url: str) -> List[File]:
    files = []
    for f in data.get("files", []):
        if not isinstance(f, dict) or not f.get("filename"):
            continue
        size = f.get("size")
        hashes = f.get("hashes") if isinstance(f.get("hashes"), dict) else {}
        files.append(File(f["filename"], urljoin(base_url, f.get("url", f["filename"])), f.get("requires-python"),
                          bool(f.get("yanked")), size if isinstance(size, int) else None, hashes.get("sha256")))
    return files


def _of_project(files: Iterable[File], project: str) -> Tuple[File, ...]:
    """Files of `project` only (a find-links folder or an HTML page lists anything)."""
    want = canonicalize_name(project)
    out = []
    for f in files:
        stem = f.filename.split("-", 1)[0]
        if canonicalize_name(stem) == want and f.filename.endswith((".whl", ".tar.gz", ".zip")):
            out.append(f)
    return tuple(out)


def is_local(url: str) -> bool:
    """A folder or a file:// index: read from this host's disk, not over the network."""
    return _local_path(url) is not None


def _local_path(url: str) -> Optional[Path]:
    if url.startswith("file:"):
        return Path(unquote(urlsplit(url).path))
    if "://" not in url:
        return Path(url)
    return None


def _read_dir(source: Source, folder: Path, project: str) -> Listing:
    """A folder: its index.html if it has one (a file:// simple index), else the wheels in it (a wheelhouse)."""
    if not folder.is_dir():
        if source.kind == "index":
            return Listing(source, (), found=False)
        raise IndexUnreachable(source, "no such folder")
    page = folder / "index.html"
    base = folder.resolve().as_uri() + "/"
    if page.is_file():
        return Listing(source, _of_project(parse_simple_html(page.read_text(errors="replace"), base), project))
    files = [File(p.name, p.resolve().as_uri()) for p in sorted(folder.iterdir()) if p.is_file()]
    return Listing(source, _of_project(files, project))


_sessions: Dict[object, Any] = {}


def _get(url: str, timeout, trust=None):
    """One GET through a lazily made Session per trust (no network, and no requests import cost, until asked)."""
    from torch_setup.wheels import trust as trusting

    trust = trust or trusting.from_config(os.environ)
    if trust not in _sessions:
        _sessions[trust] = trusting.session(trust)
    return _sessions[trust].get(url, headers={"Accept": ACCEPT}, timeout=timeout, allow_redirects=True,
                                verify=trust.verify)


def _why(exc: Exception, timeout) -> str:
    """A short cause for a failed request; the exception text itself can carry URLs and is not used."""
    import requests

    from torch_setup.wheels.trust import is_tls_failure

    text = str(exc)
    if is_tls_failure(exc):
        return "TLS verification failed"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy refused the connection"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout[0]:g} s"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout[1]:g} s"
    if re.search(r"NameResolution|Name or service not known|nodename nor servname|getaddrinfo|resolve", text):
        return "the host name does not resolve"
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return "connection failed"


def fetch(source: Source, project: str = "torch", *, timeout=TIMEOUT, get=None, trust=None) -> Listing:
    """The files `source` offers for `project`. Raises IndexUnreachable when the source does not answer.

    Indexes are asked for PEP 691 JSON and may answer PEP 503 HTML instead (download.pytorch.org does); a
    find-links URL is an HTML page of links. `get` (url, timeout) -> response replaces requests in tests;
    `trust` (trust.Trust): the certificates to verify with (default: from this process's environment).
    """
    path = _local_path(source.url)
    if path is not None:
        folder = path / canonicalize_name(project) if source.kind == "index" else path
        return _read_dir(source, folder, project)
    import requests  # here, not at import: a plan from a facts file or a wheelhouse needs no network stack
    if source.kind == "index":
        url = source.url.rstrip("/") + "/" + quote(canonicalize_name(project)) + "/"
    else:
        url = source.url
    from torch_setup.wheels import trust as trusting

    trust = trust or trusting.from_config(os.environ)
    try:
        resp = get(url, timeout) if get else _get(url, timeout, trust)
    except requests.exceptions.RequestException as e:
        tls = trusting.is_tls_failure(e)
        raise IndexUnreachable(source, _why(e, timeout), tls=tls, url=url, trust=trust) from None
    except OSError as e:  # requests raises a bare OSError for a CA bundle path that does not exist
        if trust.ca_file and not os.path.isfile(trust.ca_file):
            raise IndexUnreachable(source, f"the CA file {trust.ca_file} ({trust.origin}) does not exist",
                                   tls=True, url=url, trust=trust) from None
        raise IndexUnreachable(source, mask_text(str(e))[:200]) from None
    if resp.status_code == 404 and source.kind == "index":
        return Listing(source, (), found=False)
    if resp.status_code in (401, 403):
        raise IndexUnreachable(source, f"access refused (HTTP {resp.status_code})")
    if resp.status_code >= 400:
        raise IndexUnreachable(source, f"HTTP {resp.status_code}")
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    base = resp.url or url
    if ctype.endswith("+json") or ctype == "application/json":
        try:
            files = parse_simple_json(json.loads(resp.text), base)
        except ValueError:
            raise IndexUnreachable(source, "answered with invalid JSON") from None
    else:
        files = parse_simple_html(resp.text, base)
    return Listing(source, _of_project(files, project))
