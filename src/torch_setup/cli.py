"""The command line: parse options, call the pipeline, render text or JSON, map errors to exit codes."""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, List, Optional

import typer

from torch_setup import __version__
from torch_setup.errors import ExitCode, ProblemsFound, PythonNotFoundError, TorchSetupError, UsageError, \
    VerifyFailed
from torch_setup.report import reporter_for
from torch_setup.request import PythonRequest, Request
from torch_setup.host.system import System

if TYPE_CHECKING:  # imported where used: `detect` starts its probe first, and needs no planning
    from torch_setup.planning.steps import Plan

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Take this box from 'torch.compile fails' to 'torch.compile verified'.",
)

PythonOpt = typer.Option("", "--python", "-p", help="Target Python: a version (3.13) or a path. "
                         "Default: the active venv or conda env, else python3 on PATH.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout.")
RecipesOpt = typer.Option([], "--recipes", help="A directory of your own recipes, tried before the built-in "
                          "ones (also $TORCH_SETUP_RECIPES).")
VenvOpt = typer.Option(None, "--venv", help="Make the venv here (default ~/.venvs/torch, used when the target "
                       "Python may not be written to: a system or externally managed one). Given, a venv is made "
                       "for any Python.")
TorchOpt = typer.Option("", "--torch", help="A version range for torch, such as '>=2.6,<2.15'.")
BreakOpt = typer.Option(False, "--break-system-packages",
                        help="Install into an externally managed Python instead of making a venv.")
KeepTorchOpt = typer.Option(False, "--keep-torch", help="Keep the installed torch even when its build has no "
                            "kernels for this box's GPUs (a CPU build on a GPU box); doctor still reports it.")
BackendOpt = typer.Option("", "--torch-backend", help="auto, cpu, cu130, rocm6.4, ... (also "
                          "$TORCH_SETUP_TORCH_BACKEND, for Docker builds, which see no GPU). Default: auto.")
WithOpt = typer.Option("", "--with", help="Companions matched to the chosen torch: torchvision,torchaudio.")
IndexOpt = typer.Option(None, "--index-url", help="Take torch from this index (your pip/uv settings otherwise).")
MirrorOpt = typer.Option(None, "--pytorch-index", help="A mirror of https://download.pytorch.org/whl: its URL/cu130, "
                         "URL/cpu, ... are asked instead (also TORCH_SETUP_PYTORCH_INDEX, or pytorch-index in the "
                         "[torch-setup] section of pip.conf).")
LinksOpt = typer.Option([], "--find-links", help="A folder of wheels (an offline wheelhouse), asked first.")
FromOpt = typer.Option(None, "--python-from", help="Where a missing --python X.Y comes from: system (the package "
                       "manager), uv, pyenv or conda. Default: the active Python's source, else the package "
                       "manager where it packages X.Y, else uv.")


def _emit(command: str, data, ok: bool = True, error: Optional[TorchSetupError] = None) -> None:
    """Every command's JSON is one envelope: {version, command, ok, data, error} (README, "JSON output")."""
    from torch_setup.masking import mask_data

    err = None if error is None else {"code": int(error.code), "name": error.code.name, "message": error.message,
                                      "hint": error.hint, "details": error.details}
    envelope = json.loads(json.dumps({"version": __version__, "command": command, "ok": ok, "data": data,
                                      "error": err}, default=str))
    sys.stdout.write(json.dumps(mask_data(envelope), indent=2) + "\n")  # no credential in any field


def _fail(e: TorchSetupError, as_json: bool, command: str) -> None:
    from torch_setup.errors import StepError

    causes = _causes(e.details, None) if isinstance(e, StepError) and e.details else []
    if as_json:
        _emit(command, {"causes": causes, **e.extra}, ok=False, error=e)
    else:
        from torch_setup.masking import mask_text

        typer.echo(mask_text(f"error: {e.message}"), err=True)
        if e.details:
            typer.echo(mask_text("\n".join("  " + ln for ln in e.details.splitlines())), err=True)
        if e.hint:
            typer.echo(mask_text(f"hint: {e.hint}"), err=True)
        _print_causes([c for c in causes if c["id"] != "unknown"])
    raise typer.Exit(int(e.code))


