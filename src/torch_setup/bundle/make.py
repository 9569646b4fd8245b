"""`torch-setup bundle`: the plan of each host (pipeline.plan_host, the same one `plan` prints), then everything
those plans fetch, downloaded once into one directory:

    manifest.json                 which host gets what, sizes, sources, sha256 of every file
    torch-setup.pyz               the tool itself (`python3 torch-setup.pyz install --from DIR`)
    uv/uv-V-py3-none-PLAT.whl     the uv wheel of each platform whose plan fetches uv (the binary is inside)
    wheels/*.whl                  torch, its companions and dependencies, pip: every file once
    targets/ID/requirements.txt   per (torch build x Python x platform): name==version --hash=sha256:...
    targets/ID/pylock.toml        ... the same set as a PEP 751 lock file (paths into wheels/)
    debs/*.deb                    the Debian-family packages each plan installs, with their dependencies
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

from torch_setup import __version__
from torch_setup.bundle import apt, store
from torch_setup.bundle import wheels as wheelsets
from torch_setup.errors import BundleError
from torch_setup.facts.model import Facts
from torch_setup.masking import mask_text

if TYPE_CHECKING:
    from torch_setup.planning.steps import Plan

MANIFEST = "manifest.json"
FORMAT = "torch-setup-bundle/1"
PYZ = "torch-setup.pyz"


@dataclass
class HostIn:
    label: str  # the facts file, or "this host"
    facts: Facts
    here: bool  # this host's own facts (its local folders may be read)


@dataclass
class HostPlan:
    host: HostIn
    plan: "Plan"
    wheel_set: Optional[wheelsets.WheelSet] = None
    uv: Optional[store.Item] = None
    uv_version: str = ""
    deb_set: Optional[apt.DebSet] = None
    mirror: List[dict] = field(default_factory=list)  # packages of other managers: what an admin mirrors


def apt_packages(argv: Sequence[str]) -> Optional[List[str]]:
    """The package names of an `apt-get install` argv (sudo/env prefixes allowed); None for any other command."""
    words = list(argv)
    if "apt-get" not in [os.path.basename(w) for w in words]:
        return None
    i = [os.path.basename(w) for w in words].index("apt-get")
    rest = words[i + 1:]
    if "install" not in rest:
        return None
    out, skip = [], False
    for w in rest[rest.index("install") + 1:]:
        if skip:
            skip = False
        elif w == "-o":
            skip = True
        elif not w.startswith("-"):
            out.append(w)
    return out


def plan_host(request, recipes, host: HostIn, system) -> HostPlan:
    """The host's plan and what of it the bundle must hold."""
    from torch_setup import pipeline

    facts = host.facts
    plan = pipeline.plan_host(request, facts, recipes, system=system if host.here else None)
    what = f"{host.label} ({facts.os.id} {facts.os.version or facts.os.codename} {facts.arch})"
    provider = plan.step_for("python")
    if provider is not None:
        raise BundleError(f"{what}: its plan provides a Python ({provider.title}); bundles do not hold one",
                          hint="bundle for a Python the host has (--python 3.13 where it has 3.13, or the default)")
    out = HostPlan(host, plan)
    torch_step = plan.step_for("torch")
    if torch_step is not None:
        reqs, index = wheelsets.split_step(torch_step.commands[-1].argv)
        venv = plan.step_for("environment")
        seeded = venv is not None and "--seed" in venv.commands[-1].argv
        py = facts.python
        label = f"{py.minor}{'t' if py.free_threaded else ''}"
        out.wheel_set = wheelsets.WheelSet(reqs, index, label, wheelsets.uv_platform(facts),
                                           wheelsets.seed_for(label) if seeded else ())
    if plan.step_for("uv") is not None:
        wheel = pipeline.resolve_uv(facts, recipes, request)
        if wheel is None:
            raise BundleError(f"{what}: its plan fetches uv, and no uv wheel was found for it again")
        out.uv, out.uv_version = store.Item(f"uv/{wheel.filename}", wheel.url, wheel.sha256, wheel.size), \
            wheel.version
    packages: List[str] = []
    for step in plan.todo:
        if not step.root or "torch" in step.provides:
            continue
        for cmd in step.commands:
            names = apt_packages(cmd.argv)
            if names is not None:
                packages += names
            elif step.provides:  # another manager's packages: not fetched here
                out.mirror.append({"step": step.id, "command": cmd.display()})
    if packages:
        out.deb_set = apt.deb_set(facts, packages, system.env)
    return out


