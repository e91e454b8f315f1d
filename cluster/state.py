"""Room state that outlives a node (docs/cluster.md, "Room state"): the latest state of
every live room in a JetStream key-value bucket, ``<prefix>_STATE``, so that another node
can take the room over after a drain or a crash.

Keys are ``<room key>.<part>``: ``classroom`` (settings, chat, hands, polls, the running
recording: :mod:`classroom.replica`), ``board`` (the whiteboard's Yjs document) and
``engagement`` (the session's engagement capture: :mod:`classroom.reports`). Each value is
8 bytes of wall-clock time (big-endian double) and the part's bytes; a replica older than
``max_age_s`` is ignored (a room that crashed and was never taken over must not hand its
chat to next week's lesson of the same name).

:class:`StateWriter` writes each hosted room's parts every ``interval_s`` when they
changed (so a crash loses at most that much), at once on :meth:`StateWriter.flush`
(a drain), and forgets a room that closed normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyDeletedError, KeyNotFoundError

from .registry import ClusterRegistry, room_key

log = logging.getLogger(__name__)
PARTS = ("classroom", "board", "engagement")
_STAMP = struct.Struct(">d")

#: a part of a room's state now: a version (anything comparable with ==; the same version
#: means unchanged) and how to make its bytes
Part = tuple[object, Callable[[], bytes]]


def state_key(room: str, part: str) -> str:
    return f"{room_key(room)}.{part}"


class StateStore:
    """Reads and writes room state in the registry's NATS connection."""

    def __init__(self, registry: ClusterRegistry, max_age_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.max_age_s = max_age_s
        self.clock = clock

    @property
    def kv(self) -> Any:
        kv = self.registry.state_bucket
        if kv is None:
            raise ConnectionError("not connected to NATS")
        return kv

    async def put(self, room: str, part: str, data: bytes) -> None:
        await self.kv.put(state_key(room, part), _STAMP.pack(self.clock()) + data)

    async def get(self, room: str, part: str) -> bytes | None:
        """The part's latest bytes, or None (none, too old or unreadable)."""
        got = await self.get_stamped(room, part)
        return got[1] if got is not None else None

    async def get_stamped(self, room: str, part: str) -> tuple[float, bytes] | None:
        """When the part was written (wall clock) and its bytes, or None."""
        try:
            entry = await self.kv.get(state_key(room, part))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        value = entry.value or b""
        if len(value) < _STAMP.size:
            return None
        (at,) = _STAMP.unpack_from(value)
        if self.clock() - at > self.max_age_s:
            return None
        return float(at), bytes(value[_STAMP.size:])

    async def forget(self, room: str) -> None:
        for part in PARTS:
            with contextlib.suppress(KeyNotFoundError, KeyDeletedError):
                await self.kv.delete(state_key(room, part))


class StateWriter:
    """Keeps the store up to date with this node's rooms."""

    def __init__(self, store: StateStore, parts: Callable[[str], dict[str, Part]],
                 hosted: Callable[[], list[str]], interval_s: float = 0.5) -> None:
        self.store = store
        self.parts = parts
        self.hosted = hosted
        self.interval_s = interval_s
        #: (room, part) -> the version written last
        self._written: dict[tuple[str, str], object] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # figures (docs/metrics.md)
        self.writes = 0
        self.bytes = 0
        self.failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.store.registry.connected:
                continue
            for room in self.hosted():
                try:
                    await self.flush(room)
                except Exception:  # a bug in a part's export: the other rooms go on
                    self.failures += 1
                    log.exception("cluster: replicating room %r failed", room)

    async def flush(self, room: str) -> bool:
        """Write the room's changed parts now; False if a write failed."""
        async with self._lock:
            if room not in self.hosted():
                return True  # closed meanwhile (and forgotten, or moved): nothing to write
            ok = True
            for part, (version, make) in self.parts(room).items():
                if self._written.get((room, part)) == version:
                    continue
                try:
                    data = make()
                    await self.store.put(room, part, data)
                except Exception as exc:
                    self.failures += 1
                    ok = False
                    log.warning("cluster: replicating %s of room %r failed: %s", part, room,
                                exc)
                    continue
                self._written[(room, part)] = version
                self.writes += 1
                self.bytes += len(data)
            return ok

    async def forget(self, room: str) -> None:
        """The room closed for good: its replica goes (in the background is fine)."""
        async with self._lock:  # (not while a flush of it is writing)
            for part in PARTS:
                self._written.pop((room, part), None)
            try:
                await self.store.forget(room)
            except Exception as exc:
                log.warning("cluster: forgetting the state of room %r failed: %s", room, exc)

    def moved(self, room: str) -> None:
        """The room went to another node: stop tracking it here (its replica stays)."""
        for part in PARTS:
            self._written.pop((room, part), None)
