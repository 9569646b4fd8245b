"""explain streams: the block-wise matcher with its literal prefilter (explain.Scan) names the same causes, with
the same evidence, line and score, as the plain matcher that ran every regex on every line
(tests/explain_reference.py), on every real log, on those logs cut into pieces anywhere, and on random mixes of
their lines with logger prefixes, CRLF, ANSI colours and JSON wrapping; its memory stays bounded.
"""
from __future__ import annotations

import io
import json
import random
import re
import tracemalloc
from pathlib import Path

import pytest

import explain_reference as ref
from conftest import read_log
from torch_setup import explain as ex

LOGS = Path(__file__).parent / "fixtures" / "logs"
PATHS = sorted(LOGS.glob("*.log"))


def summary(causes):
    return [(c.id, c.evidence, c.line, c.score) for c in causes]


def same(text: str) -> None:
    assert summary(ex.diagnose(text)) == summary(ref.diagnose(text))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_every_real_log_gets_the_plain_matchers_result(path):
    text, _ = read_log(path)
    same(text)
    # a file read block by block, the blocks cut in the middle of lines and of UTF-8 characters
    raw = text.encode("utf-8")
    for size in (1, 61, 4096):
        if size == 1 and len(raw) > 3000:
            continue
        scan = ex.scan_file(io.BytesIO(raw), size=size)
        assert summary(scan.causes()) == summary(ref.diagnose(text)), size


def _lines_of_all_logs():
    out = []
    for p in PATHS:
        text, _ = read_log(p)
        out.extend(re.split(r"\r\n|\r|\n", text))
    return out


PREFIXES = ["", "", "", "[rank0]: ", "E   ", "WARNING:root:", "2026-01-01 12:00:00,123 - vllm - ERROR - ",
            "(VllmWorker rank=0 pid=71558) ERROR 07-31 08:44:05 [multiproc_executor.py:594] ", "diffusers> ",
            "\x1b[31m", "W1129 19:25:28.128000 18028 torch/_inductor/utils.py:3090] [0/0] "]


@pytest.mark.parametrize("seed", range(24))
def test_random_mixes_of_real_log_lines(seed):
    rnd = random.Random(seed)
    lines = _lines_of_all_logs()
    picked = []
    for _ in range(rnd.randrange(5, 400)):
        if rnd.random() < 0.3:  # a run of consecutive lines keeps tracebacks and their frames together
            start = rnd.randrange(len(lines))
            run = lines[start:start + rnd.randrange(2, 40)]
        else:
            run = [rnd.choice(lines)]
        prefix = rnd.choice(PREFIXES)
        run = [prefix + ln + ("\x1b[0m" if prefix == "\x1b[31m" else "") for ln in run]
        if rnd.random() < 0.05:  # a structured logger's line: the whole run in one JSON string
            run = [json.dumps({"level": "error", "msg": "\n".join(run)})]
        picked.extend(run)
    sep = rnd.choice(["\n", "\r\n", "\r"])
    text = sep.join(picked) + rnd.choice(["", sep])
    same(text)
    pieces = ex.Scan()
    i = 0
    while i < len(text):  # fed in pieces of any size
        j = i + rnd.randrange(1, 5000)
        pieces.feed(text[i:j])
        i = j
    assert summary(pieces.causes()) == summary(ref.diagnose(text))


def test_the_characters_re_equates_with_ascii_letters_still_match():
    # re.IGNORECASE takes the dotted and dotless i, the Kelvin sign and the long s for i, k and s
    for text in ["RuntimeError: Torch not compıled with CUDA enabled",
                 "RuntimeError: TORCH NOT COMPİLED WİTH CUDA ENABLED",
                 "ERROR: Could not find a version that satisfies the requirement torch (from versions: none)"
                 .replace("k", "\u212a").replace("s", "ſ"),
                 "x.cpp:1:1: ВНУТРЕННЯЯ ОШИБКА КОМПИЛЯТОРА: Segmentation fault"]:
        assert ex.diagnose(text)[0].id != ex.UNKNOWN, text
        same(text)


def test_every_catalogue_regex_is_prefiltered_by_literals_its_matches_hold():
    """Each regex is reduced to literals (none is left to run on every line), and every line of the real logs
    that a regex matches holds one alternative of its literals: the prefilter never drops a match."""
    units = ex._units(ex._default_catalogue())
    assert units and all(u.dnf for u in units)
    sigs = ex._default_catalogue()
    probes = [ex._strip_prefixes(ln[:ex.MAX_LINE]).rstrip().replace("\\", "/") for ln in _lines_of_all_logs()]
    checked = 0
    for u in units:
        sig = sigs[u.sig]
        regex = {"c": sig.context, "p": sig.patterns, "w": sig.weak}[u.kind][u.index]
        for probe in probes:
            if regex.search(probe):
                folded = ex._fold(probe)
                assert any(all(lit in folded for lit in alt) for alt in u.dnf), (sig.id, regex.pattern, probe)
                checked += 1
    assert checked > 100


