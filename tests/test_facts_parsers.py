"""Every fact parser fed with output captured on real machines (tests/fixtures/*, sources in each file's first
line or in SOURCES.md)."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, fixture_text, host_facts_dict, load_host, probe_output
from torch_setup.errors import FactsError, PythonNotFoundError
from torch_setup.facts import accelerator, compiler, host, python
from torch_setup.request import PythonRequest
from torch_setup.facts.model import AcceleratorFacts
from torch_setup.host.replay import FakeSystem
from torch_setup.host.system import Result

# --------------------------------------------------------------------------------------------- os-release

# file -> (id, version, codename, like). Values read off each file by hand; where distro normalizes or
# derives a field, the comment says so.
OS_RELEASE = {
    "debian-12.txt": ("debian", "12", "bookworm", []),
    "debian-13.txt": ("debian", "13", "trixie", []),
    "debian-testing.txt": ("debian", "", "forky", []),  # testing has no VERSION_ID
    "debian-sid.txt": ("debian", "", "forky", []),
    "ubuntu-22.04.txt": ("ubuntu", "22.04", "jammy", ["debian"]),
    "ubuntu-24.04.txt": ("ubuntu", "24.04", "noble", ["debian"]),
    "ubuntu-25.10.txt": ("ubuntu", "25.10", "questing", ["debian"]),
    "ubuntu-26.04.txt": ("ubuntu", "26.04", "resolute", ["debian"]),
    "fedora-42.txt": ("fedora", "42", "", []),  # VERSION_CODENAME="" wins over "(Forty Two)"
    "fedora-43.txt": ("fedora", "43", "", []),
    "fedora-44.txt": ("fedora", "44", "", []),
    # No VERSION_CODENAME: distro takes the codename from VERSION's parentheses.
    "rhel-8.txt": ("rhel", "8.9", "Ootpa", ["fedora"]),
    "rhel-9.txt": ("rhel", "9.6", "Plow", ["fedora"]),
    "rhel-10.txt": ("rhel", "10.0", "Coughlan", ["centos", "fedora"]),
    "rocky-8.txt": ("rocky", "8.8", "Green Obsidian", ["rhel", "centos", "fedora"]),
    "rocky-9.txt": ("rocky", "9.5", "Blue Onyx", ["rhel", "centos", "fedora"]),
    "rocky-10.txt": ("rocky", "10.0", "Red Quartz", ["rhel", "centos", "fedora"]),
    "almalinux-9.txt": ("almalinux", "9.6", "Sage Margay", ["rhel", "centos", "fedora"]),
    "almalinux-10.txt": ("almalinux", "10.0", "Purple Lion", ["rhel", "centos", "fedora"]),
    "amzn-2.txt": ("amzn", "2", "", ["centos", "rhel", "fedora"]),
    "amzn-2023.txt": ("amzn", "2023", "", ["fedora"]),
    # ID="opensuse-leap": distro normalizes it to "opensuse" (its NORMALIZED_OS_ID table).
    "opensuse-leap-15.6.txt": ("opensuse", "15.6", "", ["suse", "opensuse"]),
    "opensuse-leap-16.0.txt": ("opensuse", "16.0", "", ["suse", "opensuse"]),
    "opensuse-tumbleweed.txt": ("opensuse-tumbleweed", "20240823", "", ["opensuse", "suse"]),
    "alpine-3.22.txt": ("alpine", "3.22.1", "", []),
    "arch.txt": ("arch", "", "", []),  # a host install: no VERSION_ID
}


def test_every_os_release_fixture_has_an_expectation():
    files = {p.name for p in (FIXTURES / "os-release").glob("*.txt") if "sw_vers" not in p.name}
    assert files == set(OS_RELEASE)


@pytest.mark.parametrize("name", sorted(OS_RELEASE))
def test_parse_os_release(name):
    facts = host.parse_os_release((FIXTURES / "os-release" / name).read_text())
    assert (facts.id, facts.version, facts.codename, facts.like) == OS_RELEASE[name]
    assert facts.name  # NAME is set in every file


@pytest.mark.parametrize("name,version", [("macos-14-sw_vers.txt", "14.6.1"), ("macos-15-sw_vers.txt", "15.7.9")])
def test_parse_sw_vers(name, version):
    facts = host.parse_sw_vers((FIXTURES / "os-release" / name).read_text())
    assert (facts.id, facts.version, facts.name, facts.system) == ("macos", version, "macOS", "Darwin")


def test_detect_os_falls_back_to_usr_lib_os_release():
    text = (FIXTURES / "os-release" / "debian-12.txt").read_text()
    system = FakeSystem(files={"/usr/lib/os-release": text})
    facts = host.detect_os(system, "Linux")
    assert (facts.id, facts.version, facts.system) == ("debian", "12", "Linux")


def test_detect_os_without_any_os_release_is_unknown():
    assert host.detect_os(FakeSystem(), "Linux").id == "unknown"


def test_detect_os_on_macos_runs_sw_vers():
    text = (FIXTURES / "os-release" / "macos-15-sw_vers.txt").read_text()
    system = FakeSystem(commands={"sw_vers": Result(0, text)})
    facts = host.detect_os(system, "Darwin")
    assert (facts.id, facts.version, facts.system) == ("macos", "15.7.9", "Darwin")


# --------------------------------------------------------------------------------------------- host

@pytest.mark.parametrize("env,dockerenv,containerenv,cgroup,want", [
    ({"container": "podman"}, False, True, None, "podman"),
    ({}, False, True, None, "podman"),
    ({}, True, False, "0::/\n", "docker"),
    # cgroup v1 lines of a Docker container (real shape: "<n>:<controller>:/docker/<id>")
    ({}, False, False, "12:pids:/docker/0123abcd\n0::/\n", "docker"),
    ({}, False, False, "11:memory:/kubepods/burstable/pod1234/abcd\n", "kubernetes"),
    # the dev host's own /proc/1/cgroup (tests/fixtures/hosts/debian12-*.json): nothing to tell by
    ({}, False, False, "9:name=systemd:/\n8:pids:/\n0::/\n", None),
    ({}, False, False, None, None),
])
def test_parse_container(env, dockerenv, containerenv, cgroup, want):
    assert host.parse_container(env, dockerenv, containerenv, cgroup) == want


def test_package_manager_is_the_first_binary_on_path():
    which = {"dnf": "/usr/bin/dnf", "apt-get": "/usr/bin/apt-get"}.get
    assert host.package_manager(which, [("apt", "apt-get"), ("dnf", "dnf")]) == "apt"
    assert host.package_manager(which, [("zypper", "zypper")]) is None


def test_detect_host_non_root_with_passwordless_sudo():
    system = FakeSystem(uid=1000, programs={"sudo": "/usr/bin/sudo", "apt-get": "/usr/bin/apt-get"},
                        commands={"sudo -n true": Result(0)}, root_same=False,
                        mtimes={"/var/lib/apt/lists/partial": 1_800_000_000.0 - 100_000},
                        files={"/etc/ssl/certs/ca-certificates.crt": "x"})
    facts, pm = host.detect_host(system, [("apt", "apt-get")])
    assert pm == "apt"
    assert (facts.is_root, facts.sudo, facts.chroot, facts.ca_bundle) == (False, True, True, True)
    assert facts.apt_lists_age_s == 100_000


def test_detect_host_sudo_that_asks_for_a_password_is_no_sudo():
    # `sudo -n true` exits 1 with "sudo: a password is required"
    system = FakeSystem(uid=1000, programs={"sudo": "/usr/bin/sudo"},
                        commands={"sudo -n true": Result(1, "", "sudo: a password is required\n")})
    facts, pm = host.detect_host(system, [("apt", "apt-get")])
    assert (facts.is_root, facts.sudo, pm, facts.apt_lists_age_s, facts.ca_bundle) == (False, False, None, None, False)


def test_detect_host_as_root_does_not_ask_sudo():
    system = FakeSystem(uid=0, programs={"sudo": "/usr/bin/sudo"})
    facts, _ = host.detect_host(system, [])
    assert facts.is_root and not facts.sudo
    assert "sudo -n true" not in system.calls


# --------------------------------------------------------------------------------------------- compilers

COMPILERS = {
    "gcc-debian12.txt": ("gcc", "12.2.0"),
    "gcc-debian13.txt": ("gcc", "14.2.0"),
    "gcc-rhel8.txt": ("gcc", "8.5.0"),
    "gcc-rhel9.txt": ("gcc", "11.5.0"),
    "gcc-toolset-12.txt": ("gcc", "12.2.1"),
    "gcc-ubuntu24.04.txt": ("gcc", "13.3.0"),
    "gcc-conda-forge.txt": ("gcc", "11.4.0"),
    "clang-debian13.txt": ("clang", "19.1.7"),
    "clang-debian-14.txt": ("clang", "14.0.6"),
    "clang-ubuntu24.04.txt": ("clang", "18.1.3"),
    "apple-clang-clt-17.txt": ("apple-clang", "17.0.0"),
    "apple-clang-xcode-11.txt": ("apple-clang", "11.0.3"),
}


def test_every_compiler_fixture_has_an_expectation():
    assert {p.name for p in (FIXTURES / "compilers").glob("*.txt")} == set(COMPILERS)


@pytest.mark.parametrize("name", sorted(COMPILERS))
def test_parse_compiler_version(name):
    assert compiler.parse_version(fixture_text("compilers", name)) == COMPILERS[name]


def test_compiler_fixtures_match_the_captured_hosts():
    """The two Debian strings are the very bytes the host captures hold."""
    for host_name, fixture in [("debian12-pyenv-3.11", "gcc-debian12.txt"),
                               ("debian13-installed-system", "gcc-debian13.txt")]:
        commands = load_host(host_name)["host"]["commands"]
        assert commands["/usr/bin/g++ --version"]["stdout"] == fixture_text("compilers", fixture)


# First lines only, as quoted in build notes (find_string ids 63450125752, 26206701902, 63141104042): the
# copyright line that the parser leans on today is not there.
FIRST_LINES = [
    ("g++ (Debian 14.2.0-19) 14.2.0", ("gcc", "14.2.0")),
    ("g++ (GCC) 11.5.0 20240719 (Red Hat 11.5.0-5)", ("gcc", "11.5.0")),
    ("g++ (SUSE Linux) 14.2.1 20250430 [revision 3418d740b344e0ba38022f3bed90540ec3de35dd]", ("gcc", "14.2.1")),
    ("g++-14 (Homebrew GCC 14.2.0_1) 14.2.0", ("gcc", "14.2.0")),
    ("g++ (GCC) 15.1.1 20250425 (Red Hat 15.1.1-1)", ("gcc", "15.1.1")),
]


@pytest.mark.parametrize("line,want", FIRST_LINES)
def test_parse_compiler_version_first_line_alone(line, want):
    assert compiler.parse_version(line) == want


def test_parse_compiler_version_of_nothing():
    assert compiler.parse_version("") == (None, None)


def test_inductor_cxx():
    assert compiler.inductor_cxx({}, "Linux") == "g++"
    assert compiler.inductor_cxx({}, "Darwin") == "clang++"
    assert compiler.inductor_cxx({"CXX": "/opt/rh/gcc-toolset-12/root/usr/bin/g++"}, "Linux") \
        == "/opt/rh/gcc-toolset-12/root/usr/bin/g++"


# Real g++ 12.2.0 stderr (this host) for the probe's TEST_SOURCE when omp.h cannot be found, as when gcc's own
# include dir (libgcc-12-dev) is missing: produced with -nostdinc and only the libstdc++/libc include dirs.
GXX_NO_OMP = ("<stdin>:4:10: fatal error: omp.h: No such file or directory\n"
              "compilation terminated.\n")


def test_first_error_lines_keeps_the_compiler_lines():
    assert compiler.first_error_lines(GXX_NO_OMP) == "<stdin>:4:10: fatal error: omp.h: No such file or directory"


def test_compiler_probe_not_found():
    facts = compiler.probe(FakeSystem(), "Linux", "/usr/include/python3.13", False)
    assert (facts.cxx, facts.path, facts.ok, facts.error) == ("g++", None, False, "g++: not found")


def test_compiler_probe_toolchain_ok_but_headers_missing():
    version = fixture_text("compilers", "gcc-debian13.txt")
    system = FakeSystem(programs={"g++": "/usr/bin/g++", "gcc": "/usr/bin/gcc"},
                        commands={"/usr/bin/g++ --version": Result(0, version),
                                  "/usr/bin/g++ -x c++ *": Result(0)})
    facts = compiler.probe(system, "Linux", "/usr/include/python3.13", False)
    assert (facts.family, facts.version, facts.toolchain_ok, facts.ok) == ("gcc", "14.2.0", True, False)
    assert facts.error == "Python.h: not in /usr/include/python3.13"
    assert facts.cc == "/usr/bin/gcc"
    build = next(c for c in system.calls if "-x c++" in c)
    assert build == ("/usr/bin/g++ -x c++ -std=c++20 -fopenmp -shared -fPIC -I/usr/include/python3.13 "
                     "- -o /dev/null")


def test_compiler_probe_broken_toolchain_reports_its_lines():
    version = fixture_text("compilers", "gcc-debian12.txt")
    system = FakeSystem(programs={"g++": "/usr/bin/g++"},
                        commands={"/usr/bin/g++ --version": Result(0, version),
                                  "/usr/bin/g++ -x c++ *": Result(1, "", GXX_NO_OMP)})
    facts = compiler.probe(system, "Linux", "/usr/include/python3.11", True)
    assert (facts.toolchain_ok, facts.ok) == (False, False)
    assert facts.error == "<stdin>:4:10: fatal error: omp.h: No such file or directory"


def test_compiler_probe_on_macos_uses_xclang_fopenmp():
    version = fixture_text("compilers", "apple-clang-clt-17.txt")
    system = FakeSystem(programs={"clang++": "/usr/bin/clang++"},
                        commands={"/usr/bin/clang++ --version": Result(0, version),
                                  "/usr/bin/clang++ -x c++ *": Result(0)})
    facts = compiler.probe(system, "Darwin", None, True)
    assert (facts.cxx, facts.family, facts.version, facts.ok) == ("clang++", "apple-clang", "17.0.0", True)
    build = next(c for c in system.calls if "-x c++" in c)
    assert build == "/usr/bin/clang++ -x c++ -std=c++20 -Xclang -fopenmp -shared -fPIC - -o /dev/null"


# --------------------------------------------------------------------------------------------- NVIDIA, ROCm

PROC_VERSIONS = {
    "proc-version-open-580.95.05.txt": "580.95.05",
    "proc-version-open-615.71.09.txt": "615.71.09",
    "proc-version-proprietary-440.95.01.txt": "440.95.01",
    "proc-version-proprietary-515.76.txt": "515.76",
    "proc-version-proprietary-550.135.txt": "550.135",
}


@pytest.mark.parametrize("name", sorted(PROC_VERSIONS))
def test_parse_proc_driver_version(name):
    assert accelerator.parse_proc_driver_version(fixture_text("accelerator", name)) == PROC_VERSIONS[name]


def test_parse_proc_driver_version_without_nvrm_line():
    assert accelerator.parse_proc_driver_version("GCC version:  gcc version 11.4.0\n") is None


def test_parse_sys_module_version():
    assert accelerator.parse_sys_module_version(fixture_text("accelerator", "sys-module-version-h200.txt")) \
        == "580.159.03"
    assert accelerator.parse_sys_module_version("") is None
    assert accelerator.parse_sys_module_version("not a version\n") is None


def test_parse_nvidia_smi_csv_mixed_gpus_takes_the_lowest_capability():
    driver, names, cap = accelerator.parse_nvidia_smi_csv(fixture_text("accelerator", "nvidia-smi-mixed-2gpu.csv"))
    assert driver == "570.86.15"
    assert names == ["NVIDIA TITAN V", "NVIDIA RTX 5880 Ada Generation"]
    assert cap == "7.0"


def test_parse_nvidia_smi_csv_compares_capabilities_as_numbers():
    # 12.0 (Blackwell GeForce) is higher than 9.0 although "12.0" < "9.0" as strings
    text = "580.95.05, 12.0, NVIDIA GeForce RTX 5090\n580.95.05, 9.0, NVIDIA H100 80GB HBM3\n"
    assert accelerator.parse_nvidia_smi_csv(text)[2] == "9.0"


def test_parse_nvidia_smi_csv_of_an_error_message():
    # nvidia-smi 470 (huggingface/candle#733): compute_cap is not a field there
    text = 'Field "compute_cap" is not a valid field to query.\n\n'
    assert accelerator.parse_nvidia_smi_csv(text) == (None, [], None)


@pytest.mark.parametrize("name,gfx", [("rocm-agents-navi10.txt", "gfx1010"), ("rocm-agents-mi300.txt", "gfx942")])
def test_parse_rocm_agents(name, gfx):
    assert accelerator.parse_rocm_agents(fixture_text("accelerator", name)) == gfx


def test_parse_rocm_agents_cpu_only():
    assert accelerator.parse_rocm_agents("gfx000\n") is None


@pytest.mark.parametrize("name,found", [
    ("ldconfig-libcuda-ubuntu24.04.txt", True),
    ("ldconfig-libcuda-wsl.txt", True),
    ("ldconfig-toolkit-no-driver.txt", False),  # libcudart, libcupti ... but no driver library
])
def test_parse_ldconfig_libcuda(name, found):
    assert accelerator.parse_ldconfig_libcuda(fixture_text("accelerator", name)) is found


SMI = ["nvidia-smi", "--query-gpu=pci.bus_id,driver_version,compute_cap,name", "--format=csv,noheader"]


def _nvidia_box(**extra) -> FakeSystem:
    files = {"/sys/module/nvidia/version": fixture_text("accelerator", "sys-module-version-h200.txt"),
             "/proc/driver/nvidia/version": fixture_text("accelerator", "proc-version-open-580.95.05.txt")}
    commands = {" ".join(SMI): Result(0, fixture_text("accelerator", "nvidia-smi-mixed-2gpu.csv")),
                "/sbin/ldconfig -p": Result(0, fixture_text("accelerator", "ldconfig-libcuda-ubuntu24.04.txt"))}
    files.update(extra.pop("files", {}))
    commands.update(extra.pop("commands", {}))
    return FakeSystem(files=files, commands=commands, **extra)


def test_detect_nvidia_prefers_the_kernel_module_version():
    facts = accelerator.detect(_nvidia_box(), "x86_64", "Linux")
    assert (facts.kind, facts.driver_version, facts.source) == ("nvidia", "580.159.03", "/sys/module/nvidia/version")
    assert facts.gpus == ["NVIDIA TITAN V", "NVIDIA RTX 5880 Ada Generation"]
    assert (facts.compute_capability, facts.libcuda) == ("7.0", True)


def test_detect_nvidia_from_proc_when_sys_is_absent_and_smi_is_too_old():
    system = _nvidia_box(files={"/sys/module/nvidia/version": ""},
                         commands={" ".join(SMI): Result(6, 'Field "compute_cap" is not a valid field to query.\n')})
    facts = accelerator.detect(system, "x86_64", "Linux")
    assert (facts.driver_version, facts.source, facts.gpus) == ("580.95.05", "/proc/driver/nvidia/version", [])


def test_detect_nvidia_from_smi_alone():
    system = FakeSystem(commands={" ".join(SMI): Result(0, fixture_text("accelerator", "nvidia-smi-mixed-2gpu.csv")),
                                  "/sbin/ldconfig -p": Result(0, fixture_text("accelerator",
                                                                             "ldconfig-toolkit-no-driver.txt"))})
    facts = accelerator.detect(system, "x86_64", "Linux")
    assert (facts.kind, facts.driver_version, facts.source, facts.libcuda) == (
        "nvidia", "570.86.15", "nvidia-smi", False)


def test_detect_override_wins_over_everything():
    system = _nvidia_box(env={"TORCH_SETUP_CUDA_DRIVER": "550.54.15"})
    facts = accelerator.detect(system, "x86_64", "Linux")
    assert facts == AcceleratorFacts(kind="nvidia", driver_version="550.54.15", source="TORCH_SETUP_CUDA_DRIVER",
                                     driver_state="present")
    assert system.calls == []


def test_detect_rocm():
    system = FakeSystem(commands={"rocm_agent_enumerator": Result(0, fixture_text("accelerator",
                                                                                   "rocm-agents-navi10.txt"))})
    facts = accelerator.detect(system, "x86_64", "Linux")
    assert (facts.kind, facts.gfx, facts.driver_version) == ("rocm", "gfx1010", None)


def test_detect_apple_silicon_and_nothing():
    assert accelerator.detect(FakeSystem(), "arm64", "Darwin").kind == "mps"
    assert accelerator.detect(FakeSystem(), "x86_64", "Darwin").kind == "none"
    assert accelerator.detect(FakeSystem(), "x86_64", "Linux") == AcceleratorFacts()


# --------------------------------------------------------------------------------------------- Python probe

def test_parse_probe_debian13_system_python():
    py, torch, arch, libc = python.parse_probe(probe_output("debian13-minbase"), {})
    assert (py.version, py.implementation, py.executable, py.source) == ("3.13.5", "cpython", "/usr/bin/python3",
                                                                         "system")
    assert (py.prefix, py.base_prefix, py.in_venv, py.base_executable) == ("/usr", "/usr", False, None)
    assert (py.include_dir, py.has_headers) == ("/usr/include/python3.13", False)
    assert (py.externally_managed, py.venv_ok, py.free_threaded) == (True, False, False)
    assert py.user_site == "/root/.local/lib/python3.13/site-packages"
    assert py.minor == "3.13"
    assert torch.version is None
    assert (arch, libc.name, libc.version) == ("x86_64", "glibc", "2.41")


def test_parse_probe_pyenv_python():
    env = load_host("debian12-pyenv-3.11")["host"]["env"]
    py, torch, arch, libc = python.parse_probe(probe_output("debian12-pyenv-3.11"), env)
    assert (py.version, py.source, py.in_venv, py.externally_managed) == ("3.11.7", "pyenv", False, False)
    assert (py.include_dir, py.has_headers, py.venv_ok) == ("/root/.pyenv/versions/3.11.7/include/python3.11", True,
                                                            True)
    assert (libc.name, libc.version) == ("glibc", "2.36")


def test_parse_probe_venv_of_the_debian_python_is_not_externally_managed():
    py, torch, _, _ = python.parse_probe(probe_output("debian13-installed-venv"), {})
    assert (py.in_venv, py.externally_managed, py.source) == (True, False, "system")
    assert (py.prefix, py.base_prefix, py.base_executable) == ("/root/.venvs/torch", "/usr", "/usr/bin/python3")
    assert py.user_site is None
    # torch/version.py carries the local version and CUDA that the wheel metadata ("2.15.0") lacks
    assert (torch.version, torch.cuda, torch.triton, torch.in_user_site) == ("2.15.0+cu132", "13.2", "3.9.0", False)
    assert torch.location == "/root/.venvs/torch/lib/python3.13/site-packages"


def test_parse_probe_cpu_torch_has_no_cuda():
    _, torch, _, _ = python.parse_probe(probe_output("debian12-venv-torch-cpu"), {})
    assert (torch.version, torch.cuda) == ("2.13.0+cpu", None)


def test_parse_probe_uv_venv_of_a_pyenv_python():
    env = load_host("debian12-uv-venv-pyenv-3.12")["host"]["env"]
    py, _, _, _ = python.parse_probe(probe_output("debian12-uv-venv-pyenv-3.12"), env)
    assert (py.in_venv, py.source, py.base_executable) == (True, "pyenv", "/root/.pyenv/versions/3.12.1/bin/python3")


def test_parse_probe_takes_the_last_line():
    text = "Could not find platform dependent libraries <exec_prefix>\n" + probe_output("debian13-minbase")
    assert python.parse_probe(text, {})[0].version == "3.13.5"


@pytest.mark.parametrize("text", ["", "Traceback (most recent call last):\n  ...\nSyntaxError: invalid syntax\n",
                                  '{"probe": 2}\n', "[1, 2]\n"])
def test_parse_probe_rejects_what_is_not_the_probe(text):
    with pytest.raises(FactsError):
        python.parse_probe(text, {})


def test_parse_pyvenv_cfg_of_uv_and_venv():
    uv_cfg = json.loads(probe_output("debian12-uv-venv-pyenv-3.12").splitlines()[-1])["pyvenv_cfg"]
    assert python.parse_pyvenv_cfg(uv_cfg) == {
        "home": "/root/.pyenv/versions/3.12.1/bin", "implementation": "CPython", "uv": "0.13.9",
        "version_info": "3.12.1", "include-system-site-packages": "false"}
    std_cfg = json.loads(probe_output("debian13-installed-venv").splitlines()[-1])["pyvenv_cfg"]
    assert python.parse_pyvenv_cfg(std_cfg)["command"] == "/usr/bin/python3 -m venv /root/.venvs/torch"
    assert python.parse_pyvenv_cfg("") == {}


def test_parse_torch_in_the_user_site():
    """The seed note's case: `pip install --user torch` into the system Python 3.13."""
    user_site = "/home/ada/.local/lib/python3.13/site-packages"
    raw = {"version": "2.14.1", "location": user_site + "/", "version_py": None, "triton": "3.8.0"}
    torch = python.parse_torch(raw, user_site)
    assert (torch.version, torch.cuda, torch.in_user_site, torch.triton) == ("2.14.1", None, True, "3.8.0")
    assert python.parse_torch(raw, "/root/.local/lib/python3.13/site-packages").in_user_site is False
    assert python.parse_torch(None, user_site).version is None


