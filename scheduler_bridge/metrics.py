"""``sfu_schedule_*`` metrics (docs/metrics.md): lessons by status, exceptions by kind and
state, notifications, the watch's lag, provisioning. Counts from the database are the
bridge's copy, refreshed every minute and after each exception transition, so a scrape
never touches the database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from .booking import Status
from .exception_queue import KINDS, ExceptionState
from .service import Bridge


class ScheduleCollector(Collector):
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Any]:
        s = self.bridge.stats
        lessons = GaugeMetricFamily("sfu_schedule_lessons", "booked lessons by status (all "
                                    "in the database)", labels=["status"])
        for status in Status:
            lessons.add_metric([status.value], s.lessons_by_status.get(status.value, 0))
        yield lessons
        yield GaugeMetricFamily("sfu_schedule_lessons_held", "lessons near enough to act on "
                                "(planner and watch)", value=len(self.bridge.lessons))
        queue = GaugeMetricFamily("sfu_schedule_exceptions", "exceptions in the queue by kind "
                                  "and state", labels=["kind", "state"])
        for kind in KINDS:
            for exc_state in ExceptionState:
                queue.add_metric([kind, exc_state.value],
                                 s.exceptions_by_state.get((kind, exc_state.value), 0))
        yield queue
        raised = CounterMetricFamily("sfu_schedule_exceptions_raised", "exceptions raised by "
                                     "this process, by kind", labels=["kind"])
        for kind in KINDS:
            raised.add_metric([kind], s.exceptions_raised.get(kind, 0))
        yield raised
        notes = CounterMetricFamily("sfu_schedule_notifications", "notifications by channel "
                                    "and outcome (sent, failed: retried, dead: given up)",
                                    labels=["channel", "state"])
        for channel in ("email",):
            for state in ("sent", "failed", "dead"):
                notes.add_metric([channel, state], s.notifications.get((channel, state), 0))
        yield notes
        yield CounterMetricFamily("sfu_schedule_notification_failures", "notification "
                                  "attempts that failed (each retry counts)",
                                  value=sum(n for (_, state), n in s.notifications.items()
                                            if state in ("failed", "dead")))
        yield CounterMetricFamily("sfu_schedule_provisioned", "lesson rooms provisioned "
                                  "(first time per lesson)", value=s.provisioned)
        yield CounterMetricFamily("sfu_schedule_errors", "scheduler bridge failures (a "
                                  "database or action error, logged)", value=s.errors)
        lag = SummaryMetricFamily("sfu_schedule_watch_lag_seconds", "from the event (or the "
                                  "check's due time) to its exception in the queue",
                                  count_value=s.lag_count, sum_value=s.lag_sum_s)
        yield lag
        yield GaugeMetricFamily("sfu_schedule_watch_lag_max_seconds", "the largest watch lag "
                                "seen", value=s.lag_max_s)
