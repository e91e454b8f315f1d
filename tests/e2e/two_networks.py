"""Helpers of the browser tests that put one browser in its own network namespace
(fixtures ``netns``, ``shared_server`` and ``browsers`` are in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from browser_flags import CHROMIUM_ARGS
from netns import NetNs

from benches.server_process import ServerProcess

# Chromium caps the number of simulcast layers by resolution unless told not to
BROWSER_ARGS = [*CHROMIUM_ARGS, "--force-fieldtrials=WebRTC-LegacySimulcastLayerLimit/Disabled/"]


async def open_page(browser: Any, url: str) -> Any:
    """A page of the served client at ``url``, once it has joined."""
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("() => window.sfu && window.sfu.state === 'joined'",
                                 timeout=20_000)
    return page


def api(server: ServerProcess, path: str, body: Any = None) -> Any:
    """GET ``path`` of the room service API, or POST ``body`` (JSON) to it."""
    headers = dict(server.auth_header)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(server.base_url.replace("0.0.0.0", "127.0.0.1") + path,
                                 data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def media(server: ServerProcess, room: str) -> dict[str, Any]:
    return {p["identity"]: p["media"]
            for p in api(server, f"/api/rooms/{room}/participants")["participants"]}


async def until(what: str, check: Any, timeout_s: float, trace: Any = None,
                every_s: float = 0.25) -> float:
    """Poll ``check()`` (async) every ``every_s``; returns seconds taken, fails with
    ``trace()`` after ``timeout_s``."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            detail = await trace() if trace is not None else ""
            pytest.fail(f"{what}: not within {timeout_s} s. {detail}")
        await asyncio.sleep(every_s)


INBOUND_JS = """
async () => {
  const pc = window.sfu && window.sfu.subscriberPc;
  const out = {audio: 0, video: 0};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") out[s.kind] += s.packetsReceived;
  });
  return out;
}
"""


async def inbound(page: Any) -> dict[str, int]:
    return dict(await page.evaluate(INBOUND_JS))


def participant_events(server: ServerProcess, room: str, pid: str) -> list[dict[str, Any]]:
    return [e for e in api(server, f"/api/events?room={room}")["events"]
            if e["data"].get("participant") == pid and e["type"].startswith("participant.")]


ZERO = {"audio": 0, "video": 0}


class Pair:
    """anna on the host, ben in the namespace, both publishing, in ``room``."""

    def __init__(self, server: ServerProcess, netns: NetNs, room: str) -> None:
        self.server, self.netns, self.room = server, netns, room
        self.anna: Any = None
        self.ben: Any = None
        self.ben_id = ""

    async def open(self, browsers: tuple[Any, Any]) -> Pair:
        port = self.server.base_url.rsplit(":", 1)[1]

        def url(host: str, identity: str) -> str:
            token = self.server.mint_token(self.room, identity, role="student")
            return f"http://{host}:{port}/?token={quote(token)}&video=320x180&simulcast=0"

        self.anna = await open_page(browsers[0], url("127.0.0.1", "anna"))
        self.ben = await open_page(browsers[1], url(self.netns.host_addr, "ben"))
        self.ben_id = await self.ben.evaluate("() => window.sfu.participantId")
        return self

    async def counters(self) -> dict[str, dict[str, int]]:
        return {"anna": await inbound(self.anna), "ben": await inbound(self.ben)}

    async def flowing_since(self, before: dict[str, dict[str, int]]) -> bool:
        """Both pages received more audio and video packets than in ``before``."""
        now = await self.counters()
        return all(now[name][k] > before[name][k] + 5
                   for name in ("anna", "ben") for k in ("audio", "video"))

    async def trace(self) -> str:
        return (f"counters={await self.counters()} "
                f"anna={await self.anna.evaluate('() => window.sfu.state')} "
                f"ben={await self.ben.evaluate('() => window.sfu.state')} "
                f"iceRestarts={await self.ben.evaluate('() => window.sfu.iceRestarts')} "
                f"events={self.events()}")

    def events(self) -> list[dict[str, Any]]:
        return participant_events(self.server, self.room, self.ben_id)

    async def until_flowing(self, what: str, before: dict[str, dict[str, int]],
                            timeout_s: float) -> float:
        return await until(what, lambda: self.flowing_since(before), timeout_s, self.trace,
                           every_s=0.1)
