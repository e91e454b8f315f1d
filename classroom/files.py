"""Files the classroom tools keep per room (session reports, whiteboard snapshots)."""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def room_file_name(room: str) -> str:
    """A room name made safe for a file name (any character outside [A-Za-z0-9._-] becomes
    ``_``; at most 100 characters)."""
    return _UNSAFE.sub("_", room)[:100]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is complete or absent: a temporary name,
    synced, then renamed over it. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
