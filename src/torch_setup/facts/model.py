"""The facts about a host and a target Python: frozen dataclasses that round-trip through JSON.

`detect --json` prints `Facts.to_dict()`; `plan --facts FILE` reads it back with `Facts.from_dict`, so a plan can
be made for another host without probing this one. Facts say what a host *is*: nothing rewrites them after
gathering. An interpreter that a plan will provide is a `PythonFacts` with `predicted=True`: it does not exist yet,
and no code runs it or reads files under it.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from torch_setup.errors import FactsError

SCHEMA = 2  # 2: python.spec removed; python.absent, python.predicted, host_python, config added


@dataclass(frozen=True)
class OsFacts:
    id: str = ""  # distro id: debian, ubuntu, fedora, rhel, darwin, ...
    version: str = ""  # "13", "24.04"; "" on rolling releases and Debian testing
    codename: str = ""
    like: List[str] = field(default_factory=list)  # ID_LIKE
    name: str = ""
    system: str = "Linux"  # platform.system()


@dataclass(frozen=True)
class LibcFacts:
    name: Optional[str] = None  # glibc, musl, or None (macOS)
    version: Optional[str] = None


@dataclass(frozen=True)
class HostFacts:
    is_root: bool = False
    sudo: bool = False  # passwordless sudo works
    container: Optional[str] = None  # docker, podman, lxc, ... or None
    chroot: bool = False
    uv: Optional[str] = None  # path of uv on PATH
    apt_lists_age_s: Optional[float] = None  # age of apt's package lists; None: none
    ca_bundle: bool = True  # a system CA bundle exists (pip in a distro venv uses it)
    home: Optional[str] = None  # $HOME: where ~/.venvs/torch and the uv cache go
    conda: Optional[str] = None  # conda, mamba or micromamba on PATH (--python-from conda, a conda env's compiler)
    pyenv: Optional[str] = None  # pyenv on PATH
    openssl: Optional[str] = None  # path of the openssl program on PATH (Inductor >= 2.8 runs it)
    interrupted_packages: List[str] = field(default_factory=list)  # half-installed by a stopped apt (dpkg --audit)
    # dpkg's installed packages, NAME:ARCH=VERSION[;ma=..][;provides=..] (facts/packages.py): `bundle` resolves
    # the .debs another host's plan needs against them
    installed_packages: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class PythonFacts:
    found: bool = False
    absent: str = ""  # not found: the version detect looked for ("3.13"), which this host lacks
    predicted: bool = False  # an interpreter a plan provides: it does not exist yet
    executable: Optional[str] = None
    version: Optional[str] = None  # "3.13.5"
    implementation: Optional[str] = None
    free_threaded: bool = False
    prefix: Optional[str] = None
    base_prefix: Optional[str] = None
    in_venv: bool = False
    base_executable: Optional[str] = None  # the interpreter a venv was made from (pyvenv.cfg "home")
    source: Optional[str] = None  # system, pyenv, conda, homebrew, uv, built-from-source, unknown
    include_dir: Optional[str] = None
    has_headers: bool = False
    externally_managed: bool = False
    venv_ok: bool = False  # `venv` with `ensurepip` works
    user_site: Optional[str] = None

    @property
    def minor(self) -> Optional[str]:
        """'3.13' (with a 't' for free-threaded builds, as package and binary names use)."""
        if not self.version:
            return None
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class CompilerFacts:
    cxx: str = "g++"  # what Inductor will run: $CXX, else g++ (clang++ on macOS)
    path: Optional[str] = None
    family: Optional[str] = None  # gcc, clang, apple-clang
    version: Optional[str] = None
    toolchain_ok: bool = False  # builds C++20 with OpenMP
    ok: bool = False  # ... and with Python.h of the target
    error: Optional[str] = None  # the compiler's own error lines when a check failed
    cc: Optional[str] = None  # the C compiler Triton will use ($CC, gcc, clang)


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU: a PCI display/3D controller (facts/gpus.py), with what the vendor's tools add."""
    vendor: str  # nvidia, amd, intel
    pci: str = ""  # 0000:01:00.0 ("" when only nvidia-smi saw it)
    device_id: str = ""  # PCI device id, 0x1b80
    pci_class: str = ""  # 0x030000 (VGA), 0x030200 (3D), 0x038000 (display)
    kernel_driver: Optional[str] = None  # the kernel driver bound to it (nvidia, nouveau, amdgpu, i915, xe) or None
    name: str = ""  # from nvidia-smi
    compute_capability: Optional[str] = None  # NVIDIA, from nvidia-smi: "6.1"
    gfx: Optional[str] = None  # AMD, from the KFD topology or rocm_agent_enumerator: "gfx942"


