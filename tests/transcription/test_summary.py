"""The summary draft from a transcript and the lesson's data (sans-IO), and its states:
extractive key points in spoken order, students' questions from speech and chat, poll
results, the absent and the flagged; edits, approval, and edits after approval refused."""

from __future__ import annotations

import pytest

from transcription.summary import (
    SummaryApproved,
    SummaryError,
    approve,
    as_text,
    build_draft,
    edit,
    is_question,
    key_points,
)
from transcription.transcript import Line

T0 = 1_800_000_000.0


def line(t: float, text: str, who: str = "teacher", role: str = "instructor") -> Line:
    return Line(f"PA_{who}", who, who.title(), role, f"TR_{who}", T0 + t, T0 + t + 2, text)


LESSON = [
    line(0, "good morning everyone"),
    line(5, "today we talk about the water cycle"),
    line(10, "the water cycle has three parts evaporation condensation and rain"),
    line(15, "can we use a calculator", "ann", "student"),
    line(18, "no you do not need one"),
    line(25, "water evaporates from the sea into the sky"),
    line(30, "i like turtles", "bo", "student"),
    line(35, "in the sky the water vapour condenses into clouds"),
    line(40, "then the clouds give rain and the water goes back to the sea"),
    line(45, "okay"),
    line(50, "for homework draw the water cycle in your notebook"),
]
REPORT = {"participants": [
    {"identity": "teacher", "name": "Teacher", "role": "instructor"},
    {"identity": "ann", "name": "Ann", "role": "student"},
    {"identity": "bo", "name": "Bo", "role": "student"}],
    "flags": [{"identity": "bo", "flag": "silent_unresponsive", "detail": "said nothing"}]}
POLLS = [{"pollId": "PL1", "kind": "single", "question": "How many parts?",
          "options": ["two", "three"], "results": {"responses": 2, "counts": [0, 2],
                                                   "correctRate": 1.0}}]
CHAT = [{"from": "PA_bo", "name": "Bo", "text": "Is the test on Friday?"},
        {"from": "PA_ann", "name": "Ann", "text": "thanks"}]
ROSTER = [{"identity": "ann", "name": "Ann"}, {"identity": "bo", "name": "Bo"},
          {"identity": "cy", "name": "Cy"}]


def draft() -> dict:
    return build_draft("r", LESSON, report=REPORT, chat=CHAT, polls=POLLS, roster=ROSTER,
                       now=T0 + 100)


def test_key_points_are_the_instructors_theme_lines_in_spoken_order() -> None:
    d = draft()
    points = [p["text"] for p in d["keyPoints"]]
    assert len(points) == 5
    # the water-cycle lines, not the greeting, the "okay" or a student's line
    assert all("water" in p or "clouds" in p for p in points), points
    assert "i like turtles" not in points and "okay" not in points
    ats = [p["at"] for p in d["keyPoints"]]
    assert ats == sorted(ats) and ats[0] >= 5.0


def test_questions_polls_and_attendance() -> None:
    d = draft()
    assert [(q["who"], q["text"], q["source"]) for q in d["questions"]] == [
        ("Ann", "can we use a calculator", "speech"),
        ("Bo", "Is the test on Friday?", "chat")]
    assert d["polls"] == [{"question": "How many parts?", "kind": "single", "responses": 2,
                           "results": [{"option": "two", "count": 0},
                                       {"option": "three", "count": 2}],
                           "correctRate": 1.0}]
    assert d["attendance"]["came"] == ["Ann", "Bo"]
    assert d["attendance"]["absent"] == ["Cy"]
    assert d["attendance"]["flagged"][0]["flag"] == "silent_unresponsive"
    assert d["state"] == "draft" and d["revision"] == 1 and d["transcriptLines"] == 11
    # not a booked lesson: nobody can be called absent
    assert build_draft("r", LESSON, report=REPORT, chat=[], polls=[], roster=None,
                       now=T0)["attendance"]["absent"] is None


def test_question_detection_without_punctuation() -> None:
    assert is_question("what is the answer to question five")
    assert is_question("can we use a calculator")
    assert is_question("Is it?")
    assert not is_question("we can use a calculator")
    assert not is_question("who")  # a fragment, not a question


def test_edit_then_approve_then_edits_are_refused() -> None:
    d = draft()
    edited = edit(d, {"keyPoints": ["The water cycle", {"text": "Rain", "at": 40.0}],
                      "notes": "Great class."}, T0 + 200)
    assert [p["text"] for p in edited["keyPoints"]] == ["The water cycle", "Rain"]
    assert edited["keyPoints"][1]["at"] == 40.0
    assert edited["notes"] == "Great class." and edited["revision"] == 2
    assert edited["questions"] == d["questions"]  # untouched
    done = approve(edited, "Ms Smith", T0 + 300)
    assert done["state"] == "approved" and done["approvedBy"] == "Ms Smith"
    with pytest.raises(SummaryApproved, match="approved; it can no longer be edited"):
        edit(done, {"notes": "later"}, T0 + 400)
    with pytest.raises(SummaryApproved):
        approve(done, "again", T0 + 400)
    text = as_text(done, "Science")
    assert "Science" in text and "- Rain" in text and "Great class." in text
    assert "How many parts? (two: 0, three: 2)" in text


@pytest.mark.parametrize("changes, message", [
    ({}, "an edit is an object"),
    ([], "an edit is an object"),
    ({"state": "approved"}, "cannot edit state"),
    ({"keyPoints": "one"}, "must be a list"),
    ({"keyPoints": [""]}, "needs a text"),
    ({"keyPoints": ["x"] * 21}, "at most 20"),
    ({"notes": 5}, "notes must be text"),
])
def test_bad_edits_are_refused_clearly(changes: object, message: str) -> None:
    with pytest.raises(SummaryError, match=message):
        edit(draft(), changes, T0)


def test_key_points_of_a_short_or_empty_lesson() -> None:
    assert key_points([]) == []
    one = [line(0, "fractions are parts of a whole")]
    assert [ln.text for ln in key_points(one)] == ["fractions are parts of a whole"]
