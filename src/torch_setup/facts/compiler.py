"""The C++ compiler Inductor will use, and whether it builds what Inductor builds."""
from __future__ import annotations

import re
from typing import Optional, Tuple

from torch_setup.facts.model import CompilerFacts
from torch_setup.system import System

# What Inductor's kernels need: C++20 (torch >= 2.12), OpenMP, and Python.h (every CPU kernel is a Python
# extension). Python.h is guarded so one build tells the toolchain and the headers apart.
TEST_SOURCE = """\
#if __has_include(<Python.h>)
#include <Python.h>
#endif
#include <omp.h>
#include <span>
int torch_setup_probe(int n) {
  int s = 0;
#pragma omp parallel for reduction(+ : s)
  for (int i = 0; i < n; i++) s += i;
  return s + omp_get_max_threads();
}
"""


def inductor_cxx(env, system_name: str) -> str:
    """torch/_inductor/config.py: cpp.cxx = (None, os.environ.get("CXX", "clang++" if darwin else "g++"))."""
    return env.get("CXX") or ("clang++" if system_name == "Darwin" else "g++")


def parse_version(text: str) -> Tuple[Optional[str], Optional[str]]:
    """(family, version) from `$CXX --version`."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "Apple clang" in text or "Apple LLVM" in text:
        m = re.search(r"version (\d+(?:\.\d+)+)", text)
        return "apple-clang", m and m.group(1)
    if "clang" in first.lower():
        m = re.search(r"clang version (\d+(?:\.\d+)+)", text)
        return "clang", m and m.group(1)
    if re.search(r"\b(g\+\+|gcc|c\+\+)\b", first) or "Free Software Foundation" in text:
        # "g++ (Debian 14.2.0-19) 14.2.0", "g++ (GCC) 11.5.0 20240719 (Red Hat 11.5.0-5)"
        m = re.search(r"\)\s+(\d+(?:\.\d+)+)", first) or re.search(r"(\d+\.\d+(?:\.\d+)?)", first)
        return "gcc", m and m.group(1)
    if "icpx" in first or "Intel" in first:
        m = re.search(r"(\d{4}\.\d+(?:\.\d+)*)", first)
        return "intel", m and m.group(1)
    return None, None


def first_error_lines(output: str, limit: int = 6) -> str:
    lines = [ln for ln in output.splitlines() if "error" in ln.lower() or "fatal" in ln.lower()]
    return "\n".join((lines or output.strip().splitlines())[:limit])


def probe(system: System, system_name: str, include_dir: Optional[str], has_headers: bool) -> CompilerFacts:
    cxx = inductor_cxx(system.env, system_name)
    facts = CompilerFacts(cxx=cxx, cc=system.env.get("CC") or system.which("gcc") or system.which("clang"))
    facts.path = system.which(cxx)
    if not facts.path:
        facts.error = f"{cxx}: not found"
        return facts
    ver = system.run([facts.path, "--version"], timeout=30)
    facts.family, facts.version = parse_version(ver.stdout)
    argv = [facts.path, "-x", "c++", "-std=c++20", "-fopenmp", "-shared", "-fPIC"]
    if system_name == "Darwin":
        argv[argv.index("-fopenmp")] = "-Xclang"
        argv.insert(argv.index("-Xclang") + 1, "-fopenmp")
    if include_dir:
        argv.append(f"-I{include_dir}")
    argv += ["-", "-o", "/dev/null"]
    res = system.run(argv, input=TEST_SOURCE, timeout=120)
    facts.toolchain_ok = res.ok
    facts.ok = res.ok and has_headers
    if not res.ok:
        facts.error = first_error_lines(res.output)
    elif not has_headers:
        facts.error = f"Python.h: not in {include_dir}"
    return facts
