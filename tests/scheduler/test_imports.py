"""Bulk imports: bad rows are reported by row with a reason, the good rows go on."""

from __future__ import annotations

import json

import pytest

from scheduler_bridge.errors import BadBooking, ImportTooLarge
from scheduler_bridge.imports import parse_csv_import, parse_json_import

HEADER = "lesson_id,title,start,end,time_zone,instructor_id,instructor_name,students\n"


def test_csv_rows_are_checked_one_by_one() -> None:
    data = (HEADER
            + "L1,Maths,2026-12-07T15:00,2026-12-07T16:00,Europe/Berlin,t1,Anna,"
              "s1|Bob|bob@x.example;s2\n"
            + "L2,Bad zone,2026-12-07T15:00,2026-12-07T16:00,Nowhere/City,t2,Tom,\n"
            + "L3,Backwards,2026-12-07T15:00,2026-12-07T14:00,UTC,t3,Ted,\n"
            + "L1,Again,2026-12-08T15:00,2026-12-08T16:00,UTC,t1,Anna,\n"
            + "L5,Too many,2026-12-07T15:00,2026-12-07T16:00,UTC,t5,Tim,,extra\n"
            + "L6,Fine,2026-12-07T17:00,2026-12-07T18:00,,t6,,\n").encode()
    parsed = parse_csv_import(data, 100)
    assert [(n, b.lesson_id) for n, b in parsed.good] == [(2, "L1"), (7, "L6")]
    l1 = parsed.good[0][1]
    assert [(s.id, s.name, s.email) for s in l1.students] == [
        ("s1", "Bob", "bob@x.example"), ("s2", "s2", "")]
    assert parsed.good[1][1].time_zone == "UTC"
    assert [(e.row, e.lesson_id, e.code) for e in parsed.errors] == [
        (3, "L2", "unknown_time_zone"), (4, "L3", "bad_times"), (5, "L1", "duplicate_row"),
        (6, "L5", "bad_booking")]


def test_csv_header_and_size_errors_refuse_the_whole_import() -> None:
    with pytest.raises(BadBooking, match="unknown columns \\['colour'\\]"):
        parse_csv_import(b"lesson_id,start,end,instructor_id,colour\n", 10)
    with pytest.raises(BadBooking, match="missing \\['instructor_id'\\]"):
        parse_csv_import(b"lesson_id,start,end\n", 10)
    rows = "".join(f"L{i},T,2026-12-07T15:00,2026-12-07T16:00,UTC,t{i},,\n" for i in range(11))
    with pytest.raises(ImportTooLarge, match="at most 10"):
        parse_csv_import((HEADER + rows).encode(), 10)
    with pytest.raises(BadBooking, match="not UTF-8"):
        parse_csv_import(b"\xff\xfe\x00", 10)


def test_json_import() -> None:
    good = {"lessonId": "J1", "start": "2026-12-07T15:00Z", "end": "2026-12-07T16:00Z",
            "instructor": {"id": "t"}}
    parsed = parse_json_import(json.dumps({"bookings": [good, {"lessonId": "J2"}, 5]}).encode(),
                               10)
    assert [b.lesson_id for _, b in parsed.good] == ["J1"]
    assert [(e.row, e.lesson_id, e.code) for e in parsed.errors] == [
        (2, "J2", "bad_times"), (3, "", "bad_booking")]
    with pytest.raises(ImportTooLarge):
        parse_json_import(json.dumps([good] * 3).encode(), 2)
    with pytest.raises(BadBooking, match="not JSON"):
        parse_json_import(b"{", 2)
    with pytest.raises(BadBooking, match="bookings"):
        parse_json_import(b'{"rows": []}', 2)
