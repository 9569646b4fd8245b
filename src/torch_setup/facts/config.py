"""The host's configuration that steers pip, uv and the torch choice, read as facts of that host.

pip's configuration is read from its files, in pip's own order (https://pip.pypa.io/en/stable/topics/
configuration/#loading-order): the global files (each of $XDG_CONFIG_DIRS or /etc/xdg, then /etc/pip.conf), the
user's (~/.pip/pip.conf, then $XDG_CONFIG_HOME or ~/.config /pip/pip.conf; skipped when PIP_CONFIG_FILE names a
file that exists), the target environment's own (`sys.prefix`/pip.conf), then PIP_CONFIG_FILE; a later file wins,
and PIP_CONFIG_FILE=os.devnull loads none. Reading files, rather than running `pip config list`, needs no
interpreter: the target may not exist yet, and detect stays fast.
"""
from __future__ import annotations

import configparser
import os
from typing import Dict, List, Mapping, Optional

from torch_setup.facts.model import ConfigFacts
from torch_setup.host.system import System

ENV_PREFIXES = ("PIP_", "UV_", "TORCH_SETUP_")
ENV_NAMES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
             "no_proxy")


def pip_config_files(env: Mapping[str, str], home: str, prefix: Optional[str]) -> List[str]:
    conf = env.get("PIP_CONFIG_FILE")
    if conf == os.devnull:
        return []
    dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":") if d]
    files = [os.path.join(d, "pip", "pip.conf") for d in dirs] + ["/etc/pip.conf"]
    files += [os.path.join(home, ".pip", "pip.conf"),
              os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf")]
    if prefix:
        files.append(os.path.join(prefix, "pip.conf"))
    return files + ([conf] if conf else [])


def parse_pip_conf(texts: List[str]) -> str:
    """INI texts, earliest first -> `section.key='value'` lines (what `pip config list` prints), later ones win."""
    merged: Dict[str, str] = {}
    for text in texts:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string(text)
        except configparser.Error:
            continue  # pip refuses such a file; the user sees pip's own error when it runs
        for section in parser.sections():
            for key, value in parser.items(section):
                merged[f"{section}.{key.replace('_', '-')}"] = value.strip()
    return "".join(f"{k}={v!r}\n" for k, v in sorted(merged.items()))


def gather(system: System, home: str, prefix: Optional[str]) -> ConfigFacts:
    env = system.env
    files = pip_config_files(env, home, prefix)
    if env.get("PIP_CONFIG_FILE") and system.exists(env["PIP_CONFIG_FILE"]):
        user = {os.path.join(home, ".pip", "pip.conf"),
                os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip", "pip.conf")}
        files = [f for f in files if f not in user]
    texts = [t for t in (system.read_text(f) for f in files) if t]
    keep = {k: v for k, v in env.items() if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}
    return ConfigFacts(pip=parse_pip_conf(texts), env=keep)
