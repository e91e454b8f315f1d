"""The session report from a real server: live from the room API mid-session, then, when
the room closes, as the ``session.report`` event and a JSON file with the same content."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sfu_harness import Http
from test_polls_protocol import joined

from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def _report_event(http: Http, room: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await http.api("GET", f"/api/events?room={room}")
        assert status == 200, body
        found = [e["data"] for e in body["events"] if e["type"] == "session.report"]
        if found:
            return found[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "no session.report after the room closed"
        await asyncio.sleep(0.05)


async def test_the_session_report_live_and_at_the_close(server: ServerProcess) -> None:
    room = "report-" + secrets.token_hex(3)
    async with aiohttp.ClientSession() as session:
        http = Http(server, session)
        teacher, _ = await joined(server, "teacher", "instructor", room=room)
        ann, _ = await joined(server, "ann", room=room)
        try:
            await ann.send({"type": "hand_raise"})
            await ann.expect("hand_raised")
            await ann.send({"type": "chat_send", "text": "hello"})
            await ann.expect("chat")
            status, live = await http.api("GET", f"/api/rooms/{room}/report")
            assert status == 200, live
            by = {p["identity"]: p for p in live["participants"]}
            assert set(by) == {"teacher", "ann"}
            assert (by["ann"]["handRaises"], by["ann"]["chatMessages"]) == (1, 1)
            assert by["teacher"]["role"] == "instructor"
            status, _ = await http.api("GET", "/api/rooms/nope/report")
            assert status == 404
        finally:
            for p in (teacher, ann):
                await p.send({"type": "leave"})
                await p.close()
        # the last one out closes the auto-created room: the final report
        report = await _report_event(http, room)
        assert report["room"] == room and report["endMs"] >= report["startMs"]
        by = {p["identity"]: p for p in report["participants"]}
        assert by["ann"]["chatMessages"] == 1 and by["ann"]["intervals"][0][1] > 0
        path = Path(report.pop("file"))
        assert path.parent == Path(server.events_dir) / "reports"
        assert json.loads(path.read_text()) == report
