"""A room's recording: every published track recorded through the forwarder, as any
participant receives it, into one WebM per track, written to two sinks, checked at the end.

Each track gets a :class:`~sfu.track.Subscription` whose downstream is a
:class:`sfu.track.PacketDownstream` instead of a WebRTC transport: the forwarder hands it the
packets with its rewritten (continuous) sequence numbers and timestamps, the recorder's
NACKs are answered from the SFU's retransmission cache (``Subscription.on_nack``), and its
keyframe requests go to the publisher as PLIs, throttled like everyone's. Video is
recorded from the top simulcast layer that arrives; audio always (the audio last-N acts on
participants' subscriptions only).

The bytes go through a :class:`~recorder.dual.DualWriter` to both sinks. Files, relative
to each sink's root (docs/recording.md): ``<room>/<UTC start>-<recording id>/`` holds
``<identity>-<source>-<track>.webm`` per track, ``timeline.jsonl`` (the room's events, each
with ``t``: seconds since the recording started) and, at the end, ``manifest.json`` (every
track's file, figures, packet account and the check of each copy).

Alarms (:mod:`recorder.alarms`): a sink error (from the writer, at once), a track with no
packets for ``stall_s`` while published, unmuted and its publisher connected, free space
under ``min_free_bytes`` on a local sink, an error inside the recorder, a copy that fails
its check at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from classroom.files import room_file_name
from events import EventBus
from events.bus import Event
from sfu.participant import now_ms
from sfu.track import PacketDownstream, PublishedTrack, Subscription

from .alarms import Alarms
from .chunks import Chunk
from .depacketize import depacketizer
from .dual import DualWriter, TrackOutput
from .sinks import Sink, SinkError
from .track_recorder import TrackRecorder
from .verify import check_copy

log = logging.getLogger(__name__)
TICK_S = 0.05


@dataclass(frozen=True)
class Limits:
    stall_s: float = 10.0
    min_free_bytes: int = 1 << 30
    finish_timeout_s: float = 60.0


class RecordedTrack:
    def __init__(self, recording: RoomRecording, participant: Any, track: PublishedTrack,
                 output: TrackOutput, now: float) -> None:
        self.recording = recording
        self.participant = participant
        self.track = track
        self.output = output
        self.file = output.path.rsplit("/", 1)[-1]
        self.wall_start = time.time()
        self.last_packet_ms = now
        self.stalled = False
        self.failed = ""
        self.recorder = TrackRecorder(kind=track.kind, codec=track.codec.name,
                                      sink=output.write, nack=self._nack,
                                      keyframe=self._keyframe)
        self.sub = Subscription(
            track, PacketDownstream(self._deliver), out_ssrc=secrets.randbits(32) | 1,
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
        """Record the top simulcast layer that is arriving; switches happen on keyframes."""
        self.sub.follow_top_layer(now)

    def track_last_packet_ms(self) -> float:
        """When the publisher's packets for this track last arrived (any layer)."""
        return max((layer.last_packet_ms for layer in self.track.layers), default=0.0)

    def expects_packets(self) -> bool:
        """Published, unmuted, and its publisher connected: packets should flow."""
        return (not self.track.muted and not self.track.closed
                and self.participant.presence.state == "active")

    def _deliver(self, packet: bytes) -> None:
        now = now_ms()
        self.last_packet_ms = now
        if self.failed:
            return
        try:
            self.recorder.on_rtp(packet, now)
        except Exception as exc:  # a muxer error: this track stops, the others go on
            log.exception("recording %s: track %s failed", self.recording.id, self.track.id)
            self.failed = f"{type(exc).__name__}: {exc}"
            self.recording.alarm("recorder_error", self.failed, track=self.track.id)

    def _nack(self, seqs: list[int]) -> None:
        self.sub.on_nack(tuple(seqs), now_ms())

    def _keyframe(self) -> None:
        self.sub.on_keyframe_request(now_ms())

    def summary(self, recording_start: float) -> dict[str, Any]:
        r = self.recorder
        out = {
            "participant": self.participant.id, "identity": self.participant.info.identity,
            "track": self.track.id, "kind": self.track.kind, "source": self.track.source,
            "codec": self.track.codec.name, "file": self.file,
            "offsetS": round(self.wall_start - recording_start, 3),
            "durationS": round(r.file.duration_s, 3), "frames": r.file.frames,
            "bytes": self.output.size, "packetsIn": r.packets_in,
            "packetsWritten": r.packets_written, "packetsEmpty": r.packets_empty,
            "dropped": r.dropped,
        }
        if self.failed:
            out["error"] = self.failed
        return out


