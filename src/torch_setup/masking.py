"""Credentials masked in everything shown: text, JSON, logs, error details. Standard library only, so any module
(facts, plan, report) can mask without importing the network code.

A URL is split as RFC 3986 reads its authority (https://www.rfc-editor.org/rfc/rfc3986#section-3.2), but leniently:
people type passwords with `/`, `#`, `?`, `(`, `)`, `'` or `@` unescaped, and `urllib.parse.urlsplit` then ends
the authority at the first `/` or `#` and hands the rest of the password to the path. Here the userinfo runs to
the LAST `@` of the URL's word (a URL ends only at white space), so a password never reaches the host or path
part shown. The price: an `@` in a path (`git+https://host/repo@v1`) masks what comes before it, which is shown
as `***@v1`, never the other way round. The query is read with `urllib.parse.parse_qsl`'s rules (`&`-separated
`name=value`), and the value of any parameter whose name sounds like a secret is replaced, character-exact
otherwise (nothing re-encoded).
"""
from __future__ import annotations

import re
from typing import Any

# Query parameters whose values are secrets (tokens, signed-URL signatures, API keys).
_SECRET_PARAM = re.compile(r"token|key|secret|passw|pwd|auth|sig|credential|session|access|jwt|bearer|private|"
                           r"apikey|code|otp", re.I)
# A URL's start: a scheme (RFC 3986 section 3.1) and `://`; the URL runs to the next white space.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://")
_WORD_END = re.compile(r"\s")
MASK = "***"


def _mask_query(query: str) -> str:
    tail = re.search(r"[\'\")\]>},;.]*$", query).group(0)  # a quote or bracket around the URL: kept
    query = query[:len(query) - len(tail)] if tail else query
    parts = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        parts.append(f"{name}={MASK}" if eq and value and _SECRET_PARAM.search(name) else pair)
    return "&".join(parts) + tail


def _mask_rest(rest: str) -> str:
    """What follows `scheme://` in one word: [userinfo@]host[:port][/path][?query][#fragment]."""
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # A user name with path characters in it is not one: all of it goes.
        shown = f"{user}:{MASK}" if colon and user and not re.search(r"[/?#]", user) else MASK
        prefix = shown + "@"
    else:
        prefix = ""
    q = rest.find("?")
    h = rest.find("#", max(q, 0))
    if q >= 0 or h >= 0:  # [?query][#fragment]: both read as name=value pairs (tokens ride in either)
        cut = q if q >= 0 else h
        query, fragment = (rest[cut + 1:h], rest[h + 1:]) if q >= 0 and h >= 0 else (rest[cut + 1:], None)
        rest = rest[:cut + 1] + _mask_query(query) + ("" if fragment is None else "#" + _mask_query(fragment))
    return prefix + rest


# `user:password@host` typed without a scheme (as in a mistyped --index-url): the password goes all the same.
_BARE_USERINFO = re.compile(r"(?<![^\s'\"(=])([A-Za-z0-9._~%!$&*+,;=-]+):\S*@(?=[A-Za-z0-9\[])")


def mask_text(text: str) -> str:
    """Mask every URL inside a free text: `https://user:pa(s)s@host/x?token=t` -> `https://user:***@host/x?token=***`,
    a lone `token@host` -> `***@host`. Text without URLs comes back unchanged; masking is idempotent."""
    if text and "@" in text and ":" in text:
        text = _BARE_USERINFO.sub(lambda m: m.group(0) if "://" in m.group(0) else f"{m.group(1)}:{MASK}@", text)
    if not text or "://" not in text:
        return text or ""
    out, pos = [], 0
    for m in _SCHEME.finditer(text):
        if m.start() < pos:
            continue  # inside the previous URL's word
        end_m = _WORD_END.search(text, m.end())
        end = end_m.start() if end_m else len(text)
        out.append(text[pos:m.end()])
        out.append(_mask_rest(text[m.end():end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask(url: str) -> str:
    """One URL (or a path, returned as it is) masked; see mask_text."""
    return mask_text(url)


def mask_data(data: Any) -> Any:
    """Every string in a JSON-able value masked (dict keys too): the last pass before JSON is printed."""
    if isinstance(data, str):
        return mask_text(data)
    if isinstance(data, dict):
        return {mask_data(k) if isinstance(k, str) else k: mask_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [mask_data(v) for v in data]
    return data


class MaskingStream:
    """A text stream that masks what is written to it (the CLI wraps stdout and stderr in one: whatever a command
    prints, and whatever a library prints for it, passes here). Each write is masked on its own: every writer of
    this program writes whole lines or whole renders."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_text(text) if isinstance(text, str) else text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
