"""Which certificates torch-setup trusts (trust.py), against a real HTTPS index on 127.0.0.1 with a CA made here."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from lab import make_ca, serve
from test_torch_choice import RECIPES, make_facts
from torch_setup.errors import ExitCode, TlsError
from torch_setup.planning.steps import Command
from torch_setup.wheels import trust
from torch_setup.wheels.choose import choose

_spec = importlib.util.spec_from_file_location("loopback", Path(__file__).parent / "fixtures" / "indexes" /
                                               "loopback.py")
loopback = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loopback)

WHEEL = "torch-2.13.0-cp313-cp313-manylinux_2_28_x86_64.whl"  # Debian 13's Python 3.13, x86_64
PIP_CERT = "global.cert='/etc/pip-ca.pem'\n"


def test_the_order_of_the_ca_settings():
    full = {"REQUESTS_CA_BUNDLE": "/r.pem", "SSL_CERT_FILE": "/s.pem", "PIP_CERT": "/p.pem"}
    assert trust.from_config(full, PIP_CERT) == trust.Trust("/r.pem", "REQUESTS_CA_BUNDLE")
    del full["REQUESTS_CA_BUNDLE"]
    assert trust.from_config(full, PIP_CERT) == trust.Trust("/s.pem", "SSL_CERT_FILE")
    del full["SSL_CERT_FILE"]
    assert trust.from_config(full, PIP_CERT) == trust.Trust("/p.pem", "PIP_CERT")
    assert trust.from_config({}, PIP_CERT + "install.cert='/i.pem'\n") == trust.Trust("/i.pem",
                                                                                     "pip config install.cert")
    assert trust.from_config({}, PIP_CERT) == trust.Trust("/etc/pip-ca.pem", "pip config global.cert")
    assert trust.from_config({}, "", truststore=True).origin == trust.TRUSTSTORE
    assert trust.from_config({}, "", truststore=False, system_ca="/etc/ssl/certs/ca-certificates.crt") == \
        trust.Trust("/etc/ssl/certs/ca-certificates.crt", "the system CA file")
    assert trust.from_config({}, "", truststore=False, system_ca=None) == trust.Trust(None, trust.CERTIFI)


def test_a_configured_ca_file_reaches_pip_and_uv_and_the_stores_do_not():
    assert trust.Trust("/s.pem", "SSL_CERT_FILE").command_env() == {"SSL_CERT_FILE": "/s.pem", "PIP_CERT": "/s.pem"}
    assert trust.Trust("/x.crt", "the system CA file").command_env() == {}
    assert trust.Trust(None, trust.TRUSTSTORE).command_env() == {}


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    loopback.tiny_wheel(root / WHEEL)
    certs = make_ca(root / "ca")
    with serve({"simple": {"torch": [str(root / WHEEL)]}}, tls=certs) as lab:
        yield lab, certs, root


def _choose(lab, env):
    return choose(make_facts("none", "3.13"), RECIPES, env=env, index_url=lab.url("simple"),
                  pytorch_index=lab.url("nothing"), pypi=lab.url("simple"))


@pytest.mark.parametrize("var", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_the_index_is_trusted_through_the_variable_and_the_ca_goes_on_to_the_install(https, var):
    lab, certs, _ = https
    c = _choose(lab, {var: certs.ca})
    assert (c.version, c.index_url) == ("2.13.0", lab.url("simple"))
    assert dict(c.env) == {"SSL_CERT_FILE": certs.ca, "PIP_CERT": certs.ca}
    assert c.to_dict()["env"] == dict(c.env)


def test_pip_cert_setting_is_trusted(https):
    lab, certs, _ = https
    c = choose(make_facts("none", "3.13"), RECIPES, env={}, pip_config=f"global.cert={certs.ca!r}\n",
               index_url=lab.url("simple"), pytorch_index=lab.url("nothing"), pypi=lab.url("simple"))
    assert c.version == "2.13.0"


def test_a_wrong_ca_is_named_tls_with_the_url_the_ca_and_the_fix(https, tmp_path):
    lab, certs, _ = https
    wrong = make_ca(tmp_path / "wrong", "another CA").ca
    with pytest.raises(TlsError) as e:
        _choose(lab, {"SSL_CERT_FILE": wrong})
    err = e.value
    assert err.code == ExitCode.TLS == 12
    assert "TLS verification failed" in err.message and lab.url("simple") + "/torch/" in err.message
    assert f"the CA file {wrong} (SSL_CERT_FILE)" in err.message
    assert "SSL_CERT_FILE=/path/to/ca.pem" in err.hint
    assert "no index answered" not in err.message


def test_no_ca_at_all_is_tls_too_never_no_index_answered(https):
    lab, _, _ = https
    with pytest.raises(TlsError) as e:
        _choose(lab, {})
    assert "with the system trust store" in e.value.message or "certifi" in e.value.message \
        or "system CA file" in e.value.message


def test_a_ca_file_that_does_not_exist_is_a_tls_error(https, tmp_path):
    lab, _, _ = https
    with pytest.raises(TlsError) as e:
        _choose(lab, {"SSL_CERT_FILE": str(tmp_path / "missing.pem")})
    assert "does not exist" in e.value.message


def test_the_ca_reaches_the_plan_commands(https):
    from torch_setup import pipeline
    from torch_setup.request import Request

    from conftest import host_facts

    lab, certs, _ = https
    facts = host_facts("debian13-minbase")
    c = choose(facts, RECIPES, env={"SSL_CERT_FILE": certs.ca}, index_url=lab.url("simple"),
               pytorch_index=lab.url("nothing"), pypi=lab.url("simple"))
    plan = pipeline.assemble(Request(), facts, RECIPES, choice=c)
    step = plan.step_for("torch")
    cmd: Command = step.commands[0]
    assert cmd.env.get("SSL_CERT_FILE") == certs.ca and cmd.env.get("PIP_CERT") == certs.ca
    assert json.loads(json.dumps(cmd.to_dict()))["env"]["SSL_CERT_FILE"] == certs.ca


def test_doctor_checks_the_index_with_the_same_trust(https, tmp_path):
    from conftest import host_facts
    from torch_setup import doctor
    from torch_setup.host.system import System

    lab, certs, _ = https
    facts = host_facts("debian13-minbase")
    wrong = make_ca(tmp_path / "wrong", "another CA").ca
    env = {"PIP_INDEX_URL": lab.url("simple"), "PATH": "/usr/bin:/bin"}
    ok = doctor.gather_extras(System({**env, "SSL_CERT_FILE": certs.ca}), facts, str(tmp_path / "venv"))
    assert (ok.index_url, ok.index_error) == (lab.url("simple"), None)
    bad = doctor.gather_extras(System({**env, "SSL_CERT_FILE": wrong}), facts, str(tmp_path / "venv"))
    assert bad.index_error == f"TLS verification failed with the CA file {wrong} (SSL_CERT_FILE)"
    check = next(c for c in doctor.checks(facts, RECIPES, None, bad) if c.id == "index")
    assert check.status == doctor.PROBLEM and "TLS verification failed" in check.message
    assert "SSL_CERT_FILE=/path/to/ca.pem" in check.advice
