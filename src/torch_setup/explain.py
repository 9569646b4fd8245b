"""Name the environment causes behind a failed torch.compile, `import torch`, Triton launch or pip install log.

The signatures live in `data/causes.toml` (one row per stable cause id, with the torch, triton or pip code and the
upstream threads behind it); this module loads and validates that file and matches logs against it.

People paste these failures from other programs' logs: vLLM worker lines, ComfyUI consoles, notebooks, CI,
pytest. So a log is normalised line by line before matching: ANSI colours, CRLF, logger prefixes and Windows
backslashes go, and the *source lines* that Python, IPython and rich print inside tracebacks are skipped,
because they quote the very messages we look for (`raise AssertionError("Torch not compiled with CUDA
enabled")`, the OpenMP help text in cpp_builder.py) without those messages having been raised.
Wrapper lines (`BackendCompilerFailed`, `CppCompileError: C++ compile error`, `CalledProcessError`) are in no
row: they say where a failure surfaced, not why, so a log holding only them gives `unknown`, never a guess.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Pattern, Sequence, Tuple, Union

from torch_setup.errors import RecipeError
from torch_setup.planning.steps import NEEDS  # one vocabulary: what plan steps provide, what causes need

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

CATALOGUE = "data/causes.toml"  # package data, read with pkgutil (it also reads inside the zipapp)
UNKNOWN = "unknown"
CONTEXT_BONUS = 5.0  # a context regex seen anywhere in the log
WEAK_PENALTY = 10.0  # a `weak` match is worth less than a real signature
MAX_EVIDENCE = 400  # evidence lines can be 3000-character compiler command lines; keep the part that matched
MAX_LINE = 20000  # guard the regexes against megabyte-long lines (minified JSON, progress bars)

_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_PLATFORM_ADVICE = ("windows", "macos", "jetson")  # advice_<platform>: advice written for a log of that platform
_KEYS = {"id", "title", "patterns", "weak", "context", "needs", "advice", "source", "weight"} | {
    f"advice_{p}" for p in _PLATFORM_ADVICE}


@dataclass(frozen=True)
class Signature:
    """One catalogue row, validated and compiled."""

    id: str
    title: str
    patterns: Tuple[Pattern[str], ...]
    weak: Tuple[Pattern[str], ...]
    context: Tuple[Pattern[str], ...]
    needs: Tuple[str, ...]
    advice: str
    source: str
    weight: float
    platform_advice: Tuple[Tuple[str, str], ...] = ()  # (platform, advice) for logs of that platform


@dataclass(frozen=True)
class Cause:
    """A diagnosed cause: `evidence` is the matched log line without logger prefixes, `line` its 1-based
    number in the text given to `diagnose`."""

    id: str
    title: str
    evidence: str
    line: int
    needs: Tuple[str, ...]
    advice: str
    score: float
    platform_advice: Tuple[Tuple[str, str], ...] = ()

    def advice_for(self, platform: str) -> str:
        """The advice written for a log of this platform (windows, macos, jetson), else the general one."""
        return dict(self.platform_advice).get(platform, self.advice)


UNKNOWN_CAUSE = Cause(
    id=UNKNOWN,
    title="No known environment cause matched",
    evidence="",
    line=0,
    needs=(),
    advice="Nothing in this log matches a known environment problem; read its first error, or report it "
    "with the full log.",
    score=0.0,
)


# --- catalogue -------------------------------------------------------------------------------------------


def load_catalogue(path: Optional[Union[str, Path]] = None) -> Tuple[Signature, ...]:
    """Load and validate a cause catalogue (default: the built-in one). A bad file raises RecipeError
    naming the file and the entry."""
    try:
        if path is not None:
            path = Path(path)
            text = path.read_text(encoding="utf-8")
        else:
            import pkgutil

            path = Path("torch_setup") / CATALOGUE
            text = pkgutil.get_data("torch_setup", CATALOGUE).decode("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RecipeError(f"{path}: cannot read the cause catalogue: {e}") from e
    rows = data.get("cause")
    if not isinstance(rows, list) or not rows:
        raise RecipeError(f"{path}: no [[cause]] entries")
    sigs: List[Signature] = []
    seen = set()
    for n, row in enumerate(rows, 1):
        sig = _signature(row, f"{path}: cause #{n}")
        if sig.id in seen:
            raise RecipeError(f"{path}: cause #{n} ({sig.id}): duplicate id")
        seen.add(sig.id)
        sigs.append(sig)
    return tuple(sigs)


def _signature(row: object, where: str) -> Signature:
    def bad(problem: str) -> RecipeError:
        name = row.get("id") if isinstance(row, dict) else None
        return RecipeError(f"{where}{f' ({name})' if isinstance(name, str) else ''}: {problem}")

    if not isinstance(row, dict):
        raise bad("not a table")
    unknown = set(row) - _KEYS
    if unknown:  # a typo such as `pattern =` would otherwise silently disable a row
        raise bad(f"unknown keys {sorted(unknown)}")
    for key in ("id", "title", "advice", "source"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise bad(f"'{key}' must be a non-empty string")
    for key in (f"advice_{p}" for p in _PLATFORM_ADVICE):
        if key in row and (not isinstance(row[key], str) or not row[key].strip()):
            raise bad(f"'{key}' must be a non-empty string")
    if not _ID.match(row["id"]) or row["id"] == UNKNOWN:
        raise bad(f"'id' must be lower-case words joined by '-', and not '{UNKNOWN}'")
    weight = row.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 100:
        raise bad("'weight' must be a number from 0 to 100")
    needs = row.get("needs")
    if not isinstance(needs, list) or not all(isinstance(x, str) for x in needs):
        raise bad("'needs' must be a list of strings")
    needs = [x for x in needs if x]  # [""] means "no fix step", like []
    if set(needs) - set(NEEDS):
        raise bad(f"'needs' has {sorted(set(needs) - set(NEEDS))}; allowed: {', '.join(NEEDS)}")

    def regexes(key: str, required: bool) -> Tuple[Pattern[str], ...]:
        items = row.get(key, [])
        if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
            raise bad(f"'{key}' must be a list of non-empty strings")
        if required and not items:
            raise bad(f"'{key}' must not be empty")
        try:
            return tuple(re.compile(x, re.IGNORECASE) for x in items)
        except re.error as e:
            raise bad(f"bad regex in '{key}': {e.pattern!r}: {e}") from e

    weak, context = regexes("weak", False), regexes("context", False)
    if weak and not context:
        raise bad("'weak' patterns need 'context' patterns (they count only together)")
    return Signature(
        id=row["id"],
        title=row["title"].strip(),
        patterns=regexes("patterns", True),
        weak=weak,
        context=context,
        needs=tuple(needs),
        advice=" ".join(row["advice"].split()),
        source=row["source"].strip(),
        weight=float(weight),
        platform_advice=tuple((p, " ".join(row[f"advice_{p}"].split())) for p in _PLATFORM_ADVICE
                              if f"advice_{p}" in row),
    )


@lru_cache(maxsize=1)
def _default_catalogue() -> Tuple[Signature, ...]:
    return load_catalogue()


# --- normalisation ---------------------------------------------------------------------------------------

# (an OSC title sequence ends at its line: a stray ESC ] never swallows the lines after it)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\r\n]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_LOGLEVEL = r"(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)"
# Prefixes that loggers and runners put before each line. Each consumes one separating space at most, so
# that the indentation of traceback lines behind it survives (it tells source lines from messages).
_PREFIXES = [
    re.compile(p)
    for p in (
        r"\[(?:rank|default)\d+\]: ?",  # torch.distributed; torchrun --tee
        r"\((?:[\w.-]+ )*(?:pid|rank)=\d+[^)]*\) ?",  # vLLM/Ray workers: (EngineCore_DP0 pid=14414)
        # vLLM: ERROR 11-04 18:36:01 [core.py:779]  (older releases: INFO 05-05 12:00:00 llm_engine.py:123])
        _LOGLEVEL + r" \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? (?:\[[^\]]+\]|[\w.]+:\d+\]) ?",
        # torch's glog-style logs: E1129 19:25:28.128000 18028 torch/_dynamo/x.py:3090] [0/0]
        r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^\]\s]+\] (?:\[[^\]]*\] )?",
        # python logging: 2026-01-01 12:00:00,123 - vllm - ERROR - / 2024-09-28 20:05:14,770 - mmFusion - ERROR -
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?:Z|[+-]\d\d:?\d\d)? (?:- )?(?:[\w.\[\]-]+ - )?"
        + _LOGLEVEL + r"(?: -|:)? ?",
        # [2023-11-29 22:29:33,093] torch._dynamo.convert_frame: [WARNING]  /  [2024-04-13T08:03:25.142Z]
        r"\[\d{4}-\d\d-\d\d[ T][\d:,.]+Z?\] ?(?:[\w.]+: ?)?(?:\[" + _LOGLEVEL + r"\] ?)?(?:\[[\w.:]+\] ?)?",
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) ",  # GitHub Actions, kubectl --timestamps
        r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?: " + _LOGLEVEL + r")? ",  # Go-style: 2024/09/18 01:27:52 INFO
        r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\[\d+,\d+\]<std(?:err|out)>: ?",  # mpirun --tag-output
        r"\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ [\w.@/-]+(?:\[\d+\])?: ",  # syslog / journalctl
        r"[A-Za-z][\w.-]*\s+\| ",  # docker compose: vllm-1  | ...
        r"!!! Exception during processing !!! ?",  # ComfyUI
        _LOGLEVEL + r":(?:[\w.]+:)?",  # logging.basicConfig: WARNING:root:msg
        r"E   ",  # pytest failure lines (E + 3 spaces; deeper indentation behind it is the traceback's)
        r"[A-Za-z][\w.-]*> ",  # nix build logs: "diffusers> ..."
    )
]
# Traceback frame headers, after which source lines follow. CPython (`File "x.py", line 3, in f`) and
# pytest --tb=long (`x.py:3: in f`) indent the source deeper than the header; IPython numbers it
# (`File ~/x.py:12, in f(a)`, `Cell In[4], line 2`, old `x.py in f()` / `<ipython-input-2-..> in <cell..>()`,
# also as markdown links in Jupyter/Colab pastes).
_PY_FRAME = re.compile(r'^(\s*)(?:File "[^"]*", line \d+|\S+\.py:\d+: in \S+$)')
_IPY_FRAME = re.compile(
    r"^\s*(?:File \S.*:\d+\]?(?:\([^)]*\))?(?:, in |\s*$)|Cell In ?\[\d*\], line \d+"
    r"|(?:\S*\.py|<[^>]*>|\[[^\]]*\]\([^)]*\)) in .*\)\s*$)"
)
# IPython source lines: "     28  code", "---> 30     assert ...", "   (...)    508  code"
_IPY_CODE = re.compile(r"^\s*(?:-*>\s*)?\[?\d+\]?(?: |$)|^\s*\(\.\.\.\)(?:\s+\d+ .*)?$")
# A statement pasted without its frame header ("raise RuntimeError(...)" above the message it raises).
_SOURCE = re.compile(r"^\s*(?:raise|return|assert)\s|^\s*warnings\.warn\(")
_WARNING = re.compile(r":\d+: \w*Warning: ")  # warnings.warn() header; the next indented line is its source
_RICH_BOX = re.compile(r"^\s*(?:│.*│|╭.*╮|╰.*╯)\s*$")  # rich tracebacks draw frames and source in boxes


# One regex for all of them: an alternation tries its branches in order, as the list does (none matches empty).
_ANY_PREFIX = re.compile("|".join(f"(?:{p.pattern})" for p in _PREFIXES))


def _strip_prefixes(line: str) -> str:
    while True:
        bare = line.lstrip()
        m = _ANY_PREFIX.match(bare)
        if not (m and m.end()):
            return line
        line = bare[m.end():]


def _json_lines(line: str) -> Optional[List[str]]:
    """Structured loggers put a whole traceback in one JSON string; return its lines, or None."""
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    out: List[str] = []

    def walk(v: object) -> None:
        if isinstance(v, str):
            out.extend(v.splitlines())
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(obj)
    return out


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip())


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# --- matching --------------------------------------------------------------------------------------------


def _evidence(line: str, m: "re.Match[str]") -> str:
    s = line.strip()
    if len(s) <= MAX_EVIDENCE:
        return s
    off = len(line) - len(line.lstrip())
    start = max(0, m.start() - off - 150)
    end = min(len(s), max(m.end() - off + 150, start + MAX_EVIDENCE // 2))
    return ("…" if start else "") + s[start:end] + ("…" if end < len(s) else "")


# --- streaming: literal prefilter ------------------------------------------------------------------------
#
# A log can be 100 MB of training progress with the cause at its end. Running every regex on every line costs
# minutes, so each regex is reduced to the literal strings any match must contain (`_needed`, from the regex's
# parse tree), and a block of the log is searched for those literals with str.find (C speed): only the lines
# holding the literals of some pattern are matched, and there only against those patterns. A line can also
# matter by what it does to the traceback state (a frame header opens a frame whose deeper lines are source):
# the frame-header and warning regexes are reduced the same way, and every line inside an open frame is
# processed. The result is the one the plain per-line matcher gives; tests/explain_reference.py keeps that
# matcher and tests/test_explain_stream.py compares them.

if sys.version_info >= (3, 11):
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
else:  # pragma: no cover - 3.9/3.10
    import sre_parse as _sre_parse

BLOCK = 1 << 20  # characters matched per block: memory stays a few blocks whatever the log's size
LONG_LINE = 1 << 20  # a line is kept up to this many characters (it is matched up to MAX_LINE anyway)
# bytes of a word (a-z, 0-9, _) kept, every other byte a separator: the words of a folded block's UTF-8
_WORD_BYTES = bytes(c if (97 <= c <= 122 or 48 <= c <= 57 or c == 95) else 32 for c in range(256))
# ASCII anchor -> (the whole words inside it, the words at its ends): a text holding the anchor holds those
# words, and words that contain those end words
_GATES: Dict[bytes, Tuple[frozenset, Tuple[bytes, ...]]] = {}
_VARIANTS: Dict[str, Tuple[str, ...]] = {}  # other anchor -> the case variants of its first non-ASCII letter
_ODD_TO_ASCII = {"İ": "i", "ı": "i", "\u212a": "k", "ſ": "s"}  # re.IGNORECASE equates them with ASCII letters
_ODD_LETTERS = re.compile("[" + "".join(_ODD_TO_ASCII) + "]")
Dnf = Tuple[Tuple[str, ...], ...]  # any one tuple of literals, all of them present in the line


def _fold(s: str) -> str:
    """Case folding that covers re.IGNORECASE: casefold, and the dotted/dotless i that re also equates."""
    if "ı" in s or "İ" in s:
        s = s.replace("ı", "i").replace("İ", "i")
    return s.casefold()


def _needed(pattern: str, flags: int = 0) -> Optional[Dnf]:
    """Literals every match of `pattern` contains, folded: any one tuple of the result, each of its strings a
    substring of the match; None when no literal is certain (then every line is a candidate)."""
    try:
        tree = _sre_parse.parse(pattern, flags)
    except Exception:  # pragma: no cover - patterns are compiled before this
        return None
    dnf = _needed_seq(list(tree.data))  # the items of the top-level sequence
    if dnf is None or any(not alt or any(not s or "\n" in s for s in alt) for alt in dnf):
        return None
    return dnf


MAX_STRINGS = 16  # an exact piece of a regex is spelled out while it has at most this many strings


def _exact(op, av) -> Optional[frozenset]:
    """The strings one parse-tree item matches, when they are few (a literal, [:：], (so|pyd), (lib)?, :?)."""
    name = str(op)
    if name == "LITERAL":
        return frozenset((chr(av),))
    if name == "IN" and len(av) <= 4 and all(str(o) == "LITERAL" for o, _ in av):
        return frozenset(chr(v) for _, v in av)
    if name == "SUBPATTERN":
        return _exact_seq(list(av[-1]))
    if name == "BRANCH":
        out: set = set()
        for alt in av[1]:
            got = _exact_seq(list(alt))
            if got is None:
                return None
            out |= got
        return frozenset(out) if len(out) <= MAX_STRINGS else None
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and av[1] <= 2:
        body = _exact_seq(list(av[2]))
        if body is None:
            return None
        out = set()
        for count in range(av[0], av[1] + 1):
            out |= _product([body] * count)
        return frozenset(out) if len(out) <= MAX_STRINGS else None
    return None


def _product(parts: List[frozenset]) -> set:
    out = {""}
    for part in parts:
        out = {a + b for a in out for b in part}
        if len(out) > MAX_STRINGS:
            break
    return out


def _exact_seq(items: list) -> Optional[frozenset]:
    parts = []
    for op, av in items:
        got = _exact(op, av)
        if got is None:
            return None
        parts.append(got)
    out = _product(parts)
    return frozenset(out) if len(out) <= MAX_STRINGS else None


def _needed_seq(items: list) -> Optional[Dnf]:
    """Literals every match of this sequence of parse-tree items contains: the pieces whose strings are spelled
    out (runs of literals with small alternations and optional parts), and what the other items need."""
    pieces: List[frozenset] = []  # exact pieces, each a set of strings (one of them occurs in a match)
    cands: List[Dnf] = []
    cur: set = {""}

    def close() -> None:
        nonlocal cur
        if "" not in cur:
            pieces.append(frozenset(cur))
        cur = {""}

    for op, av in items:
        got = _exact(op, av)
        if got is not None:
            grown = {a + b for a in cur for b in got} if len(cur) * len(got) <= MAX_STRINGS else None
            if grown is not None:
                cur = grown
                continue
            close()
            cur = set(got)
            continue
        close()
        name = str(op)
        sub: Optional[Dnf] = None
        if name == "SUBPATTERN":
            sub = _needed_seq(list(av[-1]))
        elif name == "ATOMIC_GROUP":
            sub = _needed_seq(list(av))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, _, body = av
            sub = _needed_seq(list(body)) if lo >= 1 else None
        elif name == "BRANCH":
            alts = [_needed_seq(list(b)) for b in av[1]]
            if all(a is not None for a in alts):
                sub = tuple(x for a in alts for x in a)  # type: ignore[union-attr]
        if sub:
            cands.append(sub)
    close()
    runs = [next(iter(p)) for p in pieces if len(p) == 1]  # pieces of one string: all of them are in a match
    cands.extend(tuple((x,) for x in sorted(p)) for p in pieces)
    if not cands:
        return None
    # the candidate whose weakest alternative has the longest literal: the rarest in practice
    best = max(cands, key=lambda dnf: min(max(len(s) for s in alt) for alt in dnf))
    folded_runs = tuple(_fold_literal(r) for r in runs)
    return tuple(tuple(dict.fromkeys(tuple(_fold_literal(s) for s in alt) + folded_runs)) for alt in best)


def _fold_literal(s: str) -> str:
    return _fold(s.replace("\\", "/"))  # the text is searched with its backslashes turned into "/"


def _anchor_of(alt: Tuple[str, ...], unit: int, anchors: dict, wide: dict) -> None:
    """File one alternative of a unit under its anchor (its longest literal): ASCII ones as UTF-8 bytes, the
    others as str."""
    anchor = max(alt, key=len)
    others = tuple(x for x in alt if x is not anchor)
    if not all(x.isascii() for x in alt):
        if anchor not in _VARIANTS:
            first = next(c for x in alt for c in x if not c.isascii())
            _VARIANTS[anchor] = _variants(first)
        wide.setdefault(anchor, []).append((unit, others))
        return
    key = anchor.encode()
    if key not in _GATES:
        padded = key.translate(_WORD_BYTES)
        tokens = padded.split()
        # a word touching the anchor's ends may go on in the text: it is only part of a word there
        edge = [t for i, t in enumerate(tokens) if (i == 0 and padded[:1] != b" ")
                or (i == len(tokens) - 1 and padded[-1:] != b" ")]
        _GATES[key] = (frozenset(t for t in tokens if t not in edge), tuple(edge))
    anchors.setdefault(key, []).append((unit, tuple(x.encode() for x in others)))


def _gate_ok(gate: Tuple[frozenset, Tuple[bytes, ...]], words: set, blob: bytes) -> bool:
    whole, edge = gate
    return whole <= words and all(e in blob for e in edge)


def _ends(rows: list) -> list:
    """The offset of each row's end in "\\n".join(rows)."""
    from itertools import accumulate

    return [e - 1 for e in accumulate(len(r) + 1 for r in rows)]


