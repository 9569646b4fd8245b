"""Whose fix `explain` prints: this host's, the log's host's, or the host of a facts file.

The fix of a cause is a slice of one plan (pipeline.plan_host / assemble, then Plan.fixing(cause.needs)); the
question is which host that plan is for. `choose` answers it:
- `--facts FILE`: the host that wrote FILE (`detect --json` there): its exact plan, made offline here.
- `--here`: this host (probed, planned offline); `--fix` may run it.
- otherwise the log decides: when it does not say which OS wrote it, the fix is advice (a command would be a
  guess); when what it says of its host (loghost.read) contradicts this host (another OS,
  distro, architecture, a Jetson, another Python), the fix is for the log's host: the plan of its partial facts
  where they suffice (a Linux of a known distro with its system Python), else advice written for its platform,
  never a command of this host. When nothing contradicts, the fix is this host's plan; this host is probed only
  when a cause needs a plan step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from torch_setup import loghost
from torch_setup.errors import TorchSetupError
from torch_setup.facts.model import AcceleratorFacts, Facts, HostFacts, LibcFacts, OsFacts, PythonFacts
from torch_setup.request import Request

if TYPE_CHECKING:
    from torch_setup.planning.steps import Plan

THIS, LOG, FACTS = "this-host", "log-host", "facts-host"
NO_OS = "the log does not say which OS wrote it (`--here`: this host's plan)"
ADVICE = "advice"
# distros whose system Python the plan knows how to fix from a log alone: (os id, like, package manager)
_PLANNABLE = {"debian": ("debian", [], "apt"), "debian-family": ("debian", [], "apt"),
              "ubuntu": ("ubuntu", ["debian"], "apt"), "fedora": ("fedora", [], "dnf")}


@dataclass
class FixHost:
    kind: str  # this-host, log-host, facts-host
    why: str
    platform: str  # whose commands may be printed: linux, windows, macos, jetson, wsl, unknown
    facts: Optional[Facts] = None
    plan: Optional["Plan"] = None  # None: advice only
    conflicts: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fix_for": self.kind, "why": self.why, "platform": self.platform, "planned": self.plan is not None}


def log_facts(log: loghost.LogHost, cause_ids: Sequence[str] = ()) -> Optional[Facts]:
    """Facts of the log's host where the log says enough to plan for it (a Linux of a known distro running its
    system Python of a known version), else None. What the log does not say is taken as missing (no headers, no
    working compiler), so the plan's slice for a cause holds what that cause needs."""
    if log.system != loghost.LINUX or log.jetson or log.wsl or not log.python_minor:
        return None
    if log.python_source not in (None, "system") or log.distro not in _PLANNABLE:
        return None
    os_id, like, manager = _PLANNABLE[log.distro]
    minor = log.python_minor
    return Facts(
        os=OsFacts(id=os_id, version=log.distro_version or "", like=like, system="Linux"),
        arch=log.arch or "x86_64", libc=LibcFacts("glibc", None), package_manager=manager,
        host=HostFacts(home="~"),
        python=PythonFacts(found=True, version=minor, executable=f"/usr/bin/python{minor}", implementation="CPython",
                           source="system", externally_managed="externally-managed" in cause_ids),
        # the GPU the log names (a torch build for it is the fix of gpu-arch-unsupported); its driver is unknown
        accelerator=AcceleratorFacts(kind="nvidia", source="log", gpus=list(log.gpus),
                                     compute_capability=log.capability) if log.capability else AcceleratorFacts())


def choose(system, request: Request, log: loghost.LogHost, *, needs_plan: bool, here: bool = False,
           facts_file: Optional[str] = None, recipes: Sequence[str] = (), cause_ids: Sequence[str] = (),
           this_plan: Optional[Callable[[], Tuple[Optional[Facts], object, Optional["Plan"]]]] = None) -> FixHost:
    """The host the fixes are for, and its plan where one is needed. `this_plan`: () -> (facts, recipes, plan) of
    this host (probes it); called only when this host's plan is the fix."""
    from torch_setup import pipeline

    if facts_file is not None:
        facts = pipeline.read_facts(facts_file)
        rec = pipeline.load_recipes(list(recipes), {})
        plan = None
        if needs_plan:
            try:
                plan = pipeline.plan_host(request, facts, rec, online=False)
            except TorchSetupError:
                plan = None
        return FixHost(FACTS, f"the host of {facts_file}", _platform_of(facts), facts, plan)
    if here:
        facts, _, plan = this_plan() if (this_plan and needs_plan) else (None, None, None)
        return FixHost(THIS, "--here: the log is from this host", "this", facts, plan)
    if needs_plan and log.system is None:
        # Nothing in the log says which OS wrote it (a one-line paste, a CI summary): this host's plan would be a
        # guess, and a command for the wrong OS where the guess is wrong; advice instead, and `--here` for the plan.
        return FixHost(LOG, NO_OS, "unknown")
    quick = loghost.quick_here(system)
    found = loghost.conflicts(log, quick)
    if not found and needs_plan and this_plan is not None:
        facts, rec, plan = this_plan()
        minor = facts.python.minor if facts is not None and facts.python.found else None
        found = loghost.conflicts(log, quick, minor) + gpu_conflicts(log, facts, cause_ids)
        if not found:
            why = ("the log matches this host" if log.known else "the log names no other host")
            return FixHost(THIS, why, "this", facts, plan)
    if not found:
        why = "the log matches this host" if log.known else "the log names no other host"
        return FixHost(THIS, why, "this")
    facts = log_facts(log, cause_ids) if needs_plan else None
    plan = None
    if facts is not None:
        try:
            plan = pipeline.assemble(_for_gpu(request, log, cause_ids), facts,
                                     pipeline.load_recipes(list(recipes), {}))
        except (TorchSetupError, AssertionError, KeyError):
            plan = None
    return FixHost(LOG, "; ".join(found), log.platform, facts, plan, found)