def _public(url: str) -> str:
    """A source URL as the manifest keeps it: without credentials."""
    return mask_text(url)


def _mb(n: Optional[int]) -> str:
    return f"{n / 1e6:,.1f} MB" if n is not None else "? MB"


@dataclass
class Bundle:
    hosts: List[HostPlan]
    wheel_files: Dict[str, List[wheelsets.Locked]]  # wheel set id -> its wheels
    deb_files: Dict[str, List[store.Item]]  # deb set id -> its .debs
    files: Dict[str, store.Item]  # path in the bundle -> item: each file once

    def size(self, paths) -> int:
        return sum(self.files[p].size or 0 for p in set(paths))

    def host_paths(self, hp: HostPlan) -> List[str]:
        paths = [lk.item.path for lk in self.wheel_files.get(hp.wheel_set.id, [])] if hp.wheel_set else []
        paths += [i.path for i in self.deb_files.get(hp.deb_set.id, [])] if hp.deb_set else []
        return paths + ([hp.uv.path] if hp.uv else [])

    def summary_lines(self) -> List[str]:
        lines = []
        for hp in self.hosts:
            f = hp.host.facts
            parts = []
            if hp.wheel_set:
                parts.append(f"wheels {hp.wheel_set.id} "
                             f"{_mb(self.size(lk.item.path for lk in self.wheel_files[hp.wheel_set.id]))}")
            if hp.deb_set:
                parts.append(f"debs {len(self.deb_files[hp.deb_set.id])} "
                             f"{_mb(self.size(i.path for i in self.deb_files[hp.deb_set.id]))}")
            if hp.uv:
                parts.append(f"uv {_mb(hp.uv.size)}")
            lines.append(f"{hp.host.label}: {f.os.id} {f.os.version or f.os.codename} {f.arch} Python "
                         f"{f.python.version}: " + (", ".join(parts) or "nothing to fetch (its plan is done)"))
            for m in hp.mirror:
                lines.append(f"  not bundled (mirror it for that host): {m['command']}")
        lines.append(f"total: {len(self.files)} files, {_mb(self.size(self.files))} (each file once)")
        return lines


def resolve(system, request, recipes, hosts: Sequence[HostIn], this_facts: Callable[[], Facts],
            say: Callable[[str], None]) -> Bundle:
    """Every host's plan and every file the bundle holds, with sizes: nothing but metadata downloaded."""
    plans = [plan_host(request, recipes, h, system) for h in hosts]
    cache = store.cache_dir(system.env)
    wheel_files: Dict[str, List[wheelsets.Locked]] = {}
    deb_files: Dict[str, List[store.Item]] = {}
    files: Dict[str, store.Item] = {}

    def add(item: store.Item) -> None:
        old = files.get(item.path)
        if old is not None and old.sha256 != item.sha256:
            raise BundleError(f"two different files named {os.path.basename(item.path)} "
                              f"({_public(old.url)}, {_public(item.url)})",
                              hint="bundle these hosts separately")
        files[item.path] = item

    uv_here: Optional[str] = None
    for hp in plans:
        ws = hp.wheel_set
        if ws and ws.id not in wheel_files:
            if uv_here is None:
                uv_here = wheelsets.uv_for_here(system, this_facts, os.path.join(cache, "uv"))
            say(f"resolving {' '.join(ws.requirements)} for Python {ws.python} on {ws.platform}")
            wheel_files[ws.id] = wheelsets.compile_set(system, uv_here, ws, os.path.join(cache, "compile", ws.id))
        for lk in wheel_files.get(ws.id, []) if ws else []:
            add(lk.item)
        ds = hp.deb_set
        if ds and ds.id not in deb_files:
            say(f"resolving {' '.join(ds.packages)} for {ds.os_id} {ds.codename} {ds.arch} against the "
                f"{len(ds.installed)} packages its facts list as installed")
            deb_files[ds.id] = apt.resolve(system, ds, os.path.join(cache, "apt"))
        for item in deb_files.get(ds.id, []) if ds else []:
            add(item)
        if hp.uv:
            add(hp.uv)
    return Bundle(plans, wheel_files, deb_files, files)


