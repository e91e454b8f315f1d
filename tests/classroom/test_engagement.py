"""The engagement report of a scripted one-hour session (fake clock), against values worked
out by hand: attendance across a reconnection and a rejoin, talk time, camera time, poll
response rate, latency and correctness, counts, inactivity periods, and the flags."""

from __future__ import annotations

import json
from typing import Any

from classroom.engagement import Engagement

S = 1_700_000_000_000.0  # the session starts (unix ms)
MIN = 60_000.0


def at(minutes: float) -> float:
    return S + minutes * MIN


def joined(pid: str, identity: str, role: str = "student") -> tuple[str, dict[str, Any]]:
    return "participant.joined", {"participant": pid, "identity": identity, "role": role}


def left(pid: str, identity: str) -> tuple[str, dict[str, Any]]:
    return "participant.left", {"participant": pid, "identity": identity, "reason": "left",
                                "speakingMs": 0}


def speakers(*pids: str) -> tuple[str, dict[str, Any]]:
    return "room.speakers", {"speakers": [{"participantId": p, "level": 0.5} for p in pids]}


def poll(poll_id: str, anonymous: bool = False) -> tuple[str, dict[str, Any]]:
    return "poll.created", {"participant": "T1", "pollId": poll_id, "kind": "single",
                            "question": "?", "options": ["a", "b"], "anonymous": anonymous,
                            "allowChange": False, "open": True, "closesAtMs": None,
                            "comprehension": poll_id == "P1"}


SCRIPT: list[tuple[float, tuple[str, dict[str, Any]]]] = [
    (0, joined("T1", "teacher", "instructor")),
    (1, joined("A1", "ann")),
    (1, ("track.published", {"participant": "A1", "id": "TA", "participantId": "A1",
                             "kind": "video", "source": "camera", "muted": False})),
    (1, ("track.published", {"participant": "A1", "id": "MA", "participantId": "A1",
                             "kind": "audio", "source": "microphone", "muted": False})),
    (2, joined("B1", "bob")),
    (3, speakers("T1")),
    (5, speakers("A1")),
    (6, speakers()),
    (10, poll("P1")),
    (10.5, ("poll.answered", {"pollId": "P1", "changed": False, "latencyMs": 30_000,
                              "participant": "A1", "correct": True})),
    (12, ("track.muted", {"participant": "A1", "id": "TA", "muted": True})),
    (14, ("hand.raised", {"participant": "A1", "position": 1})),
    (20, left("B1", "bob")),
    (25, ("participant.reconnecting", {"participant": "A1", "identity": "ann",
                                       "cause": "signalling", "windowMs": 20_000})),
    (27, ("participant.resumed", {"participant": "A1", "identity": "ann",
                                  "outageMs": 120_000})),
    (30, joined("B2", "bob")),  # bob is back, as a new participant id
    (35, poll("P2")),
    (36, ("poll.answered", {"pollId": "P2", "changed": False, "latencyMs": 60_000,
                            "participant": "A1"})),
    (40, joined("C1", "carl")),
    (41, ("chat.message", {"participant": "C1", "messageId": "CM1", "chars": 5})),
    (45, poll("P3", anonymous=True)),
    (46, ("poll.answered", {"pollId": "P3", "changed": False, "latencyMs": 60_000})),
    (50, left("A1", "ann")),
    (52, speakers("T1")),
    (55, speakers()),
]


