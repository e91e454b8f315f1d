"""The attendance watch (sans-IO): each booked participant's joins and leaves against the
booking, and the exceptions they make (docs/scheduling.md).

Fed the event bus's events (:meth:`AttendanceWatch.on_event`) and the clock
(:meth:`handle_timer` at :meth:`get_timer`), it returns what to raise: :class:`Raised`
exceptions and :class:`Started` lessons. Checks:

- at ``start + instructor_grace_s``: the instructor has not joined → ``instructor_no_show``;
  recording policy ``always``, someone there, and no recording running →
  ``recording_not_running``;
- at a booked participant's first join after ``start + late_join_s`` → ``late_join``;
- at the booked end: nobody booked ever joined → ``lesson_never_started``; otherwise each
  student who never joined → ``student_no_show``, and the room empty since more than
  ``early_end_s`` before the end → ``early_end`` (also when the room is closed that early);
- ``recording.failed`` → ``recording_failed``; ``recording.alarm`` → ``recording_alarm``
  (any room, booked or not); ``session.report`` flags on a booked student →
  ``student_flagged``.

Attendance (first join, last leave, time present, joins) is kept per lesson and person;
:meth:`take_changed` gives the rows changed since it was last called, for the database, and
:meth:`expect` takes them back after a restart.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from .exception_queue import Raised


@dataclass(frozen=True, slots=True)
class Expected:
    lesson_id: str
    start_ts: float
    end_ts: float
    instructor: str
    students: tuple[str, ...]
    recording_expected: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    lesson_id: str
    identity: str
    ts: float


@dataclass
class _Attendee:
    first_join_ts: float
    last_leave_ts: float | None = None
    present_s: float = 0.0
    joins: int = 0
    late: bool = False
    #: connections present now (a replaced connection leaves after the new one joins)
    present: int = 0
    since: float = 0.0


@dataclass
class _Watched:
    expected: Expected
    attendees: dict[str, _Attendee] = field(default_factory=dict)
    started: bool = False
    start_checked: bool = False
    end_checked: bool = False
    room_closed: bool = False
    recording: bool = False
    last_leave_ts: float | None = None


Outcome = Raised | Started
#: a room closed for these reasons is not the lesson ending
NOT_AN_END = ("server_shutdown", "lesson_rescheduled")


class AttendanceWatch:
    def __init__(self, *, instructor_grace_s: float = 180.0, late_join_s: float = 300.0,
                 early_end_s: float = 300.0) -> None:
        self.instructor_grace_s = instructor_grace_s
        self.late_join_s = late_join_s
        self.early_end_s = early_end_s
        self.lessons: dict[str, _Watched] = {}
        self._timers: list[tuple[float, str]] = []
        self._changed: set[tuple[str, str]] = set()

    # -- what to watch ------------------------------------------------------------------

    def expect(self, expected: Expected, attendance: dict[str, dict[str, Any]] | None = None,
               *, started: bool = False) -> None:
        """Watch a lesson (again, with new times or people after a change); ``attendance``
        restores its rows from the database after a restart."""
        w = self.lessons.get(expected.lesson_id)
        if w is None:
            w = self.lessons[expected.lesson_id] = _Watched(expected, started=started)
            for identity, row in (attendance or {}).items():
                w.attendees[identity] = _Attendee(
                    row["first_join_ts"], row["last_leave_ts"], row["present_s"], row["joins"],
                    bool(row["late"]))
                w.started = True
                if row["last_leave_ts"] is not None:
                    w.last_leave_ts = max(w.last_leave_ts or 0.0, row["last_leave_ts"])
        else:
            if (expected.start_ts, expected.end_ts) != (w.expected.start_ts,
                                                        w.expected.end_ts):
                w.start_checked = w.end_checked = False
            w.expected = expected
        heapq.heappush(self._timers, (expected.start_ts + self.instructor_grace_s,
                                      expected.lesson_id))
        heapq.heappush(self._timers, (expected.end_ts, expected.lesson_id))

    def forget(self, lesson_id: str) -> None:
        self.lessons.pop(lesson_id, None)

    def present(self, lesson_id: str) -> int:
        w = self.lessons.get(lesson_id)
        return sum(1 for a in w.attendees.values() if a.present) if w else 0

    def take_changed(self) -> list[dict[str, Any]]:
        """Attendance rows changed since the last call (for the database)."""
        rows = []
        for lesson_id, identity in self._changed:
            w = self.lessons.get(lesson_id)
            a = w.attendees.get(identity) if w else None
            if a is not None:
                rows.append({"lesson_id": lesson_id, "identity": identity,
                             "first_join_ts": a.first_join_ts, "last_leave_ts": a.last_leave_ts,
                             "present_s": a.present_s, "joins": a.joins, "late": a.late})
        self._changed.clear()
        return rows

    # -- inputs ---------------------------------------------------------------------------

    def on_event(self, type_: str, room: str, data: dict[str, Any], now: float
                 ) -> list[Outcome]:
        w = self.lessons.get(room)
        if type_ == "recording.alarm":
            where = "/".join(str(data.get(k, "")) for k in ("sink", "track", "participant"))
            return [Raised("recording_alarm", room, room if w else None,
                           str(data.get("participant", "")), now, dict(data),
                           detail=f"{data.get('reason')}:{where}")]
        if type_ == "recording.failed":
            if w is not None:
                w.recording = False
            return [Raised("recording_failed", room, room if w else None, "", now,
                           {"recording": data.get("recording"), "reason": data.get("reason"),
                            "problems": data.get("problems", [])},
                           detail=str(data.get("recording", "")))]
        if w is None:
            return []
        if type_ == "participant.joined":
            return self._joined(w, str(data.get("identity", "")), now)
        if type_ == "participant.left":
            self._left(w, str(data.get("identity", "")), now)
        elif type_ == "recording.started":
            w.recording = True
        elif type_ == "recording.completed":
            w.recording = False
        elif type_ == "room.closed":
            return self._room_closed(w, str(data.get("reason", "")), now)
        elif type_ == "session.report":
            return self._flags(w, data.get("flags") or [], now)
        return []

    def get_timer(self) -> float | None:
        while self._timers and self._timers[0][1] not in self.lessons:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> list[Outcome]:
        out: list[Outcome] = []
        while self._timers and self._timers[0][0] <= now:
            _, lesson_id = heapq.heappop(self._timers)
            w = self.lessons.get(lesson_id)
            if w is None:
                continue
            e = w.expected
            if not w.start_checked and now >= e.start_ts + self.instructor_grace_s:
                w.start_checked = True
                out.extend(self._start_check(w, now))
            if not w.end_checked and now >= e.end_ts:
                w.end_checked = True
                out.extend(self._end_check(w, now))
        return out

    # -- checks ---------------------------------------------------------------------------

    def _joined(self, w: _Watched, identity: str, now: float) -> list[Outcome]:
        e = w.expected
        if identity != e.instructor and identity not in e.students:
            return []
        out: list[Outcome] = []
        a = w.attendees.get(identity)
        if a is None:
            a = w.attendees[identity] = _Attendee(now)
            if e.start_ts + self.late_join_s < now < e.end_ts:
                a.late = True
                out.append(Raised("late_join", e.lesson_id, e.lesson_id, identity, now, {
                    "joinedAt": now, "start": e.start_ts, "lateByS": round(now - e.start_ts),
                    "role": "instructor" if identity == e.instructor else "student"}))
        if not a.present:
            a.since = now
        a.present += 1
        a.joins += 1
        self._changed.add((e.lesson_id, identity))
        if not w.started:
            w.started = True
            out.append(Started(e.lesson_id, identity, now))
        return out

    def _left(self, w: _Watched, identity: str, now: float) -> None:
        a = w.attendees.get(identity)
        if a is None or not a.present:
            return
        a.present -= 1
        if not a.present:
            a.present_s += max(0.0, now - a.since)
            a.last_leave_ts = w.last_leave_ts = now
            self._changed.add((w.expected.lesson_id, identity))

    def _room_closed(self, w: _Watched, reason: str, now: float) -> list[Outcome]:
        for identity, a in w.attendees.items():
            while a.present:
                self._left(w, identity, now)
        if reason in NOT_AN_END:
            return []  # the room comes back (after the restart, before the new time)
        w.room_closed = True
        e = w.expected
        if w.started and now < e.end_ts - self.early_end_s:
            return [Raised("early_end", e.lesson_id, e.lesson_id, "", now, {
                "closedAt": now, "end": e.end_ts, "reason": reason,
                "earlyByS": round(e.end_ts - now)})]
        return []

    def _start_check(self, w: _Watched, now: float) -> list[Outcome]:
        e = w.expected
        out: list[Outcome] = []
        if e.instructor not in w.attendees:
            out.append(Raised("instructor_no_show", e.lesson_id, e.lesson_id, e.instructor,
                              now, {"start": e.start_ts, "checkedAt": now,
                                    "graceS": self.instructor_grace_s,
                                    "present": sorted(i for i, a in w.attendees.items()
                                                      if a.present)}))
        someone = any(a.present for a in w.attendees.values())
        if e.recording_expected and someone and not w.recording and not w.room_closed:
            out.append(Raised("recording_not_running", e.lesson_id, e.lesson_id, "", now,
                              {"policy": "always", "checkedAt": now}))
        return out

    def _end_check(self, w: _Watched, now: float) -> list[Outcome]:
        e = w.expected
        if not w.attendees:
            return [Raised("lesson_never_started", e.lesson_id, e.lesson_id, "", now, {
                "start": e.start_ts, "end": e.end_ts, "instructor": e.instructor,
                "students": len(e.students)})]
        out: list[Outcome] = [
            Raised("student_no_show", e.lesson_id, e.lesson_id, s, now,
                   {"start": e.start_ts, "end": e.end_ts})
            for s in e.students if s not in w.attendees]
        empty = not any(a.present for a in w.attendees.values())
        if (empty and not w.room_closed and w.last_leave_ts is not None
                and w.last_leave_ts < e.end_ts - self.early_end_s):
            out.append(Raised("early_end", e.lesson_id, e.lesson_id, "", now, {
                "lastLeaveAt": w.last_leave_ts, "end": e.end_ts,
                "earlyByS": round(e.end_ts - w.last_leave_ts)}))
        return out

    def _flags(self, w: _Watched, flags: list[Any], now: float) -> list[Outcome]:
        out: list[Outcome] = []
        for flag in flags:
            if not isinstance(flag, dict) or flag.get("identity") not in w.expected.students:
                continue
            out.append(Raised("student_flagged", w.expected.lesson_id, w.expected.lesson_id,
                              str(flag["identity"]), now,
                              {"flag": flag.get("flag"), "detail": flag.get("detail")},
                              detail=str(flag.get("flag"))))
        return out
