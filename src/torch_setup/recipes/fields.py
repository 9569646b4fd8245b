"""Which placeholders each kind of recipe field may hold: exactly what recipes/resolve.py fills for it, and what
the loader (recipes/load.py) checks each field against. No imports: detect loads the recipes."""
from typing import Dict, Tuple

PLATFORM_FIELDS = ("minor", "nodot", "arch", "major")  # package names, paths, repositories, environment values
FIELD_PLACEHOLDERS: Dict[str, Tuple[str, ...]] = {
    "platform": PLATFORM_FIELDS,
    "source platform": PLATFORM_FIELDS + ("prefix",),  # an environment's entry (conda): its prefix too
    "repo": PLATFORM_FIELDS,
    "manager install": ("packages",),
    "env manager install": ("packages", "prefix"),
    "env manager create": ("packages", "prefix"),
    "manager refresh": (), "manager clean": (), "manager env": (),
}
