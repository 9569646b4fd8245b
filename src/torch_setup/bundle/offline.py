"""`install --from BUNDLE`: this host's plan, with torch, uv and the system packages taken from the bundle alone
(no DNS, no index, no PyPI): the wheels with `--no-index --find-links BUNDLE/wheels --require-hashes -r
targets/ID/requirements.txt` (pip and uv check every wheel's sha256), uv's wheel from a file:// URL (its fetch step
checks the sha256), apt from the bundle's .debs (their sha256 checked here first). Everything else is the plan,
run and verification of an online install."""
from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

from torch_setup.bundle import store
from torch_setup.bundle.apt import ARCH
from torch_setup.bundle.make import FORMAT, MANIFEST, apt_packages
from torch_setup.errors import BundleError
from torch_setup.planning.steps import Command, Plan
from torch_setup.wheels.choose import Choice


@dataclass(frozen=True)
class BundleChoice(Choice):
    """The torch the bundle holds for this host: installed from its files, never from an index."""
    wheels_dir: str = ""
    requirements_file: str = ""

    def install_args(self, uv: bool = False) -> List[str]:
        return ["-r", self.requirements_file, "--require-hashes", *self.index_args(uv)]

    def index_args(self, uv: bool = False) -> List[str]:
        return ["--no-index", "--find-links", self.wheels_dir]


class Source:
    """Where the bundle is: a folder; an http(s) URL of one (a controller serving it), whose manifest is read and
    whose files this host's plan needs are fetched, each checked against the manifest's sha256, into the bundle
    cache (store.py) and used from there; or a .tar of one (`bundle --output X.tar`), whose needed files are
    extracted there the same way."""

    def __init__(self, location: str, env):
        import hashlib

        self.remote = location.startswith(("http://", "https://"))
        self.tar = None
        self.location = location
        self.env = env
        if not self.remote and location.endswith(".tar") and os.path.isfile(location):
            import tarfile

            try:
                self.tar = tarfile.open(location)
                top = next((m.name.split("/", 1)[0] for m in self.tar if m.name.endswith("/" + MANIFEST)), None)
            except (OSError, tarfile.TarError) as e:
                raise BundleError(f"--from {location}: not a readable tarball ({e})") from None
            if top is None:
                raise BundleError(f"--from {location}: no bundle in this tarball (no {MANIFEST})")
            self.top = top
            stat = os.stat(location)
            key = f"{os.path.abspath(location)}:{stat.st_size}:{stat.st_mtime}"
            self.cache = store.cache_dir(env)
            self.dir = os.path.join(self.cache, "from", hashlib.sha256(key.encode()).hexdigest()[:16])
        elif self.remote:
            from torch_setup.wheels import trust

            self.base = location.rstrip("/") + "/"
            self.cache = store.cache_dir(env)
            self.dir = os.path.join(self.cache, "from", hashlib.sha256(self.base.encode()).hexdigest()[:16])
            self.session = trust.session(trust.from_config(env))
        else:
            self.dir = os.path.abspath(location)
        self.manifest = self._read()

    def _read(self) -> dict:
        from torch_setup.masking import mask

        shown = mask(self.location)
        try:
            if self.tar is not None:
                member = self.tar.extractfile(f"{self.top}/{MANIFEST}")
                data = json.load(member) if member else None
            elif self.remote:
                try:
                    resp = self.session.get(self.base + MANIFEST, timeout=(10, 60))
                except Exception as e:  # requests' connection errors (OSErrors too): one line
                    raise BundleError(f"--from {shown}: cannot read {MANIFEST}: {type(e).__name__}",
                                      details=str(e), hint="is the bundle served there? (python3 -m http.server "
                                      "-d BUNDLE 8080 on the controller serves one)") from None
                if resp.status_code != 200:
                    raise BundleError(f"--from {shown}: no bundle there ({MANIFEST}: HTTP {resp.status_code})",
                                      hint="give the URL of the folder `torch-setup bundle --output DIR` made")
                data = resp.json()
            else:
                with open(os.path.join(self.dir, MANIFEST)) as f:
                    data = json.load(f)
        except OSError as e:
            raise BundleError(f"--from {shown}: no bundle there ({MANIFEST}: {e.strerror or e})",
                              hint="give the folder `torch-setup bundle --output DIR` made") from None
        except ValueError as e:
            raise BundleError(f"--from {shown}: {MANIFEST} is not JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleError(f"--from {shown}: {MANIFEST} is not a {FORMAT} manifest",
                              hint="make the bundle again with this torch-setup")
        return data

    def ensure(self, paths, sha256: Optional[str] = None) -> None:
        """Fetch these files of a remote bundle (checked), or extract them from a tarball (checked after, as a
        folder's are); a folder's are used where they are."""
        if self.tar is not None:
            for path in paths:
                dest = os.path.join(self.dir, path)
                if os.path.isfile(dest):
                    continue
                try:
                    member = self.tar.getmember(f"{self.top}/{path}")
                    src = self.tar.extractfile(member)
                except KeyError:
                    raise BundleError(f"the bundle is incomplete: {path} is missing",
                                      hint="make the tarball again") from None
                if src is None:
                    raise BundleError(f"the bundle is damaged: {path} is no file in the tarball")
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest + ".part", "wb") as out:
                    import shutil

                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(dest + ".part", dest)
            return
        if not self.remote:
            return
        for path in paths:
            meta = self.manifest.get("files", {}).get(path) or {"sha256": sha256, "size": None}
            if not meta.get("sha256"):
                raise BundleError(f"the bundle's manifest has no sha256 for {path}")
            url = self.base + urllib.parse.quote(path)  # apt's file names hold %3a for an epoch's colon
            store.fetch(store.Item(path, url, meta["sha256"], meta.get("size")), self.dir, self.cache, self.session)


