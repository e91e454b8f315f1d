"""Poll lifecycle (sans-IO, fake clock): create, answer, change, close by hand and by
timer, results for the instructor and, once published, for students; double votes, votes
after close, unknown polls, students trying instructor actions, anonymous polls that never
reveal identities in events."""

from __future__ import annotations

from typing import Any

import pytest

from classroom.polls import (
    AlreadyAnswered,
    NotAllowed,
    PollClosed,
    PollError,
    Polls,
    UnknownPoll,
)
from events.schemas import validate

INSTRUCTOR = ("T", "instructor")


def make() -> tuple[Polls, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []

    def emit(type_: str, data: dict[str, Any]) -> None:
        validate(type_, data)  # every event matches its declared schema
        events.append((type_, data))

    return Polls(emit), events


def test_a_comprehension_check_from_creation_to_published_results() -> None:
    polls, events = make()
    poll = polls.create(*INSTRUCTOR, {"kind": "single", "question": "2 + 2?",
                                      "options": ["3", "4", "5"], "correct": [1]}, 1000)
    assert "correct" not in poll.describe()  # students are not told the answer
    polls.answer("s1", poll.id, [1], 3000)
    polls.answer("s2", poll.id, [0], 5500)
    with pytest.raises(AlreadyAnswered):
        polls.answer("s1", poll.id, [0], 6000)  # double vote
    live = polls.results(poll.id, "instructor")
    assert live["counts"] == [1, 1, 0] and live["correctRate"] == 0.5
    assert live["byParticipant"]["s2"] == {"choice": [0], "text": "", "correct": False}
    with pytest.raises(NotAllowed):
        polls.results(poll.id, "student")  # not published yet
    polls.close(*INSTRUCTOR, poll.id, 7000)
    with pytest.raises(PollClosed):
        polls.answer("s3", poll.id, [1], 7001)  # vote after close
    shared = polls.publish(*INSTRUCTOR, poll.id)
    assert shared == polls.results(poll.id, "student")
    assert shared == {"pollId": poll.id, "open": False, "responses": 2, "counts": [1, 1, 0],
                      "correctRate": 0.5, "correct": [1]}  # nobody's answer in it
    assert [(t, d.get("participant"), d.get("correct"), d.get("latencyMs"))
            for t, d in events if t == "poll.answered"] == [
        ("poll.answered", "s1", True, 2000), ("poll.answered", "s2", False, 4500)]
    assert [t for t, _ in events] == ["poll.created", "poll.answered", "poll.answered",
                                      "poll.closed", "poll.results_published"]


def test_changing_an_answer_when_allowed_and_a_timed_poll() -> None:
    polls, events = make()
    poll = polls.create(*INSTRUCTOR, {"kind": "multiple", "question": "Which are primes?",
                                      "options": ["2", "4", "5"], "allowChange": True,
                                      "durationMs": 60_000}, 0)
    polls.answer("s1", poll.id, [0], 1000)
    polls.answer("s1", poll.id, [0, 2], 2000)  # changed before the close
    assert polls.results(poll.id, "instructor")["counts"] == [1, 0, 1]
    assert polls.tick(59_999) == []
    assert polls.tick(60_000) == [poll] and not poll.open
    with pytest.raises(PollClosed):
        polls.answer("s2", poll.id, [1], 60_001)
    assert ("poll.closed", {"pollId": poll.id, "reason": "timer", "responses": 1}) in events
    timed = polls.create(*INSTRUCTOR, {"kind": "text", "question": "Why?",
                                       "durationMs": 1000}, 100_000)
    with pytest.raises(PollClosed):  # no tick came: the answer itself finds it overdue
        polls.answer("s1", timed.id, "because", 101_000)


def test_anonymous_polls_never_reveal_who_answered() -> None:
    polls, events = make()
    poll = polls.create(*INSTRUCTOR, {"kind": "single", "question": "How hard was it?",
                                      "options": ["easy", "hard"], "anonymous": True,
                                      "correct": [0]}, 0)
    for i, choice in enumerate([0, 1, 1]):
        polls.answer(f"student{i}", poll.id, [choice], 100 * i)
    text = polls.create(*INSTRUCTOR, {"kind": "text", "question": "Any questions?",
                                      "anonymous": True}, 0)
    polls.answer("student0", text.id, "zebra", 1)
    polls.answer("student1", text.id, "apple", 2)
    for type_, data in events:  # nothing identifies a student, nor their answer
        assert not any("student" in str(v) for v in data.values()), (type_, data)
        assert "correct" not in data or type_ != "poll.answered"
    instructor_view = polls.results(poll.id, "instructor")
    assert "byParticipant" not in instructor_view and instructor_view["counts"] == [1, 2]
    assert polls.results(text.id, "instructor")["texts"] == ["apple", "zebra"]  # not by time


def test_students_cannot_run_polls_and_bad_input_is_refused() -> None:
    polls, events = make()
    spec = {"kind": "single", "question": "Q", "options": ["a", "b"]}
    with pytest.raises(NotAllowed, match="instructor"):
        polls.create("s1", "student", spec, 0)
    poll = polls.create(*INSTRUCTOR, spec, 0)
    for action in (lambda: polls.close("s1", "student", poll.id, 1),
                   lambda: polls.publish("s1", "student", poll.id)):
        with pytest.raises(NotAllowed):
            action()
    assert poll.open and not poll.published
    with pytest.raises(UnknownPoll):
        polls.answer("s1", "PL999", [0], 1)
    with pytest.raises(UnknownPoll):
        polls.answer("s1", {"not": "an id"}, [0], 1)
    for bad in ([], [2], [0, 0], [True], "0", [0, 1], None):
        with pytest.raises(PollError):
            polls.answer("s1", poll.id, bad, 1)
    assert poll.answers == {}  # nothing recorded by the refused answers
    for bad_spec in ({"kind": "rating", "question": "Q"},
                     {"kind": "single", "question": "", "options": ["a", "b"]},
                     {"kind": "single", "question": "Q", "options": ["a"]},
                     {"kind": "single", "question": "Q", "options": ["a", "b"],
                      "correct": [0, 1]},
                     {"kind": "text", "question": "Q", "options": ["a", "b"]},
                     {"kind": "text", "question": "Q", "durationMs": 10},
                     {"kind": "single", "question": "Q" * 501, "options": ["a", "b"]}):
        with pytest.raises(PollError):
            polls.create(*INSTRUCTOR, bad_spec, 0)
    assert [t for t, _ in events] == ["poll.created"]  # only the valid poll
