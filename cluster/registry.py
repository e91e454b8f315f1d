"""The node registry and room placements in NATS JetStream key-value buckets.

Two buckets (created if missing, file-backed):

- ``<prefix>_NODES``: one key per node, its :class:`~cluster.placement.NodeInfo`,
  re-announced every ``ttl_s / 3``; the bucket's TTL drops the key of a node that stopped
  announcing (crashed, cut off), and the announcement's own time is checked too. Every
  node watches this bucket and keeps the table in memory, so a placement reads no more
  than the room's own key: a burst of joins does not turn into a burst of node reads.
- ``<prefix>_STATE``: the live rooms' state, for a take-over (:mod:`cluster.state`).
- ``<prefix>_ROOMS``: one key per placed room, its :class:`~cluster.placement.Placement`.
  A room is placed with ``create`` (written only if the key does not exist) and moved with
  ``update`` at the revision that was read (written only if nobody changed it since): the
  compare-and-set that makes every node agree on one origin, however many place it at once.

The choice itself is :func:`cluster.placement.choose_origin` (sans-IO). Nothing here runs
on a single-node server: the cluster is off unless ``cluster.nats_url`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import nats
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)

from .placement import (
    NodeInfo,
    Placement,
    PlacementError,
    choose_origin,
    live,
    needs_moving,
)

log = logging.getLogger(__name__)
_KEY_OK = re.compile(r"^[-_=a-zA-Z0-9]{1,200}$")
#: how often a placement is retried when others keep changing it under us
PLACE_ATTEMPTS = 8


def room_key(room: str) -> str:
    """A KV key for a room name (names with other characters are hex-encoded)."""
    return f"r_{room}" if _KEY_OK.match(room) else "x_" + room.encode().hex()


class ClusterRegistry:
    def __init__(self, url: str, announce: Callable[[], NodeInfo], *, ttl_s: float = 10.0,
                 prefix: str = "SFU", clock: Callable[[], float] = time.time,
                 replicas: int = 1) -> None:
        self.url = url
        self.announce = announce
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.clock = clock
        self.replicas = replicas
        self.node_id = announce().id
        self._nc: Any = None
        self._nodes: Any = None
        self._rooms: Any = None
        #: ``<prefix>_STATE``: the live rooms' state (cluster.state)
        self.state_bucket: Any = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._watcher: Any = None
        #: the nodes' latest announcements, from the watch of the nodes bucket
        self._table: dict[str, NodeInfo] = {}
        # figures (docs/metrics.md)
        #: the live nodes as of the last heartbeat
        self.known: list[NodeInfo] = []
        self.announce_failures = 0
        self.placed = 0
        self.moved = 0
        self.conflicts = 0
        #: told of each placement this node writes: the placement, and why the room moved
        #: ("node_gone", "node_draining"; "" for a new one)
        self.on_placed: Callable[[Placement, str], None] = lambda placement, why: None

    @property
    def connected(self) -> bool:
        """Started: connected to NATS and announced (a reconnection in progress counts)."""
        return self._rooms is not None

    async def start(self) -> None:
        nc = await nats.connect(self.url, name=f"classroom-sfu {self.node_id}",
                                max_reconnect_attempts=-1)
        try:
            js = nc.jetstream()
            self._nodes = await _bucket(js, f"{self.prefix}_NODES", self.ttl_s, self.replicas)
            rooms = await _bucket(js, f"{self.prefix}_ROOMS", None, self.replicas)
            self.state_bucket = await _bucket(js, f"{self.prefix}_STATE", None, self.replicas)
            self._nc = nc
            self._watcher = await self._nodes.watchall()
            while (entry := await self._watcher.updates(timeout=self.ttl_s)) is not None:
                self._apply(entry)  # the table as it stands, then None
            await self._announce()
            self._rooms = rooms  # connected (see `connected`)
            self.known = await self.nodes()
        except BaseException:
            self._nodes = self._rooms = self._nc = self._watcher = None
            self.state_bucket = None
            await nc.close()  # a retry starts afresh, without a second connection
            raise
        self._watch = asyncio.ensure_future(self._follow())
        self._task = asyncio.ensure_future(self._heartbeat())

    async def stop(self, *, leave: bool = True) -> None:
        """Stop announcing; ``leave``: remove this node's entry at once (a clean exit);
        otherwise it expires after the TTL, as a crash's would."""
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if leave and self._nodes is not None:
            with contextlib.suppress(Exception):
                await self._nodes.delete(self.node_id)
        if self._nc is not None:
            await self._nc.close()

    async def announce_now(self) -> None:
        """Announce at once (a drain starting), rather than at the next beat."""
        await self._announce()

    async def _announce(self) -> None:
        info = self.announce()
        info = NodeInfo(**{**info.__dict__, "at": self.clock()})
        await self._nodes.put(self.node_id, info.to_bytes())
        self._table[info.id] = info  # our own, at once (the watch brings it back too)

    def _apply(self, entry: Any) -> None:
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            self._table.pop(entry.key, None)
            return
        try:
            info = NodeInfo.from_bytes(entry.value)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("cluster: unreadable announcement under %r: %s", entry.key, exc)
            return
        self._table[info.id] = info

    async def _follow(self) -> None:
        """Keep the node table: the watch is an ordered consumer, which resumes by itself
        after a reconnection; entries of nodes that went quiet age out by their time."""
        async for entry in self._watcher:
            if entry is not None:
                self._apply(entry)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self._announce()
                self.known = await self.nodes()
            except Exception as exc:  # NATS away: announce again at the next beat
                self.announce_failures += 1
                log.warning("cluster: announcing node %s failed: %s", self.node_id, exc)

    # -- reading ---------------------------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        """Every live node (announced within the TTL), from the watched table."""
        return sorted(live(list(self._table.values()), self.clock(), self.ttl_s),
                      key=lambda n: n.id)

    async def placement(self, room: str) -> tuple[Placement, int] | None:
        try:
            entry = await self._rooms.get(room_key(room))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        return Placement.from_bytes(entry.value), int(entry.revision)

    async def rooms(self) -> list[Placement]:
        """Every placed room (reads each key: for the operator's API, not for joins)."""
        try:
            keys = await self._rooms.keys()
        except NoKeysError:
            return []
        out = []
        for key in keys:
            try:
                entry = await self._rooms.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if entry.value:
                out.append(Placement.from_bytes(entry.value))
        return sorted(out, key=lambda p: p.room)

    # -- placing ---------------------------------------------------------------------------

    async def place(self, room: str, region: str | None = None) -> Placement:
        """The room's origin: where it is, if its node is live and not draining; else a
        new choice, written so that concurrent callers all get the same answer.
        PlacementError when no node can take it."""
        key = room_key(room)
        for _ in range(PLACE_ATTEMPTS):
            current = await self.placement(room)
            nodes = await self.nodes()
            now = self.clock()
            if current is not None:
                where, revision = current
                why = needs_moving(where, nodes, now, self.ttl_s)
                if why is None:
                    return where
                others = [n for n in nodes if n.id != where.node]
                chosen = choose_origin(others, region or where.region, now, self.ttl_s)
                moved = Placement(room, chosen.id, region or where.region, now)
                try:
                    await self._rooms.update(key, moved.to_bytes(), last=revision)
                except KeyWrongLastSequenceError:
                    self.conflicts += 1
                    continue  # someone moved it first: read theirs
                self.moved += 1
                self.on_placed(moved, why)
                return moved
            chosen = choose_origin(nodes, region, now, self.ttl_s)
            placed = Placement(room, chosen.id, region or chosen.region, now)
            try:
                await self._rooms.create(key, placed.to_bytes())
            except KeyWrongLastSequenceError:
                self.conflicts += 1
                continue  # someone placed it first: read theirs
            self.placed += 1
            self.on_placed(placed, "")
            return placed
        raise PlacementError(f"the placement of room {room!r} kept changing; try again")

    async def claim(self, room: str) -> Placement:
        """Place the room on this node unless another live node that is not draining holds
        it (then that placement is returned): for rooms a node opened while it could not
        reach NATS."""
        key = room_key(room)
        for _ in range(PLACE_ATTEMPTS):
            current = await self.placement(room)
            now = self.clock()
            mine = Placement(room, self.node_id, self.announce().region, now)
            try:
                if current is None:
                    await self._rooms.create(key, mine.to_bytes())
                    self.placed += 1
                    self.on_placed(mine, "")
                    return mine
                where, revision = current
                why = needs_moving(where, await self.nodes(), now, self.ttl_s)
                if where.node == self.node_id or why is None:
                    return where
                await self._rooms.update(key, mine.to_bytes(), last=revision)
                self.moved += 1
                self.on_placed(mine, why)
                return mine
            except KeyWrongLastSequenceError:
                self.conflicts += 1
        raise PlacementError(f"the placement of room {room!r} kept changing; try again")

    def url_of(self, node: str) -> str:
        """The signalling URL a node announced ('' if unknown)."""
        info = self._table.get(node)
        return info.url if info is not None else ""

    def region_of(self, node: str) -> str:
        """The region a node announced ('' if unknown)."""
        info = self._table.get(node)
        return info.region if info is not None else ""

    async def release(self, room: str) -> bool:
        """Forget the room's placement if this node holds it (the room closed here)."""
        current = await self.placement(room)
        if current is None or current[0].node != self.node_id:
            return False
        try:
            await self._rooms.delete(room_key(room), last=current[1])
        except KeyWrongLastSequenceError:
            return False  # moved meanwhile: no longer ours to forget
        return True


async def _bucket(js: Any, name: str, ttl: float | None, replicas: int) -> Any:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(
            bucket=name, history=1, ttl=ttl, storage=StorageType.FILE, replicas=replicas))
