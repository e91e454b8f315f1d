"""The recording policy and the instructor's control over the real signalling protocol:
who may start and stop a recording, what each policy allows, and that every participant
is told (the indicator) on joining and at every change."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sfu_harness import WsProbe
from test_polls_protocol import joined

from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def _api(server: ServerProcess, method: str, path: str,
               body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=server.auth_header) as http:
        async with http.request(method, server.base_url + path, json=body) as res:
            return res.status, await res.json()


async def test_the_instructor_starts_and_stops_it_and_everyone_is_told(
        server: ServerProcess) -> None:
    room = "rec-on-request"
    teacher, hello = await joined(server, "teacher", "instructor", room=room)
    ann, _ = await joined(server, "ann", room=room)
    probes: list[WsProbe] = [teacher, ann]
    try:
        assert hello["recording"] == {"active": False, "policy": "on_request",
                                      "recordingId": None}
        await ann.send({"type": "recording_start"})
        await ann.expect_error("permission_denied", fatal=False)  # students cannot
        await teacher.send({"type": "recording_start"})
        ids = {(await p.expect("recording"))["recordingId"] for p in probes}
        (rec_id,) = ids
        assert rec_id and rec_id.startswith("RC_")
        status, body = await _api(server, "GET", f"/api/rooms/{room}/recording")
        assert status == 200 and body["id"] == rec_id
        bob, late = await joined(server, "bob", room=room)  # a late joiner sees it
        probes.append(bob)
        assert late["recording"]["active"] is True  # type: ignore[index]
        await teacher.send({"type": "recording_stop"})
        for p in probes:
            assert (await p.expect("recording"))["active"] is False
        assert (await _api(server, "GET", f"/api/rooms/{room}/recording"))[0] == 404
    finally:
        for p in probes:
            await p.close()


async def test_policy_off_refuses_and_policy_always_records_from_creation(
        server: ServerProcess) -> None:
    status, _ = await _api(server, "POST", "/api/rooms",
                           {"name": "rec-off", "recordingPolicy": "off"})
    assert status == 201
    status, _ = await _api(server, "POST", "/api/rooms",
                           {"name": "rec-always", "recordingPolicy": "always"})
    assert status == 201
    status, err = await _api(server, "POST", "/api/rooms",
                             {"name": "rec-bad", "recordingPolicy": "sometimes"})
    assert status == 400 and err["error"]["code"] == "bad_message"

    teacher, hello = await joined(server, "teacher", "instructor", room="rec-off")
    try:
        assert hello["recording"]["policy"] == "off"  # type: ignore[index]
        await teacher.send({"type": "recording_start"})
        await teacher.expect_error("recording_refused", fatal=False)
        status, err = await _api(server, "POST", "/api/rooms/rec-off/recording")
        assert status == 409 and err["error"]["code"] == "recording_refused"
    finally:
        await teacher.close()

    status, body = await _api(server, "GET", "/api/rooms/rec-always/recording")
    assert status == 200  # recording before anyone came
    teacher, hello = await joined(server, "teacher", "instructor", room="rec-always")
    try:
        assert hello["recording"] == {"active": True, "policy": "always",  # type: ignore[index]
                                      "recordingId": body["id"]}
        await teacher.send({"type": "recording_stop"})
        await teacher.expect_error("recording_refused", fatal=False)
        await teacher.send({"type": "ping"})
        await teacher.expect("pong")
    finally:
        await teacher.close()