# causes whose fix depends on the GPU: this host's plan fixes them only where the log's GPU is this host's
_GPU_CAUSES = ("gpu-arch-unsupported",)


def gpu_conflicts(log: loghost.LogHost, facts: Optional[Facts], cause_ids: Sequence[str]) -> List[str]:
    """Why the GPU in the log is not this host's, for causes whose fix is a torch build for that GPU: another
    capability, no NVIDIA GPU here, or a log that names no GPU (then its fix is advice, not this host's plan)."""
    if not any(c in _GPU_CAUSES for c in cause_ids):
        return []
    acc = facts.accelerator if facts is not None else None
    if not log.capability:
        return ["the log does not say which GPU it ran on, and the fix is a torch build for that GPU"]
    sm = "sm_" + log.capability.replace(".", "")
    gpu = f"{sm} ({log.gpus[0]})" if log.gpus else sm
    if acc is None or acc.kind != "nvidia":
        return [f"the log's GPU is {gpu}; this host has no NVIDIA GPU"]
    if acc.compute_capability and acc.compute_capability != log.capability:
        return [f"the log's GPU is {gpu}; this host's is sm_{acc.compute_capability.replace('.', '')}"]
    return []


def _for_gpu(request: Request, log: loghost.LogHost, cause_ids: Sequence[str]) -> Request:
    """The request for the log's host: a Blackwell GPU (sm_100, sm_120) needs torch 2.7 or later (its first
    release with CUDA 12.8 builds), where the log names one and the user asked for no version."""
    import dataclasses

    if ("gpu-arch-unsupported" in cause_ids and log.capability and int(log.capability.split(".")[0]) >= 10
            and not request.torch):
        return dataclasses.replace(request, torch=">=2.7")
    return request


def _platform_of(facts: Facts) -> str:
    return {"Windows": "windows", "Darwin": "macos"}.get(facts.os.system, "linux")


def fixes(causes, fh: FixHost, log: loghost.LogHost) -> List[dict]:
    """The causes as explain prints them, each with its fix and the host that fix is for."""
    from torch_setup.explain import fix_steps

    out = []
    for c in causes:
        steps = fix_steps(c, fh.plan) if fh.plan is not None else []
        commands = [cmd for s in steps for cmd in s.commands]
        advice = c.advice_for(fh.platform if fh.kind != THIS else "") if c.id != "unknown" else c.advice
        extra = tailored(c.id, log) if fh.kind != FACTS else ""
        if extra:
            advice = f"{extra} {advice}"
        fix = "; ".join(cmd.display() for cmd in commands) if commands else advice
        out.append({"id": c.id, "title": c.title, "evidence": c.evidence, "line": c.line, "fix": fix,
                    "fix_for": fh.kind if commands else ADVICE,
                    "fix_steps": [s.id for s in steps], "fix_commands": [cmd.shown() for cmd in commands],
                    "advice": advice, "note": extra})
    return out


def tailored(cause_id: str, log: loghost.LogHost) -> str:
    """A sentence computed from what the log names (its GPU, torch build, driver), or ""."""
    if cause_id == "gpu-arch-unsupported" and log.capability:
        major = int(log.capability.split(".")[0])
        sm = "sm_" + log.capability.replace(".", "")
        build = f"this torch ({log.torch}+{log.torch_build})" if log.torch and log.torch_build else "this torch build"
        gpu = f"the {log.gpus[0]} ({sm})" if log.gpus else f"a {sm} GPU"
        if log.jetson:
            return f"{build} has no kernels for {gpu}."
        if major >= 10:
            return f"{build} has no kernels for {gpu}: it needs a build for CUDA 12.8 or later (+cu128, torch 2.7+)."
        if major <= 6:
            return (f"{build} has no kernels for {gpu}: newer CUDA builds dropped it; a +cu126 build (or an older "
                    f"torch) still carries {sm}.")
        return f"{build} has no kernels for {gpu}."
    if cause_id == "cuda-driver-too-old" and log.torch_build and log.torch_build.startswith("cu"):
        cuda = f"{log.torch_build[2:-1]}.{log.torch_build[-1]}"
        return (f"This torch was built for CUDA {cuda} (+{log.torch_build}): a newer torch needs an even newer "
                "driver; pick a build for the CUDA version the driver supports (nvidia-smi shows it).")
    return ""