# python_source fingerprints [S6][S22][S23][S30]. The system and pyenv cases are probe outputs
# captured here; the rest are path-only: the dicts carry the fields a probe of that interpreter prints, with
# paths seen in real logs (cited), since no such interpreter could be installed on this host (uv downloads
# Pythons from GitHub, which is not reachable here).
def _raw(base, exe, real=None, version="3.12.13", **kw):
    return dict({"base_prefix": base, "executable": exe, "realpath": real or exe, "version": version,
                 "version_string": version + " (main, ...) [GCC 12.2.0]", "conda_meta": False,
                 "config_args": ""}, **kw)


UV_EM = "[externally-managed]\nError=This Python installation is managed by uv and should not be modified.\n"


@pytest.mark.parametrize("raw,env,em,want", [
    # uv: sys.path of a uv-managed 3.12.13 seen in a captured agent log (find_string id 54556103437)
    (_raw("/root/.local/share/uv/python/cpython-3.12.13-linux-x86_64-gnu",
          "/root/.local/share/uv/python/cpython-3.12.13-linux-x86_64-gnu/bin/python3.12"), {}, UV_EM, "uv"),
    # conda: conda-meta in base_prefix; sys.version from a conda-forge build (find_string id 2453290336)
    (_raw("/opt/conda", "/opt/conda/bin/python3", version="3.12.0", conda_meta=True,
          version_string="3.12.0 | packaged by conda-forge | (main, Oct  3 2023, 08:36:57) [Clang 15.0.7 ]"),
     {}, None, "conda"),
    (_raw("/home/u/miniforge3/envs/x", "/home/u/miniforge3/envs/x/bin/python", version="3.10.13",
          version_string="3.10.13 | packaged by conda-forge | (main, Dec 23 2023, 15:36:39) [GCC 12.3.0]"),
     {}, None, "conda"),
    # Homebrew on Apple silicon: base under /opt/homebrew/opt, realpath under the Cellar
    (_raw("/opt/homebrew/opt/python@3.13/Frameworks/Python.framework/Versions/3.13",
          "/opt/homebrew/bin/python3.13",
          "/opt/homebrew/Cellar/python@3.13/3.13.1/Frameworks/Python.framework/Versions/3.13/bin/python3.13",
          version="3.13.1"), {}, None, "homebrew"),
    (_raw("/home/linuxbrew/.linuxbrew/opt/python@3.12", "/home/linuxbrew/.linuxbrew/bin/python3"), {}, None,
     "homebrew"),
    # the official python: Docker image: built from source into /usr/local
    (_raw("/usr/local", "/usr/local/bin/python3", version="3.13.1",
          config_args="'--enable-loadable-sqlite-extensions' '--enable-optimizations' '--enable-shared'"),
     {}, None, "built-from-source"),
    (_raw("/opt/py313", "/opt/py313/bin/python3", version="3.13.1", config_args="'--prefix=/usr/local/py'"),
     {}, None, "built-from-source"),
    (_raw("/Library/Frameworks/Python.framework/Versions/3.13",
          "/Library/Frameworks/Python.framework/Versions/3.13/bin/python3", version="3.13.1"), {}, None,
     "python.org"),
    # pyenv under a non-default root
    (_raw("/opt/pyenv/versions/3.12.1", "/opt/pyenv/versions/3.12.1/bin/python3", version="3.12.1"),
     {"PYENV_ROOT": "/opt/pyenv"}, None, "pyenv"),
    (_raw("/srv/python", "/srv/python/bin/python3"), {}, None, "unknown"),
])
def test_python_source(raw, env, em, want):
    assert python.python_source(raw, env, em) == want


