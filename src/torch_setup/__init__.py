"""torch-setup: from "torch.compile fails" to "torch.compile verified"."""

__version__ = "0.1.0"
