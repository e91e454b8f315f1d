"""The server's transcriptions: captions while a lesson runs, the transcript after it.

A room whose transcription policy is ``instructor`` or ``everyone`` gets a
:class:`RoomTranscription`: each microphone in scope gets a
:class:`~sfu.track.Subscription` like the recorder's, whose downstream hands the packets
(with the forwarder's continuous timestamps) to the worker pool
(:mod:`transcription.pool`). The workers decode, segment and recognise; their partial and
final texts come back as ``caption`` messages to the room's pages, and the final ones
become the session's transcript: written when the room closes, as WebVTT and JSON, to
``transcription.dir`` and, when the room was recorded, beside the recording (both copies,
on the recording's timeline: :meth:`RoomTranscription.attachments`).

Nothing here touches the forwarding path: a subscription whose downstream only appends to
a list, and a timer that ships the list to the workers every 100 ms.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classroom.files import room_file_name, write_atomic
from events import EventBus
from sfu.participant import Participant, now_ms
from sfu.rtp_header import RtpHeaderError, payload_bounds
from sfu.track import PublishedTrack, Subscription

from .engines import EngineConfig
from .pool import TranscriptionPool
from .transcript import Line, Transcript

log = logging.getLogger(__name__)

#: whose microphones a room transcribes
POLICIES = ("off", "instructor", "everyone")
#: how long the end of a room waits for the workers' last results
FINISH_TIMEOUT_S = 10.0


class TranscriptionRefused(Exception):
    code = "transcription_refused"


class _Downstream:
    """What a transcription subscription sends to: the payload and the forwarder's
    timestamp (continuous across the speech gate's silences and layer changes)."""

    fast_connection = None  # the compiled fan-out leaves these subscriptions to Python

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool:
        try:
            start, end = payload_bounds(packet)
        except RtpHeaderError:
            return True
        self._stream.on_packet(ts, packet[start:end])
        return True

    def send_rtp(self, packet: bytes) -> bool:
        return True  # it asks for no retransmissions


@dataclass
class _Stream:
    id: str
    room: RoomTranscription
    participant: Participant
    track: PublishedTrack
    sub: Subscription | None = None
    #: wall-clock time of the stream's timeline zero (its first packet)
    wall0: float | None = None
    open: bool = True
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def on_packet(self, ts: int, payload: bytes) -> None:
        if self.wall0 is None:
            self.wall0 = time.time()
        self.room.service.pool_feed(self.id, ts, payload)


class RoomTranscription:
    def __init__(self, service: Transcriptions, room: Any, policy: str) -> None:
        self.service = service
        self.room = room
        self.policy = policy
        self.transcript = Transcript(room.id)
        self.started_at = time.time()
        self.streams: dict[str, _Stream] = {}
        self.stopped = False
        self.files: list[str] = []
        #: display names of everyone seen in the room, by identity (the summary's)
        self.names: dict[str, str] = {}

    # -- from the classroom ------------------------------------------------------------

    def seen(self, p: Participant) -> None:
        self.names[p.info.identity] = p.info.name or p.info.identity

    def track_published(self, p: Participant, track: PublishedTrack) -> None:
        self.seen(p)
        if self.stopped or track.kind != "audio" or track.source != "microphone":
            return
        if self.policy == "instructor" and p.info.role != "instructor":
            return
        if any(s.track is track for s in self.streams.values()):
            return
        stream = _Stream("TS_" + secrets.token_hex(6), self, p, track)
        self.streams[stream.id] = stream
        sub = Subscription(
            track, _Downstream(stream), out_ssrc=secrets.randbits(32) | 1,
            rtx_ssrc=secrets.randbits(32) | 1, rtx_pt=None, first_seq=secrets.randbits(16),
            first_ts=secrets.randbits(32), on_close=lambda _sub: self._sub_closed(stream))
        stream.sub = sub
        sub.accepted = True
        track.add_subscription(sub)
        sub.activate(now_ms())
        self.service.open_stream(stream)
        self.service.bus.emit("transcript.started", self.room.id, {
            "participant": p.id, "track": track.id, "stream": stream.id,
            "engine": self.service.engine.engine})

    def _sub_closed(self, stream: _Stream) -> None:
        """The microphone was unpublished (or the room is ending)."""
        if stream.open:
            stream.open = False
            self.service.close_stream(stream)

    # -- from the workers --------------------------------------------------------------

    def on_result(self, stream: _Stream, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        p = stream.participant
        if kind == "partial":
            _, _, utterance, start_s, text = msg
            self._caption(stream, utterance, start_s, text, final=False)
        elif kind == "final":
            _, _, utterance, start_s, end_s, text, words = msg
            wall0 = stream.wall0 or self.started_at
            line = Line(p.id, p.info.identity, p.info.name or p.info.identity, p.info.role,
                        stream.track.id, round(wall0 + start_s, 3), round(wall0 + end_s, 3),
                        text, tuple((w, round(wall0 + s, 3), round(wall0 + e, 3))
                                    for w, s, e in words))
            self.transcript.add(line)
            self._caption(stream, utterance, start_s, text, final=True)
            self.service.words += len(words)
            self.service.bus.emit("transcript.line", self.room.id, {
                "participant": p.id, "track": stream.track.id,
                "startMs": round(line.start * 1000), "endMs": round(line.end * 1000),
                "words": len(words)})
        elif kind in ("done", "closed"):
            stream.figures = msg[2]
            if kind == "closed":
                stream.closed.set()
        elif kind == "error":
            stream.error = str(msg[2])[:300]
            self.service.failures += 1
            log.warning("room %s: transcription of %s failed: %s", self.room.id,
                        stream.track.id, stream.error)
            self.service.bus.emit("transcript.failed", self.room.id, {
                "participant": p.id, "track": stream.track.id, "detail": stream.error})
            if not stream.open:
                stream.closed.set()

    def _caption(self, stream: _Stream, utterance: int, start_s: float, text: str,
                 final: bool) -> None:
        if not self.service.captions or self.room.closed:
            return
        p = stream.participant
        wall0 = stream.wall0 or self.started_at
        self.room.media.broadcast({
            "type": "caption", "participantId": p.id, "name": p.info.name or p.info.identity,
            "trackId": stream.track.id, "utterance": f"{stream.id}:{utterance}",
            "text": text, "final": final, "startMs": round((wall0 + start_s) * 1000)})

    # -- the end -----------------------------------------------------------------------

    def attachments(self, start: float, end: float) -> dict[str, bytes]:
        """The transcript of [start, end] on that timeline (a recording's files)."""
        lines = self.transcript.between(start, end)
        return {"transcript.vtt": self.transcript.webvtt(start, lines).encode(),
                "transcript.json": self.transcript.json_bytes(start, lines,
                                                              engine=self.service.engine.engine)}

    async def stop(self) -> list[str]:
        """Close every stream, wait for the workers' last results, write the transcript;
        its paths."""
        if self.stopped:
            return self.files
        self.stopped = True
        streams = list(self.streams.values())
        for stream in streams:
            if stream.sub is not None and not stream.sub.closed:
                stream.sub.close()  # -> _sub_closed
            elif stream.open:
                stream.open = False
                self.service.close_stream(stream)
        if streams:
            try:
                await asyncio.wait_for(asyncio.gather(*(s.closed.wait() for s in streams)),
                                       FINISH_TIMEOUT_S)
            except TimeoutError:
                log.warning("room %s: transcription workers did not finish in %s s",
                            self.room.id, FINISH_TIMEOUT_S)
        self.files = await self.service.write(self)
        hook = self.service.on_finished
        if hook is not None:
            try:
                await hook(self)
            except Exception:
                log.exception("room %s: after its transcription", self.room.id)
        return self.files


class Transcriptions:
    def __init__(self, bus: EventBus, engine: EngineConfig, *, workers: int = 1,
                 directory: str = "", captions: bool = True) -> None:
        self.bus = bus
        self.engine = engine
        self.directory = directory
        self.captions = captions
        self.workers = workers
        self.rooms: dict[str, RoomTranscription] = {}
        self._streams: dict[str, _Stream] = {}
        self._pool: TranscriptionPool | None = None
        self._ending: set[asyncio.Task[Any]] = set()
        #: awaited with each room transcription once its transcript is written (the
        #: summary draft: transcription.summaries)
        self.on_finished: Callable[[RoomTranscription], Awaitable[Any]] | None = None
        # figures (docs/metrics.md)
        self.words = 0
        self.failures = 0
        self.lines_written = 0
        self.finished_audio_s = 0.0
        self.finished_cpu_s = 0.0

    @property
    def pool(self) -> TranscriptionPool:
        if self._pool is None:
            self._pool = TranscriptionPool(self.workers, self.engine, self._on_result)
        return self._pool

    def start(self, room: Any, policy: str) -> RoomTranscription:
        if policy not in POLICIES or policy == "off":
            raise TranscriptionRefused(f"transcription policy {policy!r}: nothing to "
                                       "transcribe")
        current = self.rooms.get(room.id)
        if current is not None and not current.stopped:
            return current
        rt = RoomTranscription(self, room, policy)
        self.rooms[room.id] = rt
        for p in list(room.participants.values()):
            rt.seen(p)
            for track in list(p.tracks.values()):
                rt.track_published(p, track)
        return rt

    def room_closed(self, room_id: str) -> None:
        rt = self.rooms.pop(room_id, None)
        if rt is None:
            return
        task = asyncio.ensure_future(rt.stop())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    # -- streams (the pool's side) -----------------------------------------------------

    def open_stream(self, stream: _Stream) -> None:
        self._streams[stream.id] = stream
        self.pool.open(stream.id)

    def pool_feed(self, stream: str, ts: int, payload: bytes) -> None:
        self.pool.feed(stream, ts, payload)

    def close_stream(self, stream: _Stream) -> None:
        self.pool.close(stream.id)

    def _on_result(self, stream_id: str, msg: tuple[Any, ...]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        try:
            stream.room.on_result(stream, msg)
        except Exception:
            log.exception("transcription result for %s", stream_id)
        if msg[0] == "closed" or (msg[0] == "error" and not stream.open):
            self._streams.pop(stream_id, None)
            fig = stream.figures
            self.finished_audio_s += float(fig.get("audio_s", 0.0))
            self.finished_cpu_s += float(fig.get("engine_cpu_s", 0.0))

    def transcript_json(self, room_id: str) -> dict[str, Any] | None:
        """The live transcript of a transcribed room (times from its first line)."""
        rt = self.rooms.get(room_id)
        if rt is None:
            return None
        tr = rt.transcript
        origin = tr.lines[0].start if tr.lines else rt.started_at
        return {**tr.to_json(origin, startedAt=rt.started_at, engine=self.engine.engine),
                "policy": rt.policy, "streams": [
                    {"participant": s.participant.id, "track": s.track.id,
                     "error": s.error or None, **s.figures} for s in rt.streams.values()]}

    def live_streams(self) -> list[_Stream]:
        return list(self._streams.values())

    # -- files -------------------------------------------------------------------------

    async def write(self, rt: RoomTranscription) -> list[str]:
        """The session's transcript under ``directory`` (nothing when it is "")."""
        tr = rt.transcript
        origin = tr.lines[0].start if tr.lines else rt.started_at
        paths: list[str] = []
        if self.directory and tr.lines:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(rt.started_at))
            folder = Path(self.directory) / room_file_name(rt.room.id)
            base = folder / f"{stamp}-transcript"
            vtt, js = base.with_suffix(".vtt"), base.with_suffix(".json")
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(write_atomic, vtt, tr.webvtt(origin).encode())
            await asyncio.to_thread(write_atomic, js, tr.json_bytes(
                origin, startedAt=rt.started_at, engine=self.engine.engine))
            paths = [str(vtt), str(js)]
        self.lines_written += len(tr.lines)
        self.bus.emit("transcript.completed", rt.room.id, {
            "lines": len(tr.lines), "speakers": len({ln.participant for ln in tr.lines}),
            "files": paths})
        return paths

    async def close(self) -> None:
        for room_id in list(self.rooms):
            self.room_closed(room_id)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close_all()
