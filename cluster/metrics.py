"""Prometheus metrics of the cluster registry (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .registry import ClusterRegistry


class ClusterCollector(Collector):
    def __init__(self, registry: ClusterRegistry) -> None:
        self.r = registry

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