def _find_all(folded, rows: list, ends: list, anchors: dict, hot: Dict[int, set], gate) -> None:
    """Mark in `hot` the rows where an anchor and its alternative's other literals all occur."""
    from bisect import bisect_left

    for anchor, users in anchors.items():
        if not gate(anchor):
            continue
        pos = folded.find(anchor)
        while pos >= 0:
            idx = bisect_left(ends, pos)
            line = rows[idx]
            for u, others in users:
                if all(o in line for o in others):
                    hot.setdefault(idx, set()).add(u)
            pos = folded.find(anchor, ends[idx] + 1)


def _variants(c: str) -> Tuple[str, ...]:
    """The characters that match `c` under re.IGNORECASE: its case forms and re's extra equivalences."""
    try:
        from re import _casefix  # type: ignore[attr-defined]  # 3.11+

        extra = _casefix._EXTRA_CASES
    except ImportError:  # pragma: no cover - 3.9/3.10
        import sre_compile

        extra = getattr(sre_compile, "_ignorecase_fixes", {})
    low = c.lower()
    forms = {low} | {chr(x) for x in extra.get(ord(low), ())} if len(low) == 1 else {low}
    out = set()
    for f in forms:
        out |= {f, f.upper(), f.title()}
    return tuple(sorted(x for x in out if len(x) == 1))


