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
from typing import Dict, Iterator, List, Optional, Pattern, Sequence, Tuple, Union

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

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
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


# --- matching --------------------------------------------------------------------------------------------


def _evidence(line: str, m: "re.Match[str]") -> str:
    s = line.strip()
    if len(s) <= MAX_EVIDENCE:
        return s
    off = len(line) - len(line.lstrip())
    start = max(0, m.start() - off - 150)
    end = min(len(s), max(m.end() - off + 150, start + MAX_EVIDENCE // 2))
    return ("…" if start else "") + s[start:end] + ("…" if end < len(s) else "")


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


def fix_steps(cause: Cause, plan) -> list:
    """The plan's todo steps that fix this cause on this host, with the steps they wait for (empty: nothing in
    the plan; see the advice)."""
    return plan.fixing(cause.needs) if plan is not None and cause.needs else []
