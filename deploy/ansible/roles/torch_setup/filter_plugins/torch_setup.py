"""Filters for torch-setup.yml: turn one host's `torch-setup install --json` run into a result, and many results
into a summary.

This is plain Python on purpose. Every rule about which report counts as ready and which cause to show is kept
here, where unit tests can check it (tests/test_deploy.py) without Ansible, and not spread over Jinja.
It needs only the standard library.
"""
import json

READY, FAILED, PLANNED = "ready", "failed", "planned"


def parse_json(stdout):
    """The JSON envelope torch-setup printed on stdout, as it is ({} when there is none): what reports/HOST.json
    keeps."""
    text = (stdout or "").strip()
    try:
        data = json.loads(text) if text.startswith("{") else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_report(stdout):
    """The report torch-setup printed on stdout -- its envelope's data with the envelope's ok and error -- or {}
    when there is none (a crash, a usage error)."""
    text = (stdout or "").strip()
    if not text.startswith("{"):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        return {}
    return dict(data["data"], ok=data.get("ok"), error=data.get("error"), version=data.get("version"))


def _last_line(text):
    """The last line of a command's stderr: where Python and typer put the error."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _message(text, limit=300):
    """An Ansible error message on one line, shortened (they can be long and span several lines)."""
    one = " ".join((text or "").split())
    if one.startswith("Task failed: "):  # ansible-core 2.19's prefix says nothing here
        one = one[len("Task failed: "):]
    return one if len(one) <= limit else one[:limit - 3] + "..."


def _todo(report):
    return [s.get("id") for s in (report.get("plan") or {}).get("steps", []) if s.get("status") == "todo"]


def changed(run):
    """What Ansible should show as changed: the install changed something, or (check mode) it would."""
    report = parse_report((run or {}).get("stdout"))
    return bool(report.get("changed") or (report.get("dry_run") and _todo(report)))


def result(run, host, earlier=()):
    """One host's outcome: {host, status (ready/failed/planned), cause, torch, python, seconds, changed, todo, rc}.

    run is the registered result of the install task. earlier holds the registered results of the tasks before it
    (temporary directory, copy) and the error the block's rescue caught, so a host that never got as far as the
    install still gets a cause.
    """
    out = {"host": host, "status": FAILED, "cause": "", "torch": None, "python": None, "seconds": None,
           "changed": False, "todo": [], "rc": None}
    run = run if isinstance(run, dict) else {}
    for step in [r for r in earlier if isinstance(r, dict)] + [run]:
        if step.get("unreachable"):
            out["cause"] = "unreachable: " + _message(step.get("msg"))
            return out
        if step.get("failed") and step is not run:
            out["cause"] = "torch-setup did not run: " + _message(step.get("msg"))
            return out
    if not run or run.get("skipped"):
        out["cause"] = "torch-setup did not run"
        return out
    out["rc"] = run.get("rc")
    report = parse_report(run.get("stdout"))
    if not report:
        why = _last_line(run.get("stderr")) or _message(run.get("msg")) or "no JSON report on stdout"
        out["cause"] = why if run.get("rc") is None else "exit {}: {}".format(run.get("rc"), why)
        return out
    out["python"] = report.get("python")
    out["todo"] = _todo(report)
    out["changed"] = bool(report.get("changed"))
    error = report.get("error")
    if error and not (report.get("verify") or {}).get("compiler_lines"):
        # torch-setup's own failure: name, exit code, message, and the fix it suggests (a failed torch.compile
        # is told by its compiler's lines, below)
        out["cause"] = "{} (exit {}): {}".format(error.get("name"), error.get("code"), error.get("message"))
        if error.get("hint"):
            out["cause"] += " -- " + error["hint"]
        return out
    if report.get("dry_run"):
        out["status"] = PLANNED
        out["cause"] = ("would run: " + ", ".join(out["todo"])) if out["todo"] else "nothing to do"
        return out
    verify = report.get("verify") or {}
    out["torch"] = verify.get("torch")
    if report.get("ok") and verify.get("ok"):
        out["status"] = READY
        out["seconds"] = verify.get("seconds")
        out["cause"] = "changed" if out["changed"] else "nothing to do"
    elif report.get("ok") and not verify:  # --no-verify in torch_setup_args
        out["status"] = READY
        out["cause"] = "not verified (--no-verify)"
    elif verify:
        lines = verify.get("compiler_lines") or (verify.get("error") or "").splitlines()[-3:]
        out["cause"] = "torch.compile failed: " + " | ".join(ln.strip() for ln in lines if ln.strip())
    else:
        out["cause"] = "exit {}: report says not ok".format(run.get("rc"))
    return out


def bundle_argv(facts_files, python, pyz, output, dry_run=False, extra=()):
    """The controller's one `bundle` command for the whole fleet: every host's facts file, once each, in order."""
    argv = [python, pyz, "bundle", "--json", "--output", output]
    for path in dict.fromkeys(facts_files or []):
        argv += ["--facts", path]
    return argv + (["--dry-run"] if dry_run else []) + list(extra or [])


def summary(results):
    """Readable lines: a count line, then one line per host, failed hosts first."""
    results = sorted(results or [], key=lambda r: (r.get("status") != FAILED, r.get("host")))
    counts = {s: sum(1 for r in results if r.get("status") == s) for s in (READY, PLANNED, FAILED)}
    head = "torch-setup: {} hosts: {} ready, {} planned (check mode), {} failed".format(
        len(results), counts[READY], counts[PLANNED], counts[FAILED])
    lines = [head]
    for r in results:
        if r.get("status") == READY:
            what = "torch {} in {} (verified in {} s; {})".format(r.get("torch"), r.get("python"), r.get("seconds"),
                                                                  r.get("cause"))
        elif r.get("status") == PLANNED:
            what = "{} (Python: {})".format(r.get("cause"), r.get("python"))
        else:
            what = r.get("cause")
        lines.append("{:<8}{}: {}".format(r.get("status", "?").upper(), r.get("host"), what))
    return lines


class FilterModule(object):
    def filters(self):
        return {"torch_setup_json": parse_json, "torch_setup_report": parse_report, "torch_setup_changed": changed,
                "torch_setup_result": result, "torch_setup_summary": summary,
                "torch_setup_bundle_argv": bundle_argv}
