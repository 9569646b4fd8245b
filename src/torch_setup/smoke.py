"""Run inside the target interpreter by `verify`: a small model through torch.compile, compared with eager.

The caller points TORCHINDUCTOR_CACHE_DIR (and TRITON_CACHE_DIR) at a fresh directory: a cached kernel would
hide a broken toolchain. Prints one JSON line last; compiler errors go to stderr as torch prints them.
"""
import json
import sys
import time
import traceback


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
        compiled = torch.compile(fn)(x)
        seconds = time.monotonic() - start
    ok = torch.allclose(eager, compiled, rtol=1e-3, atol=1e-4)
    return {"device": device, "ok": bool(ok), "seconds": round(seconds, 2),
            "max_abs_diff": float((eager - compiled).abs().max())}


def main():
    out = {"ok": False, "results": [], "error": None}
    start = time.monotonic()
    try:
        import torch

        out["torch"] = torch.__version__
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            out["results"].append(check(device))
        out["ok"] = all(r["ok"] for r in out["results"])
    except BaseException as e:  # report everything, including a compiler's SystemExit
        out["error"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        sys.stderr.write(out["error"])
    out["seconds"] = round(time.monotonic() - start, 2)
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
