"""Package state, not files: after a package manager was stopped half-way, dpkg's status lists half-configured and
unpacked packages; the facts carry them, the plan finishes them first (`dpkg --configure -a`, explained) and
doctor reports them. The status file is a real one (tests/fixtures/dpkg)."""
from __future__ import annotations

import dataclasses

from conftest import detected_with_dpkg_status, fixture_text, host_facts
from torch_setup import doctor, pipeline
from torch_setup.facts import packages
from torch_setup.request import Request

STATUS = fixture_text("dpkg", "status-interrupted")


def broken_facts(name="debian13-installed-system"):
    facts = host_facts(name)
    return dataclasses.replace(facts, host=dataclasses.replace(
        facts.host, interrupted_packages=packages.parse_dpkg_status(STATUS)))


def test_the_status_file_names_what_dpkg_audit_lists():
    assert packages.parse_dpkg_status(STATUS) == ["t19-halfconf", "t19-unpacked"]
    assert packages.parse_dpkg_status(STATUS.replace("half-configured", "installed").replace(
        "ok unpacked", "ok installed")) == []
    assert packages.parse_dpkg_status("Package: x\nStatus: install reinstreq installed\n") == ["x"]


def test_detect_reads_the_package_state_through_the_seam(builtin_recipes):
    facts = detected_with_dpkg_status("debian13-installed-system", STATUS, builtin_recipes)
    assert facts.host.interrupted_packages == ["t19-halfconf", "t19-unpacked"]
    assert facts.to_dict()["host"]["interrupted_packages"] == ["t19-halfconf", "t19-unpacked"]


def test_a_ready_box_with_half_configured_packages_is_not_ready(builtin_recipes):
    ready = pipeline.assemble(Request(), host_facts("debian13-installed-system"), builtin_recipes)
    assert not any(s.id == "package-repair" for s in ready.steps)
    plan = pipeline.assemble(Request(), broken_facts(), builtin_recipes)
    step = plan.steps[0]
    assert step.id == "package-repair" and step.status == "todo" and step.root
    assert [list(c.argv) for c in step.commands] == [  # folds the journal in; reinstalls what is half-installed
        ["dpkg", "--configure", "-a"],
        ["apt-get", "install", "-f", "-y", "--no-install-recommends", "--no-remove", "-o", "DPkg::Lock::Timeout=600"]]
    assert "t19-halfconf" in step.why and "stopped" in step.why
    assert plan.todo  # not "Nothing to do"


def test_package_steps_wait_for_the_repair(builtin_recipes):
    plan = pipeline.assemble(Request(), broken_facts("debian13-minbase"), builtin_recipes)
    assert plan.steps[0].id == "package-repair"
    for s in plan.todo[1:]:
        assert ("package-repair" in s.after) == s.root, s.id


def test_doctor_reports_it_with_the_fix(builtin_recipes):
    facts = broken_facts()
    plan = pipeline.assemble(Request(), facts, builtin_recipes)
    check = next(c for c in doctor.checks(facts, builtin_recipes, plan, doctor.Extras()) if c.id == "packages")
    assert check.status == doctor.PROBLEM and "t19-halfconf" in check.message
    assert check.fix == "package-repair" and check.commands[0] == "DEBIAN_FRONTEND=noninteractive dpkg --configure -a"
    assert check.commands[1].startswith("DEBIAN_FRONTEND=noninteractive apt-get install -f -y")
    assert doctor.blocking([check])
