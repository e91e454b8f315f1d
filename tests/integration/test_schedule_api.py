"""The scheduler bridge in a real server process, on SQLite and on a real PostgreSQL, with a
real SMTP server on loopback: lessons booked through the API are provisioned before their
start, personal links admit their people (and stop working after a reschedule or a
substitution), the watch raises exceptions into the queue, reminders go out once, and a
restart repeats nothing (docs/scheduling.md)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sfu_harness import Http, Mailbox, Pumper, WsProbe, unique

from benches.rawclient import RawClient
from tests.conftest import ServerProcess, start_server, stop_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scheduler"))
from postgres_server import fresh_database, postgres_admin_url  # noqa: E402

LEAD_S = 4.0
TIMINGS = {
    "SFU_SCHEDULER_PROVISION_LEAD_S": str(LEAD_S),
    "SFU_SCHEDULER_CLOSE_AFTER_S": "2",
    "SFU_SCHEDULER_INSTRUCTOR_GRACE_S": "2",
    "SFU_SCHEDULER_LATE_JOIN_S": "2",
    "SFU_SCHEDULER_EARLY_END_S": "1",
    "SFU_SCHEDULER_REMINDER_OFFSETS": "1h,3s",
    "SFU_SCHEDULER_NOTIFY_RETRY_S": "0.5",
    "SFU_SCHEDULER_OPERATOR_EMAILS": "ops@school.example",
    "SFU_SCHEDULER_SMTP_FROM": "lessons@school.example",
}


@pytest.fixture(scope="module")
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, str]]:
    """The bookings database of the module's server: a SQLite file, or a new database on a
    real PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("schedule") / "schedule.sqlite3"
        yield {"SFU_SCHEDULER_SQLITE_PATH": str(path)}
        return
    with postgres_admin_url() as admin, fresh_database(admin) as url:
        yield {"SFU_SCHEDULER_DATABASE_URL": url}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", ["sqlite", "postgresql"], indirect=True,
                             scope="module")


