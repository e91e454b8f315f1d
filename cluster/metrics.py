"""Prometheus metrics of the cluster registry (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sfu.room import RoomRegistry

from .edge import Edges
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


class RelayCollector(Collector):
    """Edge relays (docs/cluster.md): what this node sends to edges as an origin, and
    what it relays as an edge."""

    def __init__(self, rooms: RoomRegistry, edges: Callable[[], Edges | None]) -> None:
        self.rooms = rooms
        self.edges = edges

    def collect(self) -> Iterator[Any]:
        subs = GaugeMetricFamily("sfu_relay_subscriptions", "tracks this origin sends to "
                                 "each edge node (one per track and edge, however many "
                                 "pages the edge serves)", labels=["edge"])
        sent = CounterMetricFamily("sfu_relay_packets_sent", "RTP packets this origin sent "
                                   "to each edge's relay session (of its open sessions)",
                                   labels=["edge"])
        by_edge: dict[str, list[int]] = {}
        for room in list(self.rooms.rooms.values()):
            for relay in list(room.relays.values()):
                counts = by_edge.setdefault(relay.info.relay, [0, 0])
                counts[0] += len(relay.subscriptions)
                counts[1] += sum(s.stats.packets for s in list(relay.subscriptions.values()))
        for edge, (n, packets) in sorted(by_edge.items()):
            subs.add_metric([edge], n)
            sent.add_metric([edge], packets)
        yield subs
        yield sent
        edges = self.edges()
        served = list(edges.edges.values()) if edges is not None else []
        yield GaugeMetricFamily("sfu_edge_rooms", "rooms this node serves as an edge of "
                                "their origin on another node", value=len(served))
        yield GaugeMetricFamily("sfu_edge_relayed_tracks", "the origins' tracks relayed "
                                "to this edge's pages", value=sum(len(e.tracks()) for e in served))
        yield GaugeMetricFamily("sfu_edge_pages", "pages whose media this node serves as "
                                "an edge", value=sum(e.pages() for e in served))
        yield CounterMetricFamily("sfu_edge_relay_moves", "relay sessions opened again with "
                                  "a room's new origin after it moved (a drain, a failed "
                                  "origin)", value=edges.relay_moves if edges else 0)
        yield CounterMetricFamily("sfu_edge_packets_received", "RTP packets of the relayed "
                                  "tracks received from the origins (of the open edges)",
                                  value=sum(t.stats.packets_in for e in served
                                            for t in e.tracks()))
