"""The probe itself, run for real by every interpreter this host has (pyenv's 3.6 to 3.13, Debian's python3): its
output is JSON, byte for byte what json.dumps would print, and its platform facts are what `platform` says."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from torch_setup.facts import probe_python
from torch_setup.facts.python import PROBE, parse_libc

PYTHONS = sorted({str(p) for p in Path("/root/.pyenv/versions").glob("3.*/bin/python3")} |
                 {p for p in ("/usr/bin/python3", sys.executable) if Path(p).exists()})
PLATFORM = ("import json, os, platform; print(json.dumps([platform.machine(), platform.system(), "
            "platform.mac_ver()[0], list(platform.libc_ver()), os.confstr('CS_GNU_LIBC_VERSION')]))")


@pytest.mark.parametrize("python", PYTHONS)
def test_the_probe_prints_json_and_platform_facts_as_platform_gives_them(python):
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True).stdout
    raw = json.loads(out)
    assert out == json.dumps(raw) + "\n"  # what json.dumps would have printed, without importing json
    machine, system, mac_ver, libc, glibc = json.loads(
        subprocess.run([python, "-c", PLATFORM], capture_output=True, text=True, timeout=60, check=True).stdout)
    assert (raw["machine"], raw["system"], raw["mac_ver"], raw["gnu_libc_version"]) == (machine, system, mac_ver, glibc)
    # the libc fact is the same (3.6 and 3.7's libc_ver read the newest glibc symbol the binary links, not glibc's
    # version; the probe reports the running glibc where platform would not be needed)
    assert parse_libc(raw["gnu_libc_version"], raw["libc"], raw["system"]) == parse_libc(glibc, libc, system)


def test_the_probe_imports_neither_json_nor_platform_on_glibc():
    code = PROBE + "\nimport sys; sys.stderr.write(' '.join(m for m in ('json', 'platform', 're') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert res.stderr == ""


@pytest.mark.parametrize("value", [
    {"a": None, "b": True, "c": False, "d": 3, "e": [1, "x"], "f": {"g": []}},
    {"path": "C:\\Python313\\python.exe", "text": 'say "hi"\n\ttab \x01', "unicode": "Größe 日本 \u2028"},
])
def test_dumps_is_json_dumps(value):
    assert probe_python.dumps(value) == json.dumps(value)
