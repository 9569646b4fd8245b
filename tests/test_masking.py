"""Credentials never shown: a table of nasty URLs (passwords with `(`, `)`, `'`, `/`, `#`, `@`, `?`, tokens in the
query, URLs that do not parse) through mask_text, then through every channel of real CLI runs: the text plan,
`plan --json`, the "did not answer" note, the install log lines, `install --json`, error details."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fakehost
from torch_setup.masking import mask_data, mask_text

SECRET = "S3CR3T"
# (url, what must still show)
NASTY = [
    (f"https://user:pa(ss){SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:{SECRET})x@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:p'w{SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:p/w{SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:p#w{SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:p?w{SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://user:p@w{SECRET}@example.org/simple", "https://user:***@example.org/simple"),
    (f"https://{SECRET}@example.org/simple", "https://***@example.org/simple"),
    (f"https://__token__:pypi-{SECRET}@example.org/simple", "https://__token__:***@example.org/simple"),
    (f"https://example.org/simple?token={SECRET}&x=1", "https://example.org/simple?token=***&x=1"),
    (f"https://example.org/simple?X-Amz-Signature={SECRET}", "https://example.org/simple?X-Amz-Signature=***"),
    (f"https://example.org/simple#api_key={SECRET}", "https://example.org/simple#api_key"),
    (f"https://user:{SECRET}@[::1/simple", "https://user:***@[::1/simple"),  # urlsplit: Invalid IPv6 URL
    (f"https://user:{SECRET}@example.org:99999/simple", "https://user:***@example.org:99999/simple"),
    (f"http://u:{SECRET}%2F@127.0.0.1:1/simple", "http://u:***@127.0.0.1:1/simple"),
]


@pytest.mark.parametrize("url, shown", NASTY)
def test_mask_text_hides_every_password_and_token(url, shown):
    for text in (url, f"x {url} y", f"'{url}'", f"({url})", f'"{url}",', f"--index-url={url}"):
        masked = mask_text(text)
        assert SECRET not in masked, text
        assert shown in masked or shown.split("#")[0] in masked, (text, masked)
        assert mask_text(masked) == masked  # idempotent


def test_text_without_urls_is_unchanged():
    for text in ("plain", "user@host", "a=b&token=c", "C:\\path", "/opt/wheels", ""):
        assert mask_text(text) == text


def test_mask_data_masks_keys_and_nested_values():
    data = mask_data({"a": [f"https://u:{SECRET}@h"], f"https://{SECRET}@h": {"b": (f"x https://h?sig={SECRET}",)}})
    assert SECRET not in json.dumps(data)


def run_cli(host, *args):
    p = subprocess.run([sys.executable, "-m", "torch_setup", *args], env=host["env"], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout + p.stderr


# URLs the CLI takes as --index-url (it refuses the ones that do not parse as http(s): see test_bad_input.py);
# each answers nothing (port 1 of 127.0.0.1), so its "did not answer" note is printed too.
INDEXES = [f"http://user:pa(ss){SECRET}@127.0.0.1:1/simple", f"http://user:p'w{SECRET}@127.0.0.1:1/simple",
           f"http://user:p/w{SECRET}@127.0.0.1:1/simple", f"http://user:p#w{SECRET}@127.0.0.1:1/simple",
           f"http://{SECRET}@127.0.0.1:1/simple", f"http://127.0.0.1:1/simple?token={SECRET}"]


@pytest.mark.parametrize("index", INDEXES)
def test_no_channel_shows_the_password(tmp_path, index):
    host = fakehost.make(tmp_path)
    host["env"]["FAKE_UV_SECONDS"] = "0"
    args = [a if a != host["args"][-1] else index for a in host["args"]]  # the nasty index instead of the file one
    outputs = []
    for command in (["plan"], ["plan", "--json"], ["install", "--dry-run"], ["install", "--dry-run", "--json"],
                    ["doctor"], ["doctor", "--json"]):
        rc, out = run_cli(host, *command, *args)
        assert "Traceback" not in out, out
        outputs.append(out)
    for command in (["plan"], ["plan", "--json"], ["install", "--dry-run"]):  # the index alone: a note or error
        rc, out = run_cli(host, *command, "--python", fakehost.BASE_PYTHON, "--venv", host["venv"],
                          "--index-url", index)
        assert "Traceback" not in out and "127.0.0.1:1/simple" in out, out
        outputs.append(out)
    rc, out = run_cli(host, "install", "--yes", "--no-verify", *args)  # the log lines: uv prints its argv
    assert rc == 0, out
    assert "[torch]   uv pip install" in out
    outputs.append(out)
    fakehost.reap(host)
    import shutil
    shutil.rmtree(host["venv"])
    rc, out = run_cli(host, "install", "--yes", "--no-verify", "--json", *args)
    outputs.append(out)
    fakehost.reap(host)
    everything = "\n".join(outputs)
    assert SECRET not in everything, [o for o in outputs if SECRET in o][0]
