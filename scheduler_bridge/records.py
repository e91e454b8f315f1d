"""Session records and the next lesson's brief (blocking: run in the bridge's database
thread).

A lesson's record holds what the bridge kept as it happened: the engagement report
(``session.report``), the recording's outcome (``recording.completed``/``failed``: where
both copies are, duration, problems), the instructor's approved summary
(``summary.approved``), its attendance rows, its exceptions and the instructor's notes.
The brief is what the instructor sees on joining the next lesson of the same series (or
of the same students): the previous lesson's date, attendance, notes, approved summary and
open exceptions.
"""

from __future__ import annotations

from typing import Any

from .booking import iso_utc
from .store import Lesson, Store

OPEN = ("open", "acknowledged")


def session_record(store: Store, lesson: Lesson) -> dict[str, Any]:
    seen = store.attendance([lesson.id]).get(lesson.id, {})
    exceptions, _ = store.exceptions(lesson=lesson.id, limit=1000)
    record = lesson.record or {}
    return {
        "lesson": lesson.to_json(), "notes": lesson.notes,
        "report": record.get("report"), "recording": record.get("recording"),
        "summary": record.get("summary"),
        "attendance": [
            {"identity": p.id, "name": p.name, "role": role, "came": p.id in seen,
             "firstJoinAt": seen[p.id]["first_join_ts"] if p.id in seen else None,
             "presentS": round(seen[p.id]["present_s"], 1) if p.id in seen else 0.0,
             "joins": seen[p.id]["joins"] if p.id in seen else 0,
             "late": bool(seen[p.id]["late"]) if p.id in seen else False}
            for p, role in lesson.booking.people()],
        "exceptions": exceptions,
    }


def brief(store: Store, lesson: Lesson) -> dict[str, Any] | None:
    """The previous lesson, as the instructor of ``lesson`` needs it (None: there is
    none)."""
    before = store.previous(lesson)
    if before is None:
        return None
    seen = store.attendance([before.id]).get(before.id, {})
    exceptions, _ = store.exceptions(lesson=before.id, state=OPEN, limit=50)
    students = before.booking.students
    return {
        "lessonId": before.id, "title": before.booking.title,
        "start": iso_utc(before.booking.start_ts), "status": str(before.booking.status),
        "came": [s.name for s in students if s.id in seen],
        "absent": [s.name for s in students if s.id not in seen],
        "notes": before.notes,
        # the instructor's approved summary of it (transcription.summaries), if any
        "summary": (before.record or {}).get("summary"),
        "openExceptions": [{"id": e["id"], "kind": e["kind"], "person": e["person"]}
                           for e in exceptions],
    }
