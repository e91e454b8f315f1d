"""The bookings database (SQLAlchemy Core): one schema for SQLite and PostgreSQL.

Times are unix seconds (UTC) in ``*_ts`` columns; in PostgreSQL ``to_timestamp(start_ts)``
reads them as ``timestamptz``. The schema is made and changed only by the Alembic
migrations in ``migrations/versions`` (a test checks that they produce exactly this).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

lessons = Table(
    "lessons", metadata,
    Column("id", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("instructor_id", String(128), nullable=False),
    Column("series_id", String(128), nullable=False),
    Column("recording_policy", String(16), nullable=False),
    Column("reconnect_window_s", Float, nullable=True),
    Column("max_participants", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("cancel_reason", Text, nullable=False),
    #: set once, when its room was first provisioned (a restart re-creates the room silently)
    Column("provisioned_ts", Float, nullable=True),
    Column("started_ts", Float, nullable=True),
    Column("closed_ts", Float, nullable=True),
    #: the instructor's notes on the lesson
    Column("notes", Text, nullable=False),
    #: the session record: engagement report summary, recording manifest, exceptions
    Column("record", JSON, nullable=True),
    Index("ix_lessons_start", "start_ts"),
    Index("ix_lessons_instructor_start", "instructor_id", "start_ts"),
    Index("ix_lessons_series", "series_id"),
    Index("ix_lessons_status", "status"),
)

people = Table(
    "lesson_people", metadata,
    Column("lesson_id", String(64), ForeignKey("lessons.id", ondelete="CASCADE"),
           primary_key=True),
    Column("identity", String(128), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("email", String(254), nullable=False),
    Column("guardians", JSON, nullable=False),
    #: the order of the booking's student list (the instructor is 0)
    Column("position", Integer, nullable=False),
    Index("ix_people_identity", "identity"),
)

attendance = Table(
    "attendance", metadata,
    Column("lesson_id", String(64), ForeignKey("lessons.id", ondelete="CASCADE"),
           primary_key=True),
    Column("identity", String(128), primary_key=True),
    Column("first_join_ts", Float, nullable=False),
    Column("last_leave_ts", Float, nullable=True),
    Column("present_s", Float, nullable=False),
    Column("joins", Integer, nullable=False),
    Column("late", Boolean, nullable=False),
)

exceptions = Table(
    "exceptions", metadata,
    Column("id", String(32), primary_key=True),
    #: one exception per (lesson, kind, person, detail): raised once, even across restarts
    Column("dedup_key", String(400), nullable=False, unique=True),
    Column("lesson_id", String(64), nullable=True),
    Column("room", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("person", String(128), nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("raised_ts", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("acknowledged_by", String(128), nullable=True),
    Column("acknowledged_ts", Float, nullable=True),
    Column("resolved_by", String(128), nullable=True),
    Column("resolved_ts", Float, nullable=True),
    #: every transition's note: [{state, by, note, ts}]
    Column("history", JSON, nullable=False),
    Index("ix_exceptions_state_raised", "state", "raised_ts"),
    Index("ix_exceptions_lesson", "lesson_id"),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: e.g. reminder:<lesson>:<offset s>:<identity>:email; claimed before sending, so a
    #: restart never sends one twice
    Column("key", String(400), nullable=False, unique=True),
    Column("lesson_id", String(64), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    #: pending, sending, sent, failed (retried), dead (out of attempts), skipped, uncertain
    #: (was being sent when the process stopped: never resent)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("next_attempt_ts", Float, nullable=True),
    Column("sent_ts", Float, nullable=True),
    Index("ix_notifications_state_next", "state", "next_attempt_ts"),
    Index("ix_notifications_lesson", "lesson_id"),
)
