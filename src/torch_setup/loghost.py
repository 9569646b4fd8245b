"""The host that wrote a log, read from the log itself: partial facts, each with the text it was read from.

A pasted log carries its host in its paths and messages: `C:\\Users\\...\\site-packages` and `cl` are Windows,
`/Users/...`, `/opt/homebrew` and `.dylib` are macOS, `/usr/lib/python3/dist-packages` is a Debian-family Linux;
`/envs/NAME/` is a conda env, `/.pyenv/versions/` a pyenv Python, `python_embeded` the Windows embedded Python of
ComfyUI's portable build; `torch-2.5.1+cu124`, `sm_120`, `NVIDIA GeForce RTX 5090`, `tegra` name the torch build,
the GPU and a Jetson. Nothing here probes a host: `read(text)` is pure, and `conflicts(log, here)` compares the
log's host with the few facts of this host that cost no process to learn (`quick_here`).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from torch_setup.host.system import System

WINDOWS, MACOS, LINUX = "Windows", "Darwin", "Linux"

_WIN = [r"\b[A-Za-z]:\\(?:[^\\\s\"']+\\)+", r"\b[A-Za-z]:/(?:Users|Program Files|ProgramData|Windows|Python\d*|"
        r"ComfyUI|StabilityMatrix|AI|conda|miniconda3|anaconda3)\b", r"\\Lib\\site-packages\\",
        r"\bcl(?:\.exe)? : Command line", r"\bcl\.exe\b", r"\bWinError \d+", r"\bMSVC\b", r"\.pyd\b",
        r"\bvswhere\b", r"\bwin_amd64\b", r"Windows not yet supported for torch\.compile", r"\bwin32\b",
        r"\bLNK\d{4}\b", r"\bC\d{4}: ", r"(?m)^(?:\([\w.-]+\) )?[A-Za-z]:\\[^\n>]*>"]  # the last: a cmd prompt
_MAC = [r"/Users/[^/\s]+/", r"/opt/homebrew/", r"/Library/Frameworks/Python\.framework", r"\.dylib\b",
        r"\bmacOS\b", r"\bDarwin\b", r"Apple clang version", r"-apple-darwin", r"MacOSX[\d.]*\.sdk", r"\bXcode\b",
        r"/Applications/Xcode", r"/usr/local/Cellar/", r"macosx_\d+_\d+_(?:arm64|x86_64|universal2)",
        r"/private/var/folders/", r"argument unused during compilation: '-fopenmp'"]
_LINUX = [r"/home/[^/\s]+/", r"/usr/lib/python3", r"/usr/lib64/", r"/usr/local/lib/python3", r"/usr/include/",
          r"/root/",
          r"\blinux-gnu\b", r"/opt/conda/", r"\bmanylinux\w*", r"/nix/store/", r"\bUbuntu\b", r"\bDebian\b",
          r"\bFedora\b", r"\bRocky Linux\b", r"\bCentOS\b", r"\.so(?:\.\d+)*\b", r"/usr/bin/(?:ld|gcc|g\+\+|cc)\b",
          r"/proc/", r"\bldconfig\b", r"/tmp/torchinductor_", r"/tmp/tmp\w{8}/(?:main|cuda_utils)\.c",
          r"\bapt(?:-get)?\b", r"\bdpkg\b", r"\bdnf\b|\byum\b", r"\blinux_x86_64\b",
          r"\blinux_aarch64\b", r"/content/", r"/kaggle/", r"/workspace/", r"/opt/rocm"]
# distro id, version (may be ""), and the patterns that say so; the first family that matches wins
_DISTROS: List[Tuple[str, str, str]] = [
    ("nixos", "", r"/nix/store/"),
    ("ubuntu", r"Ubuntu[ -](\d\d\.\d\d)", r"\bUbuntu\b|\bubuntu\d\d\.\d\d|~\d\d\.\d\d\b"),
    ("debian", r"Debian (\d+)", r"\bDebian\b|\b(?:bookworm|trixie|bullseye|buster)\b|\+deb\d+u\d+"),
    ("fedora", r"\bfc(\d\d)\b", r"\bFedora\b|\.fc\d\d\b"),
    ("rhel", r"\bel(\d)\b",
     r"x86_64-redhat-linux|\bdevtoolset-\d+|/usr/lib64/python3|\.el\d\b|Rocky Linux|CentOS|AlmaLinux"),
    ("arch", "", r"\bArch Linux\b|x86_64-pc-linux-gnu/\d+"),
    ("alpine", "", r"\bAlpine\b|\bmusl\b|/usr/lib/python3\.\d+/site-packages/.*alpine"),
    # the Debian family's own paths, without saying which one
    ("debian-family", "",
    r"/dist-packages/|(?:x86_64|aarch64)-linux-gnu/\d+/|/usr/(?:lib|include)/(?:x86_64|aarch64)-linux-gnu\b|"
                         r"\bapt(?:-get)? install\b|\bdpkg\b"),
]
_PY_VERSION = [
    r"/lib/python(3\.\d{1,2})t?/", r"/include/python(3\.\d{1,2})t?\b", r"\bPython (3\.\d{1,2}(?:\.\d+)?)\b",
    r"\bcpython-3(\d{1,2})\b", r"\bcp3(\d{1,2})-cp3\d", r"\\Python3(\d{1,2})\\",
    r"\bpython3(\d{1,2})t?\.(?:lib|dll)\b",
    r"/python(3\.\d{1,2})/site-packages", r"\bpython(3\.\d{1,2})t?-(?:dev|devel)\b", r"\bpython(3\.\d{1,2})t?:",
]
_PY_SOURCE = [
    ("embedded", r"python_embed+ed\b"),
    ("conda",
    r"(?:mini|ana)conda3|miniforge3|mambaforge|/opt/conda/|[/\\]envs[/\\][\w.-]+[/\\](?:lib|Lib|bin|include)\b"),
    ("pyenv", r"[/\\]\.?pyenv[/\\](?:pyenv-win[/\\])?versions[/\\]"),
    ("uv", r"/uv/python/cpython-|\\uv\\python\\cpython-"),
    ("homebrew", r"/opt/homebrew/|/usr/local/Cellar/python"),
    ("nix", r"/nix/store/[\w]+-python3"),
    ("system", r"/usr/lib/python3(?:\.\d+)?/|/usr/local/lib/python3\.\d+/dist-packages"),
]
_TORCH = [r"\btorch[-=]=?(\d+\.\d+\.\d+(?:[.a-z]+\d*)?)(\+\w[\w.]*)?", r"\btorch (\d+\.\d+\.\d+)(\+\w[\w.]*)?",
          r"PyTorch version: (\d+\.\d+\.\d+)(\+\w[\w.]*)?", r"\btorch version:? (\d+\.\d+\.\d+)(\+\w[\w.]*)?",
          r"\btorch==(\d+\.\d+(?:\.\d+)?)(\+\w[\w.]*)?"]
_TORCH_BUILD = r"\b\d+\.\d+\.\d+\+(cu\d{3}|cpu|rocm\d+(?:\.\d+)*|xpu)\b"
_TRITON = [r"\btriton(?:[-_]windows)?[-=]=?(\d+\.\d+\.\d+)", r"\btriton (\d+\.\d+\.\d+)\b"]
_GPU = (r"\b(?:NVIDIA |Tesla |Quadro )?(?:GeForce )?(?:RTX|GTX) ?[A-Z]?\d{3,4}\w*(?: Ti| SUPER| D)?(?: Laptop GPU)?"
        r"|\bNVIDIA (?:A100|H100|H200|H20|B200|GB200|L40S?|L4|A10G?|A40|A30|A6000|T4|V100|P100|RTX A\d+|DGX Spark|GB10)"
        r"[\w-]*|\bTesla [KPMTV]\d+\w*|\bJetson [\w ]+?(?=[,.)]|\s{2}|$)|\bAMD Instinct MI\d+\w*"
        r"|\bRadeon [\w ]+?\d{3,4}\w*")
_CAPABILITY = [r"\bsm_(\d{2,3})\b", r"[Cc]apability (\d+)\.(\d+)", r"capability = \((\d+), (\d+)\)",
               r"cuda capability (\d+)\.(\d+)"]
_GFX = r"\b(gfx\d{3,4}[a-f]?)\b"
_JETSON = r"\btegra\b|\bJetson\b|\bL4T\b|nvidia-l4t|\bJetPack\b|/usr/lib/aarch64-linux-gnu/tegra|\bOrin\b|\bXavier\b"
_WSL = r"microsoft-standard-WSL|\bWSL2?\b|/mnt/[c-z]/|/usr/lib/wsl/"
_CONTAINERS = [("colab", r"/usr/local/lib/python3\.\d+/dist-packages/google/colab|\bgoogle\.colab\b|/content/"),
               ("kaggle", r"/kaggle/"), ("docker", r"\bdocker(?:file)?\b|/\.dockerenv"), ("podman", r"\bpodman\b"),
               ("apptainer", r"\b(?:apptainer|singularity)\b"), ("kubernetes", r"\bkubepods\b|\bkubectl\b")]
_ARCH = [("aarch64", r"\baarch64\b|\barm64\b|_arm64\b"), ("x86_64", r"\bx86_64\b|\bamd64\b|\bwin_amd64\b|\bx64\b"),
         ("ppc64le", r"\bppc64le\b"), ("riscv64", r"\briscv64\b|\brv64\w*\b"), ("s390x", r"\bs390x\b")]
# a MAX_SCAN-character head and tail are enough: hosts show themselves in every traceback frame
MAX_SCAN = 200_000


@dataclass(frozen=True)
class LogHost:
    """What a log says about its host; None (or empty) where it says nothing. `evidence`: field -> the text it
    was read from."""

    system: Optional[str] = None  # Windows, Darwin, Linux (platform.system() names)
    distro: Optional[str] = None  # an os id (debian, ubuntu, fedora, rhel, arch, alpine, nixos) or debian-family
    distro_version: Optional[str] = None
    arch: Optional[str] = None
    wsl: bool = False
    jetson: bool = False
    container: Optional[str] = None
    python: Optional[str] = None  # "3.11" (or "3.11.7")
    python_source: Optional[str] = None  # conda, pyenv, embedded, uv, homebrew, nix, system
    torch: Optional[str] = None  # "2.5.1"
    torch_build: Optional[str] = None  # cu124, cpu, rocm6.2, xpu
    triton: Optional[str] = None
    gpus: Tuple[str, ...] = ()
    capability: Optional[str] = None  # "12.0" (the first named)
    gfx: Optional[str] = None
    evidence: Dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return bool(self.evidence)

    @property
    def python_minor(self) -> Optional[str]:
        return ".".join(self.python.split(".")[:2]) if self.python else None

    @property
    def platform(self) -> str:
        """windows, macos, jetson, wsl, linux, or unknown: whose commands a fix may print."""
        if self.system == WINDOWS:
            return "windows"
        if self.system == MACOS:
            return "macos"
        if self.jetson:
            return "jetson"
        if self.system == LINUX:
            return "wsl" if self.wsl else "linux"
        return "unknown"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["gpus"] = list(self.gpus)
        data["platform"] = self.platform
        return {k: v for k, v in data.items() if v not in (None, False, [], {})}


def _scan(text: str) -> str:
    return text if len(text) <= 2 * MAX_SCAN else text[:MAX_SCAN] + "\n" + text[-MAX_SCAN:]


def _first(patterns, text: str) -> Optional["re.Match[str]"]:
    hits = [m for m in (re.search(p, text) for p in patterns) if m]
    return min(hits, key=lambda m: m.start()) if hits else None


def _hits(patterns, text: str) -> Tuple[int, str]:
    n, first = 0, ""
    for p in patterns:
        found = re.findall(p, text)
        if found:
            m = re.search(p, text)
            n += len(found)
            first = first or (m.group(0) if m else "")
    return n, first


def read(text: str) -> LogHost:
    """The log's host, from the log's text alone."""
    from torch_setup.explain import strip_ansi  # one ANSI stripper

    t = _scan(strip_ansi(text))
    ev: Dict[str, str] = {}
    kw: dict = {}
    win, mac, lin = _hits(_WIN, t), _hits(_MAC, t), _hits(_LINUX, t)
    wsl = re.search(_WSL, t)
    if win[0] and (win[0] >= lin[0] or not wsl):  # a Windows drive path beats Linux-looking words
        kw["system"], ev["system"] = WINDOWS, win[1]
    elif mac[0] and mac[0] >= lin[0] and not wsl:
        kw["system"], ev["system"] = MACOS, mac[1]
    elif lin[0] or wsl:
        kw["system"], ev["system"] = LINUX, (lin[1] or (wsl.group(0) if wsl else ""))
    if kw.get("system") == LINUX:
        if wsl:
            kw["wsl"], ev["wsl"] = True, wsl.group(0)
        for distro, version, pattern in _DISTROS:
            m = re.search(pattern, t)
            if m:
                kw["distro"], ev["distro"] = distro, m.group(0)
                v = re.search(version, t) if version else None
                if v:
                    kw["distro_version"] = v.group(1)
                break
    jetson = re.search(_JETSON, t)
    if jetson and kw.get("system") in (LINUX, None):
        kw.update(system=LINUX, jetson=True, arch="aarch64")
        ev["jetson"] = jetson.group(0)
    if "arch" not in kw:
        for arch, pattern in _ARCH:
            m = re.search(pattern, t)
            if m:
                kw["arch"], ev["arch"] = arch, m.group(0)
                break
    for name, pattern in _CONTAINERS:
        m = re.search(pattern, t, re.IGNORECASE)
        if m:
            kw["container"], ev["container"] = name, m.group(0)
            break
    versions = Counter()
    first_seen: Dict[str, str] = {}
    for p in _PY_VERSION:
        for m in re.finditer(p, t):
            v = m.group(1)
            v = v if v.startswith("3.") else f"3.{v}"
            minor = ".".join(v.split(".")[:2])
            versions[minor] += 1
            first_seen.setdefault(minor, m.group(0))
            if v.count(".") == 2 and minor not in kw.get("_full", {}):
                kw.setdefault("_full", {})[minor] = v
    for m in re.finditer(r"[/\\]versions[/\\](3\.\d+\.\d+)[/\\]", t):  # pyenv
        kw.setdefault("_full", {}).setdefault(".".join(m.group(1).split(".")[:2]), m.group(1))
    full = kw.pop("_full", {})
    if versions:
        minor = versions.most_common(1)[0][0]
        kw["python"], ev["python"] = full.get(minor, minor), first_seen[minor]
    for source, pattern in _PY_SOURCE:
        m = re.search(pattern, t)
        if m:
            kw["python_source"], ev["python_source"] = source, m.group(0)
            break
    m = _first(_TORCH, t)
    if m:
        kw["torch"], ev["torch"] = m.group(1), m.group(0)
        if m.group(2):
            kw["torch_build"] = m.group(2)[1:]
    b = re.search(_TORCH_BUILD, t)
    if b and "torch_build" not in kw:
        kw["torch_build"], ev["torch_build"] = b.group(1), b.group(0)
    m = _first(_TRITON, t)
    if m:
        kw["triton"], ev["triton"] = m.group(1), m.group(0)
    gpus = []
    for g in re.finditer(_GPU, t):
        name = g.group(0).strip()
        if name not in gpus:
            gpus.append(name)
    if gpus:
        kw["gpus"], ev["gpus"] = tuple(gpus[:4]), gpus[0]
    m = _first(_CAPABILITY, t)
    if m:
        if m.lastindex == 1:
            sm = m.group(1)
            kw["capability"] = f"{sm[:-1]}.{sm[-1]}"
        else:
            kw["capability"] = f"{m.group(1)}.{m.group(2)}"
        ev["capability"] = m.group(0)
    m = re.search(_GFX, t)
    if m:
        kw["gfx"], ev["gfx"] = m.group(1), m.group(0)
    return LogHost(evidence=ev, **kw)


# --- this host, as far as it costs no process ----------------------------------------------------------------


@dataclass(frozen=True)
class QuickHost:
    system: str
    arch: str
    distro: str = ""  # /etc/os-release ID
    like: Tuple[str, ...] = ()


def quick_here(system: System) -> QuickHost:
    """This host's OS, architecture and distro: platform calls and one file read, no process."""
    from torch_setup.facts.host import parse_os_release

    name, machine, _ = system.platform()
    distro, like = "", ()
    if name == LINUX:
        text = system.read_text("/etc/os-release") or system.read_text("/usr/lib/os-release")
        if text:
            os_facts = parse_os_release(text)
            distro, like = os_facts.id, tuple(os_facts.like)
    arch = {"amd64": "x86_64", "arm64": "aarch64" if name != MACOS else "aarch64"}.get(machine.lower(), machine)
    return QuickHost(system=name, arch=arch, distro=distro, like=like)


