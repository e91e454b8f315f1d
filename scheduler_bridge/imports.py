"""Bulk import: many bookings from JSON or CSV, checked row by row (sans-IO).

A bad row is reported with its row number and error and the good rows go on; the caller
stores the good ones, idempotently by lesson id (docs/scheduling.md).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from .booking import Booking, parse_booking
from .errors import BadBooking, ImportTooLarge, SchedulerError

#: CSV columns; ``students`` holds ``id|name|email`` entries separated by ``;``
CSV_COLUMNS = ("lesson_id", "title", "start", "end", "time_zone", "instructor_id",
               "instructor_name", "instructor_email", "students", "recording_policy",
               "series_id", "max_participants", "reconnect_window_s")
REQUIRED_COLUMNS = ("lesson_id", "start", "end", "instructor_id")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    lesson_id: str
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "lessonId": self.lesson_id, "code": self.code,
                "message": self.message}


@dataclass
class Parsed:
    #: (row number, booking) of every row that validated
    good: list[tuple[int, Booking]]
    errors: list[RowError]


def parse_json_import(data: bytes, max_rows: int) -> Parsed:
    """``{"bookings": [booking, ...]}`` or a bare list; rows are numbered from 1."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadBooking("the import is not JSON") from None
    rows = body.get("bookings") if isinstance(body, dict) else body
    if not isinstance(rows, list):
        raise BadBooking('a JSON import is {"bookings": [...]} or a list of bookings')
    if len(rows) > max_rows:
        raise ImportTooLarge(f"{len(rows)} rows: at most {max_rows} per import")
    return _check_rows(enumerate(rows, 1))


def parse_csv_import(data: bytes, max_rows: int) -> Parsed:
    """A CSV file with a header row naming :data:`CSV_COLUMNS` (any order; unknown columns
    are an error); rows are numbered as in a spreadsheet, the header being row 1."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadBooking("the CSV is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if unknown or missing:
        raise BadBooking(f"CSV header: unknown columns {unknown}, missing {missing}; the "
                         f"columns are {', '.join(CSV_COLUMNS)}")
    rows: list[tuple[int, object]] = []
    try:
        for record in reader:
            if len(rows) >= max_rows:
                raise ImportTooLarge(f"more than {max_rows} rows: at most {max_rows} per import")
            rows.append((reader.line_num, _csv_booking(record)))
    except csv.Error as exc:
        raise BadBooking(f"CSV line {reader.line_num}: {exc}") from None
    return _check_rows(rows)


def _csv_booking(record: dict[str | Any, Any]) -> object:
    if None in record:  # more fields than the header has
        return RowError(0, str(record.get("lesson_id") or ""), "bad_booking",
                        "the row has more fields than the header")
    get = {k: (v or "").strip() for k, v in record.items()}
    students = []
    for entry in filter(None, (e.strip() for e in get.get("students", "").split(";"))):
        parts = [p.strip() for p in entry.split("|")]
        students.append({"id": parts[0], "name": parts[1] if len(parts) > 1 else "",
                         "email": parts[2] if len(parts) > 2 else ""})
    room: dict[str, Any] = {}
    for column, key, kind in (("max_participants", "maxParticipants", int),
                              ("reconnect_window_s", "reconnectWindowS", float)):
        if get.get(column):
            try:
                room[key] = kind(get[column])
            except ValueError:
                return RowError(0, get.get("lesson_id", ""), "bad_booking",
                                f"{column} must be a number")
    return {"lessonId": get.get("lesson_id"), "title": get.get("title"),
            "start": get.get("start"), "end": get.get("end"),
            "timeZone": get.get("time_zone") or "UTC",
            "instructor": {"id": get.get("instructor_id"), "name": get.get("instructor_name"),
                           "email": get.get("instructor_email")},
            "students": students, "recordingPolicy": get.get("recording_policy") or "on_request",
            "seriesId": get.get("series_id"), "room": room}


def _check_rows(rows: Any) -> Parsed:
    parsed = Parsed([], [])
    seen: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, RowError):
            parsed.errors.append(RowError(number, row.lesson_id, row.code, row.message))
            continue
        lesson_id = str(row.get("lessonId") or "") if isinstance(row, dict) else ""
        try:
            booking = parse_booking(row)
        except SchedulerError as exc:
            parsed.errors.append(RowError(number, lesson_id[:64], exc.code, str(exc)))
            continue
        if booking.lesson_id in seen:
            parsed.errors.append(RowError(number, booking.lesson_id, "duplicate_row",
                                          f"lesson {booking.lesson_id} is also row "
                                          f"{seen[booking.lesson_id]} of this import"))
            continue
        seen[booking.lesson_id] = number
        parsed.good.append((number, booking))
    return parsed
