"""The server's recordings: start and stop a room's recording, and the Prometheus metrics
of every recorded track (docs/metrics.md), live and finished, so counters never go down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from events import EventBus

from .session import RecordedTrack, RoomRecording

REASONS = ("late", "duplicate", "undecodable")



class Recordings:
    def __init__(self, bus: EventBus, folder: str) -> None:
        self.bus = bus
        self.folder = Path(folder)
        self.active: dict[str, RoomRecording] = {}  # by room id
        # totals of finished tracks
        self.packets_in = 0
        self.packets_written = 0
        self.packets_empty = 0
        self.bytes = 0
        self.dropped = dict.fromkeys(REASONS, 0)
        self.tracks_finished = 0
        bus.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if event.type == "room.closed" and event.room in self.active:
            self.stop(event.room, "room_closed")

    def start(self, room: Any) -> RoomRecording:
        current = self.active.get(room.id)
        if current is not None and not current.stopped:
            return current
        rec = RoomRecording(room, self.folder, self.bus, on_counts=self._finished_track)
        self.active[room.id] = rec
        room.recording = rec
        rec.start()
        return rec

    def get(self, room_id: str) -> RoomRecording | None:
        return self.active.get(room_id)

    def stop(self, room_id: str, reason: str = "requested") -> dict[str, Any] | None:
        """End the room's recording; its manifest, or None if none was running."""
        rec = self.active.pop(room_id, None)
        if rec is None:
            return None
        if rec.room.recording is rec:
            rec.room.recording = None
        return rec.stop(reason)

    def _finished_track(self, rec: RecordedTrack) -> None:
        r = rec.recorder
        self.packets_in += r.packets_in
        self.packets_written += r.packets_written
        self.packets_empty += r.packets_empty
        self.bytes += rec.file.bytes
        for reason, n in r.dropped.items():
            self.dropped[reason] += n
        self.tracks_finished += 1

    def live_tracks(self) -> Iterator[RecordedTrack]:
        for rec in self.active.values():
            yield from rec.tracks.values()


class RecordingCollector(Collector):
    def __init__(self, recordings: Recordings) -> None:
        self.r = recordings

    def collect(self) -> Iterator[Any]:
        r = self.r
        live = list(r.live_tracks())
        packets_in = r.packets_in + sum(t.recorder.packets_in for t in live)
        written = r.packets_written + sum(t.recorder.packets_written for t in live)
        yield CounterMetricFamily(
            "sfu_recording_packets_in", "RTP packets the forwarder handed to recorders",
            value=packets_in)
        yield CounterMetricFamily(
            "sfu_recording_packets_written", "RTP packets whose payload is in a recorded file",
            value=written)
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
            "sfu_recording_bytes", "bytes written to recording files",
            value=r.bytes + sum(t.file.bytes for t in live))
        yield GaugeMetricFamily("sfu_recordings_active", "rooms being recorded",
                                value=sum(1 for x in r.active.values() if not x.stopped))
        yield GaugeMetricFamily("sfu_recording_tracks_active", "tracks being recorded",
                                value=len(live))
