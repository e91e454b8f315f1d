"""This node, as the registry sees it: its announcement, made from the running server, and
the CPU share it reports (this process's CPU time over the wall time since the previous
announcement, as a share of the machine's cores)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from .placement import NodeInfo


class RateSince:
    """How fast a running total grew since the previous sample (per second of wall time)."""

    def __init__(self, total: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.clock = clock
        self._last = (clock(), total())

    def sample(self) -> float:
        now, value = self.clock(), self.total()
        wall, grown = now - self._last[0], value - self._last[1]
        self._last = (now, value)
        return max(0.0, grown / wall) if wall > 0 else 0.0


class CpuShare(RateSince):
    """The share of the cores this process used since the previous sample, 0..1."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(_cpu_s, clock)
        self.cores = max(1, len(os.sched_getaffinity(0)))

    def sample(self) -> float:
        return min(1.0, super().sample() / self.cores)


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def node_id(configured: str) -> str:
    """The configured id, else the host name (made fit for a registry key)."""
    if configured:
        return configured
    name = socket.gethostname()
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64] or "node"


class Announcer:
    """Makes this node's announcement from what the server reports."""

    def __init__(self, node: str, region: str, url: Callable[[], str], capacity_rooms: int,
                 count: Callable[[], tuple[int, int]], draining: Callable[[], bool],
                 forwarded: RateSince | None = None) -> None:
        self.node = node
        self.region = region
        self.url = url
        self.capacity_rooms = capacity_rooms
        self.count = count
        self.draining = draining
        self.cpu = CpuShare()
        self.forwarded = forwarded

    def __call__(self) -> NodeInfo:
        rooms, participants = self.count()
        return NodeInfo(self.node, self.region, self.url(), self.capacity_rooms, rooms=rooms,
                        participants=participants, cpu=round(self.cpu.sample(), 3),
                        forwarded_pps=round(self.forwarded.sample(), 1)
                        if self.forwarded is not None else 0.0,
                        draining=self.draining())