class _Guard:
    """A command body: TorchSetupError becomes its message (or JSON envelope) and exit code, never a traceback;
    `emit` prints the command's JSON."""

    def __init__(self, as_json: bool, command: str):
        from contextlib import ExitStack

        self.as_json, self.command = as_json, command
        self.held = ExitStack()  # locks the command holds until it ends

    def emit(self, data, ok: bool = True, error: Optional[TorchSetupError] = None) -> None:
        _emit(self.command, data, ok, error)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        self.held.close()
        if isinstance(value, TorchSetupError):
            _fail(value, self.as_json, self.command)
        return False


_guard = _Guard  # `with _guard(as_json, "install") as out:` in each command


@app.command()
def detect(python: str = PythonOpt, as_json: bool = JsonOpt, recipes: List[str] = RecipesOpt) -> None:
    """Probe the host and the target Python: OS, libc, compiler, headers, venv, accelerator, torch."""
    from torch_setup.facts.gather import Probes

    with _guard(as_json, "detect") as out:
        system = System()
        probes = Probes(system, PythonRequest.parse(python))  # the interpreter's probe runs while the rest loads
        from torch_setup import pipeline

        facts = pipeline.detect(system, probes.request, lambda: pipeline.load_recipes(recipes, system.env),
                                probes=probes)
        absent = None if facts.python.found else PythonNotFoundError(
            f"no Python {facts.python.absent} on this host", hint=f"`torch-setup install --python "
            f"{facts.python.absent}` provides one (`plan --facts` of these facts shows how)")
        if as_json:  # the facts are printed all the same: `plan --facts` of them plans providing the Python
            out.emit(facts.to_dict(), ok=absent is None, error=absent)
        else:
            _print_facts(facts)
        if absent:
            if not as_json:
                typer.echo(f"{absent.message}: {absent.hint}", err=True)
            raise typer.Exit(int(absent.code))


def _print_facts(facts) -> None:
    from torch_setup.facts import gpus

    p, c, a, t = facts.python, facts.compiler, facts.accelerator, facts.torch
    python = (f"{p.executable} ({p.version}{'t' if p.free_threaded else ''}, {p.source}"
              f"{', venv' if p.in_venv else ''}{', externally managed' if p.externally_managed else ''})"
              if p.found else f"no Python {p.absent} here" + (f"; python3 is {facts.host_python.executable} "
                                                               f"({facts.host_python.version})"
                                                               if facts.host_python else ""))
    rows = [
        ("os", f"{facts.os.name or facts.os.id} {facts.os.version} {facts.os.codename}".strip()),
        ("arch / libc", f"{facts.arch} / {facts.libc.name or '?'} {facts.libc.version or ''}".strip()),
        ("package manager", facts.package_manager or "none"),
        ("privileges", "root" if facts.host.is_root else ("passwordless sudo" if facts.host.sudo else "user")),
        ("python", python),
        ("headers", f"{'ok' if p.has_headers else 'MISSING'}: {p.include_dir}/Python.h" if p.found else "-"),
        ("venv/ensurepip", ("ok" if p.venv_ok else "MISSING") if p.found else "-"),
        ("c++ compiler", f"{c.cxx} {c.version or ''} {'ok' if c.ok else 'FAILS: ' + (c.error or '')}".strip()),
        ("accelerator", a.kind + (f" driver {a.driver_version}" if a.driver_version else "")
         + (" (no driver loaded)" if a.driver_state == "absent" else "") + (f" L4T {a.l4t}" if a.l4t else "")),
        *((("gpu", gpus.describe(d)) for d in a.devices) if a.devices else ()),
        ("torch", (t.version or "not installed") + (f" (CUDA {t.cuda})" if t.cuda else "")
         + (f", kernels {' '.join(t.arch_list)}" if t.arch_list else "")),
    ]
    for k, v in rows:
        typer.echo(f"{k:>16}: {v}")


