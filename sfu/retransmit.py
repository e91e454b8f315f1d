"""Retransmission cache for one published RTP source: the last N packets by extended seq."""

from __future__ import annotations

from typing import Protocol

DEFAULT_CAPACITY = 1024  # ~4 s of 2.5 Mbit/s video; power of two


class RetransmitCache:
    __slots__ = ("_mask", "_packets", "_exts", "hits", "misses")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._mask = capacity - 1
        self._packets: list[bytes | None] = [None] * capacity
        self._exts = [-1] * capacity
        self.hits = 0
        self.misses = 0

    def put(self, ext_seq: int, packet: bytes) -> None:
        i = ext_seq & self._mask
        self._packets[i] = packet
        self._exts[i] = ext_seq

    def get(self, ext_seq: int) -> bytes | None:
        i = ext_seq & self._mask
        if self._exts[i] == ext_seq >= 0:  # (-1 marks an empty slot)
            self.hits += 1
            return self._packets[i]
        self.misses += 1
        return None


class Cache(Protocol):
    """What a retransmission cache offers (both kinds below)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    def put(self, ext_seq: int, packet: bytes) -> None: ...

    def get(self, ext_seq: int) -> bytes | None: ...
