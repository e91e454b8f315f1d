"""A classroom's state through its replica (classroom/replica.py), as another node takes
the room over: settings, chat, hands and polls with their answers come back the same, new
chat messages and polls go on numbering after the old ones, and a damaged replica gives
what it can instead of failing the take-over."""

from __future__ import annotations

import json

from classroom import replica
from classroom.rooms import Classrooms
from events import EventBus
from sfu.room import RoomRegistry
from tests.classroom.test_classroom_room import join


def classrooms() -> Classrooms:
    bus = EventBus()
    return Classrooms(RoomRegistry(bus, max_participants=50, auto_create=True), bus)


async def test_a_taken_over_room_has_what_the_first_node_had() -> None:
    first = classrooms().create("maths", 12, reconnect_window_s=30, audio_speakers=2,
                                recording_policy="always", transcription_policy="instructor")
    teacher, _ = join(first.media, "PA_000000000001", "instructor")
    student, _ = join(first.media, "PA_000000000002", "student")
    first.send_chat(student, "what is a prime?")
    first.send_chat(teacher, "one with two divisors")
    first.raise_hand(student)
    first.create_poll(teacher, {"kind": "single", "question": "Is 9 prime?",
                                "options": ["yes", "no"], "correct": [1]})
    poll_id = next(iter(first.polls.polls))
    first.answer_poll(student, poll_id, [1])
    data = replica.export(first)

    settings = replica.read_settings(data)
    assert settings == {"maxParticipants": 12, "reconnectWindowS": 30, "audioSpeakers": 2,
                        "recordingPolicy": "always", "transcriptionPolicy": "instructor"}
    second = classrooms().create("maths", settings["maxParticipants"],
                                 reconnect_window_s=settings["reconnectWindowS"],
                                 audio_speakers=settings["audioSpeakers"])
    assert replica.restore(second, data) == {"chat": 2, "hands": 1, "polls": 1}
    assert second.chat.recent() == first.chat.recent()
    assert second.hands.queue() == first.hands.queue()
    assert second.polls.polls == first.polls.polls  # the answers and the correct option
    # the room goes on: ids continue after the restored ones
    teacher2, _ = join(second.media, "PA_000000000001", "instructor")
    second.send_chat(teacher2, "next")
    assert second.chat.recent()[-1]["messageId"] == "CM3"
    second.create_poll(teacher2, {"kind": "text", "question": "Why?"})
    assert sorted(second.polls.polls) == ["PL1", "PL2"]
    assert replica.read_recording(data) == {}  # nothing was recording here


async def test_a_damaged_replica_gives_what_it_can() -> None:
    room = classrooms().get_for_join("art")
    assert replica.restore(room, b"not json") == {}
    damaged = json.dumps({"chat": [["CM1", "PA_1", "hi", 1.0, "Ann"], ["bad"]],
                          "hands": [["PA_1", "x"]], "polls": [{"id": "PL1"}]}).encode()
    assert replica.restore(room, damaged) == {"chat": 1, "hands": 0, "polls": 0}
    assert [m["text"] for m in room.chat.recent()] == ["hi"]
    assert replica.read_settings(b"[1, 2]") == {} and replica.read_recording(b"{") == {}
