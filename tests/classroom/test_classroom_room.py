"""A classroom above its media room: the tools reach participants through the media room,
the media room tells the classroom what happened, and the classroom runs its own timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from classroom.room import Classroom, RecordingRefused
from classroom.rooms import Classrooms
from events import EventBus
from sfu.participant import MediaParams, Participant, ParticipantInfo
from sfu.room import Room, RoomRegistry
from sfu.transport import new_certificate

PARAMS = MediaParams(new_certificate(), ("127.0.0.1",))


class Inbox:
    """A participant's messages, with a wait for one of a type (no polling)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._arrived.set()

    def of_type(self, mtype: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == mtype]

    async def wait(self, mtype: str, timeout: float = 5.0) -> dict[str, Any]:
        async def first() -> dict[str, Any]:
            while not self.of_type(mtype):
                self._arrived.clear()
                await self._arrived.wait()
            return self.of_type(mtype)[0]
        return await asyncio.wait_for(first(), timeout)


def join(room: Room, pid: str, role: str) -> tuple[Participant, Inbox]:
    inbox = Inbox()
    p = Participant(ParticipantInfo(pid, pid.lower(), pid, role), room, PARAMS, inbox)
    room.add(p)
    return p, inbox


async def test_timed_poll_closes_on_the_classrooms_own_timer() -> None:
    """Nobody sends anything and no participant ticks: the poll still closes at its
    deadline, and everyone is told."""
    bus = EventBus()
    classrooms = Classrooms(RoomRegistry(bus, max_participants=5, auto_create=True), bus)
    room = classrooms.get_for_join("maths")
    teacher, teacher_inbox = join(room.media, "T", "instructor")
    _, student_inbox = join(room.media, "S", "student")
    room.create_poll(teacher, {"kind": "single", "question": "2+2?",
                               "options": ["3", "4"], "durationMs": 1000})
    closed = await student_inbox.wait("poll_closed")
    assert closed["reason"] == "timer"
    assert (await teacher_inbox.wait("poll_results"))["pollId"] == closed["pollId"]
    assert [e.type for e in bus.recent if e.type.startswith("poll.")] == [
        "poll.created", "poll.closed"]
    await classrooms.close("maths")


async def test_leaving_lowers_the_hand_and_closing_drops_the_classroom() -> None:
    bus = EventBus()
    media = RoomRegistry(bus, max_participants=5, auto_create=True)
    classrooms = Classrooms(media, bus)
    room = classrooms.get_for_join("art")
    assert room.media is media.rooms["art"] and room.media.listener is room
    teacher, teacher_inbox = join(room.media, "T", "instructor")
    student, _ = join(room.media, "S", "student")
    room.raise_hand(student)
    assert room.state()["hands"][0]["participantId"] == "S"
    await room.media.remove(student, "left")
    assert teacher_inbox.of_type("hand_lowered") == [
        {"type": "hand_lowered", "participantId": "S", "by": "S", "reason": "left"}]
    assert room.state()["hands"] == []
    await room.media.remove(teacher, "left")
    await classrooms.left(room)  # auto-created and empty: the media room closes
    assert media.rooms == {} and classrooms.rooms == {} and room.closed


async def test_recording_requests_follow_role_and_policy() -> None:
    bus = EventBus()
    media = RoomRegistry(bus, max_participants=5, auto_create=False)
    started: list[Classroom] = []

    class Recorder:
        def start(self, room: Classroom) -> None:
            started.append(room)

        async def stop(self, room_id: str) -> None:
            raise AssertionError("policy always: never stopped by a participant")

    classrooms = Classrooms(media, bus, recorder=Recorder())
    room = classrooms.create("exam", recording_policy="always")
    assert started == [room]  # policy always: recorded from creation
    assert room.describe()["recordingPolicy"] == "always"
    student, _ = join(room.media, "S", "student")
    teacher, _ = join(room.media, "T", "instructor")
    with pytest.raises(Exception, match="only the instructor"):
        await room.request_recording(student, True)
    with pytest.raises(RecordingRefused, match="policy always"):
        await room.request_recording(teacher, False)
    await classrooms.close("exam")
    assert classrooms.get("exam") is None
