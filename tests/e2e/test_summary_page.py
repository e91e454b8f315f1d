"""The instructor's summary page in Chromium: opened with the instructor's join token, it
shows the draft of a closed, transcribed room (its poll and attendance), saves the
instructor's key points and note, approves, and then offers nothing more to edit."""

from __future__ import annotations

from urllib.parse import quote

import playwright.async_api as playwright_async
import pytest
from browser_flags import CHROMIUM_ARGS, CHROMIUM_PATH
from room_api import api, until_event

from benches.server_process import ServerProcess
from tests.integration.sfu_harness import WsProbe

pytestmark = pytest.mark.e2e


async def test_the_instructor_edits_and_approves_on_the_page(sfu_server: ServerProcess
                                                             ) -> None:
    room = "summary-page"
    api(sfu_server, "POST", "/api/rooms", {"name": room, "transcription": "instructor"})
    teacher_token = sfu_server.mint_token(room, "teacher", "Ms Smith", role="instructor")
    teacher = await WsProbe(sfu_server).open()
    student = await WsProbe(sfu_server).open()
    try:
        await teacher.send({"type": "join", "token": teacher_token})
        await teacher.expect("joined")
        await student.send({"type": "join", "token": sfu_server.mint_token(room, "ann",
                                                                           "Ann")})
        await student.expect("joined")
        await teacher.send({"type": "poll_create", "poll": {
            "kind": "single", "question": "Ready?", "options": ["yes", "no"]}})
        poll = await student.expect("poll")
        await student.send({"type": "poll_answer", "pollId": poll["pollId"], "answer": [0]})
        await student.expect("poll_answered")
    finally:
        await teacher.close()
        await student.close()
    api(sfu_server, "DELETE", f"/api/rooms/{room}")
    await until_event(sfu_server, room, "summary.drafted")

    async with playwright_async.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{sfu_server.base_url}/summary?room={quote(room)}"
                            f"&token={quote(teacher_token)}")
            await page.wait_for_function("() => window.summaryPage && "
                                         "window.summaryPage.current()", timeout=15_000)
            facts = await page.inner_text("#facts")
            assert "Poll: Ready? (1 answers: yes: 1, no: 0)" in facts, facts
            assert "Came: Ann" in facts, facts
            assert (await page.inner_text("#state")).startswith("Draft")
            await page.fill("#key-points", "Fractions are parts of a whole\nHomework: page 4")
            await page.fill("#notes", "A calm, focused lesson.")
            await page.click("#approve")
            await page.wait_for_function(
                "() => document.getElementById('state').dataset.state === 'approved'",
                timeout=10_000)
            state = await page.inner_text("#state")
            disabled = await page.evaluate(
                "() => ['key-points', 'notes', 'approve'].map("
                "(id) => document.getElementById(id).disabled)")
            await page.screenshot(path="tests/e2e/artifacts/summary-page.png", full_page=True)
        finally:
            await browser.close()
    assert state.startswith("Approved by Ms Smith") and disabled == [True, True, True]
    status, summary = api(sfu_server, "GET", f"/api/rooms/{room}/summary")
    assert status == 200 and summary["state"] == "approved"
    assert [p["text"] for p in summary["keyPoints"]] == [
        "Fractions are parts of a whole", "Homework: page 4"]
    assert summary["notes"] == "A calm, focused lesson."
