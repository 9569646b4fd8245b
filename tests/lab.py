"""Loopback package indexes for the tests: simple indexes over files on disk (PEP 503 HTML, PEP 691 JSON to a
client that asks, PEP 658 metadata), plain HTTP or HTTPS with a CA generated here (openssl), on 127.0.0.1 and
port 0 only. Every path asked is recorded, so a test can tell which index was asked for what. `pypi_wheels`
downloads real wheels from PyPI once into a shared cache; `refusing_proxy` is an HTTPS_PROXY that refuses and
records every host a command tried to reach.

    with serve({"simple": {"torch": [wheel_path]}, "whl/cpu": {...}}, tls=make_ca(tmp)) as lab:
        lab.url("simple")  # https://127.0.0.1:PORT/simple
"""
from __future__ import annotations

import fcntl
import hashlib
import html
import http.server
import json
import os
import shutil
import ssl
import subprocess
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from packaging.utils import canonicalize_name, parse_wheel_filename

PYPI = "https://pypi.org/simple"
# torch 2.15.0 for CPython 3.13 on manylinux x86_64 (PyPI's is a CUDA 13.2 build) and what it needs, pinned as
# `uv pip compile --python-version 3.13 --python-platform x86_64-manylinux_2_28` resolved it on 2026-12-02, so
# every run serves the same files; with pip and uv, which the product seeds and fetches from the same index.
TORCH_215 = (
    "torch==2.15.0", "cuda-bindings==13.5.0", "cuda-pathfinder==1.9.1", "cuda-toolkit==13.2.2",
    "filelock==4.3.1", "fsspec==2026.9.0", "jinja2==3.1.6", "markupsafe==3.0.4", "mpmath==1.3.0",
    "networkx==3.7", "nvidia-cublas==13.4.1.3", "nvidia-cuda-cccl==13.3.5.0.6", "nvidia-cuda-cupti==13.2.86",
    "nvidia-cuda-nvrtc==13.2.86", "nvidia-cuda-runtime==13.2.86", "nvidia-cudnn-cu13==9.26.0.51",
    "nvidia-cufft==12.2.0.57", "nvidia-cufile==1.17.1.22", "nvidia-cusolver==12.2.0.11",
    "nvidia-cusparse==12.7.10.12", "nvidia-cusparselt-cu13==0.8.1", "nvidia-nccl-cu13==2.30.7",
    "nvidia-nvjitlink==13.5.37", "nvidia-nvshmem-cu13==3.7.2", "nvidia-nvtx==13.2.86", "setuptools==84.2.1",
    "sympy==1.14.0", "triton==3.9.0", "typing-extensions==4.16.0",
)
TOOLS = ("pip==25.3", "uv==0.13.9")
TORCH_213 = ("torch==2.13.0",)  # the older torch of an extra index: the wheel alone


@dataclass(frozen=True)
class Certs:
    ca: str  # the CA's certificate: what a client is given as SSL_CERT_FILE
    cert: str  # the server's certificate for 127.0.0.1, signed by the CA
    key: str


def make_ca(folder: Path, name: str = "torch-setup test CA") -> Certs:
    """A CA and a server certificate for IP 127.0.0.1 and localhost (openssl; valid for two days)."""
    if not shutil.which("openssl"):
        import pytest

        pytest.skip("openssl is not installed: no test CA")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (str(folder / n) for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                               "server.pem"))
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", str(ext))
    return Certs(ca, cert, key)


