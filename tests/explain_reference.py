"""The plain matcher explain had before it streamed: every catalogue regex on every normalised line of the whole
text. Kept here, unchanged but for its names, as the reference the streaming matcher (torch_setup.explain.Scan)
must agree with (tests/test_explain_stream.py). It uses the module's regexes and normalisation helpers, so what
is compared is the scanning, not the catalogue.
"""
from __future__ import annotations

import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from torch_setup.explain import (
    _IPY_CODE, _IPY_FRAME, _PREFIXES, _PY_FRAME, _RICH_BOX, _SOURCE, _WARNING, CONTEXT_BONUS, MAX_LINE,
    UNKNOWN_CAUSE, WEAK_PENALTY, Cause, Signature, _default_catalogue, _evidence, _indent, _json_lines, strip_ansi,
)


def _strip_prefixes(line: str) -> str:
    while True:
        bare = line.lstrip()
        for p in _PREFIXES:
            m = p.match(bare)
            if m and m.end():
                line = bare[m.end():]
                break
        else:
            return line


def _lines(text: str) -> Iterator[Tuple[int, str, bool]]:
    """Yield (1-based line number, normalised line, is evidence) for the lines that may hold evidence or context:
    prefixes and ANSI codes stripped. Traceback frame headers come as context only (`File ".../cpp_builder.py"`
    says where the error rose); the source lines quoted inside tracebacks are left out, except the raising line
    of the last frame when the paste ends in it (then it is the only message there is)."""
    text = strip_ansi(text.lstrip("\ufeff"))
    numbered: List[Tuple[int, str]] = []
    for n, raw in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        inner = _json_lines(raw)
        numbered.extend((n, x) for x in (inner if inner is not None else [raw]))
    return _skip_source(numbered)


def _skip_source(numbered: Sequence[Tuple[int, str]]) -> Iterator[Tuple[int, str, bool]]:
    mode, depth = None, 0  # mode: "py" (frame body deeper than `depth`), "ipy", "warn"
    last: Optional[Tuple[int, str]] = None  # the last source line of the open frame
    for n, raw in numbered:
        line = _strip_prefixes(raw[:MAX_LINE]).rstrip()
        if mode and not line.strip():
            continue  # blank lines inside a frame (copy-paste artefacts) keep the frame open
        if mode == "py" and _indent(line) > depth:
            if line.strip(" ^~"):  # not the carets Python 3.11+ draws under the failing expression
                last = (n, line)
            continue
        if mode == "ipy" and _IPY_CODE.match(line):
            last = (n, line)
            continue
        if mode == "warn":
            mode = None
            if _indent(line) > 0:
                continue
        mode, last = None, None
        m = _PY_FRAME.match(line)
        if m:
            mode, depth = "py", len(m.group(1))
            yield n, line, False
            continue
        if _IPY_FRAME.match(line):
            mode = "ipy"
            yield n, line, False
            continue
        if _RICH_BOX.match(line) or _SOURCE.match(line):
            continue
        if _WARNING.search(line):
            mode = "warn"
        yield n, line, True
    if mode in ("py", "ipy") and last is not None:  # the paste ends inside the last frame: its raising line counts
        yield last[0], last[1], True


def diagnose(text: str, catalogue: Optional[Sequence[Signature]] = None) -> List[Cause]:
    """The causes named by `text`, most likely first, one per cause id; `[UNKNOWN_CAUSE]` when none match."""
    sigs = tuple(catalogue) if catalogue is not None else _default_catalogue()
    # Best hit per id: (weak?, pattern index, line number, evidence). A stronger pattern anywhere beats a
    # weaker one earlier; for the same pattern the first occurrence wins (later ones are usually repeats
    # from parallel compile workers).
    best: Dict[str, Tuple[bool, int, int, str]] = {}
    context_seen = set()
    for n, line, is_evidence in _lines(text):
        probe = line.replace("\\", "/")  # Windows paths and Python's escaped reprs of them
        for sig in sigs:
            if sig.id not in context_seen and any(p.search(probe) for p in sig.context):
                context_seen.add(sig.id)
            if not is_evidence:
                continue
            for weak, group in ((False, sig.patterns), (True, sig.weak)):
                for i, p in enumerate(group):
                    key = (weak, i)
                    if sig.id in best and best[sig.id][:2] <= key:
                        break  # an equal or stronger hit is already recorded
                    m = p.search(probe)
                    if m:
                        best[sig.id] = (weak, i, n, _evidence(line, m))
                        break
    causes = []
    for sig in sigs:
        hit = best.get(sig.id)
        if hit is None:
            continue
        weak, _, n, evidence = hit
        has_context = sig.id in context_seen
        if weak and not has_context:
            continue
        score = sig.weight + (CONTEXT_BONUS if has_context else 0.0) - (WEAK_PENALTY if weak else 0.0)
        causes.append(Cause(sig.id, sig.title, evidence, n, sig.needs, sig.advice, score, sig.platform_advice))
    causes.sort(key=lambda c: (-c.score, c.line))
    return causes or [UNKNOWN_CAUSE]


