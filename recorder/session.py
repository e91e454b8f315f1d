"""A room's recording: every published track recorded through the forwarder, as any
participant receives it, into one WebM per track, with the room's timeline beside them.

Each track gets a :class:`~sfu.track.Subscription` whose downstream is a
:class:`RecorderDownstream` instead of a WebRTC transport: the forwarder hands it the
packets with its rewritten (continuous) sequence numbers and timestamps, the recorder's
NACKs are answered from the SFU's retransmission cache (``Subscription.on_nack``), and its
keyframe requests go to the publisher as PLIs, throttled like everyone's. Video is
recorded from the top simulcast layer; audio always (never subject to the audio last-N,
which acts on participants' subscriptions only).

Files (docs/recording.md): ``<dir>/<room>/<UTC start>-<recording id>/`` holds
``<participant>-<source>-<track>.webm`` per track (a track republished after a renegotiation
gets a new file), ``timeline.jsonl`` (the room's events, each with ``t``: seconds since the
recording started, the media time of the files' own clocks) and, at the end,
``manifest.json`` with every track's file, duration and packet account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from classroom.files import room_file_name, write_atomic
from events import EventBus
from events.bus import Event
from sfu.participant import now_ms
from sfu.track import PublishedTrack, Subscription

from .depacketize import depacketizer
from .track_recorder import TrackRecorder

log = logging.getLogger(__name__)
TICK_S = 0.05
_SEQ_TS_SSRC = struct.Struct("!HII")


class RecorderDownstream:
    """What a recorder subscription sends to: packets become bytes for the recorder."""

    fast_connection = None  # the compiled fan-out leaves these subscriptions to Python

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool:
        buf = bytearray(packet)
        buf[1] = b1
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, ssrc)
        self._deliver(bytes(buf))
        return True

    def send_rtp(self, packet: bytes) -> bool:
        """A retransmission the recorder asked for (plain RTP: no RTX negotiated)."""
        self._deliver(packet)
        return True


class _LocalFile:
    """Where one track's bytes go for now: a file, each write handed to the OS at once.
    (The dual writer, two sinks with checksums, replaces this: issue #7.)"""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("wb", buffering=0)
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.bytes += len(data)

    def close(self) -> None:
        if not self._fh.closed:
            os.fsync(self._fh.fileno())
            self._fh.close()


class RecordedTrack:
    def __init__(self, recording: RoomRecording, participant: str, track: PublishedTrack,
                 path: Path, now: float) -> None:
        self.participant = participant
        self.track = track
        self.file = _LocalFile(path)
        self.started_ms = now
        self.wall_start = time.time()
        self.recorder = TrackRecorder(kind=track.kind, codec=track.codec.name,
                                      sink=self.file.write, nack=self._nack,
                                      keyframe=self._keyframe)
        self.sub = Subscription(
            track, RecorderDownstream(self._deliver), out_ssrc=secrets.randbits(32) | 1,
            rtx_ssrc=secrets.randbits(32) | 1, rtx_pt=None,
            first_seq=secrets.randbits(16), first_ts=secrets.randbits(32),
            on_close=lambda _sub: recording.track_ended(self))
        # video starts at a keyframe of the top layer (nothing before it could be decoded,
        # so nothing is handed over to be dropped); activate() asks the publisher for one
        if track.kind == "video":
            sel = self.sub.selector
            sel.current = -1
            sel.set_target(len(track.layers) - 1)
        self.sub.accepted = True
        track.add_subscription(self.sub)
        self.sub.activate(now)

    def choose_layer(self, now: float) -> None:
        """Record the top simulcast layer that is arriving (the publisher may have stopped
        sending the top one for lack of bandwidth); switches happen on keyframes."""
        layers = self.track.layers
        if len(layers) < 2:
            return
        best = max((layer.index for layer in layers if layer.receiving(now)),
                   default=len(layers) - 1)
        if best != self.sub.selector.target:
            self.sub.set_target_layer(best, now)

    def _deliver(self, packet: bytes) -> None:
        self.recorder.on_rtp(packet, now_ms())

    def _nack(self, seqs: list[int]) -> None:
        self.sub.on_nack(tuple(seqs), now_ms())

    def _keyframe(self) -> None:
        self.sub.on_keyframe_request(now_ms())

    def summary(self, recording_start: float) -> dict[str, Any]:
        r = self.recorder
        return {
            "participant": self.participant, "track": self.track.id,
            "kind": self.track.kind, "source": self.track.source,
            "codec": self.track.codec.name, "file": self.file.path.name,
            "offsetS": round(self.wall_start - recording_start, 3),
            "durationS": round(r.file.duration_s, 3), "frames": r.file.frames,
            "bytes": self.file.bytes, "packetsIn": r.packets_in,
            "packetsWritten": r.packets_written, "packetsEmpty": r.packets_empty,
            "dropped": r.dropped,
        }


class RoomRecording:
    def __init__(self, room: Any, folder: Path, bus: EventBus,
                 on_counts: Callable[[RecordedTrack], None] | None = None) -> None:
        self.room = room
        self.bus = bus
        self.id = "RC_" + secrets.token_hex(6)
        self.started_at = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_at))
        self.dir = folder / room_file_name(room.id) / f"{stamp}-{self.id}"
        self.tracks: dict[str, RecordedTrack] = {}
        self.done: list[dict[str, Any]] = []
        self.stopped = False
        self._on_counts = on_counts
        self._timeline: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._timeline = (self.dir / "timeline.jsonl").open("a", buffering=1)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self.bus.emit("recording.started", self.room.id, {
            "recording": self.id, "location": str(self.dir)})
        for p in list(self.room.participants.values()):
            for track in list(p.tracks.values()):
                self.track_published(p, track)
        self._ticker = asyncio.ensure_future(self._tick())

    def _on_event(self, event: Event) -> None:
        if event.room != self.room.id or self._timeline is None:
            return
        self._timeline.write(json.dumps({
            "t": round(event.ts - self.started_at, 3), "type": event.type,
            "data": event.data}, default=str) + "\n")

    def track_published(self, p: Any, track: PublishedTrack) -> None:
        if self.stopped or track.id in self.tracks or track.closed:
            return
        if depacketizer(track.codec.name) is None:
            log.warning("recording %s: %s tracks cannot be recorded yet", self.id,
                        track.codec.name)
            return
        name = f"{room_file_name(p.info.identity)}-{track.source}-{track.id}.webm"
        rec = RecordedTrack(self, p.id, track, self.dir / name, now_ms())
        self.tracks[track.id] = rec
        self.bus.emit("recording.track_started", self.room.id, {
            "recording": self.id, "participant": p.id, "track": track.id,
            "kind": track.kind, "file": name})

    def track_ended(self, rec: RecordedTrack) -> None:
        """The track's subscription closed (unpublished, or the recording stopped)."""
        if self.tracks.pop(rec.track.id, None) is None:
            return
        rec.recorder.close()
        rec.file.close()
        summary = rec.summary(self.started_at)
        self.done.append(summary)
        if self._on_counts is not None:
            self._on_counts(rec)
        self.bus.emit("recording.track_stopped", self.room.id, {
            "recording": self.id, "track": rec.track.id,
            "durationMs": round(summary["durationS"] * 1000),
            "packetsIn": summary["packetsIn"], "packetsWritten": summary["packetsWritten"],
            "dropped": summary["dropped"]})

    async def _tick(self) -> None:
        while not self.stopped:
            now = now_ms()
            for rec in list(self.tracks.values()):
                rec.choose_layer(now)
                rec.recorder.poll(now)
            await asyncio.sleep(TICK_S)

    def describe(self) -> dict[str, Any]:
        live = [rec.summary(self.started_at) for rec in self.tracks.values()]
        return {"id": self.id, "room": self.room.id, "location": str(self.dir),
                "startedAt": self.started_at, "stopped": self.stopped,
                "tracks": self.done + live}

    def stop(self, reason: str) -> dict[str, Any]:
        """End every track's file, write the manifest; returns it."""
        if self.stopped:
            return self.describe()
        for rec in list(self.tracks.values()):
            rec.sub.close()  # -> track_ended
        self.stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        manifest = {**self.describe(), "stoppedAt": time.time(), "reason": reason}
        try:
            write_atomic(self.dir / "manifest.json",
                         json.dumps(manifest, indent=2).encode())
        except OSError:
            log.exception("recording %s: could not write its manifest", self.id)
        self.bus.emit("recording.stopped", self.room.id, {
            "recording": self.id, "reason": reason, "tracks": len(manifest["tracks"]),
            "location": str(self.dir)})
        if self._timeline is not None:
            self._timeline.close()
            self._timeline = None
        return manifest
