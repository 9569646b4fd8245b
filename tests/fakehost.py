"""A small real host for the fault tests: a fake `uv` on PATH whose `uv venv DIR` makes a real venv and whose
`uv pip install` is a long step with a child of its own (as uv's downloads are), a wheelhouse holding one torch
wheel name for this interpreter's tags, and a clean environment (no pip configuration, a temporary HOME). The CLI
runs as a real process, as an operator runs it."""
from __future__ import annotations

import pytest
import time
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from packaging import tags

# The interpreter the test venv was made from: not a venv, so --venv makes one.
BASE_PYTHON = getattr(sys, "_base_executable", None) or os.path.join(sys.base_prefix, "bin", "python3")

FAKE_UV = textwrap.dedent("""\
    #!{python}
    import os, subprocess, sys
    args = sys.argv[1:]
    if args[:1] == ["venv"]:
        takes_value = {{"--python", "--index-url", "--extra-index-url", "--find-links"}}
        dirs = [a for i, a in enumerate(args[1:], 1) if not a.startswith("-") and args[i - 1] not in takes_value]
        subprocess.check_call([sys.executable, "-m", "venv", "--without-pip", dirs[0]])
        sys.exit(0)
    print("uv", *args, flush=True)  # its argv in the log, as uv's own errors quote the index URL
    child = subprocess.Popen(["sleep", os.environ.get("FAKE_UV_SECONDS", "{seconds}")])
    print("child", child.pid, flush=True)
    open(os.environ["FAKE_UV_PIDS"], "a").write(f"{{os.getpid()}} {{child.pid}}\\n")
    sys.exit(child.wait())
""")


def make(tmp: Path, seconds: int = 300) -> dict:
    """The host's folders and the environment to run torch-setup in."""
    bin_dir, wheels, home, idx = tmp / "bin", tmp / "wheels", tmp / "home", tmp / "idx"
    for d in (bin_dir, wheels, home, idx):
        d.mkdir(parents=True, exist_ok=True)
    uv = bin_dir / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable, seconds=seconds))
    uv.chmod(0o755)
    tag = next(iter(tags.sys_tags()))
    (wheels / f"torch-2.9.0+cpu-{tag.interpreter}-{tag.abi}-{tag.platform}.whl").write_bytes(b"")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "PIP_CONFIG_FILE": os.devnull,
           "FAKE_UV_PIDS": str(tmp / "uv.pids"), "LANG": "C.UTF-8", "TORCH_SETUP_LOCK_DIR": str(tmp / "locks")}
    return {"env": env, "venv": str(tmp / "venv"), "pids": tmp / "uv.pids",
            "args": ["--python", BASE_PYTHON, "--venv", str(tmp / "venv"), "--find-links", str(wheels),
                     "--index-url", idx.as_uri()]}


def start(host: dict, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch_setup", "install", "--yes", "--no-verify", *host["args"],
                             *args], env=host["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def reap(host: dict) -> None:
    """After a test: SIGKILL to whatever the fake uv started that still runs (a failing test leaves no orphan)."""
    import signal

    if host["pids"].exists():
        for pid in map(int, host["pids"].read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def wait_for(predicate, seconds=30.0):
    """True once predicate() is, polling every 50 ms; False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fake(tmp_path):
    """A fake host (make) for one test, its processes reaped after it."""
    host = make(tmp_path)
    yield host
    reap(host)