@dataclass(frozen=True)
class AcceleratorFacts:
    kind: str = "none"  # nvidia, rocm, xpu, mps, jetson (NVIDIA Jetson / L4T: facts/jetson.py), none
    driver_version: Optional[str] = None
    source: Optional[str] = None  # which probe said so
    gpus: List[str] = field(default_factory=list)
    compute_capability: Optional[str] = None  # lowest of the GPUs, "9.0"
    gfx: Optional[str] = None  # ROCm architecture
    libcuda: Optional[bool] = None  # libcuda.so listed by ldconfig -p (NVIDIA only)
    devices: List[GpuDevice] = field(default_factory=list)  # every physical GPU (PCI scan), whatever is visible
    driver_state: Optional[str] = None  # NVIDIA: present (a driver version was read), absent (a card, no driver)
    l4t: Optional[str] = None  # Jetson: the Jetson Linux release ("36.4.3", from /etc/nv_tegra_release)


@dataclass(frozen=True)
class TorchFacts:
    version: Optional[str] = None
    cuda: Optional[str] = None  # CUDA version the build targets, None for CPU builds
    location: Optional[str] = None
    in_user_site: bool = False
    triton: Optional[str] = None
    hip: Optional[str] = None  # ROCm (HIP) version of a ROCm build, None otherwise
    xpu: Optional[str] = None  # a build for Intel GPUs
    arch_list: Optional[List[str]] = None  # torch._C._cuda_getArchFlags(), read from the installed build's
    #                                        libtorch_python.so without importing torch; None: not read


@dataclass(frozen=True)
class ConfigFacts:
    """The host's own configuration that the plan reads: pip's (`section.key='value'` lines, as `pip config
    list` prints them, read from its configuration files) and the environment variables that steer pip, uv and
    torch-setup (PIP_*, UV_*, TORCH_SETUP_*, the CA variables). Credentials are masked when printed."""
    pip: str = ""
    env: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    os: OsFacts = field(default_factory=OsFacts)
    arch: str = ""
    libc: LibcFacts = field(default_factory=LibcFacts)
    package_manager: Optional[str] = None
    host: HostFacts = field(default_factory=HostFacts)
    python: PythonFacts = field(default_factory=PythonFacts)
    compiler: CompilerFacts = field(default_factory=CompilerFacts)
    accelerator: AcceleratorFacts = field(default_factory=AcceleratorFacts)
    torch: TorchFacts = field(default_factory=TorchFacts)
    host_python: Optional[PythonFacts] = None  # the target absent: the box's python3 (bootstrap scripts, source)
    config: ConfigFacts = field(default_factory=ConfigFacts)
    schema: int = SCHEMA

    def to_dict(self, masked: bool = True) -> Dict[str, Any]:
        """As JSON; `masked`: credentials in the configuration shown as ***, as in every other output."""
        data = dataclasses.asdict(self)
        for key in ("interrupted_packages", "installed_packages"):
            if not data["host"][key]:
                del data["host"][key]  # shown only when there are some (facts of schema 2 as before)
        for part, key in (("accelerator", "devices"), ("accelerator", "driver_state"), ("torch", "hip"),
                          ("torch", "xpu"), ("torch", "arch_list")):
            if data[part][key] in (None, []):
                del data[part][key]  # the GPU facts, likewise: only when there are some
        if data["accelerator"]["l4t"] is None:
            del data["accelerator"]["l4t"]  # shown on a Jetson only
        if masked:
            from torch_setup.masking import mask_text

            data["config"] = {"pip": mask_text(self.config.pip),
                              "env": {k: mask_text(v) for k, v in self.config.env.items()}}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "Facts":
        if isinstance(data, dict) and data.get("schema", 1) == 1:  # schema 1 carried the request in python.spec
            data = dict(data, schema=SCHEMA, python={k: v for k, v in (data.get("python") or {}).items()
                                                     if k != "spec"})
        if isinstance(data, dict) and data.get("schema") != SCHEMA:
            raise FactsError(f"facts: schema {data.get('schema')!r} is not one this torch-setup reads "
                             f"(1 or {SCHEMA})", hint="run `torch-setup detect --json` with this version")
        if isinstance(data, dict) and not isinstance(data.get("python"), dict):
            raise FactsError("facts: no `python` object (the target interpreter)",
                             hint="give the output of `torch-setup detect --json`")
        facts = _load(cls, data, "facts")
        cc = facts.accelerator.compute_capability
        if cc is not None and not re.match(r"^\d+\.\d+$", cc):
            raise FactsError(f"facts.accelerator.compute_capability: {cc!r} is not MAJOR.MINOR (such as '9.0')")
        for i, device in enumerate(facts.accelerator.devices):
            if device.compute_capability is not None and not re.match(r"^\d+\.\d+$", device.compute_capability):
                raise FactsError(f"facts.accelerator.devices[{i}].compute_capability: {device.compute_capability!r} "
                                 "is not MAJOR.MINOR (such as '9.0')")
        return facts


def _load(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise FactsError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise FactsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _value(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _value(hint, value, where):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _value(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(hint):
        return _load(hint, value, where)
    if origin in (dict, Dict):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items()):
            raise FactsError(f"{where}: expected an object of strings")
        return dict(value)
    if origin in (list, List):
        if not isinstance(value, list):
            raise FactsError(f"{where}: expected a list")
        return [_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise FactsError(f"{where}: expected {hint.__name__}, got {type(value).__name__} ({value!r})")
    return value
