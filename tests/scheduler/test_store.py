"""The bookings database, on SQLite and on a real PostgreSQL: the migrations make exactly the
declared schema, bookings and imports are stored once, exceptions and notifications are
kept once per key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scheduler_bridge.booking import Booking, Person, Status, parse_booking
from scheduler_bridge.errors import (
    BadTransition,
    ExceptionNotFound,
    InstructorConflict,
    LessonExists,
    LessonNotFound,
)
from scheduler_bridge.exception_queue import ExceptionState, Raised
from scheduler_bridge.schema import metadata
from scheduler_bridge.store import Store

NOW = 1_800_000_000.0


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()


def booking(lesson: str, start: str = "2026-12-07T15:00Z", end: str = "2026-12-07T16:00Z",
            instructor: str = "t1", students: tuple[str, ...] = ("s1", "s2"), **kw: Any
            ) -> Booking:
    return parse_booking({"lessonId": lesson, "start": start, "end": end,
                          "instructor": {"id": instructor, "name": instructor.upper()},
                          "students": [{"id": s} for s in students], **kw})


def test_migrations_make_the_declared_schema_and_run_twice(store: Store) -> None:
    store.migrate()  # again: a no-op
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_create_get_list(store: Store) -> None:
    store.create(booking("L1", seriesId="s"), NOW, allow_overlap=False)
    store.create(booking("L2", "2026-12-07T17:00Z", "2026-12-07T18:00Z", students=("s3",)),
                 NOW, allow_overlap=False)
    store.create(booking("L3", "2026-12-08T15:00Z", "2026-12-08T16:00Z", instructor="t2"),
                 NOW, allow_overlap=False)
    got = store.get("L1")
    assert got is not None and got.booking == booking("L1", seriesId="s")
    assert store.get("nope") is None
    day = parse_booking({"lessonId": "x", "start": "2026-12-07T00:00Z",
                         "end": "2026-12-07T01:00Z", "instructor": {"id": "x"}}).start_ts
    found, total = store.lessons(start_from=day, start_to=day + 86400)
    assert [f.id for f in found] == ["L1", "L2"] and total == 2
    assert [f.id for f in store.lessons(student="s1")[0]] == ["L1", "L3"]
    assert [f.id for f in store.lessons(instructor="t2")[0]] == ["L3"]
    assert [f.id for f in store.lessons(series="s")[0]] == ["L1"]
    page, total = store.lessons(limit=1, offset=1)
    assert [f.id for f in page] == ["L2"] and total == 3
    with pytest.raises(LessonExists):
        store.create(booking("L1"), NOW, allow_overlap=False)


def test_overlapping_lessons_of_one_instructor_are_refused_unless_allowed(store: Store
                                                                          ) -> None:
    store.create(booking("L1"), NOW, allow_overlap=False)
    with pytest.raises(InstructorConflict, match="already teaches lesson L1"):
        store.create(booking("L2", "2026-12-07T15:30Z", "2026-12-07T16:30Z"), NOW,
                     allow_overlap=False)
    # back to back is fine, another instructor is fine, allowed overlap is fine
    store.create(booking("L3", "2026-12-07T16:00Z", "2026-12-07T17:00Z"), NOW,
                 allow_overlap=False)
    store.create(booking("L4", instructor="t9"), NOW, allow_overlap=False)
    store.create(booking("L5", "2026-12-07T15:30Z", "2026-12-07T16:30Z"), NOW,
                 allow_overlap=True)
    # a cancelled lesson no longer blocks its slot
    store.set_status("L1", Status.CANCELLED, NOW, cancel_reason="ill")
    store.create(booking("L6", "2026-12-07T15:00Z", "2026-12-07T15:30Z"), NOW,
                 allow_overlap=False)


def test_change_and_status(store: Store) -> None:
    store.create(booking("L1"), NOW, allow_overlap=False)
    old, new = store.change("L1", replace(booking("L1", "2026-12-07T18:00Z",
                                                  "2026-12-07T19:00Z"), revision=2),
                            NOW + 1, allow_overlap=False)
    assert old.booking.revision == 1 and new.booking.revision == 2
    assert store.get("L1").booking.start_ts == new.booking.start_ts  # type: ignore[union-attr]
    store.set_status("L1", Status.LIVE, NOW + 2, started_ts=NOW + 2)
    _, ended = store.set_status("L1", Status.ENDED, NOW + 3, closed_ts=NOW + 3)
    assert ended.booking.status == Status.ENDED and ended.started_ts == NOW + 2
    with pytest.raises(BadTransition):
        store.set_status("L1", Status.CANCELLED, NOW)
    with pytest.raises(LessonNotFound):
        store.set_status("nope", Status.LIVE, NOW)
    assert store.mark("L1", only_if_null="provisioned_ts", provisioned_ts=NOW)
    assert not store.mark("L1", only_if_null="provisioned_ts", provisioned_ts=NOW + 9)
    assert store.get("L1").provisioned_ts == NOW  # type: ignore[union-attr]
    assert store.lesson_counts() == {"ended": 1}


def test_import_is_idempotent_by_lesson_id(store: Store) -> None:
    rows = [(i + 2, booking(f"L{i}", f"2026-12-07T{8 + i:02d}:00Z",
                            f"2026-12-07T{8 + i:02d}:50Z")) for i in range(5)]
    first = store.import_bookings(rows, NOW, allow_overlap=False)
    assert len(first.created) == 5 and not first.refused
    again = store.import_bookings(rows, NOW, allow_overlap=False)
    assert len(again.unchanged) == 5 and not again.created and not again.updated
    moved = [rows[0], (3, replace(rows[1][1], start_ts=rows[1][1].start_ts + 600)),
             (4, replace(rows[2][1], title="renamed")),
             (5, booking("L9", "2026-12-07T08:30Z", "2026-12-07T09:00Z"))]  # clashes with L0
    third = store.import_bookings(moved, NOW, allow_overlap=False)
    assert third.unchanged == ["L0"] and sorted(third.updated) == ["L1", "L2"]
    assert [(r, lid, type(e).__name__) for r, lid, e in third.refused] == [
        (5, "L9", "InstructorConflict")]
    revisions = {c[1].id: c[1].booking.revision for c in third.changes}
    assert revisions == {"L1": 2, "L2": 1}  # a new time bumps the revision, a title not
    assert store.get("L9") is None
    assert store.lessons()[1] == 5


def test_active_lessons(store: Store) -> None:
    b = booking("L1")
    store.create(b, NOW, allow_overlap=False)
    store.create(booking("L2", instructor="t2"), NOW, allow_overlap=False)
    store.set_status("L2", Status.CANCELLED, NOW)
    assert [x.id for x in store.active(b.start_ts + 1, b.end_ts - 1)] == ["L1"]
    assert store.active(b.start_ts, b.end_ts - 1) == []  # starts too late
    assert store.active(b.start_ts + 1, b.end_ts) == []  # ended


def test_attendance_upsert(store: Store) -> None:
    store.create(booking("L1"), NOW, allow_overlap=False)
    row = {"lesson_id": "L1", "identity": "s1", "first_join_ts": NOW, "last_leave_ts": None,
           "present_s": 0.0, "joins": 1, "late": False}
    store.save_attendance([row])
    store.save_attendance([{**row, "last_leave_ts": NOW + 60, "present_s": 60.0}])
    got = store.attendance(["L1"])["L1"]["s1"]
    assert got["present_s"] == 60.0 and got["last_leave_ts"] == NOW + 60
    assert store.attendance(["L2"]) == {}


def test_exceptions_are_raised_once_and_move_through_their_states(store: Store) -> None:
    raised = Raised("instructor_no_show", "L1", "L1", "t1", NOW, {"graceS": 180})
    row = store.add_exception(raised)
    assert row is not None and row["state"] == "open" and row["evidence"] == {"graceS": 180}
    assert store.add_exception(replace(raised, ts=NOW + 5)) is None  # the same, again
    store.add_exception(Raised("student_no_show", "L1", "L1", "s1", NOW + 1))
    store.add_exception(Raised("recording_alarm", "adhoc", None, "", NOW + 2,
                               {"reason": "disk_low"}, detail="disk_low:local//"))
    ack = store.exception_transition(row["id"], ExceptionState.ACKNOWLEDGED, "ops-amy",
                                     "calling the teacher", NOW + 10)
    assert ack["state"] == "acknowledged" and ack["acknowledgedBy"] == "ops-amy"
    done = store.exception_transition(row["id"], ExceptionState.RESOLVED, "ops-amy",
                                      "substitute found", NOW + 20)
    assert done["resolvedBy"] == "ops-amy" and [h["note"] for h in done["history"]] == [
        "calling the teacher", "substitute found"]
    with pytest.raises(BadTransition):
        store.exception_transition(row["id"], ExceptionState.ACKNOWLEDGED, "x", "", NOW)
    with pytest.raises(ExceptionNotFound):
        store.exception_transition("EX_nope", ExceptionState.RESOLVED, "x", "", NOW)
    rows, total = store.exceptions(state=["open"])
    assert total == 2 and [r["kind"] for r in rows] == ["recording_alarm", "student_no_show"]
    assert store.exceptions(lesson="adhoc")[1] == 1
    assert store.exceptions(kind=["instructor_no_show"])[0][0]["state"] == "resolved"
    assert store.exception_counts()[("student_no_show", "open")] == 1


def test_notifications_are_claimed_once_and_interrupted_ones_never_resent(store: Store
                                                                          ) -> None:
    kw = {"lesson_id": "L1", "kind": "reminder", "channel": "email", "recipient": "a@x",
          "subject": "s", "body": "b", "now": NOW}
    nid = store.claim_notification("reminder:L1:1:900:email:a@x", **kw)
    assert nid is not None
    assert store.claim_notification("reminder:L1:1:900:email:a@x", **kw) is None
    store.notification_done(nid, "failed", now=NOW, error="refused",
                            next_attempt_ts=NOW + 30)
    assert store.next_retry() == NOW + 30
    assert store.notifications_due(NOW + 29) == []
    due = store.notifications_due(NOW + 30)
    assert [d["id"] for d in due] == [nid] and due[0]["attempts"] == 1
    # the process dies while sending it: at the next start it is uncertain, not resent
    assert store.interrupted_notifications() == 1
    assert store.notifications(lesson="L1")[0]["state"] == "uncertain"
    assert store.notifications_due(NOW + 999) == [] and store.next_retry() is None
    other = store.claim_notification("reminder:L1:1:900:event", **{**kw, "channel": "event"},
                                     )
    assert other is not None
    assert store.reminder_keys(["L1"]) == {"reminder:L1:1:900:email:a@x",
                                           "reminder:L1:1:900:event"}
    assert store.notification_counts() == {("email", "uncertain"): 1, ("event", "sending"): 1}


def test_people_keep_their_order_and_contacts(store: Store) -> None:
    b = parse_booking({"lessonId": "L1", "start": "2026-12-07T15:00Z",
                       "end": "2026-12-07T16:00Z",
                       "instructor": {"id": "t", "name": "Tea", "email": "t@x.example"},
                       "students": [{"id": f"s{i}", "guardians": [
                           {"name": "G", "email": f"g{i}@x.example"}]} for i in range(12)]})
    store.create(b, NOW, allow_overlap=False)
    got = store.get("L1")
    assert got is not None and got.booking == b
    assert got.booking.instructor == Person("t", "Tea", "t@x.example")
