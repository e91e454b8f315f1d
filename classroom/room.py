"""A classroom: one media room (:class:`sfu.room.Room`) plus the classroom tools around it
(polls, raised hands, chat and reactions, the recording and its policy).

The media room knows nothing of any of these: the classroom is its
:class:`~sfu.room.RoomListener` (told when a participant leaves, a track is published, the
room closes) and reaches its participants through ``media.broadcast`` and each
participant's ``send``. The classroom runs its own timer for the polls' deadlines.
Engagement is captured from the event bus (:mod:`classroom.reports`), not here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from events import EventBus
from sfu.participant import Participant
from sfu.room import Room
from sfu.track import PublishedTrack

from .chat import Chat
from .errors import MODERATORS, ClassroomError, require_moderator
from .hands import Hands
from .polls import Polls

log = logging.getLogger(__name__)

#: when a room is recorded (docs/recording.md): from its creation to its end, when the
#: instructor (or the room API) asks, or never
RECORDING_POLICIES = ("always", "on_request", "off")


class UnknownParticipant(ClassroomError):
    code = "unknown_participant"


class RecordingRefused(ClassroomError):
    code = "recording_refused"


class Recording(Protocol):
    """A running recording of a classroom (recorder.session.RoomRecording)."""

    id: str
    #: the recording of the lesson another node made before the room moved here
    continues: dict[str, Any] | None

    def track_published(self, p: Participant, track: PublishedTrack) -> None: ...


class Recorder(Protocol):
    """What starts and stops recordings (recorder.service.Recordings)."""

    def start(self, room: Classroom, continues: dict[str, Any] | None = None) -> Any: ...

    async def stop(self, room_id: str) -> Any: ...


#: whose microphones are transcribed (docs/transcription.md): nobody's, the instructor's,
#: everyone's
TRANSCRIPTION_POLICIES = ("off", "instructor", "everyone")


class RoomTranscription(Protocol):
    """A running transcription of a classroom (transcription.service.RoomTranscription)."""

    def track_published(self, p: Participant, track: PublishedTrack) -> None: ...

    def seen(self, p: Participant) -> None: ...

    def attachments(self, start: float, end: float) -> dict[str, bytes]: ...


class Transcriber(Protocol):
    """What starts and ends transcriptions (transcription.service.Transcriptions)."""

    def start(self, room: Classroom, policy: str) -> RoomTranscription: ...

    def room_closed(self, room_id: str) -> None: ...


def _wall_ms() -> float:
    return time.time() * 1000.0


class Classroom:
    """The classroom tools of one room, above its media room (``media``)."""

    def __init__(self, media: Room, bus: EventBus, *, recording_policy: str = "on_request",
                 recorder: Recorder | None = None, transcription_policy: str = "off",
                 transcriber: Transcriber | None = None) -> None:
        if recording_policy not in RECORDING_POLICIES:
            raise ValueError(f"recording policy must be one of {', '.join(RECORDING_POLICIES)}")
        if transcription_policy not in TRANSCRIPTION_POLICIES:
            raise ValueError("transcription policy must be one of "
                             f"{', '.join(TRANSCRIPTION_POLICIES)}")
        self.media = media
        self.id = media.id
        self.bus = bus
        self.recording_policy = recording_policy
        #: starts and stops recordings (None: this server records nothing)
        self.recorder = recorder
        #: the room's recording while one runs (set and cleared by the recorder)
        self.recording: Recording | None = None
        #: whose microphones are transcribed, and the transcription while it runs
        self.transcription_policy = transcription_policy
        self.transcription: RoomTranscription | None = None
        if transcription_policy != "off" and transcriber is not None:
            self.transcription = transcriber.start(self, transcription_policy)
        self._transcriber = transcriber
        #: the room's polls (classroom.polls, sans-IO; wall-clock milliseconds)
        self.polls = Polls(self._emit)
        #: raised hands, chat and reactions (classroom.hands, classroom.chat; wall clock)
        self.hands = Hands(self._emit)
        self.chat = Chat(self._emit)
        #: called once when the media room has closed
        self.on_closed: Callable[[Classroom], None] | None = None
        self._poll_timer: asyncio.TimerHandle | None = None
        media.listener = self

    # -- the media room, as the recorder and the API see it ---------------------------

    @property
    def participants(self) -> dict[str, Participant]:
        return self.media.participants

    @property
    def closed(self) -> bool:
        return self.media.closed

    def describe(self) -> dict[str, Any]:
        return {**self.media.describe(), "recordingPolicy": self.recording_policy,
                "recording": self.recording is not None,
                "transcriptionPolicy": self.transcription_policy}

    def state(self) -> dict[str, Any]:
        """What a joining (or resuming) participant gets of the room's classroom tools."""
        return {"polls": [poll.describe() for poll in self.polls.polls.values() if poll.open],
                "hands": self.hands.queue(), "chat": self.chat.recent(),
                "recording": self.recording_state()}

    def _emit(self, type_: str, data: dict[str, Any]) -> None:
        self.bus.emit(type_, self.id, data)

    def _broadcast(self, message: dict[str, Any]) -> None:
        self.media.broadcast(message)

    # -- RoomListener (sfu.room) --------------------------------------------------------

    def participant_left(self, p: Participant, reason: str) -> None:
        if self.transcription is not None:
            self.transcription.seen(p)  # its name, for the summary's attendance
        if self.hands.left(p.id, _wall_ms()):
            self._broadcast({"type": "hand_lowered", "participantId": p.id, "by": p.id,
                             "reason": "left"})
        self.chat.left(p.id)

    def track_published(self, p: Participant, track: PublishedTrack) -> None:
        if self.recording is not None:
            self.recording.track_published(p, track)
        if self.transcription is not None:
            self.transcription.track_published(p, track)

    def recording_attachments(self, start: float, end: float) -> dict[str, bytes]:
        """Files a recording of [start, end] (wall clock) carries beside its tracks: the
        transcript of those minutes, when the room is transcribed."""
        if self.transcription is None:
            return {}
        return self.transcription.attachments(start, end)

    def room_closed(self, reason: str) -> None:
        if self.transcription is not None and self._transcriber is not None:
            self._transcriber.room_closed(self.id)
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        if self.on_closed is not None:
            self.on_closed(self)

    # -- polls (classroom.polls) ----------------------------------------------------------

    def create_poll(self, p: Participant, spec: dict[str, Any]) -> None:
        poll = self.polls.create(p.id, p.info.role, spec, _wall_ms())
        self._broadcast({"type": "poll", **poll.describe()})
        self._arm_poll_timer()

    def answer_poll(self, p: Participant, poll_id: Any, answer: Any) -> None:
        self.polls.answer(p.id, poll_id, answer, _wall_ms())
        p.send({"type": "poll_answered", "pollId": poll_id})  # (right or wrong: at publish)
        self._results_to_moderators(poll_id)

    def close_poll(self, p: Participant, poll_id: Any) -> None:
        self.polls.close(p.id, p.info.role, poll_id, _wall_ms())
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

    def tick(self, now_ms: float) -> None:
        """Close the timed polls whose deadline passed (wall-clock ``now_ms``)."""
        for poll in self.polls.tick(now_ms):
            self._broadcast({"type": "poll_closed", "pollId": poll.id, "reason": "timer"})
            self._results_to_moderators(poll.id)

    def _arm_poll_timer(self) -> None:
        """The timer fires at the earliest deadline of the open timed polls."""
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        deadline = self.polls.get_timer()
        if deadline is None or self.closed:
            return
        delay_s = max(0.0, deadline - _wall_ms()) / 1000.0
        self._poll_timer = asyncio.get_running_loop().call_later(delay_s + 0.001,
                                                                 self._on_poll_timer)

    def _on_poll_timer(self) -> None:
        self._poll_timer = None
        try:
            self.tick(_wall_ms())
        except Exception:
            log.exception("room %s: poll timer failed", self.id)
        self._arm_poll_timer()

    # -- hands, chat, reactions (classroom.hands, classroom.chat) ------------------------

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

    # -- recording (docs/recording.md) ----------------------------------------------------

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
