"""The C++ compiler Inductor will use, and whether it builds what Inductor builds."""
from __future__ import annotations

import json
import os
import re
from typing import Optional, Tuple

from torch_setup.facts.model import CompilerFacts
from torch_setup.host.system import System

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
    if re.search(r"(?:^|[\s/-])(g\+\+|gcc|c\+\+)(?=$|[\s(-])", first) or "Free Software Foundation" in text:
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


CACHE = "~/.cache/torch-setup/compiler-check.json"


def _cache_key(system: System, path: str, include_dir: Optional[str], argv) -> Optional[str]:
    """What the build test's answer depends on: the compiler binary, the headers, the flags. None: uncacheable."""
    stamps = [system.mtime(system.realpath(path))]
    if include_dir:
        stamps.append(system.mtime(os.path.join(include_dir, "Python.h")))
    if stamps[0] is None:
        return None
    return json.dumps([argv, stamps])


def probe(system: System, system_name: str, include_dir: Optional[str], has_headers: bool) -> CompilerFacts:
    cxx = inductor_cxx(system.env, system_name)
    cc = system.env.get("CC") or system.which("gcc") or system.which("clang")
    path = system.which(cxx)
    if not path:
        return CompilerFacts(cxx=cxx, cc=cc, error=f"{cxx}: not found")
    ver = system.run([path, "--version"], timeout=30)
    family, version = parse_version(ver.stdout)
    argv = [path, "-x", "c++", "-std=c++20", "-fopenmp", "-shared", "-fPIC"]
    if system_name == "Darwin":
        argv[argv.index("-fopenmp")] = "-Xclang"
        argv.insert(argv.index("-Xclang") + 1, "-fopenmp")
    if include_dir:
        argv.append(f"-I{include_dir}")
    argv += ["-", "-o", "/dev/null"]
    # The build takes 0.3-1 s; its answer is kept until the compiler or Python.h changes (doctor, detect and
    # a second install stay fast). Only successes are kept: a failure is retried every time.
    key = _cache_key(system, path, include_dir, argv + [ver.stdout])
    home = system.env.get("HOME") or "/"
    cache_file = os.path.join(home, CACHE[2:])
    try:
        cache = json.loads(system.read_text(cache_file) or "{}")
    except ValueError:
        cache = {}
    if key and cache.get("key") == key:
        ok, output = True, ""
    else:
        res = system.run(argv, input=TEST_SOURCE, timeout=120)
        ok, output = res.ok, res.output
        if ok and key:
            system.write_text(cache_file, json.dumps({"key": key}))
    error = first_error_lines(output) if not ok else (None if has_headers else f"Python.h: not in {include_dir}")
    return CompilerFacts(cxx=cxx, path=path, family=family, version=version, toolchain_ok=ok,
                         ok=ok and has_headers, error=error, cc=cc)