def wheels_cache() -> Path:
    env = os.environ.get("TORCH_SETUP_TEST_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "torch-setup-tests") / "wheels"


def _fits(filename: str) -> bool:
    """A wheel for CPython 3.13 on manylinux x86_64 (cp313, an abi3 of an older CPython 3, or a pure one)."""
    if not filename.endswith(".whl"):
        return False
    for t in parse_wheel_filename(filename)[3]:
        plat = t.platform == "any" or (t.platform.startswith("manylinux") and t.platform.endswith("x86_64"))
        interp = (t.interpreter in ("py3", "cp313") and t.abi in ("none", "cp313")) or (
            t.abi == "abi3" and t.interpreter.startswith("cp3") and int(t.interpreter[3:]) <= 13)
        if plat and interp:
            return True
    return False


def pypi_wheels(pins: Sequence[str], index: str = PYPI) -> List[str]:
    """The wheel of each `name==version` in `pins` for CPython 3.13 on manylinux x86_64, downloaded once from
    PyPI (PEP 691 JSON, sha256 checked) into wheels_cache() under a lock (another pytest process may be
    fetching them) and reused by every later run. Returns their paths."""
    import urllib.request

    cache = wheels_cache()
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for pin in pins:
            name, _, version = pin.partition("==")
            have = [p for p in cache.glob("*.whl")  # the cache is shared: other wheels of the pin may be there
                    if _pin_of(p.name) == (canonicalize_name(name), version) and _fits(p.name)]
            if have:
                out.append(str(sorted(have)[0]))
                continue
            req = urllib.request.Request(f"{index}/{canonicalize_name(name)}/",
                                         headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                files = json.load(resp)["files"]
            fits = [f for f in files if _pin_of(f["filename"]) == (canonicalize_name(name), version)
                    and _fits(f["filename"]) and not f.get("yanked")]
            if not fits:
                raise RuntimeError(f"PyPI has no wheel of {pin} for CPython 3.13 manylinux x86_64")
            f = sorted(fits, key=lambda f: f["filename"])[-1]  # the newest manylinux tag
            dest = cache / f["filename"]
            part = cache / (f["filename"] + ".part")
            h = hashlib.sha256()
            with urllib.request.urlopen(f["url"], timeout=120) as resp, open(part, "wb") as w:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    h.update(block)
                    w.write(block)
            if h.hexdigest() != f["hashes"]["sha256"]:
                part.unlink()
                raise RuntimeError(f"{f['filename']}: sha256 {h.hexdigest()}, PyPI says {f['hashes']['sha256']}")
            os.replace(part, dest)
            out.append(str(dest))
    return out


def _pin_of(filename: str):
    if not filename.endswith(".whl"):
        return None
    name, version, _, _ = parse_wheel_filename(filename)
    return canonicalize_name(name), str(version)


@dataclass
class Lab:
    base: str
    asked: List[str] = field(default_factory=list)  # request paths, in order

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix.strip('/')}"

    def asked_under(self, prefix: str) -> List[str]:
        p = "/" + prefix.strip("/") + "/"
        return [a for a in self.asked if a.startswith(p)]


_hashes: Dict[Tuple[str, float, int], str] = {}


def _sha256(path: str) -> str:
    """sha256 of a file, once per process (the torch wheels are gigabytes, served under several prefixes)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime, st.st_size)
    if key not in _hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _hashes[key] = h.hexdigest()
    return _hashes[key]


def _core_metadata(path: str) -> Optional[bytes]:
    """A wheel's METADATA (PEP 658: served as FILE.metadata, so pip and uv resolve without the whole wheel)."""
    if not path.endswith(".whl"):
        return None
    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        return z.read(name) if name else None


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@contextmanager
def serve(trees: Dict[str, Dict[str, Sequence[str]]], tls: Optional[Certs] = None) -> Iterator[Lab]:
    """trees: {"simple": {"torch": [paths of wheel files]}, "whl/cu132": {...}}: each prefix is one simple index,
    PEP 503 HTML or, to a client that asks for it (Accept), PEP 691 JSON; sha256 of every file, PEP 658 metadata
    of every wheel (FILE.metadata), the files under PREFIX/files/ (one file on disk may be served under several
    prefixes: nothing is copied)."""
    pages: Dict[str, Tuple[bytes, bytes]] = {}  # path -> (HTML, JSON)
    files: Dict[str, str] = {}
    blobs: Dict[str, bytes] = {}  # FILE.metadata
    meta = {"api-version": "1.0"}
    for prefix, projects in trees.items():
        prefix = "/" + prefix.strip("/")
        names = []
        for project, paths in projects.items():
            name = canonicalize_name(project)
            names.append(name)
            links, entries = [], []
            for path in paths:
                fn = os.path.basename(path)
                sha = _sha256(path)
                files[f"{prefix}/files/{fn}"] = path
                md = _core_metadata(path)
                attr = ""
                entry: Dict[str, object] = {"filename": fn, "url": f"../files/{fn}", "hashes": {"sha256": sha},
                                            "size": os.path.getsize(path)}
                if md is not None:
                    blobs[f"{prefix}/files/{fn}.metadata"] = md
                    md_sha = hashlib.sha256(md).hexdigest()
                    attr = f' data-dist-info-metadata="sha256={md_sha}" data-core-metadata="sha256={md_sha}"'
                    entry["core-metadata"] = entry["dist-info-metadata"] = {"sha256": md_sha}
                links.append(f'<a href="../files/{html.escape(fn)}#sha256={sha}"{attr}>{html.escape(fn)}</a>')
                entries.append(entry)
            pages[f"{prefix}/{name}/"] = (
                ("<!DOCTYPE html><html><body>\n" + "<br/>\n".join(links) + "\n</body></html>\n").encode(),
                json.dumps({"meta": meta, "name": name, "files": entries}).encode())
        pages[f"{prefix}/"] = (
            ("<!DOCTYPE html><html><body>\n" + "\n".join(f'<a href="{n}/">{n}</a>' for n in names)
             + "\n</body></html>\n").encode(),
            json.dumps({"meta": meta, "projects": [{"name": n} for n in names]}).encode())
    lab = Lab("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_HEAD(self):
            self.do_GET(body=False)

        def _send(self, status: int, ctype: str, data: bytes, body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self, body=True):
            path = self.path.split("?", 1)[0]
            lab.asked.append(path)
            if not path.endswith("/") and path + "/" in pages:
                self.send_response(301)
                self.send_header("Location", path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path in pages:
                wants_json = JSON_TYPE in self.headers.get("Accept", "")
                page_html, page_json = pages[path]
                if wants_json:
                    self._send(200, JSON_TYPE, page_json, body)
                else:
                    self._send(200, "text/html", page_html, body)
                return
            if path in blobs:
                self._send(200, "application/octet-stream", blobs[path], body)
                return
            if path in files:
                size = os.path.getsize(files[path])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if body:
                    with open(files[path], "rb") as f:
                        shutil.copyfileobj(f, self.wfile, 1 << 20)
                return
            self._send(404, "text/plain", b"", body)

    with _loopback(Handler, tls) as base:
        lab.base = base
        yield lab


@contextmanager
def _loopback(handler, tls: Optional[Certs] = None) -> Iterator[str]:
    """A threaded HTTP server (HTTPS with `tls`) for `handler` on 127.0.0.1, port 0, while the block runs: yields
    its base URL, and shuts it down after."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()  # quick shutdown
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_folder(folder, asked: Optional[List[str]] = None) -> Iterator[str]:
    """The files under `folder` over HTTP on 127.0.0.1 (a controller serving a bundle, a host serving uv's wheel)
    while the block runs: yields the base URL (no trailing slash); each path asked is appended to `asked`."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(folder), **kw)

        def log_message(self, *args):
            if asked is not None:
                asked.append(self.path)

    with _loopback(Quiet) as base:
        yield base


@dataclass
class Proxy:
    url: str
    asked: List[str] = field(default_factory=list)  # the request lines: "CONNECT pypi.org:443 HTTP/1.1", ...


@contextmanager
def refusing_proxy() -> Iterator[Proxy]:
    """An HTTP proxy on loopback that refuses everything (403) and records what it was asked: given to a command
    as HTTPS_PROXY (with NO_PROXY=127.0.0.1), every host but the loopback labs is out of reach on any network,
    and the record says which hosts the command tried."""
    proxy = Proxy("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _refuse(self):
            proxy.asked.append(self.requestline)
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_CONNECT = do_GET = do_HEAD = do_POST = _refuse

    with _loopback(Handler) as proxy.url:
        yield proxy
