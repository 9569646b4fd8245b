"""The guard for real: a real venv, its real pip, small torch wheels built here and served from a find-links folder.
The installed build is pinned by the plan's own `torch-guard` step; pip must then refuse every swap and name the
constraint, and without the guard the same commands swap the build (so the test can fail)."""
from __future__ import annotations

import base64
import dataclasses
import json
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from torch_setup import guard

# Versions no real torch has: whatever find-links this host's pip configuration adds, only these wheels match.
BUILT, OTHER_BUILD, NEWER = "99.1.0+cu132", "99.1.0+cpu", "99.2.0"


def wheel(folder: Path, name: str, version: str, build: str = "") -> Path:
    """A pure-Python wheel (PEP 427) of `name` whose module says which build it is (`build`: what its version.py
    says, where the wheel's own version has no local label, as PyPI's CUDA builds of torch: 2.7.1 is 2.7.1+cu126)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"__version__ = {version!r}\n",
             f"{name}/version.py": f"__version__ = {build or version!r}\ncuda = '12.6'\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{dist}/RECORD"] = record + f"{dist}/RECORD,,\n"
    out = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    links = root / "links"
    links.mkdir()
    for version in (BUILT, OTHER_BUILD, NEWER):
        wheel(links, "torch", version)
    for version in ("99.3.0", "99.4.0"):
        wheel(links, "torchvision", version)
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links))
    return root, links, env


def make_venv(root: Path, env, name: str) -> Path:
    venv = root / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    pip(venv, env, "install", f"torch=={BUILT}", "torchvision==99.3.0", check=True)
    return venv


def pip(venv: Path, env, *args, check=False) -> subprocess.CompletedProcess:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def installed(venv: Path, name: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c",
                           f"from importlib.metadata import version; print(version({name!r}))"],
                          capture_output=True, text=True, check=True).stdout.strip()


SWAPS = [("install", f"torch=={NEWER}"), ("install", "--force-reinstall", f"torch=={OTHER_BUILD}"),
         ("install", "-U", "torch"), ("install", "-U", "torchvision")]


def run_guard(venv: Path, env) -> str:
    step = guard.step(str(venv / "bin" / "python"), str(venv), guard.companion_names(["torchvision==99.3.*"]),
                      ("torch",))
    (command,) = step.commands
    done = subprocess.run(command.argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pip_refuses_to_swap_a_guarded_build_and_names_the_constraint(lab):
    root, _, env = lab
    venv = make_venv(root, env, "guarded")
    out = run_guard(venv, env)
    path = guard.constraints_path(str(venv))
    assert f"torch=={BUILT}" in out and "torchvision===99.3.0" in out  # no local label: ===
    assert guard.parse_pins(Path(path).read_text()) == {"torch": BUILT, "torchvision": "99.3.0"}
    requirements = root / "requirements.txt"
    requirements.write_text(f"torch>={NEWER}\n")
    refused = []
    for args in SWAPS + [("install", "-r", str(requirements))]:
        done = pip(venv, env, *args)
        refused += [args] if done.returncode else []
        text = done.stdout + done.stderr
        assert installed(venv, "torch") == BUILT, (args, text)
        assert installed(venv, "torchvision") == "99.3.0", (args, text)
        if done.returncode:  # refused: the message names the constraint
            assert f"(constraint) torch=={BUILT}" in text or "(constraint) torchvision===99.3.0" in text, text
    assert refused == [SWAPS[0], SWAPS[1], ("install", "-r", str(requirements))]  # -U: the pinned build stays
    # pip's own view: the site configuration lists the file
    listed = pip(venv, env, "config", "--site", "list", check=True).stdout
    assert path in listed
    # installing something else still works, and running the guard again changes nothing
    assert run_guard(venv, env)
    conf = (venv / "pip.conf").read_text()
    assert conf.count(path) == 1
    # torch-setup's own replacement lifts its pin for that one run, and the guard then pins the new build
    own = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", f"torch=={NEWER}"],
                         env=dict(env, **guard.for_replacement(f"global.constraint={path!r}\n", str(venv))),
                         capture_output=True, text=True, timeout=300)
    assert own.returncode == 0 and installed(venv, "torch") == NEWER, own.stdout + own.stderr
    run_guard(venv, env)
    assert guard.parse_pins(Path(path).read_text())["torch"] == NEWER
    assert pip(venv, env, "install", f"torch=={BUILT}").returncode != 0
    # lifting it, as the docs say, lets the swap through
    pip(venv, env, "config", "--site", "unset", "global.constraint", check=True)
    pip(venv, env, "install", f"torch=={BUILT}", check=True)
    assert installed(venv, "torch") == BUILT


def test_without_the_guard_the_same_pip_swaps_the_build(lab):
    root, _, env = lab
    venv = make_venv(root, env, "unguarded")
    pip(venv, env, "install", "--force-reinstall", f"torch=={OTHER_BUILD}", check=True)
    assert installed(venv, "torch") == OTHER_BUILD


def test_the_guard_keeps_a_constraint_the_venv_had(lab):
    root, links, env = lab
    venv = make_venv(root, env, "own-constraint")
    mine = root / "mine.txt"
    mine.write_text("torchvision==99.3.0\n")
    (venv / "pip.conf").write_text(f"[install]\nconstraint = {mine}\n")
    run_guard(venv, env)
    conf = (venv / "pip.conf").read_text()
    assert str(mine) in conf and guard.constraints_path(str(venv)) in conf
    done = pip(venv, env, "install", f"torch=={NEWER}")
    assert done.returncode != 0 and installed(venv, "torch") == BUILT
    # the replacement's own run keeps the venv's other constraint
    from torch_setup.facts.config import parse_pip_conf

    lifted = guard.for_replacement(parse_pip_conf([(venv / "pip.conf").read_text()]), str(venv))
    assert lifted == {"PIP_CONSTRAINT": str(mine)}


def test_listed_reads_the_merged_pip_configuration():
    from torch_setup.facts.config import parse_pip_conf

    conf = parse_pip_conf(["[global]\nconstraint = /x/c.txt /v/torch-setup-constraints.txt\n"])
    assert guard.listed(conf, "/v") and not guard.listed(conf, "/w")
    assert not guard.listed(parse_pip_conf(["[global]\nfind-links = /v/torch-setup-constraints.txt\n"]), "/v")


FIXTURES = Path(__file__).parent / "fixtures"


def h200(pip_config: str = "", env=None):
    """An H200 box whose venv holds torch 2.11.0+cu130 (a captured host's facts)."""
    import dataclasses

    from torch_setup.facts.model import ConfigFacts, Facts

    facts = Facts.from_dict(json.loads((FIXTURES / "gpus/facts/h200-torch2.11-cu130.json").read_text()))
    return dataclasses.replace(facts, config=ConfigFacts(pip=pip_config, env=env or {}))


LISTED = "global.constraint='/root/.venvs/torch/torch-setup-constraints.txt'\n"


def test_doctor_says_whether_the_build_is_kept_and_names_drift():
    from torch_setup import doctor

    def status(facts, pins):
        (check,) = [c for c in doctor.checks(facts, _recipes(), None, doctor.Extras(guard_pins=pins))
                    if c.id == "torch-guard"]
        return check.status, check.message

    assert status(h200(), None)[0] == "warn" and "can swap it" in status(h200(), None)[1]
    assert status(h200(), "torch==2.11.0+cu130\n")[0] == "warn"  # the file, but pip.conf does not list it
    assert status(h200(LISTED), "torch==2.11.0+cu130\n")[0] == "ok"
    drift = status(h200(LISTED), "torch==2.11.0+cu128\n")
    assert drift[0] == "warn" and "pinned 2.11.0+cu128" in drift[1]
    assert status(h200(LISTED, {"PIP_CONSTRAINT": "/x"}), "torch==2.11.0+cu130\n")[0] == "warn"


def test_the_plan_pins_a_kept_torch_once():
    from torch_setup import pipeline
    from torch_setup.request import Request

    unpinned = pipeline.assemble(Request(), h200(), _recipes())
    assert [s.id for s in unpinned.todo] == ["torch-guard"]
    assert pipeline.assemble(Request(), h200(LISTED), _recipes()).todo == []


def test_a_repair_in_a_guarded_venv_lifts_only_its_own_pin():
    import dataclasses

    from torch_setup import pipeline
    from torch_setup.facts.model import ConfigFacts, Facts
    from torch_setup.request import Request

    facts = Facts.from_dict(json.loads((FIXTURES / "gpus/facts/h200-venv-torch-cpu.json").read_text()))
    guarded = dataclasses.replace(facts, config=ConfigFacts(pip=LISTED, env={}))
    torch_step = pipeline.assemble(Request(), guarded, _recipes()).step_for("torch")
    assert torch_step is not None and torch_step.commands[0].env.get("PIP_CONSTRAINT") == os.devnull
    plain = pipeline.assemble(Request(), facts, _recipes()).step_for("torch")
    assert plain is not None and "PIP_CONSTRAINT" not in plain.commands[0].env


def _recipes():
    from torch_setup import pipeline

    return pipeline.load_recipes([], {})


PYPI_BUILT, PYPI_CPU = "99.5.0", "99.5.0+cpu"  # PyPI's CUDA build (no local label) and the CPU index's build


def test_a_build_without_a_local_label_is_kept_from_the_same_version_s_cpu_build(lab, tmp_path):
    """PyPI's torch 2.7.1 is a CUDA build whose version has no local label: `torch==2.7.1` (PEP 440) also matches
    2.7.1+cpu, which a requirements file with the CPU index puts in. The pin is `torch===2.7.1` (string equality),
    pip refuses the CPU build, and doctor reads the pinned build (version.py's 2.7.1+cu126) as the one installed."""
    from torch_setup import doctor

    root, links, env = lab
    built = wheel(links, "torch", PYPI_BUILT, build=f"{PYPI_BUILT}+cu126")
    wheel(links, "torch", PYPI_CPU)
    venv = root / "pypi-build"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    pip(venv, env, "install", str(built), check=True)  # (`torch==99.5.0` itself would pick 99.5.0+cpu)
    run_guard(venv, env)
    text = Path(guard.constraints_path(str(venv))).read_text()
    assert guard.parse_pins(text) == {"torch": PYPI_BUILT}
    done = pip(venv, env, "install", "--force-reinstall", f"torch=={PYPI_CPU}")
    assert done.returncode != 0 and installed(venv, "torch") == PYPI_BUILT, done.stdout + done.stderr
    assert f"(constraint) torch==={PYPI_BUILT}" in done.stdout + done.stderr

    def status(version):
        facts = h200(f"global.constraint='{guard.constraints_path(str(venv))}'\n")
        facts = dataclasses.replace(facts, python=dataclasses.replace(facts.python, prefix=str(venv)),
                                    torch=dataclasses.replace(facts.torch, version=version))
        (check,) = [c for c in doctor.checks(facts, _recipes(), None, doctor.Extras(guard_pins=text))
                    if c.id == "torch-guard"]
        return check.status, check.message

    assert status(f"{PYPI_BUILT}+cu126")[0] == "ok"  # what install pinned: no drift
    drift = status(PYPI_CPU)  # swapped by uv (which reads no pip.conf)
    assert drift[0] == "warn" and f"pinned {PYPI_BUILT}+cu126" in drift[1], drift
