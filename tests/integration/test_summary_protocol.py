"""The summary draft through a real server with the scheduler bridge and a real SMTP server:
a booked, transcribed lesson with a poll, an instructor who explains, a student who asks
and one booked student who never comes. When the room closes, the draft lists the poll's
result, the question and the absent student; the instructor (with the join token, as the
summary page does) edits and approves it; approval emits its event, reaches the lesson's
session record (which the next lesson's brief reads), and emails the guardian; an edit after
approval is refused with a clear error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sfu_harness import Mailbox
from test_transcription_protocol import _packets, _speak, _until_event

from benches.rawclient import RawClient
from tests.conftest import ServerProcess, start_server, stop_server

pytestmark = pytest.mark.integration

TEACHER = "We will have a short test on Friday."
QUESTION = "Can we use a calculator?"


@pytest.fixture(scope="module")
def server(mailbox: Mailbox) -> Iterator[ServerProcess]:
    srv = start_server({"SFU_SCHEDULER_SMTP_HOST": "127.0.0.1",
                        "SFU_SCHEDULER_SMTP_PORT": str(mailbox.port),
                        "SFU_SCHEDULER_SMTP_FROM": "lessons@school.example",
                        "SFU_SCHEDULER_REMINDER_OFFSETS": ""})
    yield srv
    stop_server(srv)


async def _call(server: ServerProcess, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
    headers = ({"Authorization": f"Bearer {token}"} if token is not None
               else server.auth_header)
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.request(method, server.base_url + path, json=body) as res:
            return res.status, (await res.json() if res.status != 204 else None)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_the_summary_is_drafted_edited_approved_and_sent(
        server: ServerProcess, mailbox: Mailbox, tmp_path: Path) -> None:
    room = "sum-lesson-1"
    start = time.time() + 7200  # booked for later: the bridge leaves the room to the test
    status, lesson = await _call(server, "POST", "/api/schedule/lessons", {
        "lessonId": room, "title": "Science", "start": _iso(start),
        "end": _iso(start + 3600), "timeZone": "Europe/Berlin", "seriesId": "sci",
        "instructor": {"id": "teacher", "name": "Ms Smith"},
        "students": [
            {"id": "ann", "name": "Ann",
             "guardians": [{"name": "Ann's mum", "email": "mum@home.example"}]},
            {"id": "cy", "name": "Cy"}]})
    assert status == 201, lesson
    status, _ = await _call(server, "POST", "/api/rooms",
                            {"name": room, "transcription": "everyone"})
    assert status == 201
    teacher_token = server.mint_token(room, "teacher", "Ms Smith", role="instructor")
    teacher = RawClient(server.ws_url, teacher_token)
    ann = RawClient(server.ws_url, server.mint_token(room, "ann", "Ann"))
    try:
        await teacher.connect()
        await ann.connect()
        await teacher.publish(video=False)
        await ann.publish(video=False)
        await teacher.send({"type": "poll_create", "poll": {
            "kind": "single", "question": "How many parts?", "options": ["two", "three"],
            "correct": [1]}})
        poll = await ann.wait_for("poll")
        await ann.send({"type": "poll_answer", "pollId": poll["pollId"], "answer": [1]})
        await ann.wait_for("poll_answered")
        await _speak(teacher, _packets(TEACHER, tmp_path))
        await _speak(ann, _packets(QUESTION, tmp_path))
        await ann.send({"type": "chat_send", "text": "Is the test long?"})
        await teacher.wait_for("chat")
        # the question's final line is in before the room ends
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, live = await _call(server, "GET", f"/api/rooms/{room}/transcript")
            if any(ln["identity"] == "ann" for ln in live["lines"]):
                break
            await asyncio.sleep(0.2)
    finally:
        await teacher.close()
        await ann.close()
    status, _ = await _call(server, "DELETE", f"/api/rooms/{room}")
    assert status == 204
    drafted = await _until_event(server, room, "summary.drafted")
    assert drafted["data"]["polls"] == 1 and drafted["data"]["questions"] == 2

    # the instructor's join token opens the summary of that room, and only that room
    status, draft = await _call(server, "GET", f"/api/rooms/{room}/summary",
                                token=teacher_token)
    assert status == 200 and draft["state"] == "draft", draft
    assert draft["polls"] == [{"question": "How many parts?", "kind": "single",
                               "responses": 1, "correctRate": 1.0,
                               "results": [{"option": "two", "count": 0},
                                           {"option": "three", "count": 1}]}]
    assert draft["attendance"]["absent"] == ["Cy"] and draft["attendance"]["came"] == ["Ann"]
    asked = [(q["who"], q["source"]) for q in draft["questions"]]
    assert asked == [("Ann", "speech"), ("Ann", "chat")], draft["questions"]
    assert draft["keyPoints"] and "friday" in draft["keyPoints"][0]["text"]
    student_token = server.mint_token(room, "ann", "Ann")
    assert (await _call(server, "GET", f"/api/rooms/{room}/summary",
                        token=student_token))[0] == 401
    other = server.mint_token("another-room", "teacher", role="instructor")
    assert (await _call(server, "GET", f"/api/rooms/{room}/summary", token=other))[0] == 401

    status, edited = await _call(server, "PUT", f"/api/rooms/{room}/summary", {
        "keyPoints": ["A short test on Friday", "The water cycle"],
        "notes": "Ann asked good questions."}, token=teacher_token)
    assert status == 200 and edited["revision"] == 2, edited
    status, err = await _call(server, "PUT", f"/api/rooms/{room}/summary",
                              {"state": "approved"}, token=teacher_token)
    assert status == 400 and err["error"]["code"] == "bad_message"
    status, approved = await _call(server, "POST", f"/api/rooms/{room}/summary/approve",
                                   token=teacher_token)
    assert status == 200 and approved["state"] == "approved"
    assert approved["approvedBy"] == "Ms Smith"
    status, err = await _call(server, "PUT", f"/api/rooms/{room}/summary",
                              {"notes": "one more thing"}, token=teacher_token)
    assert status == 409 and err["error"]["code"] == "summary_approved", err
    assert "no longer be edited" in err["error"]["message"]

    event = await _until_event(server, room, "summary.approved")
    assert event["data"]["by"] == "Ms Smith"
    assert [p["text"] for p in event["data"]["summary"]["keyPoints"]] == [
        "A short test on Friday", "The water cycle"]
    # the guardian's email, once
    deadline = time.monotonic() + 20
    while not mailbox.to("mum@home.example") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    (mail,) = mailbox.to("mum@home.example")
    body = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert mail["Subject"].startswith("Lesson summary: Science")
    assert "A short test on Friday" in body and "Ann asked good questions." in body
    # the lesson's session record keeps it; the next lesson's brief shows it
    status, record = await _call(server, "GET", f"/api/schedule/lessons/{room}/record")
    assert status == 200 and record["summary"]["summary"]["notes"] == \
        "Ann asked good questions.", record.get("summary")
