"""indexes: configured sources, masking, and asking real indexes (file://, a wheelhouse, HTTP on loopback)."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from torch_setup.wheels import indexes
from torch_setup.wheels.indexes import IndexUnreachable, Source, configured, mask, mask_text, parse_pip_config_list

FIXTURES = Path(__file__).parent / "fixtures" / "indexes"
_spec = importlib.util.spec_from_file_location("loopback", FIXTURES / "loopback.py")
loopback = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loopback)

# `pip config list` on the development machine (Debian 12, pyenv 3.11), as captured.
PIP_CONFIG_LIST = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
"""


# ------------------------------------------------------------------------------------------------ mask

@pytest.mark.parametrize("url, masked", [
    ("https://user:token@host/simple/", "https://user:***@host/simple/"),
    ("https://__token__:pypi-AgEIcHlwaS5vcmc@pypi.example/simple", "https://__token__:***@pypi.example/simple"),
    ("https://glpat-abc123@gitlab.example/api/v4/projects/1/packages/pypi/simple",
     "https://***@gitlab.example/api/v4/projects/1/packages/pypi/simple"),
    ("https://host/simple/?token=abc123&x=1", "https://host/simple/?token=***&x=1"),
    ("https://bucket.s3.example/whl?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1",
     "https://bucket.s3.example/whl?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("https://u:p@host:8443/simple?api_key=k", "https://u:***@host:8443/simple?api_key=***"),
    ("https://download.pytorch.org/whl/cpu", "https://download.pytorch.org/whl/cpu"),
    ("file:///opt/pypi/simple", "file:///opt/pypi/simple"),
    ("/opt/wheels", "/opt/wheels"),
    ("", ""),
])
def test_mask(url, masked):
    assert mask(url) == masked


def test_mask_text_masks_every_url_in_a_message():
    text = "GET https://alice:hunter2@mirror.example/simple/torch/ failed; tried https://h2/simple?auth=zzz too"
    out = mask_text(text)
    assert "hunter2" not in out and "zzz" not in out
    assert "https://alice:***@mirror.example/simple/torch/" in out and "auth=***" in out


def test_source_repr_never_shows_the_real_url():
    s = Source("https://alice:hunter2@mirror.example/simple", "index", "PIP_INDEX_URL")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    assert s.display == "https://alice:***@mirror.example/simple"


# ------------------------------------------------------------------------------------------------ configuration

def test_parse_pip_config_list_of_this_machine():
    cfg = parse_pip_config_list(PIP_CONFIG_LIST)
    assert cfg["global.extra-index-url"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"
    assert cfg["global.find-links"] == "/opt/wheels"
    assert cfg[":env:.find-links"] == "/opt/wheels"
    assert cfg["global.constraint"] == "/etc/xdg/pip/constraints.txt"


def test_parse_pip_config_list_skips_noise_and_reads_escapes():
    cfg = parse_pip_config_list("WARNING: something\nglobal.index-url='https://m/simple'\n"
                                "install.extra-index-url='https://a/simple\\nhttps://b/simple'\nnot a line\n")
    assert cfg == {"global.index-url": "https://m/simple", "install.extra-index-url": "https://a/simple\nhttps://b/simple"}


def test_configured_from_this_machine():
    env = {"PIP_FIND_LINKS": "/opt/wheels", "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
    conf = configured(env=env, pip_config=PIP_CONFIG_LIST)
    assert conf.index is None  # PyPI
    assert [s.url for s in conf.extra] == ["file:///opt/pypi/simple", "file:///opt/pypi-more/simple"]
    assert [s.origin for s in conf.extra] == ["pip config global.extra-index-url"] * 2
    assert [s.url for s in conf.find_links] == ["/opt/wheels"]  # env and pip config: once
    assert conf.constraints == ("/etc/xdg/pip/constraints.txt",)


def test_configured_precedence_and_formats():
    env = {
        "UV_DEFAULT_INDEX": "https://uv-default.example/simple",
        "PIP_INDEX_URL": "https://pip.example/simple",
        "UV_INDEX": "internal=https://internal.example/simple https://other.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://pip-extra.example/simple https://internal.example/simple/",
        "UV_FIND_LINKS": "/srv/a, https://links.example/torch.html",
        "PIP_CONSTRAINT": "/etc/c1.txt",
        "UV_CONSTRAINT": "/etc/c2.txt",
    }
    pip_cfg = "global.index-url='https://cfg.example/simple'\ninstall.index-url='https://cfg-install.example/simple'\n"
    conf = configured(index_url="https://flag.example/simple", find_links=["wheels"], env=env, pip_config=pip_cfg)
    assert conf.index.url == "https://flag.example/simple" and conf.index.origin == "--index-url"
    assert [s.url for s in conf.extra] == [
        "https://uv-default.example/simple", "https://pip.example/simple", "https://cfg-install.example/simple",
        "https://internal.example/simple", "https://other.example/simple", "https://pip-extra.example/simple",
    ]
    assert conf.find_links[0].origin == "--find-links" and Path(conf.find_links[0].url).is_absolute()
    assert [s.url for s in conf.find_links[1:]] == ["/srv/a", "https://links.example/torch.html"]
    assert conf.constraints == ("/etc/c1.txt", "/etc/c2.txt")


def test_find_links_under_home_are_the_planned_hosts(monkeypatch):
    """`~` in a find-links value is the planned host's HOME (from its facts), not this user's: `plan --facts` of
    a host whose HOME is /home/ada plans /home/ada/wheels, as install does there."""
    monkeypatch.setenv("HOME", "/root")
    env = {"PIP_FIND_LINKS": "~/wheels", "UV_FIND_LINKS": "~"}
    pip_cfg = "global.find-links='~/cfg-wheels'\n"
    conf = configured(find_links=["~/flag-wheels"], env=env, pip_config=pip_cfg, home="/home/ada")
    assert [s.url for s in conf.find_links] == ["/home/ada/flag-wheels", "/home/ada", "/home/ada/wheels",
                                                "/home/ada/cfg-wheels"]
    assert configured(env={"PIP_FIND_LINKS": "~/wheels"}, home="/").find_links[0].url == "/wheels"
    # without a home (a caller on this host), ~ is this user's as before
    assert configured(env={"PIP_FIND_LINKS": "~/wheels"}).find_links[0].url == "/root/wheels"


def test_configured_with_nothing_is_pypi():
    conf = configured(env={}, pip_config="")
    assert conf.index is None and conf.extra == () and conf.find_links == () and conf.sources() == ()


# ------------------------------------------------------------------------------------------------ file:// and folders

def _file_index(tmp_path: Path) -> Path:
    """Laid out like /opt/pypi-more: simple/<project>/index.html with links to ../../files/."""
    root = tmp_path / "mirror"
    loopback.add_project(root, "simple", "files", ["torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                                                   "torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"],
                         json_too=False)
    page = root / "simple" / "torch" / "index.html"  # relative links, as on this machine
    page.write_text(page.read_text().replace('href="/files/', 'href="../../files/'))
    return root


def test_fetch_file_index(tmp_path):
    root = _file_index(tmp_path)
    listing = indexes.fetch(Source((root / "simple").as_uri(), "index", "pip config"), "torch")
    assert listing.found
    assert [f.filename for f in listing.files] == ["torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                                                   "torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"]
    assert listing.files[0].requires_python == ">=3.10"
    assert Path(listing.files[0].url[len("file://"):].split("#")[0]).is_file()


def test_fetch_file_index_without_the_project(tmp_path):
    root = _file_index(tmp_path)
    listing = indexes.fetch(Source((root / "simple").as_uri()), "torchvision")
    assert not listing.found and listing.files == ()


def test_fetch_wheelhouse_folder_lists_only_the_project(tmp_path):
    for name in ("torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl", "torchvision-0.28.0-cp313-cp313-x.whl",
                 "numpy-2.3.0-cp313-cp313-manylinux_2_28_x86_64.whl"):
        loopback.tiny_wheel(tmp_path / name)
    listing = indexes.fetch(Source(str(tmp_path), "find-links", "--find-links"), "torch")
    assert [f.filename for f in listing.files] == ["torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"]


def test_fetch_missing_wheelhouse_is_unreachable(tmp_path):
    with pytest.raises(IndexUnreachable) as e:
        indexes.fetch(Source(str(tmp_path / "nope"), "find-links"), "torch")
    assert e.value.reason == "no such folder"


# ------------------------------------------------------------------------------------------------ HTTP on loopback

@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    names = ["torch-2.14.1+cpu-cp313-cp313-manylinux_2_28_x86_64.whl", "torch-2.13.0+cpu-cp313-cp313-win_amd64.whl"]
    loopback.add_project(root, "whl/cpu", "whl/cpu", names, json_too=False)  # PyTorch-style: HTML only
    loopback.add_project(root, "simple", "files", ["torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"],
                         json_too=True)
    loopback.add_project(root, "private/simple", "files", ["torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"],
                         json_too=True)
    with loopback.Loopback(root, auth=("/private/", "alice:hunter2")) as srv:
        yield srv


def test_fetch_pep691_json_when_offered(served):
    listing = indexes.fetch(Source(served.url + "/simple"), "torch")
    assert [f.filename for f in listing.files] == ["torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"]
    assert listing.files[0].url == served.url + "/files/torch-2.14.1-cp313-cp313-manylinux_2_28_x86_64.whl"
    path, accept, _ = served.requests[-1]
    assert path == "/simple/torch/" and accept.startswith("application/vnd.pypi.simple.v1+json")


def test_fetch_falls_back_to_pep503_html(served):
    listing = indexes.fetch(Source(served.url + "/whl/cpu"), "torch")
    assert sorted(f.filename for f in listing.files) == [
        "torch-2.13.0+cpu-cp313-cp313-win_amd64.whl", "torch-2.14.1+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"]
    assert all(f.requires_python == ">=3.10" for f in listing.files)
    assert "%2B" in listing.files[0].url or "+" in listing.files[0].url


def test_fetch_404_is_an_answer_without_the_project(served):
    listing = indexes.fetch(Source(served.url + "/simple"), "no-such-project")
    assert not listing.found


def test_fetch_http_500_is_unreachable(served):
    with pytest.raises(IndexUnreachable, match="HTTP 500"):
        indexes.fetch(Source(served.url + "/fail/simple"), "torch")


def test_fetch_with_credentials(served):
    good = Source(served.url.replace("://", "://alice:hunter2@") + "/private/simple", "index", "PIP_INDEX_URL")
    assert [f.filename for f in indexes.fetch(good, "torch").files]
    bad = Source(served.url.replace("://", "://alice:wrong@") + "/private/simple", "index", "PIP_INDEX_URL")
    with pytest.raises(IndexUnreachable) as e:
        indexes.fetch(bad, "torch")
    assert e.value.reason == "access refused (HTTP 401)"
    assert "wrong" not in str(e.value) and "alice:***@" in str(e.value)


def test_fetch_closed_port_answers_at_once():
    port = loopback.closed_port()
    start = time.monotonic()
    with pytest.raises(IndexUnreachable) as e:
        indexes.fetch(Source(f"http://127.0.0.1:{port}/whl/cpu"), "torch")
    assert e.value.reason == "connection refused"
    assert time.monotonic() - start < 1.0


def test_fetch_name_that_does_not_resolve_answers_at_once():
    start = time.monotonic()
    with pytest.raises(IndexUnreachable) as e:
        indexes.fetch(Source("https://download.pytorch.invalid/whl/cpu"), "torch")
    assert e.value.reason == "the host name does not resolve"
    assert time.monotonic() - start < 1.0


def test_fetch_silent_server_times_out(tmp_path):
    with loopback.Loopback(tmp_path, hang_s=2.0) as srv:
        start = time.monotonic()
        with pytest.raises(IndexUnreachable) as e:
            indexes.fetch(Source(srv.url + "/hang/simple"), "torch", timeout=(0.5, 0.5))
        assert time.monotonic() - start < 1.5
    assert e.value.reason == "no answer within 0.5 s"


def test_parse_simple_json_fixture_from_pypi():
    data = json.loads((FIXTURES / "pypi-torch-simple.json").read_text())
    files = indexes.parse_simple_json(data, "https://pypi.org/simple/torch/")
    assert len(files) == len(data["files"]) > 300
    f = next(f for f in files if f.filename == "torch-2.15.0-cp313-cp313-manylinux_2_28_x86_64.whl")
    assert f.requires_python == ">=3.11" and f.size and f.url.startswith("https://files.pythonhosted.org/")
