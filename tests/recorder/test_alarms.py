"""The recording's own alarms, with a fake clock: a track that stops while it should flow
(and not when it is muted or its publisher is reconnecting), a disk running out of space;
each raised once, cleared when the condition ends; each alarm an event, a count and an
entry in the exception queue file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from events import EventBus
from recorder.alarms import Alarms
from recorder.session import Limits, RoomRecording
from recorder.sinks import LocalSink


class Disk(LocalSink):
    def __init__(self, root: Path) -> None:
        super().__init__("local", root)
        self.free = 10 << 30

    def free_bytes(self) -> int | None:
        return self.free


def _recording(tmp_path: Path) -> tuple[RoomRecording, EventBus, Alarms, Disk]:
    bus = EventBus(strict=True)
    alarms = Alarms(bus, str(tmp_path / "exceptions.jsonl"))
    disk = Disk(tmp_path / "rec")
    room = SimpleNamespace(id="r1", participants={})
    rec = RoomRecording(room, [disk, LocalSink("copy", tmp_path / "copy")], bus, alarms,
                        Limits(stall_s=10, min_free_bytes=1 << 30))
    return rec, bus, alarms, disk


def _events(bus: EventBus) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for e in bus.recent if e.type.startswith("recording.alarm")]


def _track(state: str = "active", muted: bool = False) -> Any:
    participant = SimpleNamespace(id="PA_1", presence=SimpleNamespace(state=state))
    track = SimpleNamespace(id="TR_1", muted=muted, closed=False)
    rec = SimpleNamespace(last_packet_ms=0.0, stalled=False, track=track,
                          participant=participant)
    rec.track_last_packet_ms = lambda: 0.0
    rec.expects_packets = lambda: (not track.muted and not track.closed
                                   and participant.presence.state == "active")
    return rec


def test_a_stalled_track_alarms_once_and_clears(tmp_path: Path) -> None:
    rec, bus, alarms, _ = _recording(tmp_path)
    track = _track()
    rec._check_stall(track, 9_999)
    assert _events(bus) == []
    rec._check_stall(track, 10_000)
    rec._check_stall(track, 20_000)  # once
    assert [t for t, _ in _events(bus)] == ["recording.alarm"]
    assert _events(bus)[0][1] == {"reason": "track_stalled", "detail": "no packets for 10.0 s",
                                  "recording": rec.id, "track": "TR_1",
                                  "participant": "PA_1"}
    track.last_packet_ms = 20_500  # packets again
    rec._check_stall(track, 20_600)
    assert [t for t, _ in _events(bus)] == ["recording.alarm", "recording.alarm_cleared"]
    assert alarms.counts["track_stalled"] == 1
    entry = json.loads((tmp_path / "exceptions.jsonl").read_text())
    assert entry["reason"] == "track_stalled" and entry["room"] == "r1"


def test_no_stall_alarm_for_a_muted_track_or_a_reconnecting_publisher(tmp_path: Path
                                                                       ) -> None:
    rec, bus, _, _ = _recording(tmp_path)
    for track in (_track(muted=True), _track(state="reconnecting")):
        rec._check_stall(track, 60_000)
    assert _events(bus) == []


def test_low_disk_alarms_once_and_clears(tmp_path: Path) -> None:
    rec, bus, alarms, disk = _recording(tmp_path)
    rec._check_disks()
    disk.free = 200 << 20
    rec._check_disks()
    rec._check_disks()
    disk.free = 2 << 30
    rec._check_disks()
    got = _events(bus)
    assert [t for t, _ in got] == ["recording.alarm", "recording.alarm_cleared"]
    assert got[0][1]["reason"] == "disk_low" and got[0][1]["sink"] == "local"
    assert got[0][1]["detail"] == "200 MiB free"
    assert alarms.counts["disk_low"] == 1


def test_a_track_it_cannot_record_is_an_alarm_not_a_silence(tmp_path: Path) -> None:
    rec, bus, alarms, _ = _recording(tmp_path)
    p = SimpleNamespace(id="PA_1", info=SimpleNamespace(identity="sam"))
    track = SimpleNamespace(id="TR_9", closed=False, codec=SimpleNamespace(name="H264"))
    rec.track_published(p, track)
    assert rec.tracks == {}
    (got,) = _events(bus)
    assert got[1]["reason"] == "recorder_error" and got[1]["track"] == "TR_9"
    assert "H264" in got[1]["detail"] and alarms.counts["recorder_error"] == 1