@pytest.mark.parametrize("host_name,want", [("debian13-minbase", "system"), ("debian12-system-3.11", "system"),
                                            ("debian12-pyenv-3.13.0", "pyenv"),
                                            ("debian12-venv-of-system", "system")])
def test_python_source_of_captured_probes(host_name, want):
    raw = json.loads(probe_output(host_name).splitlines()[-1])
    env = load_host(host_name)["host"]["env"]
    assert python.python_source(raw, env, raw.get("externally_managed")) == want


def test_python_source_uv_in_a_custom_install_dir():
    # uv's own EXTERNALLY-MANAGED text (astral-sh/uv, crates/uv-python/src/managed.rs: find_string id 504748224);
    # unpatched python-build-standalone builds carry --prefix=/install in CONFIG_ARGS [S25]
    raw = _raw("/opt/uv-pythons/cpython-3.12.13-linux-x86_64-gnu",
               "/opt/uv-pythons/cpython-3.12.13-linux-x86_64-gnu/bin/python3.12",
               config_args="'--prefix=/install' '--with-lto'")
    assert python.python_source(raw, {"UV_PYTHON_INSTALL_DIR": "/opt/uv-pythons"}, UV_EM) == "uv"


@pytest.mark.parametrize("gnu,libc_ver,system,want", [
    ("glibc 2.41", ["glibc", "2.41"], "Linux", ("glibc", "2.41")),  # Debian 13 (captured)
    ("glibc 2.36", ["glibc", "2.36"], "Linux", ("glibc", "2.36")),  # Debian 12 (captured)
    (None, ["glibc", "2.17"], "Linux", ("glibc", "2.17")),  # a Python without os.confstr
    (None, ["", ""], "Linux", ("musl", None)),  # Alpine: both are empty (libc_ver knows glibc only)
    (None, ["", ""], "Darwin", (None, None)),
])
def test_parse_libc(gnu, libc_ver, system, want):
    assert python.parse_libc(gnu, libc_ver, system) == want


