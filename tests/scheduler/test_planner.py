"""The planner: rooms made before the start, reminders at their offsets (the nearest one
only after downtime), rooms closed after the end; each action once."""

from __future__ import annotations

from scheduler_bridge.planner import Close, Planner, Provision, Remind

H = 3600.0


def test_a_lesson_day() -> None:
    p = Planner(600, 600, [24 * H, 900])
    p.put("L", start_ts=100 * H, end_ts=101 * H)
    assert p.get_timer() == 76 * H
    assert p.due(76 * H - 1) == []
    assert p.due(76 * H) == [Remind("L", 24 * H)]
    assert p.due(76 * H + 5) == []  # once
    assert p.get_timer() == 100 * H - 900
    assert p.due(100 * H - 900) == [Remind("L", 900)]
    assert p.get_timer() == 100 * H - 600
    assert p.due(100 * H - 600) == [Provision("L")]
    assert p.get_timer() == 101 * H + 600
    assert p.due(101 * H) == []
    assert p.due(101 * H + 600) == [Close("L")]
    assert "L" not in p and p.get_timer() is None


def test_after_downtime_only_the_nearest_reminder_goes_and_the_room_is_made_at_once() -> None:
    p = Planner(600, 600, [24 * H, 900])
    p.put("L", start_ts=100 * H, end_ts=101 * H)
    # the server was down from before the 24 h reminder until 5 minutes before the start
    assert p.due(100 * H - 300) == [Provision("L"), Remind("L", 900, skipped=(24 * H,))]
    assert p.due(100 * H) == []


def test_a_lesson_past_its_end_is_closed_without_a_room_or_reminders() -> None:
    p = Planner(600, 600, [900])
    p.put("L", start_ts=10 * H, end_ts=11 * H)
    assert p.due(20 * H) == [Close("L")]


def test_a_reschedule_makes_reminders_due_again_and_keeps_the_room_state() -> None:
    p = Planner(600, 600, [900])
    p.put("L", start_ts=100 * H, end_ts=101 * H)
    assert p.due(100 * H - 600) == [Provision("L"), Remind("L", 900)]
    # moved a day on: the room is closed by the bridge and made again before the new start
    p.put("L", start_ts=124 * H, end_ts=125 * H, provisioned=False)
    assert p.get_timer() == 124 * H - 900
    assert p.due(124 * H - 900) == [Remind("L", 900)]
    assert p.due(124 * H - 600) == [Provision("L")]
    # the same times again (a reload) change nothing
    p.put("L", start_ts=124 * H, end_ts=125 * H)
    assert p.due(124 * H - 500) == []


def test_reminders_given_as_done_are_not_sent() -> None:
    p = Planner(600, 600, [24 * H, 900])
    p.put("L", start_ts=100 * H, end_ts=101 * H, reminders_done=[24 * H, 900],
          provisioned=True)
    assert p.due(100 * H - 100) == []
    p.remove("L")
    assert p.get_timer() is None and len(p) == 0


def test_no_busy_timer_once_the_lesson_started() -> None:
    p = Planner(600, 600, [900])
    p.put("L", start_ts=100 * H, end_ts=101 * H, provisioned=True)
    assert p.due(100 * H + 1) == []  # the reminder was never sent: too late now
    assert p.get_timer() == 101 * H + 600
