"""The scheduler bridge end to end, in real Chromium and the real server: three lessons booked
through the API a minute apart are provisioned before their start; two pages join lesson A
through their personal links; lesson B's instructor never comes and an ``instructor_no_show``
reaches the queue; lesson A's recording fails (its second copy cannot be written) and the
alarm lands in the same queue; the operations page lists the three lessons with their status
and both exceptions, and acknowledging and resolving them there changes their state in the
API (docs/scheduling.md, docs/operations.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import ClientFactory

from benches.server_process import ServerProcess, start_server, stop_server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def ops_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("the second recording copy cannot be made under a file")
    server = start_server({
        "SFU_SCHEDULER_SQLITE_PATH": str(tmp_path / "schedule.sqlite3"),
        "SFU_SCHEDULER_PROVISION_LEAD_S": "150",
        "SFU_SCHEDULER_INSTRUCTOR_GRACE_S": "3",
        "SFU_SCHEDULER_REMINDER_OFFSETS": "",
        "SFU_RECORDING_SECOND_DIR": str(blocked / "copy"),
        "SFU_RECORDING_FINISH_TIMEOUT_S": "3"})
    yield server
    stop_server(server)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("---- server log ----\n" + "".join(server.log[-300:]))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def api(server: ServerProcess, method: str, path: str, body: Any = None
              ) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=server.auth_header) as s:
        async with s.request(method, server.base_url + path, json=body) as resp:
            return resp.status, await resp.json()


async def wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_three_lessons_on_the_operations_page(ops_server: ServerProcess,
                                                    new_client: ClientFactory) -> None:
    now = time.time()
    lessons: dict[str, dict[str, Any]] = {}
    for i, name in enumerate("ABC"):
        status, lesson = await api(ops_server, "POST", "/api/schedule/lessons", {
            "lessonId": f"lesson-{name}", "title": f"Lesson {name}",
            "start": iso(now + 8 + 60 * i), "end": iso(now + 8 + 60 * i + 1800),
            "timeZone": "Europe/London",
            "instructor": {"id": f"teacher-{name}", "name": f"Teacher {name}"},
            "students": [{"id": f"student-{name}", "name": f"Student {name}"}],
            "recordingPolicy": "always" if name == "A" else "off"})
        assert status == 201, lesson
        lessons[name] = lesson

    async def provisioned() -> list[dict[str, Any]] | None:
        _, body = await api(ops_server, "GET", "/api/events")
        found = [e for e in body["events"] if e["type"] == "lesson.provisioned"]
        return found if len(found) == 3 else None

    for event in await wait_for("three rooms", provisioned):
        start = next(x for x in lessons.values() if x["lessonId"] == event["room"])["start"]
        assert event["ts"] < datetime.fromisoformat(start).timestamp()

    # two pages join lesson A through their personal links (the served client page)
    a_links = {li["role"]: li["url"] for li in lessons["A"]["links"]}
    teacher = await new_client(a_links["instructor"], "teacher A")
    student = await new_client(a_links["student"], "student A")
    for page in (teacher, student):
        await page.page.wait_for_function("() => window.sfu && window.sfu.state === 'joined'",
                                          timeout=20000)

    async def queue() -> list[dict[str, Any]] | None:
        _, body = await api(ops_server, "GET", "/api/schedule/exceptions?state=open")
        kinds = {x["kind"] for x in body["exceptions"]}
        return body["exceptions"] if {"instructor_no_show", "recording_alarm"} <= kinds \
            else None

    exceptions = await wait_for("both exceptions", queue, timeout=120)
    no_show = next(x for x in exceptions if x["kind"] == "instructor_no_show")
    alarm = next(x for x in exceptions if x["kind"] == "recording_alarm")
    assert (no_show["lessonId"], no_show["person"]) == ("lesson-B", "teacher-B")
    assert alarm["lessonId"] == "lesson-A" and alarm["evidence"]["reason"] == "sink_error"

    # the operations page, signed in with the API secret
    ops = await new_client(ops_server.base_url + "/ops", "operations")
    page = ops.page
    await page.fill("#login-secret", ops_server.api_secret)
    await page.fill("#login-name", "Olga (ops)")
    await page.click("#login-submit")
    await page.wait_for_selector("#console:not([hidden])")
    rows = page.locator("#lesson-rows tr")
    await page.wait_for_function(
        "() => document.querySelector('#lesson-rows tr[data-lesson=\"lesson-A\"] .badge')"
        "?.textContent.includes('2 in room')", timeout=20000)
    assert await rows.count() == 3
    statuses = {await r.get_attribute("data-lesson"): await r.locator(".badge").inner_text()
                for r in await rows.all()}
    assert statuses == {"lesson-A": "Live · 2 in room · ● rec", "lesson-B": "Room open",
                        "lesson-C": "Room open"}
    exc_rows = page.locator("#exception-rows tr")
    await page.wait_for_selector("#exception-rows tr[data-kind='instructor_no_show']")
    kinds = {await r.get_attribute("data-kind") for r in await exc_rows.all()}
    assert {"instructor_no_show", "recording_alarm"} <= kinds
    ARTIFACTS.mkdir(exist_ok=True)
    shot = await page.screenshot(path=str(ARTIFACTS / "operations_page.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000  # a rendered page
    assert "lesson-B" in await page.locator("#exceptions").inner_text()
    assert "Teacher B" in await page.locator("#lessons").inner_text()

    # acknowledge the no-show and resolve the alarm from the page
    row = page.locator(f"#exception-rows tr[data-exception='{no_show['id']}']")
    await row.locator("input.note").fill("calling Teacher B")
    await row.get_by_role("button", name="Acknowledge").click()
    await page.wait_for_selector(f"#exception-rows tr[data-exception='{no_show['id']}']"
                                 "[data-state='acknowledged']")
    row = page.locator(f"#exception-rows tr[data-exception='{alarm['id']}']")
    await row.locator("input.note").fill("disk replaced")
    await row.get_by_role("button", name="Resolve").click()
    await page.wait_for_selector(f"#exception-rows tr[data-exception='{alarm['id']}']",
                                 state="detached")  # resolved: off the open list
    _, acked = await api(ops_server, "GET", "/api/schedule/exceptions?kind=instructor_no_show")
    assert acked["exceptions"][0]["state"] == "acknowledged"
    assert acked["exceptions"][0]["acknowledgedBy"] == "Olga (ops)"
    assert acked["exceptions"][0]["history"][0]["note"] == "calling Teacher B"
    _, resolved = await api(ops_server, "GET", "/api/schedule/exceptions?lesson=lesson-A"
                            "&state=resolved")
    assert [x["id"] for x in resolved["exceptions"]] == [alarm["id"]]
    assert resolved["exceptions"][0]["resolvedBy"] == "Olga (ops)"
