"""Run inside the *target* interpreter (stdlib only, Python 3.6+): print one JSON object of raw facts.

Kept free of interpretation: `facts.python.parse_probe` turns this output into facts, so tests feed it output
captured from real interpreters. Torch is looked up without importing it (importing takes seconds), and json and
platform are left out where they can be (with `re`, which both import, they are a third of the probe's ~25 ms).
"""
import os
import sys
import sysconfig

try:
    from _json import encode_basestring_ascii as _quote  # json's own C string encoder, without json's imports
except ImportError:  # pragma: no cover - an interpreter built without _json
    from json.encoder import encode_basestring_ascii as _quote


def _read(path, limit=4096):
    try:
        with open(path, errors="replace") as f:
            return f.read(limit)
    except (OSError, IOError):
        return None


def _dist(name):
    """(version, site dir) of an installed distribution, first on sys.path wins, as import would.

    Read off the `NAME-VERSION.dist-info` folder names: importlib.metadata costs ~30 ms to import, half the probe.
    """
    prefix = name.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.lower().startswith(prefix) and n.endswith(".dist-info"):
                return n[len(prefix):-len(".dist-info")], entry
    return None, None


def arch_flags(path):
    """What torch._C._cuda_getArchFlags() returns ('sm_75 sm_80 ... sm_120', 'gfx90a gfx942 ...'), read from the
    string torch compiles into libtorch_python.so, without importing torch (seconds) or initialising CUDA (which
    torch.cuda.get_arch_list() needs, and which gives [] on a box without a GPU: pytorch/pytorch#80498)."""
    import re

    try:
        f = open(path, "rb")
    except (OSError, IOError):
        return None
    with f:
        try:  # mapped, not read: a third of the time for the ~35 MB library
            import mmap

            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ImportError, ValueError, OSError):
            data = f.read()
        try:
            return _find_flags(data, re)
        finally:
            if not isinstance(data, bytes):
                data.close()


def _find_flags(data, re):
    for token, pattern in ((b" sm_", rb"((?:sm|compute)_[0-9]+[af]?(?: (?:sm|compute)_[0-9]+[af]?)+)$"),
                           (b" gfx", rb"(gfx[0-9a-f]+[a-z+:-]*(?: gfx[0-9a-f]+[a-z+:-]*)+)$")):
        i = data.find(token)
        while i != -1:
            end = data.find(b"\0", i)
            if end == -1:
                break
            m = re.search(pattern, data[max(0, i - 24):end])
            if m:
                return m.group(1).decode("ascii")
            i = data.find(token, end)
    return None


def _torch():
    version, root = _dist("torch")
    if not version:
        return None
    version_py = _read(os.path.join(root, "torch", "version.py"))
    gpu_build = version_py is not None and any(
        line.split("=", 1)[-1].strip() not in ("None", "") for line in version_py.splitlines()
        if line.startswith(("cuda", "hip")))
    return {
        "version": version,
        "location": root,
        "version_py": version_py,
        "triton": _dist("triton")[0] or _dist("pytorch-triton")[0],
        "arch_flags": arch_flags(os.path.join(root, "torch", "lib", "libtorch_python.so")) if gpu_build else None,
    }


def _ensurepip():
    try:
        import importlib.util

        return importlib.util.find_spec("ensurepip") is not None
    except Exception:
        return False


def dumps(value):
    """json.dumps for what main() prints: dicts, lists, strings, ints, booleans and None."""
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return "{" + ", ".join(_quote(k) + ": " + dumps(v) for k, v in value.items()) + "}"


def _platform():
    """(machine, system, macOS version, libc_ver, glibc) as platform and os.confstr give them, importing platform
    only where it is needed."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        glibc = None
    if hasattr(os, "uname") and sys.platform != "darwin" and glibc:
        u = os.uname()
        return u.machine, u.sysname, "", glibc.split(" ", 1), glibc
    import platform

    return platform.machine(), platform.system(), platform.mac_ver()[0], list(platform.libc_ver()), glibc


def main():
    include = sysconfig.get_path("include")
    stdlib = sysconfig.get_path("stdlib")
    try:
        import site

        user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    except Exception:
        user_site = None
    machine, system, mac_ver, libc, glibc = _platform()
    out = {
        "probe": 1,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "version_string": sys.version,
        "implementation": sys.implementation.name,
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "executable": sys.executable,
        "realpath": os.path.realpath(sys.executable),
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "include": include,
        "has_python_h": bool(include) and os.path.exists(os.path.join(include, "Python.h")),
        "stdlib": stdlib,
        "externally_managed": _read(os.path.join(stdlib, "EXTERNALLY-MANAGED")) if stdlib else None,
        "ensurepip": _ensurepip(),
        "pyvenv_cfg": _read(os.path.join(sys.prefix, "pyvenv.cfg")),
        "conda_meta": os.path.isdir(os.path.join(getattr(sys, "base_prefix", sys.prefix), "conda-meta")),
        "config_args": sysconfig.get_config_var("CONFIG_ARGS"),
        "cc": sysconfig.get_config_var("CC"),
        "user_site": user_site,
        "machine": machine,
        "system": system,
        "mac_ver": mac_ver,
        "libc": [libc[0], libc[1]],
        "gnu_libc_version": glibc,
        "torch": _torch(),
    }
    sys.stdout.write(dumps(out) + "\n")


if __name__ == "__main__":
    main()
