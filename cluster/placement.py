"""Which node hosts a room, sans-IO: the nodes' announcements in, a choice out.

A node announces itself (:class:`NodeInfo`) every few seconds; an announcement older than
the registry's time-to-live means the node is gone. A room is placed on one **origin**
node: the least loaded live node of the requested region that is not draining and has
room, else the least loaded one anywhere (a lesson is better held far away than not at
all). Load is the larger of the node's CPU share and its share of its room capacity, so a
node full of idle rooms and a node with one huge room both count as busy.

Placement records (:class:`Placement`) are written with a compare-and-set by the registry
(:mod:`cluster.registry`): two nodes that place the same room at once end up agreeing on
the one record that was written first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

#: what a placement says about who may take a room over
MOVABLE = ("node_gone", "node_draining")


class PlacementError(Exception):
    code = "no_node"


@dataclass(frozen=True)
class NodeInfo:
    id: str
    region: str
    #: where browsers and other nodes reach it: its signalling URL (https://...)
    url: str
    #: rooms it accepts at most
    capacity_rooms: int
    rooms: int = 0
    participants: int = 0
    forwarded_pps: float = 0.0
    #: share of the node's CPUs in use, 0..1
    cpu: float = 0.0
    draining: bool = False
    #: wall-clock seconds of the announcement
    at: float = 0.0

    @property
    def load(self) -> float:
        return max(self.cpu, self.rooms / self.capacity_rooms if self.capacity_rooms else 1.0)

    def accepts(self) -> bool:
        return not self.draining and self.rooms < self.capacity_rooms

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> NodeInfo:
        raw: dict[str, Any] = json.loads(data)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class Placement:
    room: str
    node: str
    region: str
    at: float

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Placement:
        raw: dict[str, Any] = json.loads(data)
        return cls(str(raw["room"]), str(raw["node"]), str(raw["region"]), float(raw["at"]))


def live(nodes: list[NodeInfo], now: float, ttl_s: float) -> list[NodeInfo]:
    """The nodes whose last announcement is younger than ``ttl_s``."""
    return [n for n in nodes if now - n.at <= ttl_s]


def choose_origin(nodes: list[NodeInfo], region: str | None, now: float, ttl_s: float
                  ) -> NodeInfo:
    """The node a new room goes to; PlacementError when no live node accepts rooms."""
    candidates = [n for n in live(nodes, now, ttl_s) if n.accepts()]
    if not candidates:
        raise PlacementError("no live node accepts rooms (all gone, draining or full)")
    local = [n for n in candidates if region and n.region == region]
    return min(local or candidates, key=lambda n: (n.load, n.id))


def needs_moving(placement: Placement, nodes: list[NodeInfo], now: float, ttl_s: float
                 ) -> str | None:
    """Why a placed room must move (``node_gone``, ``node_draining``), or None."""
    host = next((n for n in live(nodes, now, ttl_s) if n.id == placement.node), None)
    if host is None:
        return "node_gone"
    if host.draining:
        return "node_draining"
    return None
