"""The bookings database: lessons and their people, attendance, the exception queue and the
notification log, on SQLite (default, one file) or PostgreSQL (``scheduler.database_url``).

Blocking (SQLAlchemy Core): :class:`~scheduler_bridge.service.Bridge` calls it from one
worker thread, so calls never overlap and the event loop never waits on the disk. Every
method is one transaction. The schema comes from the Alembic migrations (:func:`migrate`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .booking import Booking, Contact, Person, Status, transition
from .errors import ExceptionNotFound, InstructorConflict, LessonExists, LessonNotFound
from .exception_queue import ExceptionState, Raised
from .exception_queue import transition as exception_transition
from .schema import attendance, exceptions, lessons, notifications, people

MIGRATIONS = Path(__file__).parent / "migrations"
#: lessons whose status means they still take place
ACTIVE = (Status.SCHEDULED.value, Status.LIVE.value)
CHANGEABLE_STATES = (Status.SCHEDULED, Status.LIVE)
_CHUNK = 500


@dataclass
class Lesson:
    """A booking with what happened to it so far."""

    booking: Booking
    provisioned_ts: float | None = None
    started_ts: float | None = None
    closed_ts: float | None = None
    notes: str = ""
    cancel_reason: str = ""
    record: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.booking.lesson_id

    def to_json(self) -> dict[str, Any]:
        return {**self.booking.to_json(), "provisionedAt": self.provisioned_ts,
                "startedAt": self.started_ts, "closedAt": self.closed_ts,
                "notes": self.notes, "cancelReason": self.cancel_reason}


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: (row, lesson id, error) of rows the database refused (instructor conflicts)
    refused: list[tuple[int, str, Exception]] = field(default_factory=list)
    #: (old, new) of updated bookings
    changes: list[tuple[Lesson, Lesson]] = field(default_factory=list)


def database_url(database_url: str, sqlite_path: str) -> str:
    if database_url:
        return database_url
    path = Path(sqlite_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(url, connect_args={"check_same_thread": False},
                               poolclass=StaticPool if memory else None)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def migrate(self) -> None:
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- bookings -------------------------------------------------------------------------

    def get(self, lesson_id: str) -> Lesson | None:
        with self.engine.connect() as conn:
            found = self._load(conn, select(lessons).where(lessons.c.id == lesson_id))
        return found[0] if found else None

    def require(self, conn: Connection, lesson_id: str) -> Lesson:
        found = self._load(conn, select(lessons).where(lessons.c.id == lesson_id))
        if not found:
            raise LessonNotFound(f"no lesson {lesson_id!r}")
        return found[0]

    def create(self, booking: Booking, now: float, *, allow_overlap: bool) -> Lesson:
        with self.engine.begin() as conn:
            if conn.execute(select(lessons.c.id).where(lessons.c.id == booking.lesson_id)
                            ).first() is not None:
                raise LessonExists(f"lesson {booking.lesson_id!r} exists (change it with "
                                   "PATCH, reschedule or substitute)")
            self._check_overlap(conn, booking, allow_overlap)
            self._insert(conn, booking, now)
        return Lesson(booking)

    def change(self, lesson_id: str, new: Booking, now: float, *, allow_overlap: bool
               ) -> tuple[Lesson, Lesson]:
        """Replace the booking of a lesson (kept: its status); its revision becomes
        ``new.revision``. Returns (old, new)."""
        with self.engine.begin() as conn:
            old = self.require(conn, lesson_id)
            new = replace(new, status=old.booking.status)
            if (new.start_ts, new.end_ts, new.instructor.id) != (
                    old.booking.start_ts, old.booking.end_ts, old.booking.instructor.id):
                self._check_overlap(conn, new, allow_overlap)
            self._update(conn, new, now)
        return old, replace(old, booking=new)

    def set_status(self, lesson_id: str, to: Status, now: float, **columns: Any
                   ) -> tuple[Lesson, Lesson]:
        """Move a lesson to ``to`` (checked against the transition table), setting
        ``columns`` (``started_ts``, ``closed_ts``, ``cancel_reason``) with it."""
        with self.engine.begin() as conn:
            old = self.require(conn, lesson_id)
            transition(old.booking.status, to)
            conn.execute(update(lessons).where(lessons.c.id == lesson_id).values(
                status=to.value, updated_ts=now, **columns))
            new = self.require(conn, lesson_id)
        return old, new

    def mark(self, lesson_id: str, *, only_if_null: str | None = None, **columns: Any) -> bool:
        """Set columns of a lesson (provisioned_ts, notes, record); with ``only_if_null``,
        only when that column is still NULL (True if it was set now)."""
        where = lessons.c.id == lesson_id
        if only_if_null is not None:
            where = and_(where, lessons.c[only_if_null].is_(None))
        with self.engine.begin() as conn:
            return conn.execute(update(lessons).where(where).values(**columns)).rowcount > 0

    def merge_record(self, lesson_id: str, key: str, value: Any) -> bool:
        """Put ``value`` under ``key`` in the lesson's session record (False: no such
        lesson, e.g. the room of no booking)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(lessons.c.record).where(lessons.c.id == lesson_id)
                               .with_for_update()).first()
            if row is None:
                return False
            conn.execute(update(lessons).where(lessons.c.id == lesson_id).values(
                record={**(row.record or {}), key: value}))
            return True

    def previous(self, lesson: Lesson) -> Lesson | None:
        """The lesson before this one that took place: of its series, or (without a
        series) the latest one this instructor taught to one of its students."""
        b = lesson.booking
        conds = [lessons.c.status.in_(("ended", "no_show")), lessons.c.start_ts < b.start_ts,
                 lessons.c.id != b.lesson_id]
        if b.series_id:
            conds.append(lessons.c.series_id == b.series_id)
        else:
            conds += [lessons.c.instructor_id == b.instructor.id, lessons.c.id.in_(
                select(people.c.lesson_id).where(people.c.role == "student", people.c.identity
                                                 .in_([s.id for s in b.students] or [""])))]
        with self.engine.connect() as conn:
            found = self._load(conn, select(lessons).where(*conds)
                               .order_by(lessons.c.start_ts.desc()).limit(1))
        return found[0] if found else None

    def lessons(self, *, start_from: float | None = None, start_to: float | None = None,
                instructor: str | None = None, student: str | None = None,
                status: Sequence[str] = (), series: str | None = None, limit: int = 100,
                offset: int = 0, newest_first: bool = False) -> tuple[list[Lesson], int]:
        """Lessons starting in [start_from, start_to), filtered, by start time; and how
        many match in all."""
        conds: list[Any] = []
        if start_from is not None:
            conds.append(lessons.c.start_ts >= start_from)
        if start_to is not None:
            conds.append(lessons.c.start_ts < start_to)
        if instructor:
            conds.append(lessons.c.instructor_id == instructor)
        if status:
            conds.append(lessons.c.status.in_(list(status)))
        if series:
            conds.append(lessons.c.series_id == series)
        if student:
            conds.append(lessons.c.id.in_(select(people.c.lesson_id).where(
                people.c.identity == student, people.c.role == "student")))
        where = and_(*conds) if conds else and_(True)
        order = (lessons.c.start_ts.desc() if newest_first else lessons.c.start_ts, lessons.c.id)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(lessons).where(where)
                                 ).scalar_one()
            found = self._load(conn, select(lessons).where(where).order_by(*order)
                               .limit(limit).offset(offset))
        return found, int(total)

    def active(self, start_before: float, end_after: float) -> list[Lesson]:
        """Lessons still to take place or taking place (scheduled or live) that start
        before ``start_before`` and end after ``end_after``: what the planner and the
        watch hold."""
        with self.engine.connect() as conn:
            return self._load(conn, select(lessons).where(
                lessons.c.status.in_(ACTIVE), lessons.c.start_ts < start_before,
                lessons.c.end_ts > end_after).order_by(lessons.c.start_ts))

    def import_bookings(self, rows: Iterable[tuple[int, Booking]], now: float, *,
                        allow_overlap: bool) -> ImportResult:
        """Store each booking (one transaction): new ones created, changed ones updated (a
        changed time or instructor bumps the revision, as a reschedule does), identical
        ones left alone; a row refused (instructor conflict, lesson no longer changeable)
        is reported and the others go on. Conflicts are checked in memory against the
        instructors' lessons of the import's span, and new lessons inserted in bulk."""
        out = ImportResult()
        rows = list(rows)
        if not rows:
            return out
        with self.engine.begin() as conn:
            existing = {lesson.id: lesson for chunk in _chunks([b.lesson_id for _, b in rows])
                        for lesson in self._load(conn, select(lessons).where(
                            lessons.c.id.in_(chunk)))}
            busy = self._busy(conn, [b for _, b in rows], allow_overlap)
            created: list[Booking] = []
            for number, booking in rows:
                old = existing.get(booking.lesson_id)
                try:
                    if old is not None and old.booking.same_booking(booking):
                        out.unchanged.append(booking.lesson_id)
                        continue
                    if old is not None and old.booking.status not in CHANGEABLE_STATES:
                        raise LessonExists(f"lesson {booking.lesson_id} is "
                                           f"{old.booking.status} and cannot change")
                    new, moved = booking, True
                    if old is not None:
                        moved = (booking.start_ts, booking.end_ts, booking.instructor.id) != (
                            old.booking.start_ts, old.booking.end_ts, old.booking.instructor.id)
                        new = replace(booking, status=old.booking.status,
                                      revision=old.booking.revision + (1 if moved else 0))
                    if busy is not None and moved:
                        _claim_slot(busy, new)
                except (InstructorConflict, LessonExists) as exc:
                    out.refused.append((number, booking.lesson_id, exc))
                    continue
                if old is None:
                    created.append(new)
                    out.created.append(new.lesson_id)
                else:
                    self._update(conn, new, now)
                    out.updated.append(new.lesson_id)
                    out.changes.append((old, replace(old, booking=new)))
            if created:
                conn.execute(insert(lessons), [
                    {"id": b.lesson_id, "created_ts": now, "cancel_reason": "", "notes": "",
                     **_columns(b, now)} for b in created])
                conn.execute(insert(people), [r for b in created for r in _people_rows(b)])
        return out

    @staticmethod
    def _busy(conn: Connection, batch: list[Booking], allow_overlap: bool
              ) -> dict[str, list[tuple[float, float, str]]] | None:
        """The lessons that the batch's instructors teach in the batch's span (None when
        overlaps are allowed): (start, end, lesson id) by instructor."""
        if allow_overlap:
            return None
        busy: dict[str, list[tuple[float, float, str]]] = {}
        first, last = min(b.start_ts for b in batch), max(b.end_ts for b in batch)
        for chunk in _chunks(sorted({b.instructor.id for b in batch})):
            for r in conn.execute(select(lessons.c.instructor_id, lessons.c.start_ts,
                                         lessons.c.end_ts, lessons.c.id).where(
                    lessons.c.instructor_id.in_(chunk), lessons.c.status.in_(ACTIVE),
                    lessons.c.start_ts < last, lessons.c.end_ts > first)):
                busy.setdefault(r.instructor_id, []).append((r.start_ts, r.end_ts, r.id))
        return busy

    def _check_overlap(self, conn: Connection, booking: Booking, allow: bool) -> None:
        busy = self._busy(conn, [booking], allow)
        if busy is not None:
            _claim_slot(busy, booking)

    def _insert(self, conn: Connection, b: Booking, now: float) -> None:
        conn.execute(insert(lessons).values(
            id=b.lesson_id, created_ts=now, cancel_reason="", notes="", **_columns(b, now)))
        self._write_people(conn, b)

    def _update(self, conn: Connection, b: Booking, now: float) -> None:
        conn.execute(update(lessons).where(lessons.c.id == b.lesson_id).values(
            **_columns(b, now)))
        conn.execute(delete(people).where(people.c.lesson_id == b.lesson_id))
        self._write_people(conn, b)

    @staticmethod
    def _write_people(conn: Connection, b: Booking) -> None:
        conn.execute(insert(people), _people_rows(b))

    def _load(self, conn: Connection, query: Any) -> list[Lesson]:
        rows = conn.execute(query).all()
        if not rows:
            return []
        folks: dict[str, list[Row[Any]]] = {}
        for chunk in _chunks([r.id for r in rows]):
            for p in conn.execute(select(people).where(people.c.lesson_id.in_(chunk))
                                  .order_by(people.c.lesson_id, people.c.position)):
                folks.setdefault(p.lesson_id, []).append(p)
        return [_lesson(r, folks.get(r.id, [])) for r in rows]

    # -- attendance -----------------------------------------------------------------------

    def attendance(self, lesson_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(lesson_ids)):
                for r in conn.execute(select(attendance).where(
                        attendance.c.lesson_id.in_(chunk))):
                    out.setdefault(r.lesson_id, {})[r.identity] = dict(r._mapping)
        return out

    def save_attendance(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert attendance rows (lesson_id, identity, first_join_ts, last_leave_ts,
        present_s, joins, late) in one statement."""
        if not rows:
            return
        from sqlalchemy.dialects import postgresql, sqlite
        dialect: Any = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(attendance)
        stmt = stmt.on_conflict_do_update(
            index_elements=["lesson_id", "identity"],
            set_={c: stmt.excluded[c] for c in ("first_join_ts", "last_leave_ts", "present_s",
                                                 "joins", "late")})
        with self.engine.begin() as conn:
            conn.execute(stmt, list(rows))

    # -- exception queue ------------------------------------------------------------------

    def add_exception(self, raised: Raised) -> dict[str, Any] | None:
        """Put an exception in the queue, unless one with its dedup key is there (None)."""
        added = self.add_exceptions([raised])
        return added[0][1] if added else None

    def add_exceptions(self, batch: Sequence[Raised]) -> list[tuple[str, dict[str, Any]]]:
        """Put exceptions in the queue in one transaction, each unless one with its dedup
        key is there; returns (dedup key, exception) of the ones added, in order."""
        rows: dict[str, dict[str, Any]] = {}
        for raised in batch:
            rows.setdefault(raised.dedup_key, _exception_row(raised))
        if not rows:
            return []
        try:
            with self.engine.begin() as conn:
                for chunk in _chunks(list(rows)):
                    for known in conn.execute(select(exceptions.c.dedup_key).where(
                            exceptions.c.dedup_key.in_(chunk))):
                        rows.pop(known.dedup_key, None)
                if rows:
                    conn.execute(insert(exceptions), list(rows.values()))
        except IntegrityError:  # raised at the same moment by another writer: one by one
            return [added for raised in batch if (added := self._add_one(raised)) is not None]
        return [(key, _exception_json(row)) for key, row in rows.items()]

    def _add_one(self, raised: Raised) -> tuple[str, dict[str, Any]] | None:
        row = _exception_row(raised)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(exceptions).values(**row))
        except IntegrityError:
            return None
        return raised.dedup_key, _exception_json(row)

    def exception_transition(self, exception_id: str, to: ExceptionState, by: str, note: str,
                             now: float) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = conn.execute(select(exceptions).where(exceptions.c.id == exception_id)
                               ).first()
            if row is None:
                raise ExceptionNotFound(f"no exception {exception_id!r}")
            exception_transition(row.state, to)
            who = "acknowledged" if to is ExceptionState.ACKNOWLEDGED else "resolved"
            history = [*row.history, {"state": to.value, "by": by, "note": note, "ts": now}]
            conn.execute(update(exceptions).where(exceptions.c.id == exception_id).values(
                state=to.value, history=history, **{f"{who}_by": by, f"{who}_ts": now}))
            return _exception_json(dict(conn.execute(select(exceptions).where(
                exceptions.c.id == exception_id)).one()._mapping))

    def exceptions(self, *, state: Sequence[str] = (), kind: Sequence[str] = (),
                   lesson: str | None = None, raised_from: float | None = None,
                   raised_to: float | None = None, limit: int = 100, offset: int = 0
                   ) -> tuple[list[dict[str, Any]], int]:
        conds: list[Any] = []
        if state:
            conds.append(exceptions.c.state.in_(list(state)))
        if kind:
            conds.append(exceptions.c.kind.in_(list(kind)))
        if lesson:
            conds.append(or_(exceptions.c.lesson_id == lesson, exceptions.c.room == lesson))
        if raised_from is not None:
            conds.append(exceptions.c.raised_ts >= raised_from)
        if raised_to is not None:
            conds.append(exceptions.c.raised_ts < raised_to)
        where = and_(*conds) if conds else and_(True)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(exceptions).where(where)
                                 ).scalar_one()
            rows = conn.execute(select(exceptions).where(where).order_by(
                exceptions.c.raised_ts.desc(), exceptions.c.id).limit(limit).offset(offset))
            return [_exception_json(dict(r._mapping)) for r in rows], int(total)

    def exception_counts(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            return {(r.kind, r.state): int(r.n) for r in conn.execute(
                select(exceptions.c.kind, exceptions.c.state, func.count().label("n"))
                .group_by(exceptions.c.kind, exceptions.c.state))}

    def lesson_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r.status: int(r.n) for r in conn.execute(
                select(lessons.c.status, func.count().label("n")).group_by(lessons.c.status))}

    # -- notifications --------------------------------------------------------------------

    def claim_notification(self, key: str, *, lesson_id: str | None, kind: str, channel: str,
                           recipient: str, subject: str, body: str, now: float,
                           state: str = "sending") -> int | None:
        """Record a notification before it goes out; None if its key was claimed already
        (then it is never sent again)."""
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(notifications.c.id).where(
                        notifications.c.key == key)).first() is not None:
                    return None
                result = conn.execute(insert(notifications).values(
                    key=key[:400], lesson_id=lesson_id, kind=kind, channel=channel,
                    recipient=recipient[:254], subject=subject[:300], body=body, state=state,
                    attempts=0, last_error="", created_ts=now))
                pk = result.inserted_primary_key
                return int(pk[0]) if pk else None
        except IntegrityError:
            return None

    def notification_done(self, notification_id: int, state: str, *, now: float,
                          error: str = "", next_attempt_ts: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(notifications).where(notifications.c.id == notification_id)
                         .values(state=state, attempts=notifications.c.attempts + (
                             1 if state in ("sent", "failed", "dead") else 0),
                             last_error=error[:2000], next_attempt_ts=next_attempt_ts,
                             sent_ts=now if state == "sent" else None))

    def notifications_due(self, now: float) -> list[dict[str, Any]]:
        """Failed notifications whose retry time has come (marked sending again)."""
        with self.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(notifications).where(
                notifications.c.state == "failed", notifications.c.next_attempt_ts <= now))]
            if rows:
                conn.execute(update(notifications).where(notifications.c.id.in_(
                    [r["id"] for r in rows])).values(state="sending"))
        return rows

    def next_retry(self) -> float | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.min(notifications.c.next_attempt_ts)).where(
                notifications.c.state == "failed")).scalar()
            return float(value) if value is not None else None

    def interrupted_notifications(self) -> int:
        """At start: notifications that were being sent when the process stopped become
        ``uncertain`` (they may have gone out: never sent again)."""
        with self.engine.begin() as conn:
            return int(conn.execute(update(notifications).where(
                notifications.c.state == "sending").values(state="uncertain")).rowcount)

    def notifications(self, *, lesson: str | None = None, kind: str | None = None,
                      limit: int = 200) -> list[dict[str, Any]]:
        conds: list[Any] = []
        if lesson:
            conds.append(notifications.c.lesson_id == lesson)
        if kind:
            conds.append(notifications.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(notifications).where(and_(*conds) if conds else and_(True))
                .order_by(notifications.c.id).limit(limit))]

    def reminder_keys(self, lesson_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(lesson_ids)):
                out.update(r.key for r in conn.execute(select(notifications.c.key).where(
                    notifications.c.lesson_id.in_(chunk), notifications.c.kind == "reminder")))
        return out

    def notification_counts(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            return {(r.channel, r.state): int(r.n) for r in conn.execute(
                select(notifications.c.channel, notifications.c.state,
                       func.count().label("n"))
                .group_by(notifications.c.channel, notifications.c.state))}


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _people_rows(b: Booking) -> list[dict[str, Any]]:
    return [{"lesson_id": b.lesson_id, "identity": p.id, "name": p.name, "role": role,
             "email": p.email, "position": i,
             "guardians": [{"name": g.name, "email": g.email} for g in p.guardians]}
            for i, (p, role) in enumerate(b.people())]


def _claim_slot(busy: dict[str, list[tuple[float, float, str]]], b: Booking) -> None:
    """Refuse ``b`` if its instructor teaches another lesson at that time, else note it."""
    slots = busy.setdefault(b.instructor.id, [])
    for start, end, lesson_id in slots:
        if lesson_id != b.lesson_id and start < b.end_ts and end > b.start_ts:
            raise InstructorConflict(
                f"instructor {b.instructor.id!r} already teaches lesson {lesson_id} at that "
                "time (scheduler.allow_instructor_overlap is off)")
    slots[:] = [s for s in slots if s[2] != b.lesson_id]
    slots.append((b.start_ts, b.end_ts, b.lesson_id))


def _columns(b: Booking, now: float) -> dict[str, Any]:
    return {"title": b.title, "start_ts": b.start_ts, "end_ts": b.end_ts,
            "time_zone": b.time_zone, "instructor_id": b.instructor.id,
            "series_id": b.series_id, "recording_policy": b.recording_policy,
            "reconnect_window_s": b.reconnect_window_s, "max_participants": b.max_participants,
            "status": str(b.status), "revision": b.revision, "updated_ts": now}


def _person(p: Row[Any]) -> Person:
    return Person(p.identity, p.name, p.email,
                  tuple(Contact(g.get("name", ""), g.get("email", "")) for g in p.guardians or ()))


def _lesson(r: Row[Any], folks: list[Row[Any]]) -> Lesson:
    instructor = next((p for p in folks if p.role == "instructor"), None)
    booking = Booking(
        r.id, r.title, r.start_ts, r.end_ts, r.time_zone,
        _person(instructor) if instructor is not None else Person(r.instructor_id,
                                                                   r.instructor_id),
        tuple(_person(p) for p in folks if p.role == "student"), r.recording_policy,
        r.reconnect_window_s, r.max_participants, r.series_id, Status(r.status), r.revision)
    return Lesson(booking, r.provisioned_ts, r.started_ts, r.closed_ts, r.notes,
                  r.cancel_reason, r.record)


def _exception_row(raised: Raised) -> dict[str, Any]:
    return {"id": "EX_" + secrets.token_hex(6), "dedup_key": raised.dedup_key,
            "lesson_id": raised.lesson_id, "room": raised.room, "kind": raised.kind,
            "person": raised.person, "evidence": raised.evidence, "raised_ts": raised.ts,
            "state": ExceptionState.OPEN.value, "history": []}


def _exception_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "lessonId": row["lesson_id"],
            "room": row["room"], "person": row["person"], "evidence": row["evidence"],
            "raisedAt": row["raised_ts"], "state": row["state"],
            "acknowledgedBy": row.get("acknowledged_by"),
            "acknowledgedAt": row.get("acknowledged_ts"),
            "resolvedBy": row.get("resolved_by"), "resolvedAt": row.get("resolved_ts"),
            "history": row.get("history") or []}
