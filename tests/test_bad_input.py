"""Every command over a table of bad inputs, as an operator types them: no traceback, no "unexpected", the exit code
the README documents, and no secret in any output. Each row fails before anything is installed."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fakehost
from conftest import host_facts_dict
from torch_setup.errors import ExitCode

SECRET = "S3CR3T"
PW = f"http://user:pa(ss){SECRET}@127.0.0.1:1/simple"  # a password that the old masker printed in clear


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    facts = host_facts_dict("debian13-installed-system")

    def write(name, data):
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        return str(p)

    def variant(**changes):
        data = json.loads(json.dumps(facts))
        for key, value in changes.items():
            where, _, last = key.rpartition(".")
            target = data
            for part in filter(None, where.split(".")):
                target = target[part]
            if value is None:
                target.pop(last)
            else:
                target[last] = value
        return data

    notprog = d / "notprog"
    notprog.write_bytes(b"\x00\x01\x02 not a program")
    notprog.chmod(0o755)
    py2 = d / "python2.7"  # answers as Python 2 does: the probe's syntax fails, the version one-liner prints 2.7
    py2.write_text("#!/bin/sh\ncase \"$2\" in \"import sys; print('%d.%d' % sys.version_info[:2])\") echo 2.7;; "
                   "*) echo 'SyntaxError: invalid syntax' >&2; exit 1;; esac\n")
    py2.chmod(0o755)
    recipes = d / "recipes"
    recipes.mkdir()
    (recipes / "bad.toml").write_text('[[platform]]\nid = "debian-13"\nmatch = { os = ["debian"], version = ["13"] }'
                                      '\nmanager = "apt"\nsource = "test"\npackages = { cxx = ["-o", '
                                      '"Dpkg::Pre-Invoke::=touch /tmp/x"] }\n')
    host = fakehost.make(d / "host")  # a wheelhouse and an index folder: install plans without a network
    return {
        "wheels": host["args"][5], "idx": host["args"][7], "base": fakehost.BASE_PYTHON,
        "random": write("random.json", os.urandom(4096) + b"\xff\xfe"),
        "deep": write("deep.json", b"[" * 100000 + b"]" * 100000),
        "schema": write("schema.json", variant(schema=99)),
        "nopython": write("nopython.json", variant(python=None)),
        "cc": write("cc.json", variant(**{"accelerator.compute_capability": "x.y"})),
        "list": write("list.json", [1, 2]),
        "wrongtype": write("wrongtype.json", variant(**{"python.version": 3})),
        "unknownkey": write("unknownkey.json", variant(**{"python.bogus": 1})),
        "secret": write("secret.json", variant(**{"config.env": {"PIP_INDEX_URL": PW}, "schema": 7})),
        "notjson": write("notjson.json", b"{not json"),
        "empty": write("empty.json", b""),
        "notprog": str(notprog), "py2": str(py2), "recipes": str(recipes), "dir": str(d),
    }


U, F, R, S, P = ExitCode.USAGE, ExitCode.BAD_FACTS, ExitCode.BAD_RECIPE, ExitCode.UNSUPPORTED, \
    ExitCode.PYTHON_NOT_FOUND
# (args with {placeholders} for the files above, env changes, the exit code)
CASES = [
    (["plan", "--torch", "garbage"], {}, U),
    (["plan", "--torch", "numpy>=1.0"], {}, U),
    (["plan", "--torch", "torch @ https://example.org/torch.whl"], {}, U),
    (["plan", "--torch", "torch>=2.6; python_version>'3'"], {}, U),
    (["plan", "--torch", "torch[cuda]>=2.6"], {}, U),
    (["plan", "--torch", ">=2.6,<<2.9"], {}, U),
    (["install", "--dry-run", "--torch", "garbage"], {}, U),
    (["plan", "--index-url", "nowhere"], {}, U),
    (["plan", "--index-url", "/no/such/folder"], {}, U),
    (["plan", "--index-url", "ftp://example.org/simple"], {}, U),
    (["plan", "--index-url", "https://"], {}, U),
    (["plan", "--index-url", f"https://user:{SECRET}@[::1/simple"], {}, U),
    (["plan", "--index-url", f"user:{SECRET}@example.org/simple"], {}, U),
    (["install", "--dry-run", "--json", "--index-url", f"https://u:{SECRET})@"], {}, U),
    (["plan", "--with", "--index-url=https://evil.example/simple"], {}, U),
    (["plan", "--with", "torchvision,-e ."], {}, U),
    (["plan", "--with", "torchvision==0.20"], {}, U),
    (["install", "--dry-run", "--with", "--extra-index-url=x"], {}, U),
    (["plan", "--python", "2.7"], {}, S),
    (["plan", "--python", "python2"], {}, S),
    (["install", "--dry-run", "--python", "2.7"], {}, S),
    (["detect", "--python", "2.7"], {}, S),
    (["plan", "--python", "{py2}"], {}, S),
    (["plan", "--python", "{notprog}"], {}, P),
    (["plan", "--python", "/bin/true"], {}, P),
    (["detect", "--python", "/bin/true"], {}, P),
    (["verify", "--python", "/bin/true"], {}, P),
    (["doctor", "--python", "{notprog}"], {}, P),
    (["plan", "--python", "--json"], {}, U),
    (["plan", "--facts", "{random}"], {}, F),
    (["plan", "--facts", "{deep}"], {}, F),
    (["plan", "--facts", "{schema}"], {}, F),
    (["plan", "--facts", "{nopython}"], {}, F),
    (["plan", "--facts", "{cc}"], {}, F),
    (["plan", "--facts", "{list}"], {}, F),
    (["plan", "--facts", "{wrongtype}"], {}, F),
    (["plan", "--facts", "{unknownkey}"], {}, F),
    (["plan", "--facts", "{secret}", "--json"], {}, F),
    (["plan", "--facts", "{notjson}"], {}, F),
    (["plan", "--facts", "{empty}"], {}, F),
    (["plan", "--facts", "{dir}"], {}, F),
    (["doctor", "--facts", "{random}"], {}, F),
    (["doctor", "--facts", "{deep}", "--json"], {}, F),
    (["plan", "--recipes", "{recipes}", "--facts", "{schema}"], {}, R),
    (["doctor", "--recipes", "{recipes}"], {}, R),
    (["install", "--dry-run", "--recipes", "{recipes}"], {}, R),
    (["plan", "--recipes", "/no/such/recipes"], {}, R),
    (["install", "--dry-run"], {"HOME": ""}, U),
    (["plan", "--json"], {"HOME": "relative/home"}, U),
    (["plan", "--torch-backend", "cu9999x"], {}, S),
    (["plan"], {"TORCH_SETUP_TORCH_BACKEND": "bogus"}, S),
    (["install", "--venv", "{dir}/v", "--python", "{base}", "--find-links", "{wheels}", "--index-url", "{idx}"], {},
     U),  # stdin is no terminal, and no --yes
    (["install", "--python-from", "nowhere", "--python", "3.13", "--dry-run"], {}, S),
    (["explain", "/no/such/log"], {}, ExitCode.FAILED),
    (["plan", "--no-such-option"], {}, U),
    (["install"], {"TORCH_SETUP_LOCK_TIMEOUT": "soon"}, U),
    (["bundle", "--facts", "{random}", "--output", "{dir}/b"], {}, F),
    (["bundle", "--facts", "{secret}", "--output", "{dir}/b", "--json"], {}, F),
    (["bundle", "--torch", "garbage", "--output", "{dir}/b"], {}, U),
    (["bundle", "--facts", "{schema}"], {}, U),  # no --output
    (["install", "--dry-run", "--from", "{dir}"], {}, ExitCode.BUNDLE),  # no manifest.json there
    (["install", "--dry-run", "--json", "--from", "{random}"], {}, ExitCode.BUNDLE),
    (["install", "--dry-run", "--from", f"http://u:{SECRET}@127.0.0.1:1/b"], {}, ExitCode.BUNDLE),
]


@pytest.mark.parametrize("args, env, code", CASES, ids=[" ".join(c[0]) + (f" {c[1]}" if c[1] else "")
                                                      for c in CASES])
def test_bad_input_fails_cleanly(files, tmp_path, args, env, code):
    home = tmp_path / "home"
    home.mkdir()
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PIP_CONFIG_FILE": os.devnull,
            "LANG": "C.UTF-8", "TORCH_SETUP_LOCK_DIR": str(tmp_path / "locks"), **env}
    argv = [a.format(**files) for a in args]
    p = subprocess.run([sys.executable, "-m", "torch_setup", *argv], env=full, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == int(code), out
    assert "Traceback" not in out and "unexpected" not in out, out
    assert SECRET not in out, out
    assert out.strip(), "a failure says why"
    if "--json" in argv and p.stdout.strip().startswith("{"):
        data = json.loads(p.stdout)
        assert data["ok"] is False and data["error"]["code"] == int(code)


def test_the_table_is_big_enough():
    assert len(CASES) >= 40
    assert {c[0][0] for c in CASES} >= {"detect", "plan", "install", "verify", "doctor", "explain"}