def _request(python: str, venv: Optional[str] = None, torch: str = "", break_system_packages: bool = False,
             torch_backend: str = "", with_: str = "", index_url: Optional[str] = None, find_links=(),
             python_from: Optional[str] = None, pytorch_index: Optional[str] = None,
             keep_torch: bool = False) -> Request:
    return Request.parse(python=python, provider=python_from, venv=venv, torch=torch,
                         break_system_packages=break_system_packages, backend=torch_backend, with_=with_,
                         index_url=index_url, find_links=find_links, pytorch_index=pytorch_index,
                         env=os.environ, keep_torch=keep_torch)


def _facts_for(system: System, request: Request, facts_file: Optional[str], rec):
    """The facts a command plans with: a file's (another host), else this host's for the request."""
    from torch_setup import pipeline

    return pipeline.read_facts(facts_file) if facts_file else pipeline.gather_target(system, request, rec)


def _print_plan(plan: Plan) -> None:
    for i, step in enumerate(plan.steps, 1):
        mark = "done" if step.status == "done" else "todo"
        typer.echo(f"{i}. [{mark}] {step.title}" + ("  (root)" if step.root and step.status == "todo" else ""))
        if step.why:
            typer.echo(f"     why: {step.why}")
        for cmd in step.commands:
            typer.echo(f"     $ {cmd.display()}")
    for note in plan.notes:
        typer.echo(f"note: {note}", err=True)
    if plan.torch:
        t = plan.torch
        typer.echo(f"torch: {t['requirement']} ({t['variant']}) from {t['index_url'] or ', '.join(t['find_links'])}")
        for r in t["reasons"]:
            typer.echo(f"     why: {r}")
    if plan.python:
        typer.echo(f"torch.compile will run in: {plan.python}")


@app.command()
def plan(python: str = PythonOpt, as_json: bool = JsonOpt,
         facts: Optional[str] = typer.Option(None, "--facts", help="Plan for the JSON that `detect --json` "
                                             "printed on another host, without probing this one."),
         venv: Optional[str] = VenvOpt, torch: str = TorchOpt, break_system_packages: bool = BreakOpt,
         torch_backend: str = BackendOpt, with_: str = WithOpt, index_url: Optional[str] = IndexOpt,
         find_links: List[str] = LinksOpt, python_from: Optional[str] = FromOpt,
         recipes: List[str] = RecipesOpt, pytorch_index: Optional[str] = MirrorOpt,
         keep_torch: bool = KeepTorchOpt) -> None:
    """Show the ordered steps that install would run, and which are already done."""
    from torch_setup import pipeline

    with _guard(as_json, "plan") as out:
        system = System()
        request = _request(python, venv, torch, break_system_packages, torch_backend, with_, index_url, find_links,
                           python_from, pytorch_index, keep_torch)
        rec = pipeline.load_recipes(recipes, system.env)
        the_plan = pipeline.plan_host(request, _facts_for(system, request, facts, rec), rec,
                                      system=None if facts else system)  # another host's files are not here
        if as_json:
            out.emit(the_plan.to_dict())
        else:
            _print_plan(the_plan)


