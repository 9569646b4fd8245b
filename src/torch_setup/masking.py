"""Credentials masked in everything shown: text, JSON, logs, error details. Standard library only, so any module
(facts, plan, report) can mask without importing the network code."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are secrets (tokens, signed-URL signatures, API keys).
_SECRET_PARAM = re.compile(r"token|key|secret|passw|pwd|auth|sig|credential|session|access", re.I)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]+")


def mask(url: str) -> str:
    """`https://user:token@host/x?token=t` -> `https://user:***@host/x?token=***`; a lone `token@host` -> `***@host`.

    Plain paths and URLs without secrets come back unchanged, so it is safe to call on anything shown.
    """
    if not url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_IN_TEXT.sub("***", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if sep else f"***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Mask every URL inside a free text (error messages from requests quote the URL they failed on)."""
    return _URL_IN_TEXT.sub(lambda m: mask(m.group(0)), text or "")
