"""The end-to-end tests' own checks, independent of the product.

COMPILE: the torch.compile check, run in the venv a test made.
Independent of src/torch_setup/smoke.py on purpose: a test must not trust the product's own check. relu and
softmax make Inductor generate and compile C++ (a lone nn.Linear becomes an extern addmm call and passes even with
no compiler at all); a fresh cache directory keeps an earlier run's artefacts from hiding a broken toolchain.
"""

COMPILE = """
import os, sys, tempfile, torch
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp()
m = torch.nn.Linear(16, 4)
f = lambda x: torch.relu(m(x)).softmax(-1) * 2  # pointwise ops and a reduction: generated C++, not just addmm
x = torch.randn(8, 16)
y = torch.compile(f)(x)
assert torch.allclose(y, f(x), atol=1e-5), "compiled output differs from eager"
print("COMPILE-OK", torch.__version__, sys.executable)
"""


# Exit 0 only if no connection gets out (names do not resolve, and an address of PyPI's CDN has no route): run in a
# network namespace, the control that it has no network.
REACH = """
import socket, sys
for host, port in (("pypi.org", 443), ("deb.debian.org", 80), ("151.101.0.223", 443)):
    try:
        socket.create_connection((host, port), timeout=5).close()
        sys.exit(f"reached {host}")
    except OSError as e:
        print(host, type(e).__name__, e)
"""
