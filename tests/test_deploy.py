"""The shipped alert rules only name metrics the server exports and docs/metrics.md lists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_alert_rules_use_documented_metrics() -> None:
    rules = (ROOT / "deploy" / "prometheus-alerts.yml").read_text()
    documented = set(re.findall(r"`(sfu_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    used = set(re.findall(r"\b(sfu_[a-z_]+)", rules))
    assert used, "no sfu_ metrics in the alert rules"
    assert used <= documented, used - documented


def test_documented_metrics_are_exported(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from events import EventBus
    from events.filelog import FileLog
    from events.metrics import EventSinkCollector
    from events.nats_sink import NatsSink
    from events.webhook_sink import WebhookSink
    from recorder.alarms import Alarms
    from recorder.service import RecordingCollector, Recordings
    from recorder.sinks import LocalSink
    from sfu.metrics import Retired, SfuCollector
    from sfu.room import RoomRegistry

    registry = CollectorRegistry()
    registry.register(SfuCollector(RoomRegistry(EventBus(), max_participants=5,
                                                auto_create=True), Retired(), {"x": 1}))
    sink = FileLog(tmp_path)
    registry.register(EventSinkCollector(  # (the network sinks are never started here)
        sink, NatsSink("nats://127.0.0.1:1"),
        WebhookSink(["http://127.0.0.1:1/"], "secret", tmp_path / "dead.jsonl")))
    bus = EventBus()
    registry.register(RecordingCollector(Recordings(
        bus, lambda: [LocalSink("a", tmp_path / "a"), LocalSink("b", tmp_path / "b")],
        Alarms(bus, None))))
    from classroom.rooms import Classrooms
    from scheduler_bridge.metrics import ScheduleCollector
    from scheduler_bridge.service import Bridge
    from sfu.config import Config, SchedulerConfig
    schedule_bus = EventBus()
    bridge = Bridge(Config(scheduler=SchedulerConfig(
        sqlite_path=str(tmp_path / "schedule.sqlite3"))), schedule_bus, Classrooms(
            RoomRegistry(schedule_bus, max_participants=5, auto_create=False), schedule_bus))
    registry.register(ScheduleCollector(bridge))
    exported = generate_latest(registry).decode()
    documented = set(re.findall(r"`(sfu_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text()))
    types = set(re.findall(r"^# TYPE (\S+) ", exported, re.M))
    missing = {name for name in documented
               if name not in types and name.removesuffix("_total") not in types}
    sink.close()
    assert not missing, missing
