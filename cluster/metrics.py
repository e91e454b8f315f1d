"""Prometheus metrics of the cluster registry (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .registry import ClusterRegistry
from .rooms import ClusterRooms
from .state import StateWriter


class ClusterCollector(Collector):
    def __init__(self, registry: ClusterRegistry, rooms: ClusterRooms, writer: StateWriter
                 ) -> None:
        self.r = registry
        self.rooms = rooms
        self.writer = writer

    def collect(self) -> Iterator[Any]:
        r = self.r
        yield GaugeMetricFamily("sfu_cluster_nodes", "live nodes in the registry, as of this "
                                "node's last announcement", value=len(r.known))
        placements = CounterMetricFamily("sfu_cluster_placements", "rooms this node placed "
                                         "(placed: new; moved: from a gone or draining node)",
                                         labels=["result"])
        placements.add_metric(["placed"], r.placed)
        placements.add_metric(["moved"], r.moved)
        yield placements
        yield CounterMetricFamily("sfu_cluster_placement_conflicts", "placements that lost a "
                                  "compare-and-set to another node's and took its choice",
                                  value=r.conflicts)
        yield CounterMetricFamily("sfu_cluster_announce_failures", "announcements that did "
                                  "not reach NATS", value=r.announce_failures)
        rooms = self.rooms
        yield CounterMetricFamily("sfu_cluster_redirects", "joins and room creations sent "
                                  "to the room's origin on another node",
                                  value=rooms.redirects)
        yield CounterMetricFamily("sfu_cluster_unplaced_joins", "joins served here without "
                                  "a placement because NATS could not be reached",
                                  value=rooms.unplaced_joins)
        yield CounterMetricFamily("sfu_cluster_claims_lost", "rooms opened here while NATS "
                                  "was away that another node had placed meanwhile (open on "
                                  "both)", value=rooms.claims_lost)
        yield CounterMetricFamily("sfu_cluster_release_failures", "closed rooms whose "
                                  "placement could not be released (it moves when next "
                                  "joined if this node is gone)", value=rooms.release_failures)
        moves = CounterMetricFamily("sfu_cluster_room_moves", "rooms moved between nodes: "
                                    "out (this node drained) or in (taken over here from "
                                    "another node's replica)", labels=["direction"])
        moves.add_metric(["out"], rooms.moved_out)
        moves.add_metric(["in"], rooms.taken_over)
        yield moves
        w = self.writer
        yield CounterMetricFamily("sfu_cluster_state_writes", "room state parts written to "
                                  "the replica (only when changed)", value=w.writes)
        yield CounterMetricFamily("sfu_cluster_state_bytes", "bytes of room state written "
                                  "to the replica", value=w.bytes)
        yield CounterMetricFamily("sfu_cluster_state_write_failures", "room state writes "
                                  "that failed (retried at the next interval)",
                                  value=w.failures)