@pytest.fixture(scope="module")
def schedule_server(database: dict[str, str], mailbox: Mailbox,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    blocked = tmp_path_factory.mktemp("recordings") / "not-a-folder"
    blocked.write_text("the second recording copy cannot be made under a file")
    server = start_server({**TIMINGS, **database, "SFU_SCHEDULER_SMTP_HOST": "127.0.0.1",
                           "SFU_SCHEDULER_SMTP_PORT": str(mailbox.port),
                           "SFU_RECORDING_SECOND_DIR": str(blocked / "copy"),
                           "SFU_RECORDING_FINISH_TIMEOUT_S": "3"})
    yield server
    stop_server(server)


@pytest.fixture
async def http(schedule_server: ServerProcess, request: pytest.FixtureRequest
               ) -> AsyncIterator[Http]:
    start = len(schedule_server.log)
    async with aiohttp.ClientSession() as session:
        yield Http(schedule_server, session)
    lines = schedule_server.log[start:]
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write("---- server log ----\n" + "".join(lines[-200:]))
    assert not any("Traceback" in line for line in lines), "".join(lines[-60:])


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def lesson_body(lesson: str, start: float, end: float, instructor: str,
                students: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    return {"lessonId": lesson, "title": f"Lesson {lesson}", "start": iso(start),
            "end": iso(end), "timeZone": "Europe/Berlin",
            "instructor": {"id": instructor, "name": instructor.title(),
                           "email": f"{instructor}@school.example"},
            "students": [{"id": s, "name": s.title(), "email": f"{s}@home.example"}
                         for s in students], **kw}


async def book(http: Http, body: dict[str, Any]) -> dict[str, Any]:
    status, lesson = await http.api("POST", "/api/schedule/lessons", body=body)
    assert status == 201, lesson
    return lesson


def link_of(lesson: dict[str, Any], identity: str) -> str:
    return next(li["token"] for li in lesson["links"] if li["identity"] == identity)


async def events(http: Http, type_: str, room: str | None = None) -> list[dict[str, Any]]:
    path = "/api/events" + (f"?room={room}" if room else "")
    status, body = await http.api("GET", path)
    assert status == 200
    return [e for e in body["events"] if e["type"] == type_]


async def wait_event(http: Http, type_: str, room: str, timeout: float = 15.0,
                     count: int = 1) -> list[dict[str, Any]]:
    """Poll the server's recent events until ``count`` of that type arrived for the room."""
    deadline = time.monotonic() + timeout
    while True:
        found = await events(http, type_, room)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {type_} for {room} within {timeout} s")
        await asyncio.sleep(0.1)


async def join(server: ServerProcess, token: str) -> WsProbe:
    probe = await WsProbe(server).open()
    await probe.send({"type": "join", "token": token})
    return probe


async def joins(server: ServerProcess, token: str) -> dict[str, Any]:
    probe = await join(server, token)
    try:
        return await probe.expect("joined")
    finally:
        await probe.close()


async def refused(server: ServerProcess, token: str, code: str) -> str:
    probe = await join(server, token)
    try:
        err = await probe.expect_error(code, fatal=True)
        return str(err["message"])
    finally:
        await probe.close()


async def test_lessons_are_provisioned_before_their_start_and_links_admit_their_people(
        http: Http, schedule_server: ServerProcess) -> None:
    now = time.time()
    teacher = unique("teacher")
    a = await book(http, lesson_body(unique("A"), now + LEAD_S + 1.5, now + 300, teacher,
                                     ("ann", "ben"), recordingPolicy="off",
                                     room={"maxParticipants": 5, "reconnectWindowS": 7}))
    lesson = a["lessonId"]
    assert [li["role"] for li in a["links"]] == ["instructor", "student", "student"]
    assert a["links"][0]["url"].startswith(schedule_server.base_url + "/?token=")
    assert a["links"][0]["notBefore"] == int(a["links"][0]["notBefore"])
    # not provisioned yet, and its links not valid yet (nbf: provision_lead_s before start)
    status, _ = await http.api("GET", f"/api/rooms/{lesson}/participants")
    assert status == 404
    await refused(schedule_server, link_of(a, "ann"), "token_expired")
    provisioned = await wait_event(http, "lesson.provisioned", lesson)
    assert provisioned[0]["data"]["maxParticipants"] == 5
    assert provisioned[0]["data"]["reconnectWindowS"] == 7
    assert provisioned[0]["ts"] < now + LEAD_S + 1.5  # before the start
    status, rooms = await http.api("GET", "/api/rooms")
    room = next(r for r in rooms["rooms"] if r["name"] == lesson)
    assert (room["maxParticipants"], room["recordingPolicy"]) == (5, "off")
    joined = await joins(schedule_server, link_of(a, teacher))
    assert joined["participant"]["role"] == "instructor"
    started = await wait_event(http, "lesson.started", lesson)
    assert started[0]["data"]["by"] == teacher
    status, got = await http.api("GET", f"/api/schedule/lessons/{lesson}")
    assert got["status"] == "live" and got["provisionedAt"] is not None
    # the same link for another lesson's room is nobody's business: a plain token of
    # another room still works as before, and a lesson link only opens its own room
    status, listed = await http.api("GET", f"/api/schedule/lessons?instructor={teacher}")
    assert [x["lessonId"] for x in listed["lessons"]] == [lesson]


async def test_reschedule_and_substitution_refuse_the_old_links(
        http: Http, schedule_server: ServerProcess, mailbox: Mailbox) -> None:
    now = time.time()
    teacher, sub = unique("teacher"), unique("sub")
    b = await book(http, lesson_body(unique("R"), now + 2, now + 600, teacher, ("cleo",)))
    lesson = b["lessonId"]
    await wait_event(http, "lesson.provisioned", lesson)
    old_student = link_of(b, "cleo")
    status, moved = await http.api("POST", f"/api/schedule/lessons/{lesson}/reschedule",
                                   body={"start": iso(now + 3), "end": iso(now + 900)})
    assert status == 200, moved
    assert moved["revision"] == 2
    message = await refused(schedule_server, old_student, "link_superseded")
    assert "rescheduled" in message and "newest link" in message
    assert (await joins(schedule_server, link_of(moved, "cleo")))["room"] == lesson
    status, subbed = await http.api("POST", f"/api/schedule/lessons/{lesson}/substitute",
                                    body={"instructor": {"id": sub, "name": "Sub"}})
    assert status == 200 and subbed["revision"] == 3
    assert subbed["instructor"]["id"] == sub
    await refused(schedule_server, link_of(moved, teacher), "link_superseded")
    await refused(schedule_server, link_of(moved, "cleo"), "link_superseded")
    assert (await joins(schedule_server, link_of(subbed, sub)))["participant"]["role"] == \
        "instructor"
    substituted = await wait_event(http, "lesson.instructor_substituted", lesson)
    assert substituted[0]["data"] == {"lessonId": lesson, "revision": 3, "instructor": sub,
                                      "previous": teacher}
    # the whiteboard socket is behind the same gate
    async with aiohttp.ClientSession() as session:
        async with session.get(schedule_server.base_url + "/ws/whiteboard?token="
                               + link_of(b, "cleo")) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "link_superseded"
    # a cancelled lesson's links stop working and its room closes
    status, cancelled = await http.api("POST", f"/api/schedule/lessons/{lesson}/cancel",
                                       body={"reason": "snow day"})
    assert status == 200 and cancelled["status"] == "cancelled"
    await refused(schedule_server, link_of(subbed, "cleo"), "lesson_cancelled")
    status, _ = await http.api("GET", f"/api/rooms/{lesson}/participants")
    assert status == 404
    status, again = await http.api("POST", f"/api/schedule/lessons/{lesson}/reschedule",
                                   body={"start": iso(now + 60), "end": iso(now + 120)})
    assert status == 409 and again["error"]["code"] == "bad_state"


async def test_exceptions_reach_the_queue_and_move_through_their_states(
        http: Http, schedule_server: ServerProcess, mailbox: Mailbox) -> None:
    now = time.time()
    teacher = unique("absent")
    c = await book(http, lesson_body(unique("N"), now + 1, now + 8, teacher,
                                     ("dora", "eli", "fay")))
    lesson = c["lessonId"]
    await wait_event(http, "lesson.provisioned", lesson)
    dora = await join(schedule_server, link_of(c, "dora"))
    try:
        await dora.expect("joined")
        raised = await wait_event(http, "exception.raised", lesson)
        no_show = raised[0]["data"]
        assert (no_show["kind"], no_show["person"]) == ("instructor_no_show", teacher)
        assert no_show["evidence"]["present"] == ["dora"]
        assert raised[0]["ts"] >= now + 1 + 2  # not before start + instructor_grace_s
        eli = await joins(schedule_server, link_of(c, "eli"))  # 2 s after the start: late
        assert eli["room"] == lesson
        ended = await wait_event(http, "lesson.ended", lesson, timeout=20)
        assert ended[0]["data"]["status"] == "ended"
    finally:
        await dora.close()
    # eli came for a moment: the session report flags low attendance. The report comes
    # with the room's close, after lesson.ended: its exception may take a moment more
    want = {("instructor_no_show", teacher), ("late_join", "eli"),
            ("student_no_show", "fay"), ("student_flagged", "eli")}
    deadline = time.monotonic() + 15
    while True:
        kinds = {(e["data"]["kind"], e["data"]["person"])
                 for e in await events(http, "exception.raised", lesson)}
        if kinds >= want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert kinds == want
    status, queue = await http.api("GET", f"/api/schedule/exceptions?lesson={lesson}")
    assert status == 200 and queue["total"] == 4
    assert {x["state"] for x in queue["exceptions"]} == {"open"}
    first = next(x for x in queue["exceptions"] if x["kind"] == "instructor_no_show")
    status, acked = await http.api("POST", f"/api/schedule/exceptions/{first['id']}/acknowledge",
                                   body={"by": "ops-amy", "note": "phoning the teacher"})
    assert status == 200 and acked["state"] == "acknowledged"
    status, done = await http.api("POST", f"/api/schedule/exceptions/{first['id']}/resolve",
                                  body={"by": "ops-amy", "note": "teacher was ill"})
    assert status == 200 and done["resolvedBy"] == "ops-amy"
    status, again = await http.api("POST", f"/api/schedule/exceptions/{first['id']}/acknowledge",
                                   body={"by": "ops-amy"})
    assert status == 409 and again["error"]["code"] == "bad_state"
    status, missing = await http.api("POST", "/api/schedule/exceptions/EX_nope/resolve",
                                     body={"by": "x"})
    assert status == 404 and missing["error"]["code"] == "exception_not_found"
    status, bad = await http.api("POST", f"/api/schedule/exceptions/{first['id']}/resolve",
                                 body={"note": "who?"})
    assert status == 400
    resolved = await wait_event(http, "exception.resolved", lesson)
    assert resolved[0]["data"]["by"] == "ops-amy"
    status, still_open = await http.api(
        "GET", f"/api/schedule/exceptions?lesson={lesson}&state=open")
    assert still_open["total"] == 3
    # every exception was mailed to the operators, once
    deadline = time.monotonic() + 10
    while len([m for m in mailbox.to("ops@school.example") if lesson in m["Subject"]]) < 4:
        assert time.monotonic() < deadline, [m["Subject"] for m in mailbox.messages]
        await asyncio.sleep(0.1)
    subjects = sorted(m["Subject"] for m in mailbox.to("ops@school.example")
                      if lesson in m["Subject"])
    assert subjects[0] == f"[instructor_no_show] lesson {lesson}: {teacher}"
    assert len(subjects) == 4
    first_mail = next(m for m in mailbox.to("ops@school.example") if m["Subject"] == subjects[0])
    mail = first_mail.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert f"\nPerson: {teacher}\n" in mail and f"Lesson: {lesson}\n" in mail
    status, lessons = await http.api("GET", f"/api/schedule/lessons?instructor={teacher}"
                                     "&status=ended")
    assert [x["lessonId"] for x in lessons["lessons"]] == [lesson]


async def test_a_recording_failure_lands_in_the_same_queue(
        http: Http, schedule_server: ServerProcess) -> None:
    """The recorder's alarms go to the exception queue: this server's second recording copy
    cannot be written (its folder's parent is a file, see ``schedule_server``)."""
    now = time.time()
    teacher = unique("rec")
    d = await book(http, lesson_body(unique("REC"), now + 1, now + 120, teacher,
                                     recordingPolicy="always"))
    lesson = d["lessonId"]
    await wait_event(http, "recording.started", lesson)
    client = RawClient(schedule_server.ws_url, link_of(d, teacher))
    pump: Pumper | None = None
    try:
        await client.connect()
        await client.publish()
        pump = Pumper(client).start()
        alarm = await wait_event(http, "exception.raised", lesson, timeout=20)
        assert alarm[0]["data"]["kind"] == "recording_alarm"
        assert alarm[0]["data"]["evidence"]["reason"] == "sink_error"
        assert alarm[0]["data"]["evidence"]["sink"] == "copy"
    finally:
        if pump is not None:
            await pump.stop()
        await client.close()
    status, manifest = await http.api("DELETE", f"/api/rooms/{lesson}/recording")
    assert status == 200 and manifest["problems"]
    await wait_event(http, "exception.raised", lesson, count=3)
    status, queue = await http.api("GET", f"/api/schedule/exceptions?lesson={lesson}"
                                   "&kind=recording_alarm,recording_failed")
    # once per kind of trouble, however many alarms each raised (three verification ones)
    assert sorted((x["kind"], x["evidence"].get("reason", "")) for x in queue["exceptions"]
                  ) == [("recording_alarm", "sink_error"),
                        ("recording_alarm", "verification_failed"),
                        ("recording_failed", "requested")]
    assert (await events(http, "recording.alarm", lesson)).__len__() >= 4


async def test_bad_input_gets_clear_errors_and_changes_nothing(http: Http) -> None:
    now = time.time() + 86400
    teacher = unique("busy")
    await book(http, lesson_body(unique("X"), now, now + 3600, teacher))
    status, before = await http.api("GET", f"/api/schedule/lessons?instructor={teacher}")
    cases: list[tuple[dict[str, Any], int, str]] = [
        (lesson_body(unique("X"), now + 1800, now + 5400, teacher), 409,
         "instructor_conflict"),
        (lesson_body(unique("X"), now, now + 60, "t", timeZone="Atlantis/Capital"), 400,
         "unknown_time_zone"),
        (lesson_body(unique("X"), now, now - 60, "t"), 400, "bad_times"),
        ({"lessonId": "no spaces allowed"}, 400, "bad_booking"),
    ]
    for body, code, error in cases:
        status, answer = await http.api("POST", "/api/schedule/lessons", body=body)
        assert (status, answer["error"]["code"]) == (code, error), answer
        assert answer["error"]["message"]
    status, dup = await http.api("POST", "/api/schedule/lessons", body=lesson_body(
        before["lessons"][0]["lessonId"], now + 7200, now + 9000, unique("t")))
    assert (status, dup["error"]["code"]) == (409, "lesson_exists")
    # CSV: the bad rows are reported by row, the good one is imported
    good, clash = unique("CSV"), unique("CSV")
    csv_text = ("lesson_id,title,start,end,time_zone,instructor_id\n"
                f"{good},Fine,{iso(now + 7200)},{iso(now + 9000)},UTC,{unique('t')}\n"
                f"{unique('CSV')},Bad,{iso(now)},not-a-time,UTC,t\n"
                f"{clash},Clash,{iso(now + 600)},{iso(now + 1200)},UTC,{teacher}\n"
                f"{unique('CSV')},Zone,{iso(now)},{iso(now + 60)},Nowhere/Land,t\n")
    async with http.session.post(http.server.base_url + "/api/schedule/import",
                                 data=csv_text, headers={**http.server.auth_header,
                                                         "Content-Type": "text/csv"}) as resp:
        assert resp.status == 200
        result = await resp.json()
    assert (result["created"], result["rejected"]) == (1, 3)
    assert [(e["row"], e["code"]) for e in result["errors"]] == [
        (3, "bad_times"), (4, "instructor_conflict"), (5, "unknown_time_zone")]
    # importing the same file again changes nothing (idempotent by lesson id)
    async with http.session.post(http.server.base_url + "/api/schedule/import",
                                 data=csv_text, headers={**http.server.auth_header,
                                                         "Content-Type": "text/csv"}) as resp:
        again = await resp.json()
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 1, 3)
    # too large: refused whole, nothing imported
    rows = "".join(f"{unique('BIG')},T,{iso(now + 99999 + i * 7200)},"
                   f"{iso(now + 99999 + i * 7200 + 60)},UTC,big\n" for i in range(3))
    huge = "lesson_id,title,start,end,time_zone,instructor_id\n" + rows + "#" * (17 << 20)
    async with http.session.post(http.server.base_url + "/api/schedule/import",
                                 data=io.BytesIO(huge.encode()),
                                 headers={**http.server.auth_header,
                                          "Content-Type": "text/csv"}) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "import_too_large"
    status, big = await http.api("GET", "/api/schedule/lessons?instructor=big")
    assert big["total"] == 0
    status, unsupported = await http.api("POST", "/api/schedule/import", body=None,
                                         headers={"Content-Type": "text/plain"})
    assert status == 415
    status, answer = await http.api("PATCH", f"/api/schedule/lessons/{good}",
                                    body={"start": iso(now)})
    assert status == 400 and "reschedule" in answer["error"]["message"]
    status, answer = await http.api("GET", "/api/schedule/lessons?limit=0")
    assert status == 400
    status, answer = await http.api("GET", "/api/schedule/lessons?status=sleeping")
    assert status == 400 and "status" in answer["error"]["message"]
    status, answer = await http.api("GET", "/api/schedule/lessons/nope")
    assert (status, answer["error"]["code"]) == (404, "lesson_not_found")
    status, answer = await http.api("GET", "/api/schedule/lessons", auth=False)
    assert status == 401
    status, after = await http.api("GET", f"/api/schedule/lessons?instructor={teacher}")
    assert after == before


async def test_patch_updates_the_booking_and_the_openapi_document_lists_every_route(
        http: Http, schedule_server: ServerProcess) -> None:
    now = time.time() + 3 * 86400
    b = await book(http, lesson_body(unique("P"), now, now + 3600, unique("t"), ("gus",)))
    lesson = b["lessonId"]
    status, changed = await http.api("PATCH", f"/api/schedule/lessons/{lesson}", body={
        "title": "Renamed", "students": [{"id": "gus"}, {"id": "hal"}],
        "room": {"maxParticipants": 9}})
    assert status == 200, changed
    assert changed["title"] == "Renamed" and changed["revision"] == 1
    assert [s["id"] for s in changed["students"]] == ["gus", "hal"]
    assert changed["room"]["maxParticipants"] == 9
    updated = await wait_event(http, "lesson.updated", lesson)
    assert updated[0]["data"]["fields"] == ["room", "students", "title"]
    status, doc = await http.api("GET", "/api/schedule/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    from sfu.config import Config
    from signalling.app import create_app
    app = create_app(Config())
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/schedule")}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    json.dumps(doc)


async def wait_mail(mailbox: Mailbox, pred: Any, count: int, timeout: float = 15.0
                    ) -> list[Message]:
    deadline = time.monotonic() + timeout
    while len(found := [m for m in mailbox.messages if pred(m)]) < count:
        assert time.monotonic() < deadline, [m["Subject"] for m in mailbox.messages]
        await asyncio.sleep(0.05)
    return found


async def test_reminders_carry_the_personal_link_and_a_failed_email_is_retried(
        http: Http, schedule_server: ServerProcess, mailbox: Mailbox) -> None:
    port = mailbox.port
    mailbox.stop()  # the SMTP server is down when the reminder is due
    now = time.time()
    teacher = unique("remind")
    body = lesson_body(unique("M"), now + 5, now + 600, teacher)
    body["students"] = [{"id": "ivy", "name": "Ivy", "email": f"ivy-{teacher}@home.example",
                         "guardians": [{"name": "Ivy's dad",
                                        "email": f"dad-{teacher}@home.example"}]}]
    m = await book(http, body)
    lesson = m["lessonId"]
    # booked less than an hour ahead: the 1 h reminder is due at once (the nearest due
    # offset; earlier ones would be skipped), the 3 s one comes 3 s before the start
    first = await wait_event(http, "lesson.reminder", lesson)
    assert first[0]["data"]["offsetS"] == 3600
    assert [p["url"] for p in first[0]["data"]["people"]] == [li["url"] for li in m["links"]]
    failed = await wait_event(http, "notification.failed", lesson)
    assert failed[0]["data"]["final"] is False and "refused" in failed[0]["data"]["error"]
    mailbox.start(port)
    sent = await wait_event(http, "notification.sent", lesson, count=6)
    recipients = [e["data"]["recipient"] for e in sent]
    assert sorted(recipients) == sorted([f"{teacher}@school.example",
                                         f"ivy-{teacher}@home.example",
                                         f"dad-{teacher}@home.example"] * 2)
    assert [e["data"]["offsetS"] for e in await events(http, "lesson.reminder", lesson)] == [
        3600, 3]
    mails = await wait_mail(mailbox, lambda x: m["title"] in x["Subject"], 6)
    assert len(mails) == 6  # each once: the failed ones were sent when the server was back
    body_of = {x["To"]: x.get_payload(decode=True).decode() for x in mails}
    assert link_of(m, teacher) in body_of[f"{teacher}@school.example"]
    assert link_of(m, "ivy") in body_of[f"ivy-{teacher}@home.example"]
    guardian = body_of[f"dad-{teacher}@home.example"]
    assert "Ivy has" in guardian and "token" not in guardian  # no personal link for others
    assert all(x["From"] == "lessons@school.example" for x in mails)
    status, log = await http.api("GET", f"/api/schedule/notifications?lesson={lesson}")
    emails = [n for n in log["notifications"] if n["channel"] == "email"]
    assert [n["state"] for n in emails] == ["sent"] * 6
    assert len([n for n in emails if n["attempts"] >= 2]) == 3  # the first reminder's


@pytest.fixture
def own_database(database: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A database of the module's kind for this test's own servers alone."""
    if "SFU_SCHEDULER_SQLITE_PATH" in database:
        yield {"SFU_SCHEDULER_SQLITE_PATH": str(tmp_path / "restart.sqlite3")}
        return
    with postgres_admin_url() as admin, fresh_database(admin) as url:
        yield {"SFU_SCHEDULER_DATABASE_URL": url}


async def test_a_restart_repeats_nothing_and_loses_nothing(
        own_database: dict[str, str], mailbox: Mailbox, tmp_path: Path) -> None:
    env = {**TIMINGS, **own_database, "SFU_SCHEDULER_SMTP_HOST": "127.0.0.1",
           "SFU_SCHEDULER_SMTP_PORT": str(mailbox.port),
           "SFU_EVENTS_LOG_DIR": str(tmp_path / "events")}
    first = start_server(env)
    now = time.time()
    teacher, absent = unique("stay"), unique("gone")
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(first, session)
            kept = await book(http, lesson_body(unique("K"), now + 5, now + 600, teacher,
                                                ("jo",)))
            missed = await book(http, lesson_body(unique("G"), now + 2, now + 600, absent))
            await wait_event(http, "lesson.provisioned", kept["lessonId"])
            await wait_event(http, "notification.sent", kept["lessonId"], count=4)
            await wait_event(http, "exception.raised", missed["lessonId"])
            await joins(first, link_of(kept, teacher))
            await wait_event(http, "lesson.started", kept["lessonId"])
    finally:
        stop_server(first)
    second = start_server(env)
    try:
        async with aiohttp.ClientSession() as session:
            http = Http(second, session)
            # a lesson booked after the restart: once its no-show is raised, every check of
            # the earlier lessons that was due has run too
            barrier = await book(http, lesson_body(unique("B"), time.time() + 0.5,
                                                   time.time() + 600, unique("late")))
            await wait_event(http, "exception.raised", barrier["lessonId"])
            status, rooms = await http.api("GET", "/api/rooms")
            names = {r["name"] for r in rooms["rooms"]}
            assert {kept["lessonId"], missed["lessonId"]} <= names  # the rooms are back
            for lesson in (kept["lessonId"], missed["lessonId"]):
                assert await events(http, "lesson.provisioned", lesson) == []
                assert await events(http, "lesson.reminder", lesson) == []
                assert await events(http, "exception.raised", lesson) == []
            status, queue = await http.api(
                "GET", f"/api/schedule/exceptions?lesson={missed['lessonId']}")
            assert [(x["kind"], x["person"]) for x in queue["exceptions"]] == [
                ("instructor_no_show", absent)]
            status, got = await http.api("GET", f"/api/schedule/lessons/{kept['lessonId']}")
            assert got["status"] == "live"
            # the instructor had joined before the restart: no no-show now that the
            # grace time passed with nobody in the new process's room
            status, kept_queue = await http.api(
                "GET", f"/api/schedule/exceptions?lesson={kept['lessonId']}")
            assert kept_queue["total"] == 0
            # the links made before the restart still work (jo is late now: late_join)
            assert (await joins(second, link_of(kept, "jo")))["room"] == kept["lessonId"]
            late = await wait_event(http, "exception.raised", kept["lessonId"])
            assert [e["data"]["kind"] for e in late] == ["late_join"]
            status, log = await http.api(
                "GET", f"/api/schedule/notifications?lesson={kept['lessonId']}")
            keys = [n["key"] for n in log["notifications"]]
            assert len(keys) == len(set(keys)) and len(
                [k for k in keys if k.startswith("reminder:") and ":email:" in k]) == 4, keys
    finally:
        stop_server(second)
    to_teacher = [x for x in mailbox.to(f"{teacher}@school.example")]
    assert len(to_teacher) == 2  # each reminder once, never again


async def test_session_record_brief_and_the_operations_views(
        http: Http, schedule_server: ServerProcess) -> None:
    now = time.time()
    series, t1, t2 = unique("series"), unique("t"), unique("t")
    s1, s2 = unique("s"), unique("s")
    p1 = await book(http, lesson_body(unique("P1"), now + 1, now + 4, t1, (s1, s2),
                                      seriesId=series))
    q1 = await book(http, lesson_body(unique("Q1"), now + 1, now + 4, t2, (s2,)))
    await wait_event(http, "lesson.provisioned", p1["lessonId"])
    probe = await join(schedule_server, link_of(p1, s1))
    try:
        await probe.expect("joined")
        await wait_event(http, "lesson.started", p1["lessonId"])
    finally:
        await probe.close()
    await wait_event(http, "lesson.ended", p1["lessonId"], timeout=20)
    ended_q = await wait_event(http, "lesson.ended", q1["lessonId"], timeout=20)
    assert ended_q[0]["data"]["status"] == "no_show"
    lesson = p1["lessonId"]
    status, _ = await http.api("PUT", f"/api/schedule/lessons/{lesson}/notes",
                               body={"notes": "fractions next; call Ben's parents"})
    assert status == 200
    status, record = await http.api("GET", f"/api/schedule/lessons/{lesson}/record")
    assert status == 200
    assert record["notes"] == "fractions next; call Ben's parents"
    assert record["report"]["type"] == "session.report"
    assert {p["identity"] for p in record["report"]["participants"]} == {s1}
    came = {a["identity"]: a["came"] for a in record["attendance"]}
    assert came == {t1: False, s1: True, s2: False}
    assert {(x["kind"], x["person"]) for x in record["exceptions"]} >= {
        ("instructor_no_show", t1), ("student_no_show", s2)}
    # the next lesson of the series: its instructor gets the brief on joining
    p2 = await book(http, lesson_body(unique("P2"), time.time() + 2, time.time() + 600, t1,
                                      (s1, s2), seriesId=series))
    status, brief = await http.api("GET", f"/api/schedule/lessons/{p2['lessonId']}/brief")
    assert brief["brief"]["lessonId"] == lesson
    probe = await join(schedule_server, link_of(p2, t1))
    try:
        joined = await probe.expect("joined")
    finally:
        await probe.close()
    told = joined["lesson"]
    assert told["id"] == p2["lessonId"] and told["title"] == p2["title"]
    assert told["brief"]["came"] == [s1.title()] and told["brief"]["absent"] == [s2.title()]
    assert told["brief"]["notes"] == "fractions next; call Ben's parents"
    assert {e["kind"] for e in told["brief"]["openExceptions"]} >= {"instructor_no_show",
                                                                   "student_no_show"}
    student_view = await joins(schedule_server, link_of(p2, s1))
    assert "brief" not in student_view["lesson"]  # the brief is the instructor's
    # students at risk: s2 missed both of their lessons
    status, risk = await http.api("GET", "/api/schedule/at-risk")
    mine = [r for r in risk["students"] if r["identity"] in (s1, s2)]
    assert [(r["identity"], r["missed"], r["lessons"]) for r in mine] == [(s2, 2, 2)]
    # the day as the operations page reads it, with an operator token
    status, made = await http.api("POST", "/api/schedule/operator-token",
                                  body={"name": "Olga"})
    assert status == 201
    day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    operator = {"Authorization": f"Bearer {made['token']}"}
    status, view = await http.api("GET", f"/api/schedule/day?day={day}&instructor={t1}",
                                  auth=False, headers=operator)
    assert status == 200, view
    rows = {r["lessonId"]: r for r in view["lessons"]}
    assert rows[lesson]["status"] == "ended" and rows[p2["lessonId"]]["roomOpen"] is True
    assert rows[p2["lessonId"]]["live"]["participants"] >= 0
    assert 0 <= view["today"]["attendanceRate"] <= 1
    assert view["today"]["noShowRate"] is not None
    status, who = await http.api("GET", "/api/schedule/whoami", auth=False, headers=operator)
    assert who == {"operator": "Olga"}
    # an operator token opens the scheduling API only, and cannot make more tokens
    status, _ = await http.api("GET", "/api/rooms", auth=False, headers=operator)
    assert status == 401
    status, _ = await http.api("POST", "/api/schedule/operator-token", body={"name": "x"},
                               auth=False, headers=operator)
    assert status == 401


async def test_a_day_of_500_lessons_pages_and_filters(http: Http) -> None:
    """The operations page's day view at 500 lessons a day: pages of 50, filters by
    instructor and status, counted in the database."""
    day = datetime.fromtimestamp(time.time() + 20 * 86400, UTC).strftime("%Y-%m-%d")
    tag = unique("day")
    rows = ["lesson_id,title,start,end,time_zone,instructor_id,students"]
    for i in range(500):  # 9 instructors, each in 60 ten-minute slots from 8:00
        slot = i % 60
        hour, minute = 8 + slot // 6, slot % 6 * 10
        rows.append(f"{tag}-{i},Lesson {i},{day}T{hour:02d}:{minute:02d},"
                    f"{day}T{hour:02d}:{minute + 9:02d},UTC,{tag}-t{i // 60},{tag}-s{i}")
    async with http.session.post(http.server.base_url + "/api/schedule/import",
                                 data="\n".join(rows) + "\n",
                                 headers={**http.server.auth_header,
                                          "Content-Type": "text/csv"}) as resp:
        result = await resp.json()
    assert (result["created"], result["rejected"]) == (500, 0), result["errors"][:3]
    status, first = await http.api("GET", f"/api/schedule/day?day={day}&limit=50")
    assert status == 200 and first["total"] >= 500 and len(first["lessons"]) == 50
    starts = [x["start"] for x in first["lessons"]]
    assert starts == sorted(starts)
    status, last = await http.api("GET", f"/api/schedule/day?day={day}&limit=50&offset=450")
    assert len(last["lessons"]) == 50 and not {x["lessonId"] for x in last["lessons"]} & {
        x["lessonId"] for x in first["lessons"]}
    status, one = await http.api("GET", f"/api/schedule/day?day={day}&instructor={tag}-t7")
    assert one["total"] == 60 and {x["instructor"]["id"] for x in one["lessons"]} == {
        f"{tag}-t7"}
    status, none = await http.api("GET", f"/api/schedule/day?day={day}&instructor={tag}-t7"
                                  "&status=live")
    assert none["total"] == 0
    assert first["today"]["byStatus"].get("scheduled", 0) >= 500
