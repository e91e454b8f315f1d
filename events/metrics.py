"""Prometheus figures of the outward event sinks (``docs/metrics.md``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .filelog import FileLog


class EventLogCollector(Collector):
    def __init__(self, sink: FileLog) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        s = self.sink.stats
        yield CounterMetricFamily("sfu_event_log_written", "events written to the event log",
                                  value=s.written)
        yield CounterMetricFamily(
            "sfu_event_log_dropped", "events dropped because the event log's queue was full "
            "(the disk stalled)", value=s.dropped)
        yield CounterMetricFamily(
            "sfu_event_log_write_errors", "failed writes to the event log (retried)",
            value=s.write_errors)
        yield CounterMetricFamily("sfu_event_log_rotations", "event log files rotated",
                                  value=s.files_rotated)
        yield GaugeMetricFamily("sfu_event_log_queue", "events waiting to be written",
                                value=self.sink.queued)
