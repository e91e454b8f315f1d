"""Rooms and the room registry: who is in a room, and who receives whose tracks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from classroom.chat import Chat
from classroom.errors import MODERATORS, ClassroomError, require_moderator
from classroom.hands import Hands
from classroom.polls import Polls
from events import EventBus

from .errors import ResumeRefused, RoomClosed, RoomFull, RoomNotFound
from .participant import Participant, now_ms
from .presence import CAUSES, RECONNECTING, new_resume_token, token_matches
from .speaker import ActiveSpeakerDetector
from .track import PublishedTrack, Subscription

log = logging.getLogger(__name__)


@dataclass
class PresenceStats:
    """Reconnection counters of all rooms (exported by sfu.metrics)."""

    reconnects: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CAUSES})
    resumes: int = 0
    expiries: int = 0
    refused: int = 0


def _wall_ms() -> float:
    return time.time() * 1000.0


class UnknownParticipant(ClassroomError):
    code = "unknown_participant"


#: when a room is recorded (docs/recording.md): from its creation to its end, when the
#: instructor (or the room API) asks, or never
RECORDING_POLICIES = ("always", "on_request", "off")


class RecordingRefused(ClassroomError):
    code = "recording_refused"


class Room:
    def __init__(self, room_id: str, *, bus: EventBus, max_participants: int,
                 auto_created: bool = False, reconnect_window_s: float = 20.0,
                 presence_stats: PresenceStats | None = None,
                 recording_policy: str = "on_request") -> None:
        self.id = room_id
        self.recording_policy = recording_policy
        self.bus = bus
        self.max_participants = max_participants
        self.auto_created = auto_created
        self.reconnect_window_s = reconnect_window_s
        self.presence_stats = presence_stats or PresenceStats()
        self.created_at = time.time()
        self.participants: dict[str, Participant] = {}
        self.closed = False
        #: called after a participant's grace window ran out and it was removed
        self.on_expired: Callable[[Room], Any] | None = None
        self._grace_timers: dict[str, asyncio.TimerHandle] = {}
        #: fed by every microphone's RFC 6464 audio level; ticked by the participants
        self.speakers = ActiveSpeakerDetector()
        self.current_speakers: list[str] = []
        #: the room's polls (classroom.polls, sans-IO; wall-clock milliseconds)
        self.polls = Polls(self._emit)
        #: raised hands, chat and reactions (classroom.hands, classroom.chat; wall clock)
        self.hands = Hands(self._emit)
        self.chat = Chat(self._emit)
        #: the room's recording while one runs (recorder.session.RoomRecording)
        self.recording: Any = None
        #: starts and stops recordings (recorder.service.Recordings; set by the server)
        self.recorder: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.id,
            "createdAt": self.created_at,
            "numParticipants": len(self.participants),
            "maxParticipants": self.max_participants,
            "reconnectWindowS": self.reconnect_window_s,
            "recordingPolicy": self.recording_policy,
            "recording": self.recording is not None,
        }

    def _broadcast(self, message: dict[str, Any], exclude: Participant | None = None) -> None:
        for p in list(self.participants.values()):
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
        self._broadcast({"type": "participant_joined", "participant": p.describe()}, exclude=p)
        self.bus.emit("participant.joined", self.id, {
            "participant": p.id, "identity": p.info.identity, "role": p.info.role})
        for other in self.participants.values():
            if other is not p:
                for track in other.tracks.values():
                    p.subscribe(track)

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
        self._broadcast({"type": "participant_reconnecting", "participantId": p.id},
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
            self._broadcast({"type": "participant_resumed", "participantId": p.id}, exclude=p)
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
        self._broadcast({"type": "participant_left", "participantId": p.id, "reason": reason})
        if self.hands.left(p.id, _wall_ms()):
            self._broadcast({"type": "hand_lowered", "participantId": p.id, "by": p.id,
                             "reason": "left"})
        self.chat.left(p.id)
        self.bus.emit("participant.left", self.id, {
            "participant": p.id, "identity": p.info.identity, "reason": reason,
            "speakingMs": round(speaking_ms)})

    def track_published(self, p: Participant, track: PublishedTrack) -> None:
        if self.participants.get(p.id) is not p:
            return  # removed while its offer was being handled
        self._broadcast({"type": "track_published", "track": track.describe()}, exclude=p)
        self.bus.emit("track.published", self.id, {"participant": p.id, **track.describe()})
        for other in self.participants.values():
            if other is not p:
                other.subscribe(track)
        if self.recording is not None:
            self.recording.track_published(p, track)

    def track_unpublished(self, p: Participant, track: PublishedTrack) -> None:
        for other in self.participants.values():
            if other is not p:
                other.unsubscribe(track.id)
        self._broadcast(
            {"type": "track_unpublished", "trackId": track.id, "participantId": p.id},
            exclude=p,
        )
        self.bus.emit("track.unpublished", self.id, {"participant": p.id, "id": track.id})

    def track_muted(self, p: Participant, track: PublishedTrack) -> None:
        message = {"type": "track_muted", "trackId": track.id, "participantId": p.id,
                   "muted": track.muted}
        self._broadcast(message)
        self.bus.emit("track.muted", self.id, {"participant": p.id, "id": track.id,
                                               "muted": track.muted})

    # -- polls (classroom.polls): the room owns them, the session routes the messages ------

    def _emit(self, type_: str, data: dict[str, Any]) -> None:
        self.bus.emit(type_, self.id, data)

    def create_poll(self, p: Participant, spec: dict[str, Any]) -> None:
        poll = self.polls.create(p.id, p.info.role, spec, time.time() * 1000.0)
        self._broadcast({"type": "poll", **poll.describe()})

    def answer_poll(self, p: Participant, poll_id: Any, answer: Any) -> None:
        self.polls.answer(p.id, poll_id, answer, time.time() * 1000.0)
        p.send({"type": "poll_answered", "pollId": poll_id})  # (right or wrong: at publish)
        self._results_to_moderators(poll_id)

    def close_poll(self, p: Participant, poll_id: Any) -> None:
        self.polls.close(p.id, p.info.role, poll_id, time.time() * 1000.0)
        self._broadcast({"type": "poll_closed", "pollId": poll_id, "reason": "instructor"})
        self._results_to_moderators(poll_id)

    def publish_poll(self, p: Participant, poll_id: Any) -> None:
        self._broadcast({"type": "poll_results",
                         **self.polls.publish(p.id, p.info.role, poll_id)})

    def poll_results(self, p: Participant, poll_id: Any) -> None:
        p.send({"type": "poll_results", **self.polls.results(poll_id, p.info.role)})

    def _results_to_moderators(self, poll_id: str) -> None:
        for q in self.participants.values():
            if q.info.role in MODERATORS:
                q.send({"type": "poll_results", **self.polls.results(poll_id, q.info.role)})

    # -- hands, chat, reactions (classroom.hands, classroom.chat) --------------------------

    def classroom_state(self) -> dict[str, Any]:
        """What a joining participant gets of the room's classroom tools."""
        return {"polls": [poll.describe() for poll in self.polls.polls.values() if poll.open],
                "hands": self.hands.queue(), "chat": self.chat.recent(),
                "recording": self.recording_state()}

    # -- recording (recorder.service via self.recorder; docs/recording.md) -----------------

    def recording_state(self) -> dict[str, Any]:
        """What every participant is told: is the room being recorded (the indicator)."""
        return {"active": self.recording is not None, "policy": self.recording_policy,
                "recordingId": self.recording.id if self.recording is not None else None}

    def announce_recording(self) -> None:
        self._broadcast({"type": "recording", **self.recording_state()})

    async def request_recording(self, p: Participant, start: bool) -> None:
        """The instructor starts or stops the recording, as the room's policy allows."""
        require_moderator(p.info.role, "start or stop the recording")
        if self.recorder is None:
            raise RecordingRefused("this server records nothing")
        if not start and self.recording_policy == "always":
            raise RecordingRefused("this room is recorded from start to end (policy always)")
        if start:
            self.recorder.start(self)
        else:
            await self.recorder.stop(self.id)

    def raise_hand(self, p: Participant) -> None:
        now = _wall_ms()
        if self.hands.raise_hand(p.id, now):
            self._broadcast({"type": "hand_raised", "participantId": p.id,
                             "raisedAtMs": round(now)})

    def lower_hand(self, p: Participant, who: str | None) -> None:
        """``who``: whose hand (default: p's own); None and ``"all"`` as documented."""
        now = _wall_ms()
        if who == "all":
            lowered = self.hands.lower_all(p.id, p.info.role, now)
        else:
            target = who if who is not None else p.id
            if target != p.id and target not in self.participants:
                raise UnknownParticipant(f"no participant {target[:40]!r} in this room")
            lowered = [target] if self.hands.lower(target, p.id, p.info.role, now) else []
        for target in lowered:
            self._broadcast({"type": "hand_lowered", "participantId": target, "by": p.id,
                             "reason": "lowered"})

    def send_chat(self, p: Participant, text: Any) -> None:
        msg = self.chat.send(p.id, text, _wall_ms(), p.info.name or p.info.identity)
        self._broadcast({"type": "chat", **msg.describe()})

    def delete_chat(self, p: Participant, message_id: Any) -> None:
        msg = self.chat.delete(message_id, p.id, p.info.role)
        self._broadcast({"type": "chat_deleted", "messageId": msg.id, "by": p.id})

    def react(self, p: Participant, reaction: Any) -> None:
        name = self.chat.react(p.id, reaction, _wall_ms())
        self._broadcast({"type": "reaction", "participantId": p.id, "reaction": name})

    def tick(self, now_ms: float) -> None:
        """Periodic room work, driven by its participants' control ticks."""
        self.speaker_tick(now_ms)
        for poll in self.polls.tick(time.time() * 1000.0):
            self._broadcast({"type": "poll_closed", "pollId": poll.id, "reason": "timer"})
            self._results_to_moderators(poll.id)

    def speaker_tick(self, now_ms: float) -> None:
        """Tell the room who is speaking when it changes (rate-limited by the detector)."""
        speakers = self.speakers.tick(now_ms)
        if speakers is None:
            return
        self.current_speakers = [pid for pid, _ in speakers]
        listed = [{"participantId": pid, "level": round(score, 3)} for pid, score in speakers]
        self._broadcast({"type": "speakers", "speakers": listed})
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
        self.bus.emit("room.closed", self.id, {"reason": reason})


