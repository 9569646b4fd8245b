"""Which filesystem holds a path, from /proc/self/mountinfo: Inductor's and Triton's caches do not belong on a
network filesystem.

A cache on NFS, Lustre, GPFS or another shared filesystem is seen by every node and every job at once: compiles
there are slow, and parallel ranks race on the same files (stale file handles, busy files, half-written modules;
pytorch/pytorch#196993, #173679). doctor warns and names the node-local, per-job TORCHINDUCTOR_CACHE_DIR and
TRITON_CACHE_DIR to use instead.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

# Filesystems whose files live on other machines (fstype as mountinfo spells it; fuse.* by their driver).
NETWORK = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "glusterfs", "afs", "panfs",
    "wekafs", "orangefs", "pvfs2", "9p", "davfs", "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "fuse.ceph-fuse",
    "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.juicefs", "fuse.weka", "fuse.davfs", "fuse.cvmfs2",
    "fuse.goofys", "fuse.mount-s3",
})


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse(text: str) -> List[Mount]:
    """The mounts of a /proc/self/mountinfo text, in its order (a later mount on the same point hides the
    earlier one); lines that are not mountinfo lines are skipped."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2 or not fields[4].startswith("/"):
            continue
        out.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return out


def holding(path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The mount that holds `path` (absolute): the deepest mount point above it, the last one mounted there."""
    path = posixpath.normpath(path)
    best: Optional[Mount] = None
    for m in mounts:
        point = m.point.rstrip("/") or "/"
        if point == "/" or path == point or path.startswith(point + "/"):
            if best is None or len(point) >= len(best.point.rstrip("/") or "/"):
                best = m
    return best


def is_network(fstype: str) -> bool:
    return fstype in NETWORK or fstype.split(".")[0] in NETWORK
