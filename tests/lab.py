"""Loopback package indexes for the tests: PEP 503 simple pages over files on disk, plain HTTP or HTTPS with a CA
generated here (openssl), on 127.0.0.1 and port 0 only. Every path asked is recorded, so a test can tell which
index was asked for what.

    with serve({"simple": {"torch": [wheel_path]}, "whl/cpu": {...}}, tls=make_ca(tmp)) as lab:
        lab.url("simple")  # https://127.0.0.1:PORT/simple
"""
from __future__ import annotations

import hashlib
import html
import http.server
import os
import shutil
import ssl
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from packaging.utils import canonicalize_name


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


@dataclass
class Lab:
    base: str
    asked: List[str] = field(default_factory=list)  # request paths, in order

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix.strip('/')}"

    def asked_under(self, prefix: str) -> List[str]:
        p = "/" + prefix.strip("/") + "/"
        return [a for a in self.asked if a.startswith(p)]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def serve(trees: Dict[str, Dict[str, Sequence[str]]], tls: Optional[Certs] = None) -> Iterator[Lab]:
    """trees: {"simple": {"torch": [paths of wheel files]}, "whl/cu132": {...}}: each prefix is one simple index
    (PEP 503 HTML, with #sha256= fragments and the files under PREFIX/files/)."""
    pages: Dict[str, bytes] = {}
    files: Dict[str, str] = {}
    for prefix, projects in trees.items():
        prefix = "/" + prefix.strip("/")
        names = []
        for project, paths in projects.items():
            name = canonicalize_name(project)
            names.append(name)
            links = []
            for path in paths:
                fn = os.path.basename(path)
                files[f"{prefix}/files/{fn}"] = path
                links.append(f'<a href="../files/{html.escape(fn)}#sha256={_sha256(path)}">{html.escape(fn)}</a>')
            pages[f"{prefix}/{name}/"] = ("<!DOCTYPE html><html><body>\n" + "<br/>\n".join(links) +
                                          "\n</body></html>\n").encode()
        pages[f"{prefix}/"] = ("<!DOCTYPE html><html><body>\n" + "\n".join(
            f'<a href="{n}/">{n}</a>' for n in names) + "\n</body></html>\n").encode()
    lab = Lab("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_HEAD(self):
            self.do_GET(body=False)

        def do_GET(self, body=True):
            path = self.path.split("?", 1)[0]
            lab.asked.append(path)
            if not path.endswith("/") and path + "/" in pages:
                self.send_response(301)
                self.send_header("Location", path + "/")
                self.end_headers()
                return
            if path in pages:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(pages[path])))
                self.end_headers()
                if body:
                    self.wfile.write(pages[path])
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
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    lab.base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield lab
    finally:
        server.shutdown()
        server.server_close()