def test_a_scripted_session_matches_the_hand_computed_report() -> None:
    eng = Engagement("algebra-1", S)
    for minutes, (type_, data) in SCRIPT:
        eng.on_event(type_, data, at(minutes))
    report = eng.report(at(60))
    assert (report["room"], report["durationMs"], report["polls"]) == ("algebra-1",
                                                                      60 * MIN, 3)
    by = {p["identity"]: p for p in report["participants"]}

    ann = by["ann"]
    assert ann["intervals"] == [[at(1), at(50)]]
    assert ann["attendanceMs"] == 47 * MIN  # 49 min minus the 2 min reconnecting
    assert ann["talkMs"] == 1 * MIN
    assert ann["cameraOnMs"] == 11 * MIN  # on at 1, muted at 12
    assert ann["polls"] == {"asked": 2, "answered": 2, "responseRate": 1.0,
                            "meanLatencyMs": 45_000, "checked": 1, "correct": 1}
    assert (ann["handRaises"], ann["chatMessages"], ann["reactions"]) == (1, 0, 0)
    # last signals: hand at 14, answer at 36, then nothing until she left at 50
    assert ann["inactivity"] == [[at(14), at(36)], [at(36), at(50)]]
    assert ann["inactiveMs"] == 36 * MIN

    bob = by["bob"]
    assert bob["participantIds"] == ["B1", "B2"]
    assert bob["intervals"] == [[at(2), at(20)], [at(30), at(60)]]
    assert bob["attendanceMs"] == 48 * MIN and bob["attendanceMinutes"] == 48.0
    assert bob["talkMs"] == 0 and bob["cameraOnMs"] == 0
    assert bob["polls"] == {"asked": 2, "answered": 0, "responseRate": 0.0,
                            "meanLatencyMs": None, "checked": 0, "correct": 0}
    assert bob["inactivity"] == [[at(2), at(20)], [at(30), at(60)]]

    carl = by["carl"]
    assert carl["attendanceMs"] == 20 * MIN
    assert carl["polls"]["asked"] == 0  # only the anonymous poll was asked while he was in
    assert carl["chatMessages"] == 1
    assert carl["inactivity"] == [[at(41), at(60)]]

    teacher = by["teacher"]
    assert teacher["role"] == "instructor"
    assert teacher["attendanceMs"] == 60 * MIN
    assert teacher["talkMs"] == 5 * MIN  # 3..5 and 52..55
    assert teacher["inactivity"] == [[at(5), at(52)], [at(55), at(60)]]

    # talk (ann: the only student who spoke), hands (ann), chat (carl) and polls (ann 2/2)
    # each give 2 points to the best student; the sum is scaled from 12 to 10
    assert {i: p["activityScore"] for i, p in by.items()} == {
        "ann": 5.0, "bob": 0.0, "carl": 1.7, "teacher": None}

    flags = {(f["identity"], f["flag"]) for f in report["flags"]}
    assert flags == {("bob", "silent_unresponsive"), ("carl", "low_attendance")}


def test_a_report_mid_session_counts_up_to_now_and_changes_nothing() -> None:
    eng = Engagement("r", S)
    for minutes, (type_, data) in SCRIPT[:8]:  # up to the end of ann's talk at 6
        eng.on_event(type_, data, at(minutes))
    eng.on_event(*speakers("A1"), at(7))
    mid = eng.report(at(9))
    ann = {p["identity"]: p for p in mid["participants"]}["ann"]
    assert ann["talkMs"] == 3 * MIN and ann["cameraOnMs"] == 8 * MIN  # still talking
    eng.on_event(*speakers(), at(8))
    later = eng.report(at(9))
    ann = {p["identity"]: p for p in later["participants"]}["ann"]
    assert ann["talkMs"] == 2 * MIN


def test_events_of_strangers_and_unknown_types_change_nothing() -> None:
    eng = Engagement("r", S)
    eng.on_event(*joined("A1", "ann"), at(0))
    for type_, data in [("chat.message", {"participant": "ZZ", "messageId": "x",
                                          "chars": 1}),
                        ("poll.answered", {"pollId": "P9", "changed": False,
                                           "latencyMs": 1, "participant": "ZZ"}),
                        ("track.muted", {"participant": "ZZ", "id": "nope", "muted": False}),
                        ("room.speakers", {"speakers": [{"participantId": "ZZ",
                                                         "level": 1.0}]}),
                        ("something.new", {"x": 1})]:
        eng.on_event(type_, data, at(1))
    ann = eng.report(at(2))["participants"][0]
    assert (ann["chatMessages"], ann["talkMs"], ann["polls"]["answered"]) == (0, 0, 0)
    assert len(eng.report(at(2))["participants"]) == 1


def test_a_session_that_moves_to_another_node_reports_as_if_it_had_not() -> None:
    """Cut anywhere in the script (mid-talk, with a camera on, someone reconnecting), the
    capture through its snapshot, as JSON, goes on on another node's reporter and ends
    with the same report as the uninterrupted one (docs/cluster.md)."""
    whole = Engagement("algebra-1", S)
    for minutes, (type_, data) in SCRIPT:
        whole.on_event(type_, data, at(minutes))
    expected = whole.report(at(60))
    for cut in range(len(SCRIPT) + 1):
        first = Engagement("algebra-1", S)
        for minutes, (type_, data) in SCRIPT[:cut]:
            first.on_event(type_, data, at(minutes))
        moved = Engagement.restore(json.loads(json.dumps(first.snapshot())))
        for minutes, (type_, data) in SCRIPT[cut:]:
            moved.on_event(type_, data, at(minutes))
        assert moved.report(at(60)) == expected, f"cut before event {cut}"
