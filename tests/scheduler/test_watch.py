"""The attendance watch: each exception kind, raised at its moment with its evidence, and
attendance restored after a restart."""

from __future__ import annotations

from typing import Any

from scheduler_bridge.exception_queue import Raised
from scheduler_bridge.watch import AttendanceWatch, Expected, Started

START, END = 1000.0, 4600.0


def make(**kw: Any) -> AttendanceWatch:
    w = AttendanceWatch(instructor_grace_s=180, late_join_s=300, early_end_s=300)
    w.expect(Expected("L", START, END, "teacher", ("ann", "ben"), **kw))
    return w


def joined(w: AttendanceWatch, who: str, now: float, room: str = "L") -> list[Any]:
    return w.on_event("participant.joined", room, {"identity": who, "participant": "PA",
                                                   "role": "student"}, now)


def left(w: AttendanceWatch, who: str, now: float) -> list[Any]:
    return w.on_event("participant.left", "L", {"identity": who, "reason": "left"}, now)


def kinds(outcomes: list[Any]) -> list[tuple[str, str]]:
    return [(o.kind, o.person) for o in outcomes if isinstance(o, Raised)]


def run_until(w: AttendanceWatch, now: float) -> list[Any]:
    out = []
    while (t := w.get_timer()) is not None and t <= now:
        out += w.handle_timer(t)
    return out


def test_a_lesson_that_goes_well_raises_nothing() -> None:
    w = make()
    assert joined(w, "teacher", START - 60) == [Started("L", "teacher", START - 60)]
    assert joined(w, "ann", START - 30) == []
    assert joined(w, "ben", START + 200) == []  # within late_join_s
    assert joined(w, "visitor", START) == []  # not booked: not watched
    assert run_until(w, END) == []
    for who in ("ann", "ben", "teacher"):
        left(w, who, END + 10)
    rows = {r["identity"]: r for r in w.take_changed()}
    assert set(rows) == {"teacher", "ann", "ben"}
    assert rows["ann"]["present_s"] == END + 10 - (START - 30)
    assert rows["ben"]["late"] is False and rows["ben"]["joins"] == 1
    assert w.take_changed() == []


def test_instructor_no_show_at_start_plus_grace() -> None:
    w = make()
    joined(w, "ann", START)
    assert w.get_timer() == START + 180
    out = w.handle_timer(START + 180)
    assert kinds(out) == [("instructor_no_show", "teacher")]
    assert out[0].evidence["present"] == ["ann"] and out[0].lesson_id == "L"
    # joining later does not take it back, and it is not raised again
    joined(w, "teacher", START + 400)
    assert kinds(run_until(w, END)) == [("student_no_show", "ben")]


def test_late_join_is_raised_at_the_join() -> None:
    w = make()
    joined(w, "teacher", START)
    out = joined(w, "ben", START + 301)
    assert kinds(out) == [("late_join", "ben")]
    assert out[0].evidence["lateByS"] == 301
    # a rejoin is not a late join
    left(w, "ben", START + 400)
    assert joined(w, "ben", START + 500) == []


def test_lesson_never_started() -> None:
    w = make()
    out = run_until(w, END)
    assert kinds(out) == [("instructor_no_show", "teacher"), ("lesson_never_started", "")]


def test_early_end_when_everyone_left_long_before_the_end() -> None:
    w = make()
    for who in ("teacher", "ann", "ben"):
        joined(w, who, START)
    for who in ("teacher", "ann", "ben"):
        left(w, who, START + 600)
    out = run_until(w, END)
    assert kinds(out) == [("early_end", "")]
    assert out[0].evidence["lastLeaveAt"] == START + 600


def test_a_short_gap_at_the_end_is_not_an_early_end() -> None:
    w = make()
    for who in ("teacher", "ann", "ben"):
        joined(w, who, START)
        left(w, who, END - 100)
    assert run_until(w, END) == []


