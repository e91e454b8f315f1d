"""Prometheus figures of the outward event sinks (``docs/metrics.md``): each sink says what
it counts (``counters()``, ``gauges()``: name, help, value); one collector exports them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .bus import Event

Figure = tuple[str, str, float]


class MeasuredSink(Protocol):
    """An outward sink: a bus listener that reports its figures."""

    def __call__(self, event: Event) -> None: ...

    def counters(self) -> list[Figure]: ...

    def gauges(self) -> list[Figure]: ...


class EventSinkCollector(Collector):
    def __init__(self, *sinks: MeasuredSink) -> None:
        self.sinks = sinks

    def collect(self) -> Iterator[Metric]:
        for sink in self.sinks:
            for name, text, value in sink.counters():
                yield CounterMetricFamily(name, text, value=value)
            for name, text, value in sink.gauges():
                yield GaugeMetricFamily(name, text, value=value)
