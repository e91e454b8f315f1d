"""Bookings: what a lesson is, read from API JSON and checked (sans-IO: no clock, no I/O).

Times are stored as UTC (unix seconds) with the organiser's IANA time zone beside them; an
input time with an offset (``2026-12-04T15:00:00+01:00``, ``...Z``) is taken as it is, one
without is read in the booking's ``timeZone``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import BadBooking, BadTimes, BadTransition, UnknownTimeZone

#: lesson ids are room names: the same characters
LESSON_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s,;<>]{1,64}@[^@\s,;<>]{1,190}$")
RECORDING_POLICIES = ("always", "on_request", "off")
MAX_STUDENTS = 500
MAX_LESSON_S = 12 * 3600


class Status(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


#: (from, to) pairs a lesson may take; anything else is BadTransition
TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset({
    (Status.SCHEDULED, Status.LIVE),       # the first expected participant joined
    (Status.SCHEDULED, Status.CANCELLED),  # the API cancelled it
    (Status.SCHEDULED, Status.NO_SHOW),    # its room closed and nobody expected came
    (Status.LIVE, Status.ENDED),           # its room closed
    (Status.LIVE, Status.CANCELLED),       # called off while under way: its room closes
})
#: states in which the booking itself may still change (times, people, options)
CHANGEABLE = (Status.SCHEDULED, Status.LIVE)


def transition(current: str, to: Status) -> Status:
    if (Status(current), to) not in TRANSITIONS:
        raise BadTransition(f"a {current} lesson cannot become {to.value}")
    return to


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str = ""


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    email: str = ""
    guardians: tuple[Contact, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.email:
            out["email"] = self.email
        if self.guardians:
            out["guardians"] = [{"name": g.name, **({"email": g.email} if g.email else {})}
                                for g in self.guardians]
        return out


@dataclass(frozen=True, slots=True)
class Booking:
    lesson_id: str
    title: str
    start_ts: float
    end_ts: float
    time_zone: str
    instructor: Person
    students: tuple[Person, ...] = ()
    recording_policy: str = "on_request"
    reconnect_window_s: float | None = None
    max_participants: int | None = None
    series_id: str = ""
    status: str = Status.SCHEDULED
    #: bumped by every reschedule and substitution: links of an older revision are refused
    revision: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def people(self) -> list[tuple[Person, str]]:
        return [(self.instructor, "instructor"), *((s, "student") for s in self.students)]

    def role_of(self, identity: str) -> str | None:
        for person, role in self.people():
            if person.id == identity:
                return role
        return None

    def same_booking(self, other: Booking) -> bool:
        """Whether ``other`` books exactly this (status and revision aside)."""
        return replace(other, status=self.status, revision=self.revision) == self

    def to_json(self) -> dict[str, Any]:
        zone = ZoneInfo(self.time_zone)
        return {
            "lessonId": self.lesson_id, "title": self.title,
            "start": iso_utc(self.start_ts), "end": iso_utc(self.end_ts),
            "localStart": datetime.fromtimestamp(self.start_ts, zone).isoformat(),
            "localEnd": datetime.fromtimestamp(self.end_ts, zone).isoformat(),
            "timeZone": self.time_zone, "instructor": self.instructor.to_json(),
            "students": [s.to_json() for s in self.students],
            "recordingPolicy": self.recording_policy,
            "room": {"reconnectWindowS": self.reconnect_window_s,
                     "maxParticipants": self.max_participants},
            "seriesId": self.series_id, "status": str(self.status),
            "revision": self.revision, **self.extra,
        }


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise UnknownTimeZone("timeZone must be an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimeZone(f"unknown time zone {name!r} (an IANA name such as "
                              "Europe/Berlin is expected)") from None


def parse_time(value: object, tz: ZoneInfo, what: str) -> float:
    """An ISO 8601 time (with an offset, or local to ``tz``) as unix seconds."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadTimes(f"{what} must be an ISO 8601 time such as 2026-12-04T15:00:00+01:00")
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise BadTimes(f"{what} {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()


def check_times(start_ts: float, end_ts: float) -> None:
    if end_ts <= start_ts:
        raise BadTimes("the lesson must end after it starts")
    if end_ts - start_ts > MAX_LESSON_S:
        raise BadTimes(f"a lesson may last at most {MAX_LESSON_S // 3600} hours")


def _text(body: dict[str, Any], key: str, what: str, max_len: int, *, required: bool = True,
          default: str = "") -> str:
    value = body.get(key, None)
    if value is None or value == "":
        if required:
            raise BadBooking(f"{what} is required")
        return default
    if not isinstance(value, str) or len(value) > max_len:
        raise BadBooking(f"{what} must be a string of at most {max_len} characters")
    return value.strip()


def _email(value: object, what: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not EMAIL_RE.match(value.strip()):
        raise BadBooking(f"{what} {value!r} is not an email address")
    return value.strip()


def parse_person(value: object, what: str) -> Person:
    if not isinstance(value, dict):
        raise BadBooking(f"{what} must be an object {{id, name, email?}}")
    pid = _text(value, "id", f"{what}.id", 128)
    name = _text(value, "name", f"{what}.name", 128, required=False, default=pid)
    guardians_raw = value.get("guardians") or []
    if not isinstance(guardians_raw, list) or len(guardians_raw) > 4:
        raise BadBooking(f"{what}.guardians must be a list of at most 4 contacts")
    guardians = []
    for i, g in enumerate(guardians_raw):
        if not isinstance(g, dict):
            raise BadBooking(f"{what}.guardians[{i}] must be an object {{name, email}}")
        guardians.append(Contact(_text(g, "name", f"{what}.guardians[{i}].name", 128,
                                       required=False),
                                 _email(g.get("email"), f"{what}.guardians[{i}].email")))
    return Person(pid, name, _email(value.get("email"), f"{what}.email"), tuple(guardians))


def parse_booking(body: object) -> Booking:
    """A booking from its API JSON (docs/scheduling.md), or :class:`BadBooking`."""
    if not isinstance(body, dict):
        raise BadBooking("a booking must be a JSON object")
    lesson_id = body.get("lessonId")
    if not isinstance(lesson_id, str) or not LESSON_ID_RE.match(lesson_id):
        raise BadBooking("lessonId must match [A-Za-z0-9_.-]{1,64} (it names the room)")
    title = _text(body, "title", "title", 200, required=False, default=lesson_id)
    tz_name = body.get("timeZone", "UTC")
    tz = zone(tz_name)
    start_ts = parse_time(body.get("start"), tz, "start")
    end_ts = parse_time(body.get("end"), tz, "end")
    check_times(start_ts, end_ts)
    instructor = parse_person(body.get("instructor"), "instructor")
    students_raw = body.get("students") or []
    if not isinstance(students_raw, list) or len(students_raw) > MAX_STUDENTS:
        raise BadBooking(f"students must be a list of at most {MAX_STUDENTS}")
    students = tuple(parse_person(s, f"students[{i}]") for i, s in enumerate(students_raw))
    ids = [instructor.id, *(s.id for s in students)]
    if len(set(ids)) != len(ids):
        raise BadBooking("every participant of a lesson needs its own id (a duplicate, or "
                         "the instructor listed as a student)")
    policy = body.get("recordingPolicy", "on_request")
    if policy not in RECORDING_POLICIES:
        raise BadBooking(f"recordingPolicy must be one of {', '.join(RECORDING_POLICIES)}")
    room = body.get("room") or {}
    if not isinstance(room, dict):
        raise BadBooking("room must be an object {reconnectWindowS?, maxParticipants?}")
    window = room.get("reconnectWindowS")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)
                               or not 0 <= window <= 600):
        raise BadBooking("room.reconnectWindowS must be 0..600 seconds")
    maxp = room.get("maxParticipants")
    if maxp is not None and (isinstance(maxp, bool) or not isinstance(maxp, int)
                             or not len(ids) <= maxp <= 1000):
        raise BadBooking(f"room.maxParticipants must be {len(ids)}..1000 (room for everyone "
                         "booked)")
    series = _text(body, "seriesId", "seriesId", 128, required=False)
    return Booking(lesson_id, title, start_ts, end_ts, tz_name, instructor, students,
                   policy, float(window) if window is not None else None, maxp, series)