class RoomRegistry:
    def __init__(self, bus: EventBus, *, max_participants: int, auto_create: bool,
                 reconnect_window_s: float = 20.0, recording_policy: str = "on_request"
                 ) -> None:
        self.bus = bus
        self.recording_policy = recording_policy
        #: given to every room (recorder.service.Recordings; set by the server)
        self.recorder: Any = None
        self.rooms: dict[str, Room] = {}
        self.max_participants = max_participants
        self.auto_create = auto_create
        self.reconnect_window_s = reconnect_window_s
        self.presence_stats = PresenceStats()

    def create(self, room_id: str, max_participants: int | None = None,
               auto_created: bool = False, reconnect_window_s: float | None = None,
               recording_policy: str | None = None) -> Room:
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        window = self.reconnect_window_s if reconnect_window_s is None else reconnect_window_s
        room = Room(room_id, bus=self.bus,
                    max_participants=max_participants or self.max_participants,
                    auto_created=auto_created, reconnect_window_s=window,
                    presence_stats=self.presence_stats,
                    recording_policy=recording_policy or self.recording_policy)
        room.on_expired = self.left
        room.recorder = self.recorder
        self.rooms[room_id] = room
        self.bus.emit("room.created", room_id, {"maxParticipants": room.max_participants})
        if room.recording_policy == "always" and self.recorder is not None:
            self.recorder.start(room)
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