_FAMILY = {"debian-family": {"debian", "ubuntu"}}


def conflicts(log: LogHost, here: QuickHost, python_minor: Optional[str] = None) -> List[str]:
    """Why the log's host is not this one (empty: nothing in the log says it is another host). `python_minor`:
    this host's target Python, where it is known."""
    out = []
    if log.system and log.system != here.system:
        out.append(f"the log is from {_os_name(log.system)} ({log.evidence.get('system', '')}), this host runs "
                   f"{_os_name(here.system)}")
    if log.system == LINUX == here.system:
        if log.jetson:
            out.append(f"the log is from a Jetson ({log.evidence.get('jetson')})")
        if log.distro and here.distro:
            ids = {here.distro, *here.like}
            if not (_FAMILY.get(log.distro, {log.distro}) & ids):
                out.append(f"the log's Linux is {log.distro} ({log.evidence.get('distro')}), this host's {here.distro}")
    if log.arch and here.arch and log.arch != here.arch and not log.jetson:
        out.append(f"the log's machine is {log.arch}, this host's {here.arch}")
    if python_minor and log.python_minor and log.python_minor != python_minor.rstrip("t"):
        out.append(f"the log's Python is {log.python_minor} ({log.evidence.get('python')}), this host's {python_minor}")
    return out


def _os_name(system: str) -> str:
    return {WINDOWS: "Windows", MACOS: "macOS", LINUX: "Linux"}.get(system, system)