class RoomRecording:
    def __init__(self, room: Any, sinks: list[Sink], bus: EventBus, alarms: Alarms,
                 limits: Limits = Limits(),
                 on_counts: Callable[[RecordedTrack], None] | None = None,
                 continues: dict[str, Any] | None = None) -> None:
        self.room = room
        #: the recording of this lesson that another node made before the room moved here
        #: (``recordingId``, ``startedAt``, ``until``: when that node last replicated the
        #: room); the manifest marks the gap between them (docs/cluster.md)
        self.continues = continues
        self.bus = bus
        self.alarms = alarms
        self.limits = limits
        self.sinks = sinks
        self.id = "RC_" + secrets.token_hex(6)
        self.started_at = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_at))
        self.folder = f"{room_file_name(room.id)}/{stamp}-{self.id}"
        self.writer = DualWriter(sinks, on_alarm=self._sink_failed,
                                 on_recovered=self._sink_recovered)
        self.tracks: dict[str, RecordedTrack] = {}
        self.done: list[dict[str, Any]] = []
        self.stopped = False
        self.result: dict[str, Any] | None = None
        self._on_counts = on_counts
        self._timeline: TrackOutput | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._disk_low: set[str] = set()
        self._last_disk_check = 0.0
        self._done = asyncio.Event()

    @property
    def locations(self) -> list[str]:
        return [s.location(self.folder) for s in self.sinks]

    def alarm(self, reason: str, detail: str, **where: str) -> None:
        self.alarms.raise_alarm(self.room.id, reason, detail, recording=self.id, **where)

    def _sink_failed(self, sink: Sink, error: str) -> None:
        self.alarm("sink_error", error, sink=sink.name)

    def _sink_recovered(self, sink: Sink) -> None:
        self.alarms.clear(self.room.id, "sink_error", "back and back-filled",
                          recording=self.id, sink=sink.name)

    def start(self) -> None:
        self.writer.start()
        self._timeline = self.writer.output(f"{self.folder}/timeline.jsonl")
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self.bus.emit("recording.started", self.room.id, {
            "recording": self.id, "locations": self.locations})
        for p in list(self.room.participants.values()):
            for track in list(p.tracks.values()):
                self.track_published(p, track)
        self._ticker = asyncio.ensure_future(self._tick())

    def _on_event(self, event: Event) -> None:
        if event.room != self.room.id or self._timeline is None or self._timeline.closed:
            return
        self._timeline.write((json.dumps({
            "t": round(event.ts - self.started_at, 3), "type": event.type,
            "data": event.data}, default=str) + "\n").encode())

    def track_published(self, p: Any, track: PublishedTrack) -> None:
        if self.stopped or track.id in self.tracks or track.closed:
            return
        if depacketizer(track.codec.name) is None:
            # never silently: the operator learns at once that this track is not recorded
            self.alarm("recorder_error", f"{track.codec.name} tracks cannot be recorded yet "
                       "(VP8 and Opus can)", track=track.id, participant=p.id)
            return
        name = f"{room_file_name(p.info.identity)}-{track.source}-{track.id}.webm"
        output = self.writer.output(f"{self.folder}/{name}")
        self.tracks[track.id] = RecordedTrack(self, p, track, output, now_ms())
        self.bus.emit("recording.track_started", self.room.id, {
            "recording": self.id, "participant": p.id, "track": track.id,
            "kind": track.kind, "file": name})

    def track_ended(self, rec: RecordedTrack) -> None:
        """The track's subscription closed (unpublished, or the recording stopped)."""
        if self.tracks.pop(rec.track.id, None) is None:
            return
        try:
            rec.recorder.close()
        except Exception as exc:
            log.exception("recording %s: closing track %s", self.id, rec.track.id)
            rec.failed = rec.failed or f"{type(exc).__name__}: {exc}"
        rec.output.close()
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
                if not rec.failed:
                    rec.recorder.poll(now)
                self._check_stall(rec, now)
            self.writer.tick(now)
            if now - self._last_disk_check >= 1000.0:
                self._last_disk_check = now
                self._check_disks()
            await asyncio.sleep(TICK_S)

    def _check_stall(self, rec: RecordedTrack, now: float) -> None:
        # what the publisher sends (a video track waiting for its first keyframe hands the
        # recorder nothing yet, but is not stalled)
        quiet = now - max(rec.last_packet_ms, rec.track_last_packet_ms())
        if not rec.stalled and quiet >= self.limits.stall_s * 1000 and rec.expects_packets():
            rec.stalled = True
            self.alarm("track_stalled", f"no packets for {quiet / 1000:.1f} s",
                       track=rec.track.id, participant=rec.participant.id)
        elif rec.stalled and quiet < 1000:
            rec.stalled = False
            self.alarms.clear(self.room.id, "track_stalled", "packets flow again",
                              recording=self.id, track=rec.track.id)

    def _check_disks(self) -> None:
        for sink in self.sinks:
            free = sink.free_bytes()
            if free is None:
                continue
            if free < self.limits.min_free_bytes and sink.name not in self._disk_low:
                self._disk_low.add(sink.name)
                self.alarm("disk_low", f"{free // (1 << 20)} MiB free", sink=sink.name)
            elif free > self.limits.min_free_bytes * 1.1 and sink.name in self._disk_low:
                self._disk_low.discard(sink.name)
                self.alarms.clear(self.room.id, "disk_low", f"{free // (1 << 20)} MiB free",
                                  recording=self.id, sink=sink.name)

    def describe(self) -> dict[str, Any]:
        live = [rec.summary(self.started_at) for rec in self.tracks.values()]
        out = {"id": self.id, "room": self.room.id, "folder": self.folder,
               "locations": self.locations, "startedAt": self.started_at,
               "stopped": self.stopped, "tracks": self.done + live,
               "copies": [c.describe() for c in self.writer.copies]}
        if self.continues is not None:
            until = float(self.continues.get("until", self.started_at))
            out["continues"] = {**self.continues,
                                "gapS": round(max(0.0, self.started_at - until), 3)}
        return out

    async def stop(self, reason: str) -> dict[str, Any]:
        """End every track, let both sinks finish (back-filling what they lack), check each
        copy, write the manifest to each; emits ``recording.completed`` or
        ``recording.failed`` and returns the manifest."""
        if self.stopped:  # a second caller waits for the first one's result
            await self._done.wait()
            return self.result if self.result is not None else self.describe()
        self.stopped = True
        try:
            return await self._finish(reason)
        finally:
            self._done.set()

    async def _finish(self, reason: str) -> dict[str, Any]:
        for rec in list(self.tracks.values()):
            rec.sub.close()  # -> track_ended
        stopped_at = time.time()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        attachments = self._write_attachments(stopped_at)
        complete = await self.writer.close(self.limits.finish_timeout_s)
        problems: list[str] = []
        for name, ok in complete.items():
            if not ok:
                problems.append(f"{name}: copy incomplete")
        by_file = {t["file"]: t for t in self.done}
        for out in self.writer.outputs:
            track = by_file.get(out.path.rsplit("/", 1)[-1])
            if track is None:
                continue
            track["sha256"] = out.sha256.hexdigest()
            track["copies"] = []
            if not track["frames"]:
                problems.append(f"{track['file']}: no media recorded (no packets, or no "
                                "keyframe, came while it was recorded)")
                continue
            for sink in self.sinks:
                if not complete.get(sink.name):
                    continue
                check = await asyncio.to_thread(check_copy, sink, out.path, out.size,
                                                track["sha256"], track["durationS"])
                track["copies"].append(check)
                if not check["ok"]:
                    problems.append(f"{sink.name}: {track['file']}: {check['problem']}")
            if "error" in track:
                problems.append(f"{track['file']}: {track['error']}")
        manifest = {**self.describe(), "attachments": attachments,
                    "stoppedAt": stopped_at, "reason": reason,
                    "durationS": round(stopped_at - self.started_at, 3),
                    "complete": complete, "problems": problems}
        await self._write_manifest(manifest, problems)
        for problem in problems:
            self.alarm("verification_failed", problem)
        data = {"recording": self.id, "reason": reason, "locations": self.locations,
                "durationMs": round(manifest["durationS"] * 1000), "tracks": len(self.done),
                "bytes": sum(t["bytes"] for t in self.done)}
        if problems:
            self.bus.emit("recording.failed", self.room.id, {**data, "problems": problems})
        else:
            self.bus.emit("recording.completed", self.room.id, data)
        self.result = manifest
        return manifest

    def _write_attachments(self, stopped_at: float) -> list[str]:
        """The room's files for these minutes (its transcript, when it is transcribed),
        written to both copies like the tracks."""
        attach = getattr(self.room, "recording_attachments", None)
        if attach is None:
            return []
        names = []
        try:
            files = attach(self.started_at, stopped_at)
        except Exception as exc:
            log.exception("recording %s: attachments", self.id)
            self.alarm("recorder_error", f"attachments: {type(exc).__name__}: {exc}")
            return []
        for name, data in files.items():
            out = self.writer.output(f"{self.folder}/{name}")
            out.write(data)
            out.close()
            names.append(name)
        return names

    async def _write_manifest(self, manifest: dict[str, Any], problems: list[str]) -> None:
        body = json.dumps(manifest, indent=2).encode()
        chunk = Chunk(0, 0, len(body), hashlib.sha256(body).hexdigest())
        path = f"{self.folder}/manifest.json"
        for sink in self.sinks:
            try:
                await asyncio.to_thread(sink.put, path, chunk, body)
                await asyncio.to_thread(sink.finish, path, [chunk], lambda _c: body)
            except SinkError as exc:
                problems.append(f"{sink.name}: manifest: {exc}")
            finally:
                sink.close()
