"""explain over the whole set of real logs (tests/fixtures/logs): the three rates its issue asks for, measured.

- right first cause: logs named after a cause get that cause first;
- `unknown` where there is no environment cause: the `unknown--*` logs (out of memory, Inductor and Dynamo bugs and
  limits, user errors, caches that are not Inductor's or Triton's) get `unknown` and nothing else;
- fix host right: the fix is for the platform that wrote the log (its `# host:` header): a Windows or macOS log gets
  the log host's advice, never a command of this host (a captured Debian 13 minbase, replayed); a Linux log gets this
  host's plan or its own Linux host's; a log that names no host never gets another OS's commands.

`pytest -s tests/test_explain_hitrate.py` prints the numbers.
"""
from __future__ import annotations

from pathlib import Path

from conftest import read_log
from test_fixhost import LINUX_COMMANDS, explain_here

from torch_setup import fixhost
from torch_setup.explain import UNKNOWN

LOGS = Path(__file__).parent / "fixtures" / "logs"
MIN_LOGS, MIN_UNKNOWN = 120, 20


def _fix_host_right(header_host: str, fh, causes) -> bool:
    """Whether the fix is for the host that wrote the log (as its header says)."""
    commands = [cmd for c in causes for cmd in c["fix_commands"]]
    linux_commands = [c for c in commands if c and c[0] in LINUX_COMMANDS]
    if header_host in ("windows", "macos"):  # never this Linux host's commands; the log host's advice
        return not linux_commands and (fh.kind != fixhost.THIS or not commands)
    if header_host == "linux":  # this host's plan, or a Linux log host's plan or advice
        return fh.platform in ("this", "linux", "jetson", "wsl", "unknown")
    return fh.platform != "windows" and fh.platform != "macos" or not commands


def measure():
    rows = []
    for path in sorted(LOGS.glob("*.log")):
        text, header = read_log(path)
        expected = path.name.split("--")[0]
        causes, fh, _, _ = explain_here(text)
        rows.append((path.name, expected, causes[0]["id"], len(causes), _fix_host_right(header["host"], fh, causes)))
    return rows


def test_hit_rates_over_every_real_log():
    rows = measure()
    known = [r for r in rows if r[1] != UNKNOWN]
    unknown = [r for r in rows if r[1] == UNKNOWN]
    cause_right = [r for r in known if r[2] == r[1]]
    unknown_right = [r for r in unknown if r[2] == UNKNOWN and r[3] == 1]
    host_right = [r for r in rows if r[4]]
    print(f"\nexplain over {len(rows)} real logs: right first cause {len(cause_right)}/{len(known)}, "
          f"unknown where no environment cause {len(unknown_right)}/{len(unknown)}, "
          f"fix host right {len(host_right)}/{len(rows)}")
    assert len(rows) >= MIN_LOGS and len(unknown) >= MIN_UNKNOWN, (len(rows), len(unknown))
    assert [r[0] for r in known if r not in cause_right] == []
    assert [r[0] for r in unknown if r not in unknown_right] == []
    assert [r[0] for r in rows if not r[4]] == []


def test_the_set_spans_the_platforms_and_sources_the_issue_names():
    headers = [read_log(p)[1] for p in sorted(LOGS.glob("*.log"))]
    sources = [h.get("source", "") for h in headers]
    public = [s.split()[0] for s in sources if s.startswith("https://")]
    assert len(public) == len(set(public))  # one log per public thread
    text = " ".join(sources).lower()
    for word in ("windows", "macos", "wsl", "conda", "docker", "rocm", "aarch64", "nixos", "debian"):
        assert word in text, word
    assert {h["host"] for h in headers} >= {"windows", "macos", "linux", "unknown"}