@dataclass(frozen=True)
class _Unit:
    sig: int  # index in the catalogue
    kind: str  # "c" context, "p" pattern, "w" weak
    index: int
    dnf: Optional[Dnf]


_WARN_ONLY = {-3}  # a line that only the warning-header literals made worth processing
# The regexes that change the traceback state; their literals make a line worth processing. The old IPython
# frame header `x.py in f()` / `<ipython-input-..> in <cell..>()` / `[x](url) in f()` needs ".py in ", "> in "
# or ") in " (its branches end in those characters, " in " follows): finer than the " in " the parse tree gives.
_STATE_UNITS: Tuple[Dnf, ...] = (
    _needed(_PY_FRAME.pattern) or (),
    (("file ", ":"), ("], line ", "cell in", "["), (".py in ",), ("> in ",), (") in ",)),
    _needed(_WARNING.pattern) or ())


@lru_cache(maxsize=8)
def _units(sigs: Tuple[Signature, ...]) -> Tuple[_Unit, ...]:
    out = []
    for s, sig in enumerate(sigs):
        for kind, group in (("c", sig.context), ("p", sig.patterns), ("w", sig.weak)):
            for i, p in enumerate(group):
                out.append(_Unit(s, kind, i, _needed(p.pattern, p.flags)))
    return tuple(out)


