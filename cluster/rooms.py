"""Where this node's joins and room creations go (docs/cluster.md, "Joins").

Any node's signalling answers a join for any room. The room is placed through the
registry (:meth:`ClusterRegistry.place`, a compare-and-set); if its origin is another node,
the join is **redirected** there: the client opens its signalling socket on the origin's
URL and sends the same join. A redirect rather than a proxied WebSocket, because the
media follows the signalling: a proxy would leave the browser's ICE candidates and
every packet on the node it first reached, through two nodes for nothing.

While NATS cannot be reached, a node serves the joins it gets (a lesson starting matters
more than the cluster agreeing), counts them (``sfu_cluster_unplaced_joins_total``) and
claims those rooms when NATS is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .placement import PlacementError
from .registry import ClusterRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Elsewhere:
    """A room hosted by another node: the client goes there."""
    node: str
    url: str
    #: the node's region ("" if unknown)
    region: str = ""


class ClusterRooms:
    def __init__(self, registry: ClusterRegistry, region: str,
                 hosted: Callable[[], list[str]]) -> None:
        self.registry = registry
        self.region = region
        #: the rooms open on this node
        self.hosted = hosted
        self._releases: set[asyncio.Task[None]] = set()
        #: rooms served here while NATS did not answer: claimed when it does again
        self.unclaimed: set[str] = set()
        # figures (docs/metrics.md)
        self.redirects = 0
        self.unplaced_joins = 0
        self.release_failures = 0
        self.claims_lost = 0
        #: rooms this node took over from another's replica, and moved out in a drain
        self.taken_over = 0
        self.moved_out = 0

    async def route(self, room: str, region: str | None = None) -> Elsewhere | None:
        """Where a join for ``room`` is served: None for here, else the origin node.
        PlacementError when no node can take the room (all draining or full)."""
        if not self.registry.connected:
            self.unplaced_joins += 1
            return None
        try:
            placed = await self.registry.place(room, region or self.region)
        except PlacementError:
            raise
        except Exception as exc:  # NATS went away in the middle: serve here
            log.warning("cluster: placing room %r failed (%s); serving it here", room, exc)
            self.unplaced_joins += 1
            self.unclaimed.add(room)
            return None
        if placed.node == self.registry.node_id:
            return None
        url = self.registry.url_of(placed.node)
        if not url:
            raise PlacementError(f"room {room!r} is on node {placed.node}, which announces "
                                 "no URL")
        self.redirects += 1
        return Elsewhere(placed.node, url, self.registry.region_of(placed.node))

    def release(self, room: str) -> None:
        """The room closed here: forget its placement (in the background)."""
        if not self.registry.connected:
            return
        task = asyncio.ensure_future(self._release(room))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, room: str) -> None:
        try:
            await self.registry.release(room)
        except Exception as exc:
            self.release_failures += 1
            log.warning("cluster: releasing room %r failed: %s", room, exc)

    async def claim_pending(self) -> list[str]:
        """Claim the rooms served here while NATS did not answer (those still open)."""
        pending = [room for room in self.unclaimed if room in self.hosted()]
        self.unclaimed.clear()
        return await self.claim_hosted(pending) if pending else []

    async def claim_hosted(self, only: list[str] | None = None) -> list[str]:
        """Place the rooms open here (served while NATS was away; ``only``: these) on this
        node; the names of those another node placed meanwhile (both now host them)."""
        lost = []
        for room in self.hosted() if only is None else only:
            try:
                placed = await self.registry.claim(room)
            except Exception as exc:
                log.warning("cluster: claiming room %r failed: %s", room, exc)
                self.unclaimed.add(room)  # (the next round tries again)
                continue
            if placed.node != self.registry.node_id:
                self.claims_lost += 1
                lost.append(room)
                log.warning("cluster: room %r is open here and on node %s (it was placed "
                            "there while this node could not reach NATS)", room, placed.node)
        return lost

    async def close(self) -> None:
        """Wait for the releases in flight (a clean shutdown)."""
        if self._releases:
            await asyncio.wait(list(self._releases), timeout=2.0)