@app.command()
def install(python: str = PythonOpt, venv: Optional[str] = VenvOpt,
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before changing the system."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
            as_json: bool = JsonOpt, torch: str = TorchOpt, break_system_packages: bool = BreakOpt,
            no_verify: bool = typer.Option(False, "--no-verify", help="Skip the torch.compile smoke test."),
            reverify: bool = typer.Option(False, "--verify", help="Compile afresh even where a passed "
                                          "verification still holds (nothing it depends on changed)."),
            torch_backend: str = BackendOpt, with_: str = WithOpt, index_url: Optional[str] = IndexOpt,
            find_links: List[str] = LinksOpt, python_from: Optional[str] = FromOpt,
            recipes: List[str] = RecipesOpt, pytorch_index: Optional[str] = MirrorOpt,
            keep_torch: bool = KeepTorchOpt,
            from_: Optional[str] = typer.Option(None, "--from", help="Install from this bundle alone (the folder "
                                                "`torch-setup bundle` made, its .tar, or an http(s) URL of the "
                                                "folder): no index, no PyPI.")) -> None:
    """Install what torch.compile needs (system packages, a venv, torch), then verify it."""
    from torch_setup import pipeline

    with _guard(as_json, "install") as out:
        system = System()
        request = _request(python, venv, torch, break_system_packages, torch_backend, with_, index_url, find_links,
                           python_from, pytorch_index, keep_torch)
        if not dry_run:  # one run per target, from its facts to its end (lock.py)
            from torch_setup import lock
            out.held.enter_context(lock.target_lock(system.env, os.path.expanduser(request.venv),
                                                    say=lambda text: typer.echo(text, err=True)))
        rec = pipeline.load_recipes(recipes, system.env)
        facts = pipeline.gather_target(system, request, rec)
        if from_:
            from torch_setup.bundle import offline

            the_plan = offline.plan(request, facts, rec, from_)
        else:
            the_plan = pipeline.plan_host(request, facts, rec, system=system)
        reporter = reporter_for(as_json)
        system.tty = type(reporter).__name__ == "TerminalReporter"  # commands show their own progress
        system.notice = reporter.line
        if dry_run:
            report = pipeline.InstallReport(facts, the_plan, dry_run=True)
            out.emit(report.to_dict()) if as_json else _print_plan(the_plan)
            return
        if not the_plan.todo:
            reporter.line("Nothing to do: every step is done already.")
        else:
            if not as_json:
                _print_plan(the_plan)
            if not yes:
                if not sys.stdin.isatty():
                    raise UsageError("not a terminal: pass --yes to run the plan", hint="or --dry-run")
                typer.confirm("Run these steps?", abort=True)
        for note in the_plan.notes if as_json else ():
            reporter.line(f"note: {note}")
        try:
            report = pipeline.install(system, facts, rec, the_plan, reporter, do_verify=not no_verify,
                                      reverify=reverify)
        except TorchSetupError as e:  # fleets want to know which plan failed where
            e.extra = dict(e.extra, plan=the_plan.to_dict(), python=the_plan.python)  # (and its rollback line)
            raise
        pipeline.keep_record(system, request, rec, the_plan.python or "", the_plan.env, report.verification)
        data = _with_gpu_path(system, request, rec, report.verification, report.to_dict(), as_json)
        _finish_verify(out, report.verification, as_json, data,
                       lambda: _host_plan(system, request, recipes)[2])


@app.command()
def bundle(output: str = typer.Option(..., "--output", "-o", help="The bundle's folder (or DIR.tar: a tarball "
                                      "of it)."),
           facts: List[str] = typer.Option([], "--facts", help="A host's `detect --json` (repeat for a fleet); "
                                           "default: this host."),
           dry_run: bool = typer.Option(False, "--dry-run", help="Print the plans' files and sizes; download "
                                        "nothing."),
           as_json: bool = JsonOpt, python: str = PythonOpt, venv: Optional[str] = VenvOpt, torch: str = TorchOpt,
           break_system_packages: bool = BreakOpt, torch_backend: str = BackendOpt, with_: str = WithOpt,
           index_url: Optional[str] = IndexOpt, find_links: List[str] = LinksOpt,
           python_from: Optional[str] = FromOpt, recipes: List[str] = RecipesOpt,
           pytorch_index: Optional[str] = MirrorOpt) -> None:
    """Download once what the hosts' plans fetch (the pyz, uv, torch's wheels, the .debs) into one folder, for
    `install --from` where there is no network."""
    from torch_setup import pipeline
    from torch_setup.bundle import make as bundling

    with _guard(as_json, "bundle") as out:
        system = System()
        request = _request(python, venv, torch, break_system_packages, torch_backend, with_, index_url, find_links,
                           python_from, pytorch_index)
        rec = pipeline.load_recipes(recipes, system.env)
        data = bundling.run(system, request, rec, facts, output, dry_run=dry_run,
                            say=lambda line: typer.echo(line, err=True))
        if as_json:
            out.emit(data)
        else:
            for line in data["lines"]:
                typer.echo(line)
            if not dry_run:
                typer.echo(f"bundle: {data['output']} ({data['total_bytes'] / 1e6:,.1f} MB, "
                           f"{data['downloaded_bytes'] / 1e6:,.1f} MB downloaded now, {data['seconds']} s)")


