"""One error root and the exit codes the CLI maps errors to (documented in the README)."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a step or an unexpected error
    USAGE = 2  # bad command line (Typer's own code for usage errors)
    BAD_FACTS = 3  # a facts file that is not valid
    BAD_RECIPE = 4  # a recipe file that is not valid
    UNSUPPORTED = 5  # a platform or Python that cannot work, refused before installing
    NEEDS_ROOT = 6  # root is needed, and there is neither root nor passwordless sudo
    PYTHON_NOT_FOUND = 7  # --python names no interpreter
    STEP_FAILED = 8  # a command of the plan failed
    VERIFY_FAILED = 9  # torch.compile did not pass the smoke test
    PROBLEMS = 10  # doctor found something that blocks torch.compile
    NO_TORCH = 11  # no torch wheel fits this interpreter / index
    TLS = 12  # an index's certificate did not verify with the CA this box trusts
    BUSY = 13  # another torch-setup holds this target (or the host's package manager) past the wait
    BUNDLE = 14  # a bundle that cannot be made, is damaged, or lacks what this host's plan needs
    NO_GPU = 15  # `verify --gpu`: torch in the target sees no GPU (a CPU build, no driver, no device visible)
    # 129, 130, 143: stopped by SIGHUP, SIGINT, SIGTERM (128 + the signal; interrupt.py)


class TorchSetupError(Exception):
    """An error with a user-ready message; the CLI prints it without a traceback."""

    code = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str = "", details: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        self.extra: dict = {}  # more fields for the JSON error (install: the plan that failed)


class UsageError(TorchSetupError):
    code = ExitCode.USAGE


class FactsError(TorchSetupError):
    code = ExitCode.BAD_FACTS


class RecipeError(TorchSetupError):
    code = ExitCode.BAD_RECIPE


class UnsupportedError(TorchSetupError):
    code = ExitCode.UNSUPPORTED


class NeedsRootError(TorchSetupError):
    code = ExitCode.NEEDS_ROOT


class PythonNotFoundError(TorchSetupError):
    code = ExitCode.PYTHON_NOT_FOUND


class StepError(TorchSetupError):
    code = ExitCode.STEP_FAILED


class VerifyFailed(TorchSetupError):
    code = ExitCode.VERIFY_FAILED


class ProblemsFound(TorchSetupError):
    code = ExitCode.PROBLEMS


class NoTorchError(TorchSetupError):
    code = ExitCode.NO_TORCH


class TlsError(TorchSetupError):
    """An index answered with a certificate the configured CA (trust.py's order) does not verify."""

    code = ExitCode.TLS


class BusyError(TorchSetupError):
    code = ExitCode.BUSY


class BundleError(TorchSetupError):
    """`bundle` could not make the bundle, or `install --from` found it damaged (a hash that does not match) or
    without what this host's plan needs (it says what, and which hosts the bundle was built for)."""

    code = ExitCode.BUNDLE


class NoGpuError(TorchSetupError):
    """`verify --gpu` on a host where the target's torch sees no GPU: the message is torch's own one-line cause."""

    code = ExitCode.NO_GPU
