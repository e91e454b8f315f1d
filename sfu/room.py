"""Media rooms and their registry: who is in a room, and who receives whose tracks.

A media room knows participants, their tracks and subscriptions, reconnection grace
windows and the active speakers; nothing of classroom tools or recording. An application
(``classroom.room.Classroom``) sits above it as its :class:`RoomListener`, the narrow
interface through which the room tells its owner what happened. The room runs its own
timer (the active-speaker detector's), from the first participant's arrival to its close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from events import EventBus

from .errors import ResumeRefused, RoomClosed, RoomFull, RoomNotFound
from .participant import Participant, now_ms
from .presence import CAUSES, RECONNECTING, new_resume_token, token_matches
from .speaker import ActiveSpeakerDetector
from .speech_gate import SpeechPolicy, SpeechSelection
from .track import PublishedTrack, Subscription

log = logging.getLogger(__name__)


@dataclass
class PresenceStats:
    """Reconnection counters of all rooms (exported by sfu.metrics)."""

    reconnects: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CAUSES})
    resumes: int = 0
    expiries: int = 0
    refused: int = 0


class RoomListener(Protocol):
    """What a media room tells the application that owns it (mediasoup's
    ``Router::Listener``): called after the room's own work and its events, never to ask
    for a decision. Exceptions are logged and contained."""

    def participant_left(self, p: Participant, reason: str) -> None: ...

    def track_published(self, p: Participant, track: PublishedTrack) -> None: ...

    def room_closed(self, reason: str) -> None: ...


class NoListener:
    """The listener of a room nobody owns (tests, benches): does nothing."""

    def participant_left(self, p: Participant, reason: str) -> None:
        pass

    def track_published(self, p: Participant, track: PublishedTrack) -> None:
        pass

    def room_closed(self, reason: str) -> None:
        pass


class Room:
    def __init__(self, room_id: str, *, bus: EventBus, max_participants: int,
                 auto_created: bool = False, reconnect_window_s: float = 20.0,
                 presence_stats: PresenceStats | None = None,
                 speech: SpeechPolicy = SpeechPolicy()) -> None:
        self.id = room_id
        self.bus = bus
        #: the application above this room (set by its owner before anyone joins)
        self.listener: RoomListener = NoListener()
        self.max_participants = max_participants
        self.auto_created = auto_created
        self.reconnect_window_s = reconnect_window_s
        self.presence_stats = presence_stats or PresenceStats()
        self.created_at = time.time()
        self.participants: dict[str, Participant] = {}
        #: relay sessions of edge nodes (by participant id): each receives every track
        #: once for its node's pages, except those its own pages publish; not participants
        #: of the lesson (no presence, no events), but told what the participants are
        self.relays: dict[str, Participant] = {}
        self.closed = False
        #: called after a participant's grace window ran out and it was removed
        self.on_expired: Callable[[Room], Any] | None = None
        self._grace_timers: dict[str, asyncio.TimerHandle] = {}
        #: fed by every microphone's RFC 6464 audio level; ticked by the room's timer
        self.speakers = ActiveSpeakerDetector()
        #: where participants' microphone levels go (sfu.participant.RoomLink)
        self.on_audio_level: Callable[[str, int, float], None] = self.speakers.on_level
        self.current_speakers: list[str] = []
        #: audio by speech: students' microphones forwarded only while they speak, at most
        #: ``speech.slots`` at once (None: every microphone forwarded; sfu.speech_gate)
        self.speech_policy = speech
        self.speech = SpeechSelection(speech.slots) if speech.slots > 0 else None
        # the ranking the selection asks for covers every slot
        self.speakers.max_speakers = max(self.speakers.max_speakers, speech.slots)
        self._timer: asyncio.TimerHandle | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.id,
            "createdAt": self.created_at,
            "numParticipants": len(self.participants),
            "maxParticipants": self.max_participants,
            "reconnectWindowS": self.reconnect_window_s,
            "audioSpeakers": self.speech_policy.slots,
        }

    def broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        """Send ``message`` to every participant (but ``exclude``); one failing send is
        logged and the others still get it."""
        for p in [*self.participants.values(), *self.relays.values()]:
            if p is not exclude:
                try:
                    p.send(message)
                except Exception:
                    log.exception("send to %s failed", p.id)

    def by_identity(self, identity: str) -> Participant | None:
        for p in self.participants.values():
            if p.info.identity == identity:
                return p
        return None

    def add(self, p: Participant) -> None:
        if self.closed:
            raise RoomClosed(f"room {self.id!r} is closed")
        if len(self.participants) >= self.max_participants:
            raise RoomFull(f"room {self.id!r} is full ({self.max_participants})")
        self.participants[p.id] = p
        self._start_timer()
        self.broadcast({"type": "participant_joined", "participant": p.describe()}, exclude=p)
        self.bus.emit("participant.joined", self.id, {
            "participant": p.id, "identity": p.info.identity, "role": p.info.role})
        for other in self.participants.values():
            if other is not p:
                for track in other.tracks.values():
                    p.subscribe(track)

    def add_relay(self, relay: Participant) -> None:
        """An edge node's relay session: it subscribes to every track but those of the
        edge's own pages (docs/cluster.md, "Edge relays")."""
        if self.closed:
            raise RoomClosed(f"room {self.id!r} is closed")
        self.relays[relay.id] = relay
        self.bus.emit("relay.started", self.id, {"edge": relay.info.relay})
        for other in self.participants.values():
            if other.info.via != relay.info.relay:
                for track in other.tracks.values():
                    relay.subscribe(track)

    async def remove_relay(self, relay: Participant, reason: str) -> None:
        if self.relays.get(relay.id) is relay:
            del self.relays[relay.id]
            tracks = len(relay.subscriptions)
            await relay.close()
            self.bus.emit("relay.ended", self.id, {"edge": relay.info.relay, "reason": reason,
                                                    "tracks": tracks})

    # -- reconnection grace window ------------------------------------------------------

    def participant_lost(self, p: Participant, cause: str, since_ms: float | None = None
                         ) -> None:
        """``p``'s connection is gone: it keeps its place, tracks and subscriptions for the
        room's reconnect window (counted from ``since_ms``, when it was last known alive);
        the others see it reconnecting, not leaving."""
        t = now_ms()
        if self.participants.get(p.id) is not p or not p.presence.lost(t, cause, since_ms):
            return
        p.detach()
        self.presence_stats.reconnects[cause] += 1
        window = self.reconnect_window_s
        log.info("participant %s (%s) reconnecting (%s); window %g s", p.id,
                 p.info.identity, cause, window)
        self.broadcast({"type": "participant_reconnecting", "participantId": p.id},
                       exclude=p)
        self.bus.emit("participant.reconnecting", self.id, {
            "participant": p.id, "identity": p.info.identity, "cause": cause,
            "windowMs": round(window * 1000)})
        deadline = p.presence.deadline_ms
        assert deadline is not None
        self._grace_timers[p.id] = asyncio.get_running_loop().call_later(
            max(deadline - t, 0.0) / 1000.0, self._grace_timer, p)

    def _grace_timer(self, p: Participant) -> None:
        self._grace_timers.pop(p.id, None)
        t = now_ms()
        if p.presence.expire(t):
            asyncio.ensure_future(self._expire(p))
        elif (deadline := p.presence.deadline_ms) is not None:
            # the loop's timer may fire a little before our clock reaches the deadline
            self._grace_timers[p.id] = asyncio.get_running_loop().call_later(
                (deadline - t) / 1000.0 + 0.001, self._grace_timer, p)

    async def _expire(self, p: Participant) -> None:
        if self.participants.get(p.id) is not p:
            return
        self.presence_stats.expiries += 1
        await self.remove(p, "timeout")
        if self.on_expired is not None:
            await self.on_expired(self)

    def resume(self, participant_id: str, resume_token: object) -> tuple[Participant, float]:
        """A participant coming back with its resume token: the same identity, tracks and
        subscriptions. Returns it and how long it was away (ms). The caller re-attaches its
        new connection (``Participant.attach``). Raises ResumeRefused."""
        p = self.participants.get(participant_id)
        if p is None or not token_matches(p.resume_token, resume_token):
            self.presence_stats.refused += 1
            raise ResumeRefused("unknown participant or resume token; join again")
        was_away = p.presence.state == RECONNECTING
        try:
            outage = p.presence.resume(now_ms())
        except ResumeRefused:
            self.presence_stats.refused += 1
            asyncio.ensure_future(self._expire(p))
            raise
        timer = self._grace_timers.pop(p.id, None)
        if timer is not None:
            timer.cancel()
        p.resume_token = new_resume_token()  # each token resumes once
        if was_away:
            self.presence_stats.resumes += 1
            log.info("participant %s (%s) resumed after %.1f s", p.id, p.info.identity,
                     outage / 1000)
            self.broadcast({"type": "participant_resumed", "participantId": p.id}, exclude=p)
            self.bus.emit("participant.resumed", self.id, {
                "participant": p.id, "identity": p.info.identity, "outageMs": round(outage)})
        return p, outage

    async def remove(self, p: Participant, reason: str) -> None:
        if self.participants.get(p.id) is not p:
            return
        del self.participants[p.id]
        p.presence.end()
        timer = self._grace_timers.pop(p.id, None)
        if timer is not None:
            timer.cancel()
        await p.close()
        speaking_ms = self.speakers.speaking_ms(p.id)
        self.speakers.remove(p.id)
        self.broadcast({"type": "participant_left", "participantId": p.id, "reason": reason})
        self.bus.emit("participant.left", self.id, {
            "participant": p.id, "identity": p.info.identity, "reason": reason,
            "speakingMs": round(speaking_ms)})
        self._tell("participant_left", p, reason)

    def track_published(self, p: Participant, track: PublishedTrack) -> None:
        if self.participants.get(p.id) is not p:
            return  # removed while its offer was being handled
        self.broadcast({"type": "track_published", "track": track.describe()}, exclude=p)
        self.bus.emit("track.published", self.id, {"participant": p.id, **track.describe()})
        if self.speech is not None and self._by_speech(p, track):
            policy = self.speech_policy
            track.gate_by_speech(self._ask_gate, threshold_dbov=policy.threshold_dbov,
                                 hold_ms=policy.hold_ms)
            self.speech.add(track.id, p.id, track.gate)
        for other in self.participants.values():
            if other is not p:
                other.subscribe(track)
        for relay in self.relays.values():
            if relay.info.relay != p.info.via:
                relay.subscribe(track)
        self._tell("track_published", p, track)

    @staticmethod
    def _by_speech(p: Participant, track: PublishedTrack) -> bool:
        """Whether a published track is forwarded by speech: a microphone with RFC 6464
        levels, not the instructor's (always forwarded), nor a screen's sound."""
        return (track.kind == "audio" and track.source == "microphone"
                and p.info.role != "instructor" and track.has_audio_level)

    def _ask_gate(self, track: PublishedTrack, now_ms: float) -> bool:
        return self.speech is not None and self.speech.ask(track.id, now_ms,
                                                           self.current_speakers)

    def track_unpublished(self, p: Participant, track: PublishedTrack) -> None:
        if self.speech is not None:
            self.speech.remove(track.id)
        for other in [*self.participants.values(), *self.relays.values()]:
            if other is not p:
                other.unsubscribe(track.id)
        self.broadcast(
            {"type": "track_unpublished", "trackId": track.id, "participantId": p.id},
            exclude=p,
        )
        self.bus.emit("track.unpublished", self.id, {"participant": p.id, "id": track.id})

    def track_muted(self, p: Participant, track: PublishedTrack) -> None:
        message = {"type": "track_muted", "trackId": track.id, "participantId": p.id,
                   "muted": track.muted}
        self.broadcast(message)
        self.bus.emit("track.muted", self.id, {"participant": p.id, "id": track.id,
                                               "muted": track.muted})

    def _tell(self, what: str, *args: Any) -> None:
        try:
            getattr(self.listener, what)(*args)
        except Exception:
            log.exception("room %s: listener failed on %s", self.id, what)

    # -- the room's timer -----------------------------------------------------------------

    def _start_timer(self) -> None:
        if self._timer is None and not self.closed:
            self._timer = asyncio.get_running_loop().call_later(
                self.speakers.interval_ms / 1000.0, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        try:
            self.tick(now_ms())
        except Exception:
            log.exception("room %s: tick failed", self.id)
        if self.participants:  # an empty room sleeps until the next add
            self._start_timer()

    def tick(self, now_ms: float) -> None:
        """The room's periodic work (sans-IO: the time is given; its timer calls it)."""
        self.speaker_tick(now_ms)

    def speaker_tick(self, now_ms: float) -> None:
        """Tell the room who is speaking when it changes (rate-limited by the detector)."""
        speakers = self.speakers.tick(now_ms)
        if speakers is None:
            return
        self.current_speakers = [pid for pid, _ in speakers]
        listed = [{"participantId": pid, "level": round(score, 3)} for pid, score in speakers]
        self.broadcast({"type": "speakers", "speakers": listed})
        self.bus.emit("room.speakers", self.id, {"speakers": listed})

    def subscription_paused(self, p: Participant, sub: Subscription, paused: bool,
                            estimate_bps: int) -> None:
        self.bus.emit("subscription.paused" if paused else "subscription.resumed", self.id, {
            "participant": p.id, "track": sub.track.id, "reason": "bandwidth",
            "estimateBps": estimate_bps})

    def layers_changed(self, p: Participant, track: PublishedTrack) -> None:
        self.bus.emit("track.layers", self.id, {
            "participant": p.id, "id": track.id,
            "active": [la.rid for la in track.layers if la.enabled]})

    def transport_failed(self, p: Participant, which: str) -> None:
        self.bus.emit("participant.transport_failed", self.id,
                      {"participant": p.id, "transport": which})

    async def close(self, reason: str = "room_closed") -> None:
        if self.closed:
            return
        self.closed = True
        for p in list(self.participants.values()):
            try:
                p.send({"type": "left", "reason": reason})
            except Exception:
                log.debug("send failed", exc_info=True)
            await self.remove(p, reason)
        for relay in list(self.relays.values()):
            relay.send({"type": "left", "reason": reason})
            await self.remove_relay(relay, reason)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tell("room_closed", reason)
        self.bus.emit("room.closed", self.id, {"reason": reason})


class RoomRegistry:
    def __init__(self, bus: EventBus, *, max_participants: int, auto_create: bool,
                 reconnect_window_s: float = 20.0, speech: SpeechPolicy = SpeechPolicy()
                 ) -> None:
        self.bus = bus
        self.rooms: dict[str, Room] = {}
        self.max_participants = max_participants
        self.auto_create = auto_create
        self.reconnect_window_s = reconnect_window_s
        #: audio by speech, per room unless the room API says otherwise
        self.speech = speech
        self.presence_stats = PresenceStats()

    def create(self, room_id: str, max_participants: int | None = None,
               auto_created: bool = False, reconnect_window_s: float | None = None,
               audio_speakers: int | None = None) -> Room:
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        window = self.reconnect_window_s if reconnect_window_s is None else reconnect_window_s
        room = Room(room_id, bus=self.bus,
                    max_participants=max_participants or self.max_participants,
                    auto_created=auto_created, reconnect_window_s=window,
                    presence_stats=self.presence_stats,
                    speech=self.speech if audio_speakers is None
                    else replace(self.speech, slots=audio_speakers))
        room.on_expired = self.left
        self.rooms[room_id] = room
        self.bus.emit("room.created", room_id, {"maxParticipants": room.max_participants})
        return room

    def get_for_join(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            if not self.auto_create:
                raise RoomNotFound(f"room {room_id!r} does not exist")
            room = self.create(room_id, auto_created=True)
        return room

    async def close(self, room_id: str, reason: str = "room_closed") -> bool:
        room = self.rooms.pop(room_id, None)
        if room is None:
            return False
        await room.close(reason)
        return True

    async def left(self, room: Room) -> None:
        """Drop an auto-created room once its last participant is gone."""
        if room.auto_created and not room.participants and self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            await room.close("empty")