def _with_gpu_path(system: System, request: Request, rec, v, data: dict, quiet: bool) -> dict:
    """A CUDA torch that compiled on no GPU (a docker build): data gains `gpu_path`, what the GPU path will need
    and whether it is there (gpupath.py); the text output says it in a few lines. `rec`: the loaded recipes, None
    for the built-in ones (loaded only where the report applies)."""
    from torch_setup import gpupath

    if v is None or not gpupath.applies(v):
        return data
    from torch_setup import pipeline

    try:  # gathered now: the install has put in the compiler and the headers
        rec = rec or pipeline.load_recipes([], system.env)
        ready = gpupath.readiness(system, pipeline.gather_target(system, request, rec), v.cuda)
    except Exception:  # noqa: BLE001 - a report of what the GPU path needs never fails what has run
        ready = None
    for line in ready["lines"] if ready and not quiet else ():
        typer.echo(f"GPU path: {line}", err=True)
    return dict(data, gpu_path=ready)


def _finish_verify(out: _Guard, v, as_json: bool, data: dict, plan_for=lambda: None) -> None:
    """Print the verification; on failure name the causes, with this host's fixes (planned afresh)."""
    if v is not None and not v.ok:
        data = dict(data, causes=_causes(v.output or v.error or "", plan_for()))
    if as_json:
        out.emit(data, ok=v is None or v.ok, error=None if v is None or v.ok else VerifyFailed(
            f"torch.compile failed in {v.python}", hint="data.causes names the causes and their fixes",
            details="\n".join(v.compiler_lines or (v.error or "").strip().splitlines()[-8:])))
    elif v is not None:
        if v.ok:
            per = ", ".join(f"{r['device']} {r['seconds']} s" for r in v.results)
            if v.recorded is not None:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(v.recorded))
                typer.echo(f"torch.compile verified: torch {v.torch} in {v.python} (passed {when} and nothing it "
                           "depends on changed since: not compiled again; --verify compiles afresh)")
            else:
                typer.echo(f"torch.compile verified: torch {v.torch} in {v.python} ({per})")
            _print_settings(v.env, err=False)
        else:
            typer.echo(f"torch.compile FAILED in {v.python}", err=True)
            _print_settings(v.env, err=True)
            for ln in v.compiler_lines or (v.error or "").strip().splitlines()[-8:]:
                typer.echo(f"  {ln}", err=True)
            _print_causes(data["causes"])
    if v is not None and not v.ok:
        raise typer.Exit(int(VerifyFailed.code))


def _print_settings(env: dict, err: bool) -> None:
    """The user's own compile settings (CXX, TORCHINDUCTOR_* ...) the verification ran with."""
    if env:
        typer.echo("  with " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), err=err)


@app.command()
def verify(python: str = typer.Option("", "--python", "-p", help="The interpreter to verify; default: the "
                                      "active venv, else python3."),
           as_json: bool = JsonOpt,
           gpu: bool = typer.Option(False, "--gpu", help="The same check on the first GPU (cuda:0: Triton "
                                    "kernels) only; exit 15 (NO_GPU) where torch sees none.")) -> None:
    """Run a small model through torch.compile with a fresh cache, compared with eager."""
    with _guard(as_json, "verify") as out:
        from torch_setup.facts.python import find
        from torch_setup.verify import verify as run_verify

        system = System()
        request = _request(python)
        exe = find(system, request.python)[0].executable
        v = run_verify(system, exe, gpu=gpu)
        data = _with_gpu_path(system, request, None, v, v.to_dict(), as_json or bool(v.no_gpu))
        if v.no_gpu:
            from torch_setup.errors import NoGpuError

            e = NoGpuError(v.no_gpu, hint="run `verify --gpu` where torch sees a GPU (docker run --gpus all, a "
                           "GPU node); `verify` alone checks the CPU path")
            e.extra = data
            raise e
        if v.ok and not gpu:  # recorded for `install`, which then need not compile again while nothing changes
            from torch_setup import pipeline

            pipeline.keep_record(system, _request(exe), pipeline.load_recipes([], system.env), exe, {}, v)
        _finish_verify(out, v, as_json, data, lambda: _host_plan(system, request, [])[2])
        if v.gpu and not as_json:  # which GPU it compiled on
            typer.echo(f"  on {v.gpu.get('device')}: {v.gpu.get('name')} (compute capability "
                       f"{v.gpu.get('capability')}), the first of {v.gpu.get('visible')} GPU(s) torch sees")


