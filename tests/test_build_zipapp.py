"""scripts/build-zipapp: stdlib only, wheels pinned by sha256 in scripts/zipapp.lock."""
import hashlib

import pytest

from conftest import load_script



def load():
    return load_script("build-zipapp")


def test_the_lock_pins_every_dependency_with_a_sha256():
    bz = load()
    rows = list(bz.locked())
    names = {f.split("-")[0].lower().replace("_", "-") for f, _ in rows}
    for dep in bz._dependencies():
        assert dep.split(">")[0].split("=")[0].strip().lower() in names, dep
    assert all(len(sha) == 64 and f.endswith("-none-any.whl") for f, sha in rows)


def test_a_wheel_whose_sha256_differs_is_refused(tmp_path):
    bz = load()
    filename, sha = next(bz.locked())
    (tmp_path / filename).write_bytes(b"not the wheel")
    with pytest.raises(SystemExit) as e:
        bz._wheel(filename, sha, str(tmp_path))
    assert "sha256" in str(e.value) and filename in str(e.value)


def test_a_wheel_from_find_links_with_the_locked_sha256_is_taken(tmp_path):
    bz = load()
    data = b"PK\x05\x06" + b"\0" * 18  # an empty zip
    (tmp_path / "x-1.0-py3-none-any.whl").write_bytes(data)
    assert bz._wheel("x-1.0-py3-none-any.whl", hashlib.sha256(data).hexdigest(), str(tmp_path)) == data
