"""A real recording of a browser session: headless Chromium publishes its fake camera and
microphone, the room API starts and stops the recording, and the files open with PyAV,
hold audio and video of the recording's length (±1 s) and decode without an error; every
packet the forwarder handed the recorder was written (zero loss, per track, also in the
metrics); the timeline and the manifest sit beside the files."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import av
from conftest import ClientFactory

JOIN_TIMEOUT_MS = 15_000
RECORD_S = 5.0


async def _until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 15.0
                 ) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


def _decode(path: Path) -> tuple[str, int, float]:
    """(stream type, frames decoded, seconds first to last); a decode error raises."""
    with av.open(str(path)) as c:  # (nothing of the container is touched once closed)
        stream = c.streams[0]
        kind = stream.type
        times = [float(f.time) for f in c.decode(stream) if f.time is not None]
    return kind, len(times), times[-1] - times[0]


async def test_a_browser_session_is_recorded_whole(
        sfu_server: Any, new_client: ClientFactory,
        mint_token: Callable[..., Awaitable[str]]) -> None:
    room = "e2e-rec-" + secrets.token_hex(3)
    base = sfu_server.base_url
    auth = sfu_server.auth_header
    token = await mint_token(room, "teacher", "Ms T", "instructor")
    client = await new_client(f"{base}/?token={quote(token)}&video=320x180&simulcast=0",
                              "teacher")
    await client.page.wait_for_function("() => window.sfu && window.sfu.state === 'joined'",
                                        timeout=JOIN_TIMEOUT_MS)
    async with aiohttp.ClientSession(headers=auth) as http:
        async def get(path: str) -> Any:
            async with http.get(base + path) as res:
                return (res.status, await res.json())

        async def publishing() -> bool:
            _, body = await get(f"/api/rooms/{room}/participants")
            return len(body["participants"][0]["tracks"]) == 2

        await _until("the browser publishes audio and video", publishing)
        async with http.post(f"{base}/api/rooms/{room}/recording") as res:
            assert res.status == 201
            started = await res.json()
        assert {t["kind"] for t in started["tracks"]} == {"audio", "video"}

        async def recorded_enough() -> bool:
            _, body = await get(f"/api/rooms/{room}/recording")
            return all(t["durationS"] >= RECORD_S for t in body["tracks"])

        await _until(f"{RECORD_S} s recorded", recorded_enough)
        async with http.delete(f"{base}/api/rooms/{room}/recording") as res:
            assert res.status == 200
            manifest = await res.json()
        assert (await get(f"/api/rooms/{room}/recording"))[0] == 404
        async with http.get(base + "/metrics") as res:
            metrics = await res.text()
        _, events = await get(f"/api/events?room={room}")

    length = manifest["stoppedAt"] - manifest["startedAt"]
    folder = Path(manifest["location"])
    kinds = {}
    for t in manifest["tracks"]:
        kind, frames, seconds = _decode(folder / t["file"])
        kinds[kind] = t
        assert t["kind"] == kind
        # the file holds the recording's length: it starts when the track's first
        # (key)frame arrived, at most a second after the recording started
        assert abs(seconds + t["offsetS"] - length) <= 1.0, (t, seconds, length)
        assert abs(seconds - t["durationS"]) <= 0.1
        assert frames == t["frames"]
        # zero loss: every packet handed to the recorder is in the file, but for padding
        # (payload-less packets a browser sends to probe bandwidth)
        assert t["packetsIn"] == t["packetsWritten"] + t["packetsEmpty"], t
        assert t["packetsWritten"] > 0 and sum(t["dropped"].values()) == 0, t
    assert set(kinds) == {"audio", "video"}
    assert kinds["audio"]["frames"] >= 45 * RECORD_S  # 20 ms Opus frames
    assert kinds["video"]["frames"] >= 10 * RECORD_S

    written = sum(t["packetsWritten"] for t in manifest["tracks"])
    empty = sum(t["packetsEmpty"] for t in manifest["tracks"])
    assert f"sfu_recording_packets_written_total {float(written)}" in metrics
    assert f"sfu_recording_packets_empty_total {float(empty)}" in metrics
    assert f"sfu_recording_packets_in_total {float(written + empty)}" in metrics
    assert 'sfu_recording_packets_dropped_total{reason="undecodable"} 0.0' in metrics
    types = [e["type"] for e in events["events"]]
    assert types.count("recording.track_started") == 2
    assert types.count("recording.track_stopped") == 2
    assert "recording.started" in types and "recording.stopped" in types
    timeline = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().split(
        "\n") if line]
    assert [e["type"] for e in timeline].count("recording.track_started") == 2
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk["tracks"] == manifest["tracks"]
