"""Bookings as the API reads them: times in their time zone, clear errors for bad input."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler_bridge.booking import Status, parse_booking, transition
from scheduler_bridge.errors import BadBooking, BadTimes, BadTransition, UnknownTimeZone


def body(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "lessonId": "maths-7b-1", "title": "Maths 7B", "start": "2026-12-07T15:00",
        "end": "2026-12-07T16:00", "timeZone": "Europe/Berlin",
        "instructor": {"id": "t-anna", "name": "Anna", "email": "anna@school.example"},
        "students": [{"id": "s-bob", "name": "Bob", "guardians": [
            {"name": "Bob's mother", "email": "mum@home.example"}]}, {"id": "s-cy"}],
        "recordingPolicy": "always", "room": {"maxParticipants": 5, "reconnectWindowS": 30},
        "seriesId": "maths-7b"}
    base.update(over)
    return base


def test_local_times_are_read_in_the_booking_time_zone() -> None:
    b = parse_booking(body())
    # 15:00 in Berlin in December (CET, UTC+1) is 14:00 UTC
    assert b.to_json()["start"] == "2026-12-07T14:00:00Z"
    assert b.to_json()["localStart"] == "2026-12-07T15:00:00+01:00"
    # an explicit offset wins over the zone; the zone stays for display
    b2 = parse_booking(body(start="2026-12-07T15:00:00Z", end="2026-12-07T16:00:00Z"))
    assert b2.to_json()["localStart"] == "2026-12-07T16:00:00+01:00"
    # summer time: 15:00 in Berlin in July is 13:00 UTC
    b3 = parse_booking(body(start="2026-07-07T15:00", end="2026-07-07T16:00"))
    assert b3.to_json()["start"] == "2026-07-07T13:00:00Z"
    assert [s.id for s in b.students] == ["s-bob", "s-cy"]
    assert b.students[0].guardians[0].email == "mum@home.example"
    assert b.role_of("t-anna") == "instructor" and b.role_of("s-cy") == "student"
    assert b.role_of("nobody") is None


@pytest.mark.parametrize("over, error, words", [
    ({"timeZone": "Mars/Olympus"}, UnknownTimeZone, "unknown time zone"),
    ({"timeZone": 7}, UnknownTimeZone, "IANA"),
    ({"end": "2026-12-07T14:00"}, BadTimes, "end after it starts"),
    ({"end": "2026-12-07T15:00"}, BadTimes, "end after it starts"),
    ({"end": "2026-12-08T15:00"}, BadTimes, "at most 12 hours"),
    ({"start": "tomorrow"}, BadTimes, "not an ISO 8601"),
    ({"start": None}, BadTimes, "ISO 8601"),
    ({"lessonId": "has space"}, BadBooking, "lessonId"),
    ({"lessonId": "x" * 65}, BadBooking, "lessonId"),
    ({"instructor": None}, BadBooking, "instructor must be an object"),
    ({"instructor": {"name": "no id"}}, BadBooking, "instructor.id is required"),
    ({"students": [{"id": "t-anna"}]}, BadBooking, "its own id"),
    ({"students": [{"id": "a"}, {"id": "a"}]}, BadBooking, "its own id"),
    ({"students": [{"id": "a", "email": "not-an-email"}]}, BadBooking, "not an email"),
    ({"recordingPolicy": "sometimes"}, BadBooking, "recordingPolicy"),
    ({"room": {"maxParticipants": 2}}, BadBooking, "room for everyone"),
    ({"room": {"reconnectWindowS": 601}}, BadBooking, "0..600"),
    ({"title": "t" * 201}, BadBooking, "title"),
])
def test_bad_bookings_get_a_clear_error(over: dict[str, Any], error: type[Exception],
                                        words: str) -> None:
    with pytest.raises(error, match=words):
        parse_booking(body(**over))


def test_not_an_object() -> None:
    with pytest.raises(BadBooking, match="JSON object"):
        parse_booking(["lessonId"])


def test_status_transitions_are_a_table() -> None:
    assert transition("scheduled", Status.LIVE) is Status.LIVE
    assert transition("live", Status.ENDED) is Status.ENDED
    for current, to in [("cancelled", Status.LIVE), ("ended", Status.LIVE),
                        ("ended", Status.CANCELLED), ("no_show", Status.ENDED),
                        ("scheduled", Status.ENDED)]:
        with pytest.raises(BadTransition):
            transition(current, to)


def test_same_booking_ignores_status_and_revision() -> None:
    a = parse_booking(body())
    from dataclasses import replace
    assert a.same_booking(replace(a, status=Status.LIVE, revision=3))
    assert not a.same_booking(replace(a, title="other"))
