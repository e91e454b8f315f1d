"""Errors of the scheduler bridge: each has the API error code and HTTP status a client gets
(docs/scheduling.md)."""

from __future__ import annotations


class SchedulerError(Exception):
    """A refused scheduling request; ``code`` and ``status`` are what the API answers."""

    code = "bad_booking"
    status = 400


class BadBooking(SchedulerError):
    """A booking that does not validate (missing field, unknown time zone, end before start)."""


class UnknownTimeZone(BadBooking):
    code = "unknown_time_zone"


class BadTimes(BadBooking):
    code = "bad_times"


class LessonNotFound(SchedulerError):
    code = "lesson_not_found"
    status = 404


class LessonExists(SchedulerError):
    code = "lesson_exists"
    status = 409


class InstructorConflict(SchedulerError):
    """The instructor already teaches a lesson at that time (scheduler.allow_instructor_overlap
    off)."""

    code = "instructor_conflict"
    status = 409


class BadTransition(SchedulerError):
    """A change the lesson's or exception's state does not allow (a cancelled lesson
    rescheduled, a resolved exception acknowledged)."""

    code = "bad_state"
    status = 409


class ExceptionNotFound(SchedulerError):
    code = "exception_not_found"
    status = 404


class ImportTooLarge(SchedulerError):
    code = "import_too_large"
    status = 413
