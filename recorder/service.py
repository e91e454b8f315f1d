"""The server's recordings: start and stop a room's recording, the two sinks every
recording is written to, the alarms, and the Prometheus metrics of every recorded track
(docs/metrics.md), live and finished, so counters never go down.

At start-up, a recording folder on the first (local) sink with no ``manifest.json`` was
cut short by a crash of the server: it raises ``recorder_crashed`` and gets a manifest
saying so (its files play up to their last flushed cluster: docs/recording.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from classroom.files import write_atomic
from classroom.room import Classroom, RecordingRefused
from events import EventBus

from .alarms import REASONS as ALARM_REASONS
from .alarms import Alarms
from .session import Limits, RecordedTrack, RoomRecording
from .sinks import Sink

log = logging.getLogger(__name__)
REASONS = ("late", "duplicate", "undecodable")


class Recordings:
    def __init__(self, bus: EventBus, sinks: Callable[[], list[Sink]], alarms: Alarms,
                 limits: Limits = Limits()) -> None:
        self.bus = bus
        self.make_sinks = sinks
        self.alarms = alarms
        self.limits = limits
        self.active: dict[str, RoomRecording] = {}  # by room id
        self._finishing: set[asyncio.Task[Any]] = set()
        # totals of finished tracks
        self.packets_in = 0
        self.packets_written = 0
        self.packets_empty = 0
        self.bytes = 0
        self.dropped = dict.fromkeys(REASONS, 0)
        bus.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if event.type == "room.closed" and event.room in self.active:
            # (a room that moved to another node: its recording goes on there)
            reason = "moved" if event.data.get("reason") == "moved" else "room_closed"
            task = asyncio.ensure_future(self.stop(event.room, reason))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    def start(self, room: Classroom, continues: dict[str, Any] | None = None
              ) -> RoomRecording:
        """Record ``room`` (the running recording if there is one); RecordingRefused under
        policy off, whoever asks. ``continues``: the recording another node made of this
        room before it moved here (its manifest says so, with the gap)."""
        if room.recording_policy == "off":
            raise RecordingRefused("this room is not recorded (its recording policy is off)")
        current = self.active.get(room.id)
        if current is not None and not current.stopped:
            return current
        rec = RoomRecording(room, self.make_sinks(), self.bus, self.alarms, self.limits,
                            on_counts=self._finished_track, continues=continues)
        self.active[room.id] = rec
        room.recording = rec
        rec.start()
        room.announce_recording()
        return rec

    def get(self, room_id: str) -> RoomRecording | None:
        return self.active.get(room_id)

    async def stop(self, room_id: str, reason: str = "requested") -> dict[str, Any] | None:
        """End the room's recording, check its copies; its manifest, or None if none was
        running."""
        rec = self.active.pop(room_id, None)
        if rec is None:
            return None
        if rec.room.recording is rec:
            rec.room.recording = None
            if not rec.room.closed:
                rec.room.announce_recording()
        return await rec.stop(reason)

    async def close(self) -> None:
        """Server shutdown: recordings of rooms still open end too."""
        for room_id in list(self.active):
            await self.stop(room_id, "server_shutdown")
        if self._finishing:
            await asyncio.wait(self._finishing)

    def _finished_track(self, rec: RecordedTrack) -> None:
        r = rec.recorder
        self.packets_in += r.packets_in
        self.packets_written += r.packets_written
        self.packets_empty += r.packets_empty
        self.bytes += rec.output.size
        for reason, n in r.dropped.items():
            self.dropped[reason] += n

    def live_tracks(self) -> Iterator[RecordedTrack]:
        for rec in self.active.values():
            yield from rec.tracks.values()

    def sink_health(self) -> dict[str, bool]:
        health: dict[str, bool] = {}
        for rec in self.active.values():
            for copy in rec.writer.copies:
                health[copy.sink.name] = health.get(copy.sink.name, True) and copy.healthy
        return health

    def find_crashed(self, root: Path) -> list[Path]:
        """Recording folders under ``root`` (<room>/<start>-<id>) without a manifest: a
        crash cut them short. Each raises ``recorder_crashed`` and gets a manifest."""
        found = []
        for folder in sorted(root.glob("*/*-RC_*")):
            if not folder.is_dir() or (folder / "manifest.json").exists():
                continue
            room = folder.parent.name
            files = sorted(p.name for p in folder.glob("*.webm"))
            self.alarms.raise_alarm(room, "recorder_crashed",
                                    f"the server stopped during this recording; {len(files)} "
                                    "track files play up to their last flushed second",
                                    location=str(folder))
            try:
                write_atomic(folder / "manifest.json", json.dumps(
                    {"id": folder.name.rsplit("-", 1)[-1], "room": room,
                     "location": str(folder), "reason": "crashed", "files": files},
                    indent=2).encode())
            except OSError:
                log.exception("could not write the manifest of %s", folder)
            found.append(folder)
        return found


class RecordingCollector(Collector):
    def __init__(self, recordings: Recordings) -> None:
        self.r = recordings

    def collect(self) -> Iterator[Any]:
        r = self.r
        live = list(r.live_tracks())
        yield CounterMetricFamily(
            "sfu_recording_packets_in", "RTP packets the forwarder handed to recorders",
            value=r.packets_in + sum(t.recorder.packets_in for t in live))
        yield CounterMetricFamily(
            "sfu_recording_packets_written", "RTP packets whose payload is in a recorded file",
            value=r.packets_written + sum(t.recorder.packets_written for t in live))
        yield CounterMetricFamily(
            "sfu_recording_packets_empty", "RTP packets handed to recorders without payload "
            "(padding: nothing to write, nothing lost)",
            value=r.packets_empty + sum(t.recorder.packets_empty for t in live))
        dropped = CounterMetricFamily(
            "sfu_recording_packets_dropped", "RTP packets handed to recorders and not "
            "written, by reason", labels=["reason"])
        for reason in REASONS:
            dropped.add_metric([reason], r.dropped[reason] + sum(
                t.recorder.dropped[reason] for t in live))
        yield dropped
        yield CounterMetricFamily(
            "sfu_recording_bytes", "bytes of recorded files (each copy holds all of them)",
            value=r.bytes + sum(t.output.size for t in live))
        yield GaugeMetricFamily("sfu_recordings_active", "rooms being recorded",
                                value=sum(1 for x in r.active.values() if not x.stopped))
        yield GaugeMetricFamily("sfu_recording_tracks_active", "tracks being recorded",
                                value=len(live))
        alarms = CounterMetricFamily("sfu_recording_alarms", "recording alarms raised, by "
                                     "reason", labels=["reason"])
        for reason in ALARM_REASONS:
            alarms.add_metric([reason], r.alarms.counts[reason])
        yield alarms
        health = GaugeMetricFamily("sfu_recording_sink_healthy", "1 while every running "
                                   "recording writes to the sink, 0 while it fails",
                                   labels=["sink"])
        for name, ok in sorted(r.sink_health().items()):
            health.add_metric([name], 1.0 if ok else 0.0)
        yield health