@app.command()
def doctor(python: str = PythonOpt, as_json: bool = JsonOpt, venv: Optional[str] = VenvOpt,
           facts: Optional[str] = typer.Option(None, "--facts", help="Judge the host that `detect --json` "
                                               "described, from its facts alone (no probe, no network)."),
           python_from: Optional[str] = FromOpt, recipes: List[str] = RecipesOpt) -> None:
    """Check every requirement of torch.compile in about a second, without compiling; say how to fix each."""
    from torch_setup import doctor as doc
    from torch_setup import pipeline

    with _guard(as_json, "doctor") as out:
        system = System()
        request = _request(python, venv, python_from=python_from)
        rec = pipeline.load_recipes(recipes, system.env)
        host = _facts_for(system, request, facts, rec)
        the_plan, plan_error = None, ""
        try:
            the_plan = pipeline.plan_host(request, host, rec, online=False)
        except TorchSetupError as e:
            plan_error = e.message
        extras = doc.Extras() if facts else doc.gather_extras(system, host, request.venv,
                                                              env=the_plan.env if the_plan else {})
        results = doc.checks(host, rec, the_plan, extras, plan_error)
        if as_json:
            problems = [c.id for c in results if c.status == doc.PROBLEM]
            out.emit({"python": host.python.executable, "checks": [c.to_dict() for c in results]},
                     ok=not problems, error=ProblemsFound(
                         "torch.compile is blocked here: " + ", ".join(problems),
                         hint="`torch-setup install` runs the fixes") if problems else None)
        else:
            marks = {doc.OK: "ok", doc.PROBLEM: "PROBLEM", doc.WARN: "warn", doc.NA: "n/a"}
            for c in results:
                typer.echo(f"{marks[c.status]:>7}  {c.id:<15} {c.message}")
                for cmd in c.commands:
                    typer.echo(f"{'':>24}fix: $ {cmd}")
                if c.advice:
                    typer.echo(f"{'':>24}fix: {c.advice}")
            if doc.blocking(results):
                typer.echo("torch.compile is blocked here: `torch-setup install` runs the fixes above.")
        if doc.blocking(results):
            raise typer.Exit(int(ExitCode.PROBLEMS))


def _causes(text: str, plan) -> list:
    """Causes for a log, each with its fix on this host (the plan's steps) or its advice."""
    from torch_setup import explain as ex

    out = []
    for c in ex.diagnose(text):
        steps = ex.fix_steps(c, plan)
        commands = [cmd for s in steps for cmd in s.commands]
        fix = "; ".join(cmd.display() for cmd in commands) if commands else c.advice
        out.append({"id": c.id, "title": c.title, "evidence": c.evidence, "line": c.line, "fix": fix,
                    "fix_steps": [s.id for s in steps], "fix_commands": [cmd.shown() for cmd in commands],
                    "advice": c.advice})
    return out


def _print_causes(causes: list) -> None:
    for c in causes:
        typer.echo(f"cause: {c['id']}" + (f" — {c['title']}" if c.get("title") else ""), err=True)
        if c["evidence"]:
            typer.echo(f"  evidence (line {c['line']}): {c['evidence']}", err=True)
        if c["fix"]:
            typer.echo(f"  fix: {c['fix']}", err=True)


def _host_plan(system: System, request: Request, recipes: List[str]):
    """(facts, recipes, plan) of this host offline, for fixes; Nones where it cannot be made (explain still names
    the causes)."""
    from torch_setup import pipeline

    try:
        rec = pipeline.load_recipes(recipes, system.env)
        facts = pipeline.gather_target(system, request, rec)
        return facts, rec, pipeline.plan_host(request, facts, rec, online=False)
    except TorchSetupError:
        return None, None, None