def test_libc_of_captured_probes():
    raw = json.loads(probe_output("debian13-minbase").splitlines()[-1])
    assert python.parse_libc(raw["gnu_libc_version"], raw["libc"], raw["system"]) == ("glibc", "2.41")


@pytest.mark.parametrize("spec,version,ft,want", [
    ("3.13", "3.13.5", False, True), ("3.13", "3.12.1", False, False), ("3.13t", "3.13.3", True, True),
    ("3.13", "3.13.3", True, False), ("/usr/bin/python3", "3.11.2", False, True), ("", "3.9.18", False, True),
])
def test_wants(spec, version, ft, want):
    assert PythonRequest.parse(spec).accepts(version, ft) is want


def test_candidates_for_a_version_look_in_venv_pyenv_and_uv():
    env = {"HOME": "/home/ada", "VIRTUAL_ENV": "/home/ada/proj/.venv"}
    assert PythonRequest.parse("3.13").candidates(env) == [
        "/home/ada/proj/.venv/bin/python", "python3.13", "python3",
        "/home/ada/.pyenv/versions/3.13*/bin/python3.13",
        "/home/ada/.local/share/uv/python/cpython-3.13.*/bin/python3.13",
    ]
    assert PythonRequest.parse("").candidates({"CONDA_PREFIX": "/opt/conda"}) == ["/opt/conda/bin/python", "python3"]
    assert PythonRequest.parse("./venv/bin/python").candidates({}) == ["./venv/bin/python"]


def test_find_reports_what_it_tried():
    system = FakeSystem.from_dict(load_host("debian13-minbase")["host"])
    with pytest.raises(PythonNotFoundError) as e:
        python.find(system, PythonRequest.parse("3.12"))
    assert "/usr/bin/python3: is Python 3.13.5" in e.value.details


def test_find_by_version_answers_with_the_matching_interpreter():
    system = FakeSystem.from_dict(load_host("debian13-minbase")["host"])
    py, _, _, _ = python.find(system, PythonRequest.parse("3.13"))
    assert py.executable == "/usr/bin/python3" and py.version.startswith("3.13.")
    assert host_facts_dict("debian13-minbase")["python"]["executable"] == py.executable
