"""Rollback for real: the plan of an H200 box whose venv holds a CPU torch (a captured host's facts, its venv moved
to a temporary folder), run by the real runner with real processes. The venv's `python` is a small script: its
`pip install` changes the venv (as a real one does, half-way) and then fails or succeeds, and its verification
fails. A failed replacement puts the venv back as it was, and says so in one line."""
from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import pytest

from torch_setup import pipeline
from torch_setup.errors import StepError
from torch_setup.facts.model import Facts
from torch_setup.host.system import System
from torch_setup.report import Reporter
from torch_setup.request import Request

FIXTURES = Path(__file__).parent / "fixtures"

FAKE_PYTHON = """#!/bin/sh
venv=$(dirname "$(dirname "$0")")
if [ "$1 $2" = "-m pip" ]; then  # the torch step: it changes the venv, then fails or not
    rm -f "$venv/old-torch"; echo new > "$venv/new-torch"
    if [ -e "$venv/../pip-fails" ]; then echo "ERROR: No matching distribution found for torch" >&2; exit 1; fi
    if [ -e "$venv/../pip-waits" ]; then echo $$ > "$venv/../pip-pid"; sleep 60; fi
    exit 0
fi
if [ "$3" = "$venv" ]; then [ ! -e "$venv/../guard-fails" ]; exit; fi  # the guard's script
read go  # the verification: torch "imports", waits for the other steps, then fails
echo "RuntimeError: CUDA error: no kernel image is available for execution on the device" >&2
exit 1
"""


@pytest.fixture
def box(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "old-torch").write_text("2.15.0+cpu\n")
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    facts = Facts.from_dict(json.loads((FIXTURES / "gpus/facts/h200-venv-torch-cpu.json").read_text()))
    py = dataclasses.replace(facts.python, executable=str(python), prefix=str(venv))
    facts = dataclasses.replace(facts, python=py)
    from torch_setup.recipes import load

    recipes = load.load([])
    plan = pipeline.assemble(Request(), facts, recipes)
    assert [s.id for s in plan.todo] == ["torch-rollback", "torch", "torch-guard"]
    return tmp_path, venv, facts, recipes, plan


def tree(venv: Path) -> dict:
    return {str(p.relative_to(venv)): p.read_text() for p in venv.rglob("*") if p.is_file()}


def test_a_failed_torch_step_puts_the_venv_back(box):
    tmp, venv, facts, recipes, plan = box
    (tmp / "pip-fails").write_text("")
    before = tree(venv)
    out = io.StringIO()
    with pytest.raises(StepError) as err:
        pipeline.install(System(), facts, recipes, plan, Reporter(out), do_verify=False)
    assert tree(venv) == before  # the old torch back, the new one gone
    assert not Path(str(venv) + ".torch-setup-previous").exists()
    line = f"rolled back, {venv} is the venv as it was before (restored from {venv}.torch-setup-previous)"
    assert line in out.getvalue() and line in err.value.hint
    assert "No matching distribution" in err.value.details
    assert err.value.extra["rollback"].endswith(line)  # the JSON error's data.rollback, as README says


def test_the_json_of_a_failed_replacement_carries_the_rollback_line(box, capsys):
    """`install --json`'s error envelope: data.rollback is the line (README: "one line says so (JSON:
    data.rollback)"), not only a part of error.hint."""
    from torch_setup import cli

    tmp, venv, facts, recipes, plan = box
    (tmp / "pip-fails").write_text("")
    with pytest.raises(StepError) as err:
        pipeline.install(System(), facts, recipes, plan, Reporter(io.StringIO()), do_verify=False)
    with pytest.raises(BaseException):
        cli._fail(err.value, True, "install")
    env = json.loads(capsys.readouterr().out)
    assert env["ok"] is False and env["error"]["code"] == 8
    assert env["data"]["rollback"] == (f"the torch replacement failed: rolled back, {venv} is the venv as it was "
                                       f"before (restored from {venv}.torch-setup-previous)")


def test_a_failed_verification_with_the_new_torch_puts_the_venv_back(box):
    tmp, venv, facts, recipes, plan = box
    before = tree(venv)
    out = io.StringIO()
    report = pipeline.install(System(), facts, recipes, plan, Reporter(out))
    assert report.verification is not None and not report.verification.ok
    assert tree(venv) == before
    assert report.rollback and "torch.compile failed with the new torch: rolled back" in report.rollback
    assert report.to_dict()["rollback"] == report.rollback and report.rollback in out.getvalue()


def test_a_copy_that_cannot_be_put_back_says_how_by_hand(box, monkeypatch):
    tmp, venv, facts, recipes, plan = box
    (tmp / "pip-fails").write_text("")
    system = System()
    real_run = system.run

    def run(argv, **kw):  # the restore's own command fails (a full disk, a busy file)
        if argv[:2] == ["sh", "-c"] and "mv" in argv[2]:
            return real_run(["sh", "-c", "echo 'mv: cannot move: Device or resource busy' >&2; exit 1"], **kw)
        return real_run(argv, **kw)

    monkeypatch.setattr(system, "run", run)
    with pytest.raises(StepError) as err:
        pipeline.install(system, facts, recipes, plan, Reporter(io.StringIO()), do_verify=False)
    assert (f"could not roll back (mv: cannot move: Device or resource busy); to do it by hand: rm -rf {venv} && "
            f"mv {venv}.torch-setup-previous {venv}") in err.value.hint
    assert os.path.exists(str(venv) + ".torch-setup-previous")


def test_an_interrupted_replacement_puts_the_venv_back(box):
    """SIGTERM while the new torch downloads (the runner's own handler, interrupt.py): the venv is put back."""
    import signal
    import threading
    import time

    from torch_setup import interrupt

    tmp, venv, facts, recipes, plan = box
    (tmp / "pip-waits").write_text("")
    before = tree(venv)
    out = io.StringIO()
    previous = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    interrupt.install()

    def stop_when_started():
        deadline = time.monotonic() + 60
        while not (tmp / "pip-pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    try:
        with pytest.raises(interrupt.Interrupted):
            pipeline.install(System(), facts, recipes, plan, Reporter(out), do_verify=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        interrupt._seen = False  # as a fresh command starts (interrupt.install)
    assert tree(venv) == before and "rolled back" in out.getvalue()
    assert not Path(str(venv) + ".torch-setup-previous").exists()


def test_a_failure_after_the_new_torch_is_in_keeps_it(box):
    """The replacement itself went well (its step ended well), a later step failed: the new torch stays."""
    tmp, venv, facts, recipes, plan = box
    (tmp / "guard-fails").write_text("")
    out = io.StringIO()
    with pytest.raises(StepError) as err:
        pipeline.install(System(), facts, recipes, plan, Reporter(out), do_verify=False)
    assert "torch-guard" in err.value.message
    assert (venv / "new-torch").exists() and "rolled back" not in out.getvalue()
