"""A track's byte stream cut into checksummed chunks for the dual writer, sans-IO.

The muxer hands over whole clusters (about a second of media; a big one in several
writes, close together); the chunker gathers the writes into chunks of at most
``max_bytes``, closed ``max_ms`` after their first byte: so a chunk is usually one
cluster (one S3 object per track per second), and a sink is at most a cluster and
``max_ms`` behind the media (what a crash can cost).
Each chunk knows its place in the file (``offset``) and its SHA-256, so any copy can be
checked, or rebuilt, chunk by chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    offset: int
    length: int
    sha256: str

    def describe(self) -> dict[str, object]:
        return {"index": self.index, "offset": self.offset, "length": self.length,
                "sha256": self.sha256}


class Chunker:
    def __init__(self, max_bytes: int = 1 << 20, max_ms: float = 250.0) -> None:
        self.max_bytes = max_bytes
        self.max_ms = max_ms
        self.chunks: list[Chunk] = []
        self.size = 0  # bytes in closed chunks
        self._parts: list[bytes] = []
        self._pending = 0
        self._since = 0.0

    def feed(self, data: bytes, now_ms: float) -> list[tuple[Chunk, bytes]]:
        if not data:
            return []
        if not self._parts:
            self._since = now_ms
        self._parts.append(data)
        self._pending += len(data)
        if self._pending >= self.max_bytes:
            return self._close()
        return self.tick(now_ms)

    def tick(self, now_ms: float) -> list[tuple[Chunk, bytes]]:
        if self._parts and now_ms - self._since >= self.max_ms:
            return self._close()
        return []

    def flush(self) -> list[tuple[Chunk, bytes]]:
        return self._close() if self._parts else []

    def _close(self) -> list[tuple[Chunk, bytes]]:
        data = b"".join(self._parts)
        self._parts, self._pending = [], 0
        chunk = Chunk(len(self.chunks), self.size, len(data), hashlib.sha256(data).hexdigest())
        self.chunks.append(chunk)
        self.size += len(data)
        return [(chunk, data)]
