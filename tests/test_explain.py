"""explain: the cause catalogue and the log matcher, driven by real logs in tests/fixtures/logs.

Each log is named `<expected-cause-id>--<shape>.log`. Its first lines are a header the loader strips:
`# source:` (where the log comes from: reproduced here, or the GitHub thread it was copied from) and, except
for `unknown--*` logs, `# evidence:` (text the evidence line must contain). Line numbers are counted after
the header, i.e. in the text a user would paste.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import read_log

from torch_setup.errors import RecipeError
from torch_setup.explain import NEEDS, UNKNOWN, diagnose, load_catalogue

LOGS = Path(__file__).parent / "fixtures" / "logs"



def log_files():
    return sorted(LOGS.glob("*.log"))


@pytest.mark.parametrize("path", log_files(), ids=lambda p: p.name)
def test_log_names_its_cause(path):
    expected = path.name.split("--")[0]
    text, header = read_log(path)
    assert "source" in header or text == "", f"{path.name}: add a '# source:' header"
    causes = diagnose(text)
    first = causes[0]
    assert first.id == expected, f"{path.name}: got {[(c.id, c.evidence[:80]) for c in causes]}"
    assert len({c.id for c in causes}) == len(causes)
    if expected == UNKNOWN:
        assert causes == [first] and first.line == 0 and first.evidence == ""
        return
    assert header.get("evidence"), f"{path.name}: add a '# evidence:' header"
    assert header["evidence"] in first.evidence
    # the line number points at the line the evidence came from
    source_line = re.split(r"\r\n|\r|\n", text)[first.line - 1]
    assert header["evidence"].replace("\\", "/") in source_line.replace("\\", "/")


def test_every_catalogue_id_is_documented_and_every_log_names_a_known_id():
    ids = {s.id for s in load_catalogue()}
    assert UNKNOWN not in ids
    for path in log_files():
        assert path.name.split("--")[0] in ids | {UNKNOWN}, path.name


def test_required_ids_are_in_the_catalogue():
    required = {
        "no-cxx-compiler", "no-c-compiler", "missing-python-headers", "missing-openmp", "duplicate-openmp",
        "compiler-too-old", "unsupported-compiler-flags", "compiler-crash", "broken-toolchain",
        "libcuda-not-found", "missing-cuda-headers", "ptxas-too-old", "gpu-too-old", "triton-missing",
        "python-unsupported", "platform-unsupported", "inductor-cache", "no-venv-module", "externally-managed",
        "no-torch-wheel", "cert-verify-failed", "no-openssl",
    }
    assert required <= {s.id for s in load_catalogue()}


def test_catalogue_rows_are_complete():
    for sig in load_catalogue():
        assert sig.title and sig.advice and sig.source and sig.patterns, sig.id
        assert set(sig.needs) <= set(NEEDS), sig.id


# --- behaviours the fixtures rely on, pinned with the fixtures themselves --------------------------------


def test_source_lines_quoted_in_tracebacks_are_not_evidence():
    # IPython quotes cpp_builder.py's OpenMP help text as source lines; only the real Python.h error counts
    text, _ = read_log(LOGS / "missing-python-headers--ipython-ansi.log")
    assert "OpenMP support not found" in text
    assert "missing-openmp" not in {c.id for c in diagnose(text)}
    # CPython quotes `raise AssertionError("Torch not compiled with CUDA enabled")` one line above the message
    text, _ = read_log(LOGS / "torch-not-cuda--cpu-wheel.log")
    cause = diagnose(text)[0]
    assert cause.evidence == "AssertionError: Torch not compiled with CUDA enabled"


def test_logger_prefixes_and_crlf_are_stripped_from_evidence():
    text, _ = read_log(LOGS / "missing-python-headers--vllm-logger.log")
    assert "\r\n" in text
    cause = diagnose(text)[0]
    assert not cause.evidence.startswith(("(EngineCore", "ERROR"))
    assert "\r" not in cause.evidence


def test_specific_cause_wins_over_the_consequence():
    # pip behind a proxy: the certificate failure comes first, "No matching distribution" is its effect
    text, _ = read_log(LOGS / "cert-verify-failed--pip-proxy.log")
    assert [c.id for c in diagnose(text)][:2] == ["cert-verify-failed", "no-torch-wheel"]


def test_a_missing_openssl_is_not_taken_for_a_missing_compiler():
    # the FileNotFoundError of Inductor's `openssl sha512` looks like the compiler's; it is not a compiler cause
    text, _ = read_log(LOGS / "no-openssl--inductor-2.15-debian13.log")
    causes = diagnose(text)
    assert [c.id for c in causes] == ["no-openssl"] and causes[0].needs == ("openssl",)
    assert not [c.id for c in diagnose(text.replace("'openssl'", "'g++'")) if c.id == "no-openssl"]


def test_weak_patterns_need_context():
    # generic C++ errors ("has not been declared") alone must not be read as an old compiler
    text, _ = read_log(LOGS / "unknown--corrupt-cache-cpp-errors.log")
    assert "has not been declared" in text
    assert diagnose(text)[0].id == UNKNOWN


@pytest.mark.parametrize(
    "line, expected",
    [
        # exact messages from the torch/triton code that raises them [S72][S73], for rows no pasted log was found for
        ("RuntimeError: Torch.compile() is only support MSVC with English language pack,Please reinstall its "
         "language pack to English.", "msvc-non-english"),
        ("RuntimeError: Please use clang-cl, due to torch.compile only support MSVC-like CLI (compiler flags "
         "syntax).", "wrong-compiler-flavour"),
        ("RuntimeError: Intel Compiler error: less than minimal version 2024.2.1.", "wrong-compiler-flavour"),
        ("RuntimeError: torch.compile is not supported on Python < 3.13.3 built with GIL disabled. Please use "
         "Python 3.13.3+.", "python-unsupported"),
        ("RuntimeError: Failed to find C++ compiler. Please specify via CXX environment variable or set "
         "triton.knobs.build.impl.", "no-cxx-compiler"),
        ("Triton cache error: compiled module cuda_utils.so could not be loaded", "inductor-cache"),
        # torch/cuda/__init__.py _check_capability()'s warning and the CUDA runtime's cudaErrorNoKernelImageForDevice
        ("NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
         "installation.", "gpu-arch-unsupported"),
        ("torch.AcceleratorError: CUDA error: no kernel image is available for execution on the device",
         "gpu-arch-unsupported"),
    ],
)
def test_messages_from_source(line, expected):
    assert diagnose(line)[0].id == expected


def test_prefix_shapes():
    msg = "InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')"
    for prefix in [
        "2026-01-01 12:00:00,123 - vllm - ERROR - ",
        "[rank0]: ",
        "E   ",
        "WARNING:root:",
        "(VllmWorker rank=0 pid=71558) ERROR 07-31 08:44:05 [multiproc_executor.py:594] ",
        "\x1b[31mE1129 19:25:28.128000 18028 torch/_dynamo/convert_frame.py:1090] [0/0] \x1b[0m",
    ]:
        cause = diagnose(prefix + msg + "\r\n")[0]
        assert (cause.id, cause.evidence) == ("no-cxx-compiler", msg), prefix


def test_json_log_lines_are_unpacked():
    line = (
        '{"level": "error", "msg": "Traceback (most recent call last):\\n'
        "KeyError: 'getpwuid(): uid not found: 1000'\"}"
    )
    cause = diagnose("starting\n" + line)[0]
    assert (cause.id, cause.line) == ("unknown-uid", 2)


def test_nothing_known_gives_unknown_not_a_guess():
    for text in ["", "\n\n", "hello world", "torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised:\n"
                 "CppCompileError: C++ compile error\n"]:
        assert [c.id for c in diagnose(text)] == [UNKNOWN]


# --- catalogue validation ----------------------------------------------------------------------------------

GOOD = """
[[cause]]
id = "thing"
title = "A thing"
patterns = ['thing failed']
needs = ["cxx"]
advice = "Fix it."
source = "here"
weight = 10
"""


def test_custom_catalogue(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(GOOD)
    sigs = load_catalogue(p)
    assert [c.id for c in diagnose("the thing FAILED\n", sigs)] == ["thing"]


@pytest.mark.parametrize(
    "change, message",
    [
        (("weight = 10", "weight = 500"), "weight"),
        (('needs = ["cxx"]', 'needs = ["gcc"]'), "needs"),
        (("patterns = ['thing failed']", "patterns = ['(']"), "bad regex"),
        (("patterns = ['thing failed']", "patterns = []"), "patterns"),
        (('id = "thing"', 'id = "unknown"'), "id"),
        (("weight = 10", "weight = 10\npattern = ['x']"), "unknown keys"),
        (("weight = 10", "weight = 10\nweak = ['x']"), "context"),
    ],
)
def test_bad_catalogue_names_file_and_entry(tmp_path, change, message):
    p = tmp_path / "c.toml"
    p.write_text(GOOD.replace(*change))
    with pytest.raises(RecipeError) as e:
        load_catalogue(p)
    assert str(p) in str(e.value) and "cause #1" in str(e.value) and message in str(e.value)


def test_bad_catalogue_file(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(GOOD + GOOD)
    with pytest.raises(RecipeError, match="duplicate id"):
        load_catalogue(p)
    p.write_text("[[cause]\n")
    with pytest.raises(RecipeError, match=re.escape(str(p))):
        load_catalogue(p)
    with pytest.raises(RecipeError):
        load_catalogue(tmp_path / "missing.toml")


def test_context_patterns_match_in_traceback_frame_headers():
    # the errno message is weak; the only Inductor context is the frame header of cache_dir_utils.py
    text, _ = read_log(LOGS / "cache-dir-unwritable--inductor-read-only.log")
    assert "cache_dir_utils" not in "\n".join(ln for ln in text.splitlines() if not ln.startswith("  File "))
    assert diagnose(text)[0].id == "cache-dir-unwritable"
    # without that frame header nothing names the cause
    bare = "\n".join(ln for ln in text.splitlines() if "cache_dir_utils" not in ln)
    assert diagnose(bare)[0].id == UNKNOWN


def test_frame_headers_are_never_evidence():
    line = '  File "/x/torch/_inductor/cpp_builder.py", line 3, in f  # No working C++ compiler found in'
    assert diagnose(line + "\nValueError: x\n")[0].id == UNKNOWN


def test_the_raising_line_of_the_last_frame_counts_when_the_paste_ends_in_it():
    text, header = read_log(LOGS / "no-cxx-compiler--windows-paste-ends-in-raise.log")
    cause = diagnose(text)[0]
    assert cause.id == "no-cxx-compiler" and header["evidence"] in cause.evidence
    # the same frame followed by its message: the quoted source is not evidence, the message is
    followed = text.rstrip() + "\nValueError: something else\n"
    assert diagnose(followed)[0].id == UNKNOWN


def test_frame_header_context_in_a_real_public_log():
    # ComfyUI on Windows: the UnicodeDecodeError is weak evidence; Inductor's cpp_builder.py shows only in the frame
    # headers (the quoted source never names it), and that is what makes it msvc-non-english
    text, header = read_log(LOGS / "msvc-non-english--comfyui-frame-headers.log")
    body = [ln for ln in text.splitlines() if not ln.lstrip().startswith("File ")]
    assert "cpp_builder" not in "\n".join(body)
    cause = diagnose(text)[0]
    assert cause.id == "msvc-non-english" and header["evidence"] in cause.evidence
    assert diagnose("\n".join(body))[0].id == UNKNOWN