def _pyz(system, dest: str) -> None:
    """The running zipapp, copied; from a checkout, scripts/build-zipapp builds it."""
    import shutil

    main = sys.modules.get("__main__")
    here = os.path.abspath(getattr(main, "__file__", "") or "")
    archive = os.path.dirname(here) if here else ""
    if archive.endswith(".pyz") and os.path.isfile(archive):
        shutil.copyfile(archive, dest)
        return
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    script = os.path.join(repo, "scripts", "build-zipapp")
    if not os.path.isfile(script):
        raise BundleError("cannot put the pyz into the bundle: this torch-setup is neither a .pyz nor a checkout",
                          hint="run `bundle` with torch-setup.pyz (python3 torch-setup.pyz bundle ...)")
    res = system.run([sys.executable, script, "-o", dest], timeout=900)
    if not res.ok:
        raise BundleError("scripts/build-zipapp failed", details=(res.stdout + res.stderr)[-1500:])


def write(system, bundle: Bundle, output: str, request_dict: dict, say: Callable[[str], None]) -> dict:
    """Download what is not cached, link it into `output`, write the lock files, the pyz and the manifest."""
    from torch_setup.wheels import trust

    os.makedirs(output, exist_ok=True)
    cache = store.cache_dir(system.env)
    session = trust.session(trust.from_config(system.env))
    start, fetched = time.monotonic(), 0
    for item in sorted(bundle.files.values(), key=lambda i: i.path):
        if store.fetch(item, output, cache, session, say):
            fetched += os.path.getsize(os.path.join(output, item.path))
        if item.size is None:  # an index that lists no sizes (PEP 503 HTML): the file's own
            bundle.files[item.path] = replace(item, size=os.path.getsize(os.path.join(output, item.path)))
    targets = {}
    for ws_id, locked in bundle.wheel_files.items():
        ws = next(hp.wheel_set for hp in bundle.hosts if hp.wheel_set and hp.wheel_set.id == ws_id)
        folder = os.path.join(output, "targets", ws_id)
        os.makedirs(folder, exist_ok=True)
        req = os.path.join(folder, "requirements.txt")
        with open(req, "w") as f:
            f.write(wheelsets.requirements_txt(locked))
        lock = os.path.join(folder, "pylock.toml")
        with open(lock, "w") as f:
            f.write(wheelsets.pylock_toml(locked, ws.python, "../..", f"torch-setup {__version__}"))
        torch_of = next((hp.plan.torch for hp in bundle.hosts if hp.wheel_set and hp.wheel_set.id == ws_id), None)
        targets[ws_id] = {
            "python": ws.python, "platform": ws.platform, "requirements": list(ws.requirements),
            "seed": list(ws.seed), "index": [mask_text(a) for a in ws.index_args], "torch": torch_of,
            "requirements_file": f"targets/{ws_id}/requirements.txt", "lock": f"targets/{ws_id}/pylock.toml",
            "requirements_sha256": store.sha256_of(req), "lock_sha256": store.sha256_of(lock),
            "wheels": [{"name": lk.name, "version": lk.version, "path": lk.item.path} for lk in locked],
            "bytes": bundle.size(lk.item.path for lk in locked)}
    say("building torch-setup.pyz")
    _pyz(system, os.path.join(output, PYZ))
    pyz = os.path.join(output, PYZ)
    manifest = {
        "format": FORMAT, "created_by": f"torch-setup {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request": request_dict,
        "pyz": {"path": PYZ, "sha256": store.sha256_of(pyz), "size": os.path.getsize(pyz)},
        "hosts": [{
            "label": hp.host.label, "os": {"id": hp.host.facts.os.id, "version": hp.host.facts.os.version,
                                           "codename": hp.host.facts.os.codename},
            "arch": hp.host.facts.arch, "python": hp.host.facts.python.version,
            "python_executable": hp.host.facts.python.executable,
            "wheels": hp.wheel_set.id if hp.wheel_set else None, "debs": hp.deb_set.id if hp.deb_set else None,
            "uv": hp.uv.path if hp.uv else None, "uv_version": hp.uv_version or None, "mirror": hp.mirror,
            "bytes": bundle.size(bundle.host_paths(hp)), "plan": hp.plan.to_dict(),
        } for hp in bundle.hosts],
        "targets": targets,
        "deb_sets": {ds_id: dict(next(hp.deb_set for hp in bundle.hosts if hp.deb_set and hp.deb_set.id == ds_id)
                                 .to_dict(), files=[i.path for i in items],
                                 bytes=bundle.size(i.path for i in items))
                     for ds_id, items in bundle.deb_files.items()},
        "files": {p: {"sha256": i.sha256, "size": i.size, "source": _public(i.url)}
                  for p, i in sorted(bundle.files.items())},
        "bytes": bundle.size(bundle.files) + os.path.getsize(pyz),
        "downloaded_bytes": fetched, "download_s": round(time.monotonic() - start, 1),
    }
    with open(os.path.join(output, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def request_dict(request) -> dict:
    """The install options the bundle was planned with (masked), for the manifest."""
    return {"python": request.python.text, "venv": request.venv, "torch": request.torch,
            "torch_backend": request.backend, "with": list(request.with_),
            "index_url": mask_text(request.index_url or "") or None,
            "find_links": [mask_text(x) for x in request.find_links],
            "break_system_packages": request.break_system_packages}


def run(system, request, recipes, facts_files: Sequence[str], output: str, *, dry_run: bool,
        say: Callable[[str], None]) -> dict:
    """The `bundle` command: the hosts (facts files, else this host), their plans and files; the sizes alone with
    `dry_run`; else the bundle in `output` (a folder, or a .tar of one)."""
    from torch_setup import pipeline

    here: List[Facts] = []

    def this_facts() -> Facts:
        if not here:
            here.append(pipeline.gather_target(system, request, recipes))
        return here[0]

    if facts_files:
        hosts = [HostIn(path, pipeline.read_facts(path), False) for path in facts_files]
    else:
        hosts = [HostIn("this host", this_facts(), True)]
    start = time.monotonic()
    bundle = resolve(system, request, recipes, hosts, this_facts, say)
    summary = {"hosts": [{"label": hp.host.label, "bytes": bundle.size(bundle.host_paths(hp)),
                          "wheels": hp.wheel_set.id if hp.wheel_set else None,
                          "debs": hp.deb_set.id if hp.deb_set else None, "uv": hp.uv.path if hp.uv else None,
                          "mirror": hp.mirror, "steps": [s.id for s in hp.plan.todo]} for hp in bundle.hosts],
               "files": len(bundle.files), "bytes": bundle.size(bundle.files),
               "lines": bundle.summary_lines(), "resolve_s": round(time.monotonic() - start, 1)}
    if dry_run:
        return dict(summary, dry_run=True, output=output)
    tar = output.endswith(".tar")
    folder = output[:-len(".tar")] + ".d" if tar else output
    if tar and os.path.exists(folder):
        raise BundleError(f"{folder} is in the way (the folder the tarball is made from)", hint="remove it")
    manifest = write(system, bundle, folder, request_dict(request), say)
    if tar:
        import shutil
        import tarfile

        say(f"writing {output}")
        with tarfile.open(output + ".part", "w") as t:
            t.add(folder, arcname=os.path.basename(output)[:-len(".tar")])
        os.replace(output + ".part", output)
        shutil.rmtree(folder)
    return dict(summary, dry_run=False, output=output, downloaded_bytes=manifest["downloaded_bytes"],
                download_s=manifest["download_s"], total_bytes=manifest["bytes"],
                seconds=round(time.monotonic() - start, 1))
