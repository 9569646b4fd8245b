"""Files of a bundle: fetched once into a cache keyed by sha256, checked, then linked (or copied) into the bundle.

The cache ($TORCH_SETUP_BUNDLE_CACHE, else ~/.cache/torch-setup/bundle) holds `sha256/<hash>/<filename>`: a second
bundle of the same wheels and .debs downloads nothing, and a bundle on the cache's file system takes no more disk
(hard links)."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Optional

from torch_setup.errors import BundleError

CACHE_ENV = "TORCH_SETUP_BUNDLE_CACHE"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Item:
    """A file the bundle holds: where it goes (relative to the bundle), where it comes from, what it must be."""
    path: str  # "wheels/torch-2.15.0-....whl"
    url: str  # may carry credentials: masked wherever printed
    sha256: str
    size: Optional[int] = None


def cache_dir(env) -> str:
    return env.get(CACHE_ENV) or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache", "torch-setup",
                                              "bundle")


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, dest: str, want: str, session) -> None:
    """url -> dest, checked against `want` while it streams; a .part file until it is whole."""
    from torch_setup.masking import mask

    part = f"{dest}.{os.getpid()}.part"
    h = hashlib.sha256()
    try:
        if url.startswith("file:") or url.startswith("/"):
            from urllib.parse import unquote, urlsplit

            src = unquote(urlsplit(url).path) if url.startswith("file:") else url
            with open(src, "rb") as r, open(part, "wb") as w:
                for chunk in iter(lambda: r.read(CHUNK), b""):
                    h.update(chunk)
                    w.write(chunk)
        else:
            with session.get(url, stream=True, timeout=(10, 120)) as resp:
                resp.raise_for_status()
                with open(part, "wb") as w:
                    for chunk in resp.iter_content(CHUNK):
                        h.update(chunk)
                        w.write(chunk)
        if h.hexdigest() != want:
            raise BundleError(f"{mask(url)}: sha256 {h.hexdigest()}, expected {want}",
                              hint="the index or mirror served another file than it lists; run again, or check it")
        os.replace(part, dest)
    except OSError as e:
        raise BundleError(f"cannot fetch {mask(url)}: {e}") from None
    except Exception as e:  # requests' errors: one line
        if isinstance(e, BundleError):
            raise
        raise BundleError(f"cannot fetch {mask(url)}: {type(e).__name__}: {e}") from None
    finally:
        if os.path.exists(part):
            os.unlink(part)


def fetch(item: Item, bundle: str, cache: str, session, progress: Callable[[str], None] = lambda line: None) -> bool:
    """Put `item` into the bundle directory; True when it had to be downloaded (not in the cache)."""
    name = os.path.basename(item.path)
    cached = os.path.join(cache, "sha256", item.sha256, name)
    dest = os.path.join(bundle, item.path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    downloaded = False
    if not os.path.exists(cached):  # written only once whole and checked: its name is its hash
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        size = f" ({item.size / 1e6:.1f} MB)" if item.size else ""
        progress(f"downloading {name}{size}")
        _download(item.url, cached, item.sha256, session)
        downloaded = True
    if os.path.exists(dest):
        if os.path.samefile(dest, cached):
            return downloaded
        os.unlink(dest)
    try:
        os.link(cached, dest)
    except OSError:  # another file system: a copy
        shutil.copyfile(cached, dest)
    return downloaded
