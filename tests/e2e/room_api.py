"""The room service API and the event list of a test's server, from the browser tests."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from benches.server_process import ServerProcess


def api(server: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One API call with the server's secret: (status, JSON body or None)."""
    req = urllib.request.Request(server.base_url + path, method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={**server.auth_header,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        raw = res.read()
        return res.status, json.loads(raw) if raw else None


async def until_event(server: ServerProcess, room: str, etype: str,
                      timeout: float = 20.0) -> dict[str, Any]:
    """The last event of that type for the room, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, body = await asyncio.to_thread(api, server, "GET", f"/api/events?room={room}")
        found = [e for e in body["events"] if e["type"] == etype]
        if found:
            return dict(found[-1])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {etype} event for room {room}")