class Scan:
    """The matcher over a stream: `feed` text in pieces of any size (a decoded file read block by block),
    then `causes()`. Memory is bounded by BLOCK, whatever the log's size; `sample()` keeps the head and tail
    that loghost.read looks at."""

    def __init__(self, catalogue: Optional[Sequence[Signature]] = None):
        self.sigs = tuple(catalogue) if catalogue is not None else _default_catalogue()
        self.units = _units(self.sigs)
        self.all_units = frozenset(range(len(self.units)))
        self.plans: Dict[frozenset, list] = {}
        self.json_rows: Dict[int, List[str]] = {}  # this block's JSON lines: row -> the lines of its strings
        # Best hit per id: (weak?, pattern index, line number, evidence). A stronger pattern anywhere beats a
        # weaker one earlier; for the same pattern the first occurrence wins (later ones are usually repeats
        # from parallel compile workers).
        self.best: Dict[str, Tuple[bool, int, int, str]] = {}
        self.context_seen: set = set()
        self.mode: Optional[str] = None  # "py" (frame body deeper than `depth`), "ipy", "warn"
        self.depth = 0
        self.last: Optional[Tuple[int, str]] = None  # the last source line of the open frame
        self.lines_done = 0
        self.pending: List[str] = []  # text after the last newline fed
        self.pending_len = 0
        self.started = False  # a leading byte-order mark is dropped
        self.head = ""  # the first characters (loghost.read looks at the head and the tail)
        self.tail: List[str] = []
        self.tail_len = 0
        self.total = 0

    # -- input --------------------------------------------------------------------------------------------

    def feed(self, text: str) -> "Scan":
        if not text:
            return self
        self._keep_sample(text)
        if not self.started:
            text = text.lstrip("\ufeff")
            if not text:
                return self
            self.started = True
        cut = text.rfind("\n")
        if cut < 0:
            self._pend(text)
            return self
        block = "".join(self.pending) + text[:cut] if self.pending else text[:cut]
        self.pending, self.pending_len = [], 0
        self._pend(text[cut + 1:])
        self._blocks(block)
        return self

    def _pend(self, text: str) -> None:
        room = LONG_LINE - self.pending_len
        if room > 0 and text:
            self.pending.append(text[:room])
            self.pending_len += min(len(text), room)

    def _keep_sample(self, text: str) -> None:
        self.total += len(text)
        if len(self.head) < MAX_SCAN_SAMPLE:
            self.head += text[:MAX_SCAN_SAMPLE - len(self.head)]
        self.tail.append(text[-MAX_SCAN_SAMPLE:])
        self.tail_len += min(len(text), MAX_SCAN_SAMPLE)
        while self.tail_len - len(self.tail[0]) >= MAX_SCAN_SAMPLE:
            self.tail_len -= len(self.tail.pop(0))

    def sample(self) -> str:
        """The text loghost.read needs: all of it when short, else its head and tail."""
        tail = "".join(self.tail)[-MAX_SCAN_SAMPLE:]
        if self.total <= 2 * MAX_SCAN_SAMPLE:
            return self.head + tail[len(tail) - (self.total - len(self.head)):] if self.total > len(self.head) \
                else self.head
        return self.head + "\n" + tail

    def _blocks(self, text: str) -> None:
        """Complete lines (without the final newline; "" is one empty line): in blocks of about BLOCK characters
        cut at newlines."""
        i = 0
        while True:
            j = text.find("\n", i + BLOCK) if len(text) - i > BLOCK else -1
            j = len(text) if j < 0 else j
            self._block(text[i:j], at_newline=True)
            if j >= len(text):
                return
            i = j + 1

    # -- a block of lines ---------------------------------------------------------------------------------

    def _block(self, text: str, at_newline: bool) -> None:
        """Lines, counted as the plain matcher counts them (a lone "\\r" ends a line too); `at_newline`: the
        text was cut before a newline, so a "\\r" it ends with is the first half of that line end."""
        text = strip_ansi(text)
        if at_newline and text.endswith("\r"):
            text = text[:-1]
        text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
        lines = [ln[:LONG_LINE] for ln in text.split("\n")] if len(text) > LONG_LINE else text.split("\n")
        hot = self._hot(text, lines)
        base = self.lines_done
        self.lines_done += len(lines)
        order = sorted(hot)
        k, i = 0, 0
        while True:
            if self.mode is None:  # outside a frame only hot lines can change anything
                while k < len(order) and order[k] < i:
                    k += 1
                if k == len(order):
                    break
                i = order[k]
            if i >= len(lines):
                break
            self._line(base + i + 1, lines[i], hot.get(i, frozenset()), self.json_rows.get(i))
            i += 1

    def _hot(self, text: str, lines: List[str]) -> Dict[int, frozenset]:
        """Line index -> the units that may match it (all of them for a JSON line) for the lines worth
        processing: those holding some active unit's literals or a frame header's."""
        from bisect import bisect_left

        self.json_rows = {}
        text = text.replace("\\", "/") if "\\" in text else text
        # ASCII literals are looked for in the UTF-8 bytes with ASCII lowered: only four other characters match
        # an ASCII letter under re.IGNORECASE (İ ı K ſ), spelled as theirs first
        plain = _ODD_LETTERS.sub(lambda m: _ODD_TO_ASCII[m.group(0)], text) if not text.isascii() else text
        folded = plain.encode("utf-8", "surrogatepass").lower()
        rows = folded.split(b"\n")
        words = set(folded.translate(_WORD_BYTES).split())  # the block's words: an anchor's words gate its search
        blob = b" ".join(words)
        hot: Dict[int, set] = {}
        anchors: Dict[bytes, List[Tuple[int, Tuple[bytes, ...]]]] = {}
        wide: Dict[str, List[Tuple[int, Tuple[str, ...]]]] = {}  # alternatives with other literals: as str
        for u, unit in enumerate(self.units):
            if not self._active(unit):
                continue
            if unit.dnf is None:  # no literal is certain: every line, against everything
                for i, line in enumerate(lines):
                    inner = _json_lines(line) if _json_shaped(line) else None
                    if inner is not None:
                        self.json_rows[i] = inner
                return {i: self.all_units for i in range(len(lines))}
            for alt in unit.dnf:
                _anchor_of(alt, u, anchors, wide)
        for kind, dnf in enumerate(_STATE_UNITS):
            for alt in dnf:
                _anchor_of(alt, -1 - kind, anchors, wide)  # a negative unit: which state regex (-3: a warning)
        ends = _ends(rows)
        _find_all(folded, rows, ends, anchors, hot, lambda a: _gate_ok(_GATES[a], words, blob))
        if wide and not text.isascii():
            # other literals: in the case-folded text, where a variant of their first cased letter is there
            todo = {a: users for a, users in wide.items() if any(v in text for v in _VARIANTS[a])}
            if todo:
                folded_str = _fold(text)
                rows_str = folded_str.split("\n")
                _find_all(folded_str, rows_str, _ends(rows_str), todo, hot, lambda a: True)
        out: Dict[int, frozenset] = {}
        pos = folded.find(b"{")
        while pos >= 0:  # a JSON line: its strings are unpacked (escapes and all), and their literals count
            idx = bisect_left(ends, pos)
            inner = _json_lines(lines[idx]) if _json_shaped(lines[idx]) else None
            if inner is not None:
                self.json_rows[idx] = inner
                out[idx] = self._units_in(_fold("\n".join(inner).replace("\\", "/")))
            nxt = folded.find(b"\n", pos)
            pos = folded.find(b"{", nxt) if nxt >= 0 else -1
        for i, v in hot.items():
            # A warning header (`x.py:3: UserWarning: ...`) matters only by the line after it, which it may make
            # source: when that line is not worth processing either, neither is the header.
            if i in out or (v == _WARN_ONLY and i + 1 not in hot and i + 1 not in out):
                continue
            out[i] = frozenset(u for u in v if u >= 0)
        return out

    def _units_in(self, folded: str) -> frozenset:
        """The active units whose literals are all in this folded text."""
        return frozenset(u for u, unit in enumerate(self.units) if self._active(unit) and unit.dnf is not None
                         and any(all(x in folded for x in alt) for alt in unit.dnf))

    def _active(self, unit: _Unit) -> bool:
        sig_id = self.sigs[unit.sig].id
        if unit.kind == "c":
            return sig_id not in self.context_seen
        best = self.best.get(sig_id)
        return best is None or (unit.kind == "w", unit.index) < best[:2]

    # -- one line: the traceback state, then the matching ---------------------------------------------------

    def _line(self, n: int, raw: str, units: frozenset, inner: Optional[List[str]] = None) -> None:
        """One line of the log (`inner`: the lines of its JSON strings, when it is a JSON line)."""
        for one in (inner if inner is not None else [raw]):
            line = _strip_prefixes(one[:MAX_LINE]).rstrip()
            mode = self.mode
            if mode and not line.strip():
                continue  # blank lines inside a frame (copy-paste artefacts) keep the frame open
            if mode == "py" and _indent(line) > self.depth:
                if line.strip(" ^~"):  # not the carets Python 3.11+ draws under the failing expression
                    self.last = (n, line)
                continue
            if mode == "ipy" and _IPY_CODE.match(line):
                self.last = (n, line)
                continue
            if mode == "warn":
                self.mode = None
                if _indent(line) > 0:
                    continue
            self.mode, self.last = None, None
            m = _PY_FRAME.match(line)
            if m:
                self.mode, self.depth = "py", len(m.group(1))
                self._match(n, line, False, units)
                continue
            if _IPY_FRAME.match(line):
                self.mode = "ipy"
                self._match(n, line, False, units)
                continue
            if _RICH_BOX.match(line) or _SOURCE.match(line):
                continue
            if _WARNING.search(line):
                self.mode = "warn"
            self._match(n, line, True, units)

    def _match(self, n: int, line: str, is_evidence: bool, units: frozenset) -> None:
        if not units:
            return
        probe = line.replace("\\", "/")  # Windows paths and Python's escaped reprs of them
        for sig, contexts, keyed in self._plan(units):
            if contexts and sig.id not in self.context_seen and any(p.search(probe) for p in contexts):
                self.context_seen.add(sig.id)
            if not is_evidence:
                continue
            for key, pattern in keyed:
                if sig.id in self.best and self.best[sig.id][:2] <= key:
                    break  # an equal or stronger hit is already recorded
                m = pattern.search(probe)
                if m:
                    self.best[sig.id] = (key[0], key[1], n, _evidence(line, m))
                    break

    def _plan(self, units: frozenset) -> list:
        """The units as (signature, its context regexes, its ((weak?, index), regex) strongest first), in
        catalogue order; one plan per set of units (lines share them)."""
        plan = self.plans.get(units)
        if plan is None:
            by_sig: Dict[int, List[_Unit]] = {}
            for u in sorted(units):
                by_sig.setdefault(self.units[u].sig, []).append(self.units[u])
            plan = []
            for s in sorted(by_sig):
                sig, mine = self.sigs[s], by_sig[s]
                contexts = [sig.context[x.index] for x in mine if x.kind == "c"]
                keyed = sorted((((x.kind == "w"), x.index), (sig.weak if x.kind == "w" else sig.patterns)[x.index])
                               for x in mine if x.kind != "c")
                plan.append((sig, contexts, keyed))
            if len(self.plans) < 4096:
                self.plans[units] = plan
        return plan

    # -- the end ------------------------------------------------------------------------------------------

    def causes(self) -> List[Cause]:
        """The causes named by what was fed, most likely first, one per cause id; `[UNKNOWN_CAUSE]` when none."""
        last_line = "".join(self.pending)
        self.pending, self.pending_len = [], 0
        self._block(last_line, at_newline=False)  # the text after the last newline is a line, even an empty one
        if self.mode in ("py", "ipy") and self.last is not None:
            # the paste ends inside the last frame: its raising line counts
            self._match(self.last[0], self.last[1], True, self.all_units)
            self.mode, self.last = None, None
        causes = []
        for sig in self.sigs:
            hit = self.best.get(sig.id)
            if hit is None:
                continue
            weak, _, n, evidence = hit
            has_context = sig.id in self.context_seen
            if weak and not has_context:
                continue
            score = sig.weight + (CONTEXT_BONUS if has_context else 0.0) - (WEAK_PENALTY if weak else 0.0)
            causes.append(Cause(sig.id, sig.title, evidence, n, sig.needs, sig.advice, score, sig.platform_advice))
        causes.sort(key=lambda c: (-c.score, c.line))
        return causes or [UNKNOWN_CAUSE]


MAX_SCAN_SAMPLE = 200_000  # = loghost.MAX_SCAN (loghost imports this module lazily)


def _json_shaped(line: str) -> bool:
    s = line.strip()
    return s.startswith("{") and s.endswith("}")


def diagnose(text: str, catalogue: Optional[Sequence[Signature]] = None) -> List[Cause]:
    """The causes named by `text`, most likely first, one per cause id; `[UNKNOWN_CAUSE]` when none match."""
    return Scan(catalogue).feed(text).causes()


def scan_file(stream, catalogue: Optional[Sequence[Signature]] = None, size: int = BLOCK) -> Scan:
    """A Scan fed from a binary stream, decoded as UTF-8 (undecodable bytes replaced), block by block."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    scan = Scan(catalogue)
    while True:
        data = stream.read(size)
        if not data:
            break
        scan.feed(decoder.decode(data))
    scan.feed(decoder.decode(b"", final=True))
    return scan


def fix_steps(cause: Cause, plan) -> list:
    """The plan's todo steps that fix this cause on this host, with the steps they wait for (empty: nothing in
    the plan; see the advice)."""
    return plan.fixing(cause.needs) if plan is not None and cause.needs else []
