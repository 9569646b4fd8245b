"""Which certificates torch-setup's own HTTP trusts, and how the same trust reaches pip and uv.

The order, first one set wins (the box's own settings before any bundle of ours):
1. REQUESTS_CA_BUNDLE (requests' variable: what a Python user behind a proxy sets),
2. SSL_CERT_FILE (OpenSSL's variable, read by curl, Python's ssl module and uv, https://docs.astral.sh/uv/
   concepts/authentication/certificates/; requests' certifi bundle ignores it),
3. PIP_CERT, then pip's `cert` setting ([install] over [global], https://pip.pypa.io/en/stable/topics/
   https-certificates/),
4. the system trust store through `truststore` (as pip does since 24.2) where this Python has it,
5. else the system's OpenSSL CA file where there is one, else certifi's bundle.

A CA file found in 1-3 is handed to the commands the plan runs as SSL_CERT_FILE (uv) and PIP_CERT (pip), so
they trust what the choice of torch trusted. TLS verification is never turned off.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PIP_CERT")
TRUSTSTORE = "the system trust store (truststore)"
CERTIFI = "certifi's CA bundle"


@dataclass(frozen=True)
class Trust:
    """`ca_file` None: the system store (truststore) or certifi, as `origin` says."""

    ca_file: Optional[str] = None
    origin: str = CERTIFI  # "SSL_CERT_FILE", "pip config global.cert", TRUSTSTORE, "the system CA file", CERTIFI

    @property
    def label(self) -> str:
        """For messages: 'the CA file /etc/corp.pem (SSL_CERT_FILE)' or 'the system trust store (truststore)'."""
        return f"the CA file {self.ca_file} ({self.origin})" if self.ca_file else self.origin

    @property
    def verify(self):
        """requests' `verify`: the CA file, or True (its own bundle; the truststore adapter replaces it)."""
        return self.ca_file or True

    def command_env(self) -> Dict[str, str]:
        """What pip and uv need to trust the same CA file (empty: they use their own defaults)."""
        if not self.ca_file or self.origin in (TRUSTSTORE, CERTIFI, "the system CA file"):
            return {}
        return {"SSL_CERT_FILE": self.ca_file, "PIP_CERT": self.ca_file}


def _have_truststore() -> bool:
    try:
        import truststore  # noqa: F401  (Python >= 3.10)
    except ImportError:
        return False
    return True


def _system_ca_file() -> Optional[str]:
    import ssl

    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile):
        if path and os.path.isfile(path):
            return path
    return None


def from_config(env: Mapping[str, str], pip_config: str = "", *, truststore: Optional[bool] = None,
                system_ca: Optional[str] = "") -> Trust:
    """The trust for `env` and the captured pip configuration (`section.key='value'` lines). `truststore` and
    `system_ca` stand in for this Python's truststore and the system CA file (tests); "" asks this host."""
    for var in CA_VARS:
        value = (env.get(var) or "").strip()
        if value:
            return Trust(value, var)
    from torch_setup.wheels.indexes import _pip_option, parse_pip_config_list

    value, origin = _pip_option(parse_pip_config_list(pip_config), "cert")
    if value and value.strip():
        return Trust(value.strip(), origin)
    if truststore if truststore is not None else _have_truststore():
        return Trust(None, TRUSTSTORE)
    ca = _system_ca_file() if system_ca == "" else system_ca
    if ca:
        return Trust(ca, "the system CA file")
    return Trust(None, CERTIFI)


def session(trust: Trust):
    """A requests Session that verifies with `trust` (truststore's SSLContext mounted for https, as pip does)."""
    import requests

    s = requests.Session()
    s.verify = trust.verify
    if trust.origin == TRUSTSTORE:
        import ssl

        import truststore
        from requests.adapters import HTTPAdapter

        ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

        class _Adapter(HTTPAdapter):
            def init_poolmanager(self, *args, **kwargs):
                kwargs["ssl_context"] = ctx
                return super().init_poolmanager(*args, **kwargs)

        s.mount("https://", _Adapter())
    return s


def is_tls_failure(exc: BaseException) -> bool:
    """A certificate that did not verify (not a refused connection or a timeout)."""
    import ssl

    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return True
    seen = set()
    while exc is not None and id(exc) not in seen:  # requests wraps urllib3 wraps ssl
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0],
                                                                                          BaseException) else None)
    return False


def fix_hint(trust: Trust) -> str:
    return ("give the CA that signs the index's certificate (a corporate proxy's, a mirror's): "
            "SSL_CERT_FILE=/path/to/ca.pem torch-setup install (REQUESTS_CA_BUNDLE and pip's `cert` setting work "
            "too); now trusted: " + trust.label)
