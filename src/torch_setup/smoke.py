"""Run inside the target interpreter by `verify`: a small model through torch.compile, compared with eager.

    python -c SMOKE [--imports LIST] [--wait] [--gpu]

The caller points TORCHINDUCTOR_CACHE_DIR (and TRITON_CACHE_DIR) at a fresh directory: a cached kernel would
hide a broken toolchain. Prints one JSON line last; compiler errors go to stderr as torch prints them.

--imports LIST: a file naming, under site-packages, the modules torch.compile imports; helper processes write
their bytecode from the end of the list while this process imports from the start (a fresh uv install has none,
and Python writes it one module at a time, on one core).
--wait: import torch, then read one line from stdin and compile only once it says "go" (install starts the
verification as soon as torch is in, and lets it compile once the compiler and headers are in too).
--gpu: the same check on the first GPU only (cuda:0: Inductor's Triton kernels), and a failure, with the one-line
cause in "no_gpu", where torch sees none. Without it the check runs on the CPU, and also on the GPU where there is one.
"""
import json
import os
import subprocess
import sys
import threading
import time
import traceback

BYTECODE_HELPER = """
import compileall, py_compile, sys
site, listing, k, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(listing) as f:
    names = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")][::-1]
for name in names[k::n]:  # compile_file skips a module whose bytecode is up to date
    compileall.compile_file(site + "/" + name, quiet=2,
                            invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)  # as import writes it
"""


def write_bytecode(listing):
    """Start one helper per spare CPU; returns them (killed when the check ends). No helpers where the user said
    to write no bytecode (PYTHONDONTWRITEBYTECODE, -B)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")  # finds torch without importing it
    if sys.dont_write_bytecode or spec is None or not spec.submodule_search_locations:
        return []
    site = os.path.dirname(list(spec.submodule_search_locations)[0])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return [subprocess.Popen([sys.executable, "-c", BYTECODE_HELPER, site, listing, str(k), str(cpus - 1)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for k in range(cpus - 1)]


def check_isas_side_by_side():
    """Inductor checks each x86 vector ISA the CPU claims by building and loading a test library, one after the
    other (~1.5 s each on 2 cores); the same checks run here side by side, and torch.compile reuses the results.
    Internal API: on any other torch this does nothing and torch checks them itself."""
    try:
        from torch._inductor import cpu_vec_isa as isa

        flags = isa.x86_isa_checker()
        todo = [i for i in isa.supported_vec_isa_list if all(f in flags for f in str(i).split())]
    except Exception:
        return
    threads = [threading.Thread(target=bool, args=(i,), daemon=True) for i in todo]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check(device):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 8)).to(device)
    x = torch.randn(32, 64, device=device)
    # The pointwise ops and the reduction make Inductor generate and build C++ (or Triton) kernels; a lone
    # nn.Linear compiles to an extern addmm call and passes even without a compiler.
    def fn(x):
        return torch.softmax(model(x), dim=-1) * 2 + 1

    with torch.no_grad():
        eager = fn(x)
        start = time.monotonic()
        if device == "cpu":
            check_isas_side_by_side()
        compiled = torch.compile(fn)(x)
        seconds = time.monotonic() - start
    ok = torch.allclose(eager, compiled, rtol=1e-3, atol=1e-4)
    return {"device": device, "ok": bool(ok), "seconds": round(seconds, 2),
            "max_abs_diff": float((eager - compiled).abs().max())}


def no_gpu_reason(torch):
    """Why torch sees no GPU it can compile for, in one line; None when it sees one."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {torch.__version__} is a CPU build (no CUDA or ROCm in it): it cannot use a GPU"
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
    try:
        torch.cuda.init()  # raises with torch's own cause: no driver, a driver too old, no device
        cause = "no CUDA device"
    except Exception as e:
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return f"torch {torch.__version__} ({build}) sees no GPU{hidden}: {cause}"


def gpu_of(torch):
    """Which GPU the check runs on, and how many torch sees."""
    major, minor = torch.cuda.get_device_capability(0)
    return {"device": "cuda:0", "name": torch.cuda.get_device_name(0), "capability": f"{major}.{minor}",
            "visible": torch.cuda.device_count()}


def main(args):
    out = {"ok": False, "results": [], "error": None}
    start = time.monotonic()
    helpers = []
    try:
        if "--imports" in args:
            helpers = write_bytecode(args[args.index("--imports") + 1])
        import torch
        import torch._dynamo  # noqa: F401  (what torch.compile loads first, before any compiler is needed)
        import torch._inductor.compile_fx  # noqa: F401

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda  # the build's CUDA (None: a CPU or ROCm build)
        if "--wait" in args and sys.stdin.readline().strip() != "go":
            raise RuntimeError("cancelled before compiling: the install did not finish")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        if "--gpu" in args:
            out["no_gpu"] = no_gpu_reason(torch)
            if out["no_gpu"]:
                out["error"] = out["no_gpu"]
                devices = []
            else:
                out["gpu"] = gpu_of(torch)
                devices = ["cuda"]  # torch's current device: cuda:0, as a user's own first .to("cuda")
        for device in devices:
            out["results"].append(check(device))
        out["ok"] = bool(devices) and all(r["ok"] for r in out["results"])
    except BaseException as e:  # report everything, including a compiler's SystemExit
        out["error"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        sys.stderr.write(out["error"])
    finally:
        for p in helpers:
            p.kill()
    out["seconds"] = round(time.monotonic() - start, 2)
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
