"""A browser tab that is killed (renderer crash: no leave, no close frame) is not a leave:
the others see the participant reconnecting, and when its window runs out it leaves with
reason ``timeout`` (issue #5). The room's window is 3 s here to keep the test short."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from two_networks import api, open_page, until

from benches.server_process import ServerProcess

pytestmark = pytest.mark.e2e


async def test_a_killed_tab_ends_in_timeout_after_the_window(
    sfu_server: ServerProcess, browser: Any
) -> None:
    room = "killed"
    created = api(sfu_server, "/api/rooms", {"name": room, "reconnectWindowS": 3})
    assert created["reconnectWindowS"] == 3

    def url(identity: str) -> str:
        token = sfu_server.mint_token(room, identity, role="student")
        return f"{sfu_server.base_url}/?token={quote(token)}&video=320x180&simulcast=0"

    anna = await open_page(browser, url("anna"))
    ben = await open_page(browser, url("ben"))
    ben_id = await ben.evaluate("() => window.sfu.participantId")

    async def anna_sees_ben() -> bool:
        return ben_id in await anna.evaluate("() => window.sfu.remoteParticipants()")

    await until("anna sees ben", anna_sees_ben, 20)
    cdp = await ben.context.new_cdp_session(ben)
    # the renderer dies: no pagehide, no leave (the call itself never gets an answer)
    crash = asyncio.ensure_future(cdp.send("Page.crash"))
    crash.add_done_callback(lambda f: f.cancelled() or f.exception())  # (target closed)

    async def anna_saw_ben_reconnecting() -> bool:
        return ben_id in await anna.evaluate("() => window.sfu.reconnectingParticipants()")

    async def ben_gone() -> bool:
        return not await anna_sees_ben()

    await until("anna's page shows ben reconnecting", anna_saw_ben_reconnecting, 15,
                every_s=0.05)
    waited = await until("ben leaves after the 3 s window", ben_gone, 15)
    events = [e for e in api(sfu_server, f"/api/events?room={room}")["events"]
              if e["data"].get("participant") == ben_id]
    kinds = [e["type"] for e in events if e["type"].startswith("participant.")]
    assert kinds == ["participant.joined", "participant.reconnecting", "participant.left"]
    assert events[-1]["data"]["reason"] == "timeout"
    crash.cancel()
    print(f"tab kill figures: left with timeout {waited:.1f} s after the page showed "
          "'reconnecting' (window 3 s)")
