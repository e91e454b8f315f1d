"""Bookings, people, attendance, exception queue and notifications (issue #20).

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lessons",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("end_ts", sa.Float, nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("instructor_id", sa.String(128), nullable=False),
        sa.Column("series_id", sa.String(128), nullable=False),
        sa.Column("recording_policy", sa.String(16), nullable=False),
        sa.Column("reconnect_window_s", sa.Float, nullable=True),
        sa.Column("max_participants", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("updated_ts", sa.Float, nullable=False),
        sa.Column("cancel_reason", sa.Text, nullable=False),
        sa.Column("provisioned_ts", sa.Float, nullable=True),
        sa.Column("started_ts", sa.Float, nullable=True),
        sa.Column("closed_ts", sa.Float, nullable=True),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("record", sa.JSON, nullable=True),
    )
    op.create_index("ix_lessons_start", "lessons", ["start_ts"])
    op.create_index("ix_lessons_instructor_start", "lessons", ["instructor_id", "start_ts"])
    op.create_index("ix_lessons_series", "lessons", ["series_id"])
    op.create_index("ix_lessons_status", "lessons", ["status"])
    op.create_table(
        "lesson_people",
        sa.Column("lesson_id", sa.String(64), sa.ForeignKey("lessons.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("identity", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("guardians", sa.JSON, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_people_identity", "lesson_people", ["identity"])
    op.create_table(
        "attendance",
        sa.Column("lesson_id", sa.String(64), sa.ForeignKey("lessons.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("identity", sa.String(128), primary_key=True),
        sa.Column("first_join_ts", sa.Float, nullable=False),
        sa.Column("last_leave_ts", sa.Float, nullable=True),
        sa.Column("present_s", sa.Float, nullable=False),
        sa.Column("joins", sa.Integer, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_table(
        "exceptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dedup_key", sa.String(400), nullable=False, unique=True),
        sa.Column("lesson_id", sa.String(64), nullable=True),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("person", sa.String(128), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("raised_ts", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("acknowledged_ts", sa.Float, nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("resolved_ts", sa.Float, nullable=True),
        sa.Column("history", sa.JSON, nullable=False),
    )
    op.create_index("ix_exceptions_state_raised", "exceptions", ["state", "raised_ts"])
    op.create_index("ix_exceptions_lesson", "exceptions", ["lesson_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("lesson_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("next_attempt_ts", sa.Float, nullable=True),
        sa.Column("sent_ts", sa.Float, nullable=True),
    )
    op.create_index("ix_notifications_state_next", "notifications",
                    ["state", "next_attempt_ts"])
    op.create_index("ix_notifications_lesson", "notifications", ["lesson_id"])


def downgrade() -> None:
    for table in ("notifications", "exceptions", "attendance", "lesson_people", "lessons"):
        op.drop_table(table)
