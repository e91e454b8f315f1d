"""A real recording of a browser session: headless Chromium publishes its fake camera and
microphone, the room API starts and stops the recording, and the files open with PyAV,
hold audio and video of the recording's length (±1 s) and decode without an error; every
packet the forwarder handed the recorder was written (zero loss, per track, also in the
metrics); both copies (two local folders here) hold the same bytes and pass their check;
the timeline and the manifest sit beside the files in each."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import av
from conftest import ClientFactory
from two_networks import until

from benches.server_process import start_server, stop_server

JOIN_TIMEOUT_MS = 15_000
RECORD_S = 5.0


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

        await until("the browser publishes audio and video", publishing, 15.0, every_s=0.1)
        async with http.post(f"{base}/api/rooms/{room}/recording") as res:
            assert res.status == 201
            started = await res.json()
        assert {t["kind"] for t in started["tracks"]} == {"audio", "video"}

        async def recorded_enough() -> bool:
            _, body = await get(f"/api/rooms/{room}/recording")
            return all(t["durationS"] >= RECORD_S for t in body["tracks"])

        await until(f"{RECORD_S} s recorded", recorded_enough, 15.0, every_s=0.1)
        async with http.delete(f"{base}/api/rooms/{room}/recording") as res:
            assert res.status == 200
            manifest = await res.json()
        assert (await get(f"/api/rooms/{room}/recording"))[0] == 404
        async with http.get(base + "/metrics") as res:
            metrics = await res.text()
        _, events = await get(f"/api/events?room={room}")

    length = manifest["stoppedAt"] - manifest["startedAt"]
    assert manifest["problems"] == [] and manifest["complete"] == {"local": True, "copy": True}
    folder = Path(manifest["locations"][0])
    second = Path(manifest["locations"][1])
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
        # both copies checked: the same bytes, and they open and last as long
        assert [c["sink"] for c in t["copies"]] == ["local", "copy"]
        assert all(c["ok"] and c["checksumMatch"] for c in t["copies"]), t["copies"]
        assert (second / t["file"]).read_bytes() == (folder / t["file"]).read_bytes()
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
    assert "recording.started" in types and "recording.completed" in types
    assert "recording.alarm" not in types and "recording.failed" not in types
    timeline = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().split(
        "\n") if line]
    assert [e["type"] for e in timeline].count("recording.track_started") == 2
    for copy in (folder, second):
        assert json.loads((copy / "manifest.json").read_text())["tracks"] == manifest["tracks"]
        assert (copy / "timeline.jsonl").read_bytes() == (folder / "timeline.jsonl").read_bytes()


async def test_a_server_killed_mid_recording_leaves_playable_files_and_an_alarm(
        tmp_path: Path, new_client: ClientFactory) -> None:
    """SIGKILL the server 4 s into a recording: both copies of both tracks play up to
    their last flushed chunk; the restarted server raises ``recorder_crashed`` for it (in
    the exception queue, its file and the metric) and marks it with a manifest."""
    env = {"SFU_EVENTS_LOG_DIR": str(tmp_path / "data")}
    server = start_server(env)
    try:
        room = "e2e-crash-" + secrets.token_hex(3)
        token = server.mint_token(room, "teacher", "Ms T", role="instructor")
        client = await new_client(
            f"{server.base_url}/?token={quote(token)}&video=320x180&simulcast=0", "teacher")
        await client.page.wait_for_function(
            "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS)
        async with aiohttp.ClientSession(headers=server.auth_header) as http:
            async def get(path: str) -> Any:
                async with http.get(server.base_url + path) as res:
                    return await res.json()

            async def publishing() -> bool:
                body = await get(f"/api/rooms/{room}/participants")
                return len(body["participants"][0]["tracks"]) == 2

            await until("the browser publishes audio and video", publishing, 15.0, every_s=0.1)
            async with http.post(f"{server.base_url}/api/rooms/{room}/recording") as res:
                folder = (await res.json())["folder"]

            async def recorded(seconds: float) -> bool:
                body = await get(f"/api/rooms/{room}/recording")
                return len(body["tracks"]) == 2 and all(
                    t["durationS"] >= seconds for t in body["tracks"])

            await until("4 s recorded", lambda: recorded(4.0), 15.0, every_s=0.1)
        server.proc.kill()
        server.proc.wait(10)
    finally:
        stop_server(server)

    for copy in ("recordings", "recordings-copy"):
        files = sorted((tmp_path / "data" / copy / folder).glob("*.webm"))
        assert len(files) == 2, (copy, files)
        for f in files:
            _, frames, seconds = _decode(f)  # opens, and decodes without an error
            # 4 s went in; a cluster (1 s) and a chunk's wait (0.25 s) may be lost
            assert frames > 0 and seconds >= 2.5, (f, frames, seconds)

    again = start_server(env)
    try:
        async with aiohttp.ClientSession(headers=again.auth_header) as http:
            async with http.get(f"{again.base_url}/api/alarms") as res:
                alarms = (await res.json())["alarms"]
            async with http.get(f"{again.base_url}/metrics") as res:
                metrics = await res.text()
    finally:
        stop_server(again)
    crashed = [a for a in alarms if a["reason"] == "recorder_crashed"]
    assert len(crashed) == 1 and crashed[0]["location"].endswith(folder)
    assert 'sfu_recording_alarms_total{reason="recorder_crashed"} 1.0' in metrics
    queue = (tmp_path / "data" / "exceptions.jsonl").read_text()
    assert '"recorder_crashed"' in queue
    marked = json.loads((tmp_path / "data" / "recordings" / folder / "manifest.json")
                        .read_text())
    assert marked["reason"] == "crashed" and len(marked["files"]) == 2


async def test_the_instructor_records_from_the_page_and_everyone_sees_it(
        sfu_server: Any, new_client: ClientFactory,
        mint_token: Callable[..., Awaitable[str]]) -> None:
    room = "e2e-recbtn-" + secrets.token_hex(3)
    base = sfu_server.base_url
    pages = []
    for identity, role in (("teacher", "instructor"), ("sam", "student")):
        token = await mint_token(room, identity, identity.title(), role)
        client = await new_client(f"{base}/?token={quote(token)}&video=320x180&simulcast=0",
                                  identity)
        await client.page.wait_for_function(
            "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS)
        pages.append(client.page)
    teacher, student = pages
    assert await teacher.is_visible("#toggle-recording")
    assert await student.is_hidden("#toggle-recording")  # students get no button
    assert await student.is_hidden("#rec-indicator")
    await teacher.click("#toggle-recording")
    for page in pages:
        await page.wait_for_selector("#rec-indicator", state="visible", timeout=10_000)
    assert (await teacher.text_content("#toggle-recording")) == "Stop recording"
    async with aiohttp.ClientSession(headers=sfu_server.auth_header) as http:
        async with http.get(f"{base}/api/rooms/{room}/recording") as res:
            assert res.status == 200
    await teacher.click("#toggle-recording")
    for page in pages:
        await page.wait_for_selector("#rec-indicator", state="hidden", timeout=10_000)
    assert (await teacher.text_content("#toggle-recording")) == "Start recording"