@pytest.mark.parametrize("pattern, text", [
    (r"-l:?(lib)?cuda\b", "ld: cannot find -l:libcuda"), (r"(so|pyd): (file too short|bad)", "x.pyd: bad"),
    (r"a\d*b", "a123b"), (r"(?:x|y)z+", "yzzz"), (r"[:：] ok", "：ok"), (r"one(two)?three", "onethree"),
])
def test_literals_of_a_regex_hold_in_its_matches(pattern, text):
    dnf = ex._needed(pattern, re.IGNORECASE)
    m = re.search(pattern, text, re.IGNORECASE)
    assert dnf is None or m is None or any(all(lit in ex._fold(m.group(0)) for lit in alt) for alt in dnf)


class Generated(io.RawIOBase):
    """`size` bytes of log lines, made as they are read, then a real cause: nothing of it is ever whole."""

    def __init__(self, size: int, tail: bytes):
        self.left, self.tail, self.rnd = size, tail, random.Random(1)

    def readable(self):
        return True

    def read(self, n=-1):
        if self.left <= 0:
            out, self.tail = self.tail, b""
            return out
        lines = []
        got = 0
        while got < min(n, self.left):
            ln = (f"INFO 11-04 18:36:{self.rnd.randrange(60):02d} [core.py:779] step {self.rnd.randrange(10**6)} "
                  f"loss={self.rnd.random():.4f} █ throughput {self.rnd.random():.1f} tokens/s\n").encode()
            lines.append(ln)
            got += len(ln)
        self.left -= got
        return b"".join(lines)


def _peak(size: int, tail: str) -> int:
    tracemalloc.start()
    try:
        scan = ex.scan_file(Generated(size, tail.encode()), size=ex.BLOCK)
        causes = scan.causes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert causes[0].id == "missing-python-headers"
    assert len(scan.sample()) <= 2 * ex.MAX_SCAN_SAMPLE + 1
    return peak


def test_memory_stays_bounded_whatever_the_logs_size(monkeypatch):
    monkeypatch.setattr(ex, "BLOCK", 1 << 16)  # 64 KB blocks: the same code, a smaller bound, a faster test
    monkeypatch.setattr(ex, "MAX_SCAN_SAMPLE", 1 << 14)
    tail, _ = read_log(LOGS / "missing-python-headers--inductor-2.13-debian.log")
    small, big = _peak(300_000, tail), _peak(1_500_000, tail)
    # five times the log, no more memory (and less than the log itself: 3 MB as str)
    assert big < 2_500_000 and big < small * 1.3, (small, big)


def test_the_sample_is_the_whole_text_when_short_else_its_head_and_tail():
    from torch_setup import loghost

    assert ex.MAX_SCAN_SAMPLE == loghost.MAX_SCAN
    short = "a\r\nb" * 10
    assert ex.Scan().feed(short[:5]).feed(short[5:]).sample() == short
    long = "".join(f"{i:08d}\n" for i in range(50_000))
    scan = ex.Scan()
    for i in range(0, len(long), 7777):
        scan.feed(long[i:i + 7777])
    assert scan.sample() == long[:ex.MAX_SCAN_SAMPLE] + "\n" + long[-ex.MAX_SCAN_SAMPLE:]


def test_the_source_line_under_a_warning_is_not_evidence_when_streamed():
    # the warning header makes the indented line after it source, however far apart the literals are
    text = ("step 1\n" * 5000 + "/x/site-packages/foo/config.py:12: UserWarning: cxx is deprecated\n"
            "  hint = 'No working C++ compiler found in'\n" + "step 2\n" * 5000)
    assert ex.diagnose(text)[0].id == ex.UNKNOWN
    same(text)
    assert ex.diagnose(text.replace("  hint", "hint"))[0].id == "no-cxx-compiler"  # not indented: a message


def test_a_catalogue_regex_without_literals_is_matched_on_every_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[[cause]]\nid = "digits"\ntitle = "t"\npatterns = [\'^\\d+$\']\nneeds = []\nadvice = "a"\n'
                 'source = "s"\nweight = 10\n')
    sigs = ex.load_catalogue(p)
    assert ex._units(sigs)[0].dnf is None
    text = 'x\n{"msg": "a\\n12345"}\n'  # in a JSON line's string, too
    assert [(c.id, c.line) for c in ex.diagnose(text, sigs)] == [("digits", 2)]
    assert summary(ex.diagnose(text, sigs)) == summary(ref.diagnose(text, sigs))