def read_manifest(bundle: str, env=None) -> dict:
    return Source(bundle, env if env is not None else os.environ).manifest


def built_for(manifest: dict) -> str:
    hosts = manifest.get("hosts") or []
    return "; ".join(f"{h.get('label')}: {h['os'].get('id')} {h['os'].get('version') or h['os'].get('codename')} "
                     f"{h.get('arch')} Python {h.get('python')}" for h in hosts) or "no host"


def _missing(manifest: dict, what: str, hint: str = "") -> BundleError:
    return BundleError(f"the bundle lacks {what} (it was built for {built_for(manifest)})",
                       hint=hint or "make a bundle from this host's facts: `torch-setup detect --json > me.json` "
                       "here, then `torch-setup bundle --facts me.json --output DIR` where the network is")


def _fits(filename: str, tags) -> bool:
    from packaging.utils import parse_wheel_filename

    try:
        return bool(set(parse_wheel_filename(filename)[3]) & set(tags))
    except Exception:
        return False


def _target(manifest: dict, facts, request) -> Tuple[str, dict]:
    """The wheel set for this host's Python and platform: its Python, a torch wheel whose tags it takes, the
    companions asked for (--with) and a torch in the range asked for (--torch)."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from torch_setup.wheels.tags import target_from

    py = facts.python
    label = f"{py.minor}{'t' if py.free_threaded else ''}"
    tags = target_from(facts)[0].tags
    for ws_id, t in (manifest.get("targets") or {}).items():
        torch = next((w for w in t.get("wheels", []) if w["name"] == "torch"), None)
        names = {canonicalize_name(w["name"]) for w in t.get("wheels", [])}
        if t.get("python") == label and torch and _fits(os.path.basename(torch["path"]), tags) \
                and {canonicalize_name(n) for n in request.with_} <= names \
                and (not request.torch or Version(torch["version"]) in SpecifierSet(request.torch)):
            return ws_id, t
    wanted = " with " + ",".join(request.with_) if request.with_ else ""
    wanted += f" in {request.torch}" if request.torch else ""
    raise _missing(manifest, f"torch wheels{wanted} for Python {label} on {facts.os.system} {facts.arch} "
                   f"(glibc {facts.libc.version})")


def _uv(manifest: dict, bundle: str, facts):
    """The bundle's uv wheel for this platform, as the plan's uv step fetches it (a file:// URL), or None."""
    from torch_setup.wheels.tags import target_from
    from torch_setup.wheels.uv import UvWheel

    tags = target_from(facts)[0].tags
    for host in manifest.get("hosts") or []:
        path = host.get("uv")
        if path and _fits(os.path.basename(path), tags):
            f = manifest["files"][path]
            return UvWheel(host.get("uv_version") or "", os.path.basename(path),
                           "file://" + os.path.join(bundle, path), f["sha256"], f.get("size"))
    return None


def check_files(manifest: dict, bundle: str, paths, *, hash_them: bool) -> None:
    """Each file there, of its size; its sha256 too where `hash_them` (wheels: pip/uv check them as they
    install, with the requirements' hashes)."""
    for path in paths:
        meta = manifest["files"].get(path)
        full = os.path.join(bundle, path)
        if meta is None or not os.path.isfile(full):
            raise BundleError(f"the bundle is incomplete: {path} is missing", hint="copy the whole bundle again")
        if meta.get("size") is not None and os.path.getsize(full) != meta["size"]:
            raise BundleError(f"the bundle is damaged: {path} has {os.path.getsize(full)} bytes, the manifest "
                              f"says {meta['size']}", hint="copy the whole bundle again")
        if hash_them and store.sha256_of(full) != meta["sha256"]:
            raise BundleError(f"the bundle is damaged: {path} does not match its sha256 {meta['sha256']}",
                              hint="copy the whole bundle again")


def _check_own(bundle: str, rel: str, want: Optional[str]) -> None:
    full = os.path.join(bundle, rel)
    if not os.path.isfile(full) or (want and store.sha256_of(full) != want):
        raise BundleError(f"the bundle is damaged: {rel} is missing or does not match its sha256",
                          hint="copy the whole bundle again")


def _debs_for(manifest: dict, facts, packages: List[str]) -> Tuple[str, dict]:
    arch = ARCH.get((facts.arch or "").lower(), facts.arch)
    for ds_id, ds in (manifest.get("deb_sets") or {}).items():
        if ds.get("os") != facts.os.id or ds.get("codename") != facts.os.codename or ds.get("arch") != arch:
            continue
        names = {os.path.basename(p).split("_", 1)[0] for p in ds.get("files", [])} | set(ds.get("packages", []))
        if set(packages) <= names:
            return ds_id, ds
    raise _missing(manifest, f"the .debs of {' '.join(packages)} for {facts.os.id} {facts.os.codename} {arch}")


def plan(request, facts, recipes, bundle: str, env=None) -> Plan:
    """This host's plan from the bundle: the same assembly as online (pipeline.assemble), its torch choice and uv
    the bundle's, its package steps apt-get on the bundle's .debs. Raises BundleError for anything missing."""
    from torch_setup import pipeline
    from torch_setup.masking import mask
    from torch_setup.planning import make as planning

    src = Source(bundle, env if env is not None else os.environ)
    manifest, bundle = src.manifest, src.dir
    rec = recipes
    choice, uv, used = None, None, []
    if facts.python.found and not facts.python.predicted and planning.needs_torch(facts, rec, request):
        ws_id, t = _target(manifest, facts, request)
        src.ensure([t["requirements_file"]], t.get("requirements_sha256"))
        _check_own(bundle, t["requirements_file"], t.get("requirements_sha256"))
        used += [w["path"] for w in t["wheels"]]
        src.ensure(used)
        check_files(manifest, bundle, used, hash_them=False)
        torch = t.get("torch") or {}
        choice = BundleChoice(
            variant=torch.get("variant") or "", version=torch.get("version") or "",
            requirement=torch.get("requirement") or "torch", extras=tuple(torch.get("extras") or ()),
            index_url=None, extra_index_urls=(), find_links=(os.path.join(bundle, "wheels"),),
            wheel=torch.get("wheel") or "", source="bundle",
            reasons=(f"torch from the bundle {bundle} ({ws_id}), as planned where it was built: "
                     + "; ".join(torch.get("reasons") or []),),
            warnings=(), env=(("UV_OFFLINE", "1"), ("PIP_NO_INDEX", "1")),
            wheels_dir=os.path.join(bundle, "wheels"), requirements_file=os.path.join(bundle, t["requirements_file"]))
        if not facts.host.uv:
            uv = _uv(manifest, bundle, facts)
            if uv is not None:
                src.ensure([os.path.relpath(uv.url[len("file://"):], bundle)])
    the_plan = pipeline.assemble(request, facts, rec, choice=choice, uv=uv)
    if uv is not None and the_plan.step_for("uv") is not None:
        check_files(manifest, bundle, [os.path.relpath(uv.url[len("file://"):], bundle)], hash_them=True)
    provider = the_plan.step_for("python")
    if provider is not None:
        raise _missing(manifest, f"a Python ({provider.title}): bundles hold none",
                       hint="install from the bundle for a Python this host has (--python)")
    steps = []
    for step in the_plan.steps:
        if step.status != "todo" or "torch" in step.provides:
            steps.append(step)
            continue
        packages: List[str] = []
        for cmd in step.commands:
            names = apt_packages(cmd.argv)
            if names is not None:
                packages += names
        if not packages:
            if step.root and step.provides:
                raise _missing(manifest, f"what the step {step.id!r} installs ({step.title})",
                               hint="install these packages from a mirror of this host's distribution first")
            steps.append(step)
            continue
        ds_id, ds = _debs_for(manifest, facts, packages)
        src.ensure(ds["files"])
        check_files(manifest, bundle, ds["files"], hash_them=True)
        install = next(c for c in step.commands if apt_packages(c.argv) is not None)
        words = list(install.argv)
        at = [os.path.basename(w) for w in words].index("apt-get")
        # As root, not apt's _apt user: a bundle fetched or extracted into ~/.cache (under a 0700 /root) is
        # unreadable to _apt, and apt 3.0 then fails the file: fetch. The .debs were sha256-checked just above.
        # apt's lists directory is the bundle's debs/ (no list files there): with the host's own lists, apt fetches
        # a .deb named on its command line from the archive again when the archive has the same version.
        argv = tuple(words[:at + 1]) + ("install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600",
                                        "-o", "APT::Sandbox::User=root",
                                        "-o", "Dir::State::Lists=" + os.path.join(bundle, "debs")) \
            + tuple(os.path.join(bundle, p) for p in ds["files"])
        steps.append(replace(step, commands=(Command(argv, dict(install.env)),),
                             title=f"{step.title} (from the bundle's {len(ds['files'])} .debs)",
                             why=step.why + f"; the bundle's .debs {ds_id}"))
    return replace(the_plan, steps=tuple(steps),
                   notes=the_plan.notes + (f"installing from the bundle {mask(src.location)} (built for "
                                           f"{built_for(manifest)}): no index, no network",))
