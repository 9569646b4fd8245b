"""Facts: probe the host and the target Python. Parsers are pure; `gather` is the only part that does IO."""
from torch_setup.facts.model import (  # noqa: F401
    AcceleratorFacts, CompilerFacts, Facts, HostFacts, LibcFacts, OsFacts, PythonFacts, TorchFacts,
)