def test_room_closed_early_is_an_early_end_but_a_shutdown_is_not() -> None:
    w = make()
    joined(w, "teacher", START)
    joined(w, "ann", START)
    joined(w, "ben", START)
    out = w.on_event("room.closed", "L", {"reason": "room_closed"}, START + 900)
    assert kinds(out) == [("early_end", "")]
    assert out[0].evidence["reason"] == "room_closed"
    w2 = make()
    joined(w2, "teacher", START)
    assert w2.on_event("room.closed", "L", {"reason": "server_shutdown"}, START + 900) == []


def test_a_replaced_connection_keeps_the_person_present() -> None:
    w = make()
    joined(w, "teacher", START)
    joined(w, "teacher", START + 10)  # the new connection joins, then the old one leaves
    left(w, "teacher", START + 10)
    assert w.present("L") == 1


def test_recording_expected_but_not_running() -> None:
    w = make(recording_expected=True)
    joined(w, "teacher", START)
    assert kinds(w.handle_timer(START + 180)) == [("recording_not_running", "")]
    w2 = make(recording_expected=True)
    joined(w2, "teacher", START)
    w2.on_event("recording.started", "L", {"recording": "R", "locations": []}, START)
    assert w2.handle_timer(START + 180) == []


def test_recording_failures_and_alarms_are_raised_for_any_room() -> None:
    w = make()
    out = w.on_event("recording.alarm", "L", {"reason": "sink_error", "detail": "disk gone",
                                              "sink": "copy", "recording": "R"}, START)
    assert kinds(out) == [("recording_alarm", "")]
    assert out[0].lesson_id == "L" and out[0].detail == "sink_error:copy//"
    unbooked = w.on_event("recording.failed", "adhoc", {"recording": "R2", "reason": "x",
                                                        "problems": ["copy incomplete"]}, START)
    assert kinds(unbooked) == [("recording_failed", "")]
    assert unbooked[0].lesson_id is None and unbooked[0].room == "adhoc"
    assert unbooked[0].evidence["problems"] == ["copy incomplete"]


def test_flagged_students_from_the_session_report() -> None:
    w = make()
    out = w.on_event("session.report", "L", {"flags": [
        {"identity": "ann", "flag": "low_attendance", "detail": "present 20%"},
        {"identity": "teacher", "flag": "silent_unresponsive", "detail": "-"},
        {"identity": "stranger", "flag": "low_attendance", "detail": "-"}]}, END)
    assert kinds(out) == [("student_flagged", "ann")]
    assert out[0].evidence == {"flag": "low_attendance", "detail": "present 20%"}
    assert out[0].dedup_key != Raised("student_flagged", "L", "L", "ann", END,
                                      detail="silent_unresponsive").dedup_key


def test_restart_restores_attendance_so_nothing_is_raised_twice_or_wrongly() -> None:
    w = make()
    joined(w, "teacher", START - 10)
    joined(w, "ann", START)
    rows = {r["identity"]: r for r in w.take_changed()}
    # a new process: the watch starts from the database's rows
    w2 = AttendanceWatch(instructor_grace_s=180, late_join_s=300, early_end_s=300)
    w2.expect(Expected("L", START, END, "teacher", ("ann", "ben")), rows)
    assert w2.handle_timer(START + 180) == []  # the instructor had joined
    assert joined(w2, "teacher", START + 400) == []  # not a new start, not late
    assert kinds(run_until(w2, END)) == [("student_no_show", "ben")]


def test_rescheduled_lesson_is_checked_at_its_new_times() -> None:
    w = make()
    w.expect(Expected("L", START + 7200, END + 7200, "teacher", ("ann", "ben")))
    assert run_until(w, START + 7000) == []
    assert kinds(w.handle_timer(START + 7200 + 180)) == [("instructor_no_show", "teacher")]
    w.forget("L")
    assert w.get_timer() is None