@app.command()
def explain(log: str = typer.Argument("-", help="A log file, or - for standard input."),
            as_json: bool = JsonOpt, fix: bool = typer.Option(False, "--fix", help="Run the fix plan (this host's)."),
            here: bool = typer.Option(False, "--here", help="The log is from this host: fix with this host's plan."),
            facts: Optional[str] = typer.Option(None, "--facts", help="The log's host's facts (`detect --json` "
                                                "there): its exact plan slice."),
            python: str = PythonOpt, venv: Optional[str] = VenvOpt, recipes: List[str] = RecipesOpt) -> None:
    """Name the causes in a log of a failed torch.compile, import, Triton launch or pip install, with fixes for
    the host that wrote the log."""
    with _guard(as_json, "explain") as out:
        from torch_setup import explain as ex, fixhost, loghost

        try:  # streamed: time linear and memory bounded in the log's size
            if log == "-":
                scan = ex.scan_file(sys.stdin.buffer)
            else:
                with open(log, "rb") as stream:
                    scan = ex.scan_file(stream)
        except OSError as e:
            raise TorchSetupError(f"cannot read {log}: {e.strerror}") from None
        system, request = System(), _request(python, venv)
        found, log_host = scan.causes(), loghost.read(scan.sample())
        fh = fixhost.choose(system, request, log_host, needs_plan=any(c.needs for c in found), here=here or fix,
                            facts_file=facts, recipes=recipes, cause_ids=[c.id for c in found],
                            this_plan=lambda: _host_plan(system, request, recipes))
        causes = fixhost.fixes(found, fh, log_host)
        host = dict(fh.to_dict(), log=log_host.to_dict())
        if as_json and not fix:
            out.emit({"causes": causes, "host": host})
        elif not as_json:
            for c in causes:
                typer.echo(f"{c['id']}: {c['title']}" if c.get("title") else c["id"])
                if c["evidence"]:
                    typer.echo(f"  evidence (line {c['line']}): {c['evidence']}")
                if c["fix_commands"]:
                    for cmd in c["fix"].split("; "):
                        typer.echo(f"  fix: $ {cmd}")
                    if c.get("note"):
                        typer.echo(f"  note: {c['note']}")
                elif c["advice"]:
                    typer.echo(f"  fix: {c['advice']}")
            typer.echo(f"fixes for: {fh.kind} ({fh.why})")
        if fix:
            from torch_setup.run import execute

            the_plan = fh.plan
            wanted = {s for c in causes for s in c["fix_steps"]}
            if fh.kind == fixhost.FACTS:
                raise TorchSetupError("--fix runs this host's plan; --facts plans for another host",
                                      hint="run `torch-setup explain --fix` on that host")
            if the_plan is None or not wanted:
                raise TorchSetupError("nothing in this host's plan fixes these causes",
                                      hint="see the advice above, or run `torch-setup doctor`")
            steps = [s for s in the_plan.todo if s.id in wanted]
            runs = execute(system, the_plan.only(steps), fh.facts, reporter_for(as_json))
            if as_json:
                left_out = {s.id for s in the_plan.todo if s.id not in wanted}
                out.emit({"causes": causes, "host": host,
                          "runs": [dict(r.to_dict(), status="skipped") if r.id in left_out
                                   else r.to_dict() for r in runs]})


def main() -> None:
    from torch_setup import interrupt
    from torch_setup.masking import MaskingStream

    sys.stdout, sys.stderr = MaskingStream(sys.stdout), MaskingStream(sys.stderr)  # no credential on any channel
    interrupt.install()
    try:
        if os.environ.get("TORCH_SETUP_DEBUG"):
            app()
            return
        try:
            app()
        except KeyboardInterrupt:  # a SIGINT before the handler was set
            raise interrupt.Interrupted(2) from None
        except Exception as e:  # a bug: say so in one line; the traceback with TORCH_SETUP_DEBUG=1
            sys.stderr.write(f"error: unexpected {type(e).__name__}: {e}\n"
                             "hint: run again with TORCH_SETUP_DEBUG=1 for the traceback, and report it\n")
            sys.exit(int(ExitCode.FAILED))
    except interrupt.Interrupted as stop:
        try:
            sys.stderr.write(f"torch-setup: {stop.line()}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # SIGHUP: the terminal may be gone
            pass
        os._exit(stop.code)  # noqa: SLF001 - no atexit or thread joins after a signal: exit now


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
