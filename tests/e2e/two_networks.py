"""Helpers of the browser tests that put one browser in its own network namespace
(fixtures ``netns``, ``shared_server`` and ``browsers`` are in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from browser_flags import CHROMIUM_ARGS

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
