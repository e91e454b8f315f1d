"""A live room leaves its node, with real server processes and a real ``nats-server -js``:
a drain (``POST /api/cluster/drain``, what ``classroom-sfu drain`` calls) moves it to the
spare node, its participants resume there without anyone seeing a leave, and its chat, its
whiteboard and its media go on; a node killed with SIGKILL loses its room to the other
node, where the participants come back within their reconnection window."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from benches.rawclient import RawClient, RawClientError
from tests.conftest import ServerProcess, stop_server
from tests.integration.cluster_harness import nats, node, replicated, until_nodes
from tests.integration.sfu_harness import Pumper, parse_metrics, unique, wait_until
from tests.nats_server import NatsServer
from tests.whiteboard.peer import Peer

pytestmark = pytest.mark.integration
__all__ = ["nats"]  # (the fixture)


class Arrivals:
    """When the student's packets arrived (monotonic s), to measure the gap of a move."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, data: bytes, arrival_ms: float) -> None:
        self.times.append(time.monotonic())

    def gap_around(self, t: float) -> float:
        """The longest silence between packets that spans ``t``."""
        before = [x for x in self.times if x <= t]
        after = [x for x in self.times if x > t]
        assert before and after, "no packets on one side of the move"
        return after[0] - before[-1]


@pytest_asyncio.fixture
async def origin_and_spare(nats: NatsServer
                           ) -> AsyncIterator[tuple[ServerProcess, ServerProcess, str]]:
    """Node a1 with a room (placed there while it was alone), then the spare a2."""
    await nats.start()
    a1 = node(nats, "a1", "eu")
    a2: ServerProcess | None = None
    try:
        await until_nodes(a1, {"a1"})
        room = unique("lesson")
        async with aiohttp.ClientSession(headers=a1.auth_header) as http, http.post(
                a1.base_url + "/api/rooms", json={"name": room, "maxParticipants": 9}) as res:
            assert res.status == 201 and (await res.json())["node"] == "a1"
        a2 = node(nats, "a2", "eu")
        await until_nodes(a1, {"a1", "a2"})
        await until_nodes(a2, {"a1", "a2"})
        yield a1, a2, room
    finally:
        for server in (a1, a2):
            if server is not None and server.proc.poll() is None:
                stop_server(server)
            elif server is not None and server.proc.stdout is not None:
                server.proc.stdout.close()  # (killed by the test)
    assert a2 is not None
    assert not any("Traceback" in line for line in a2.log), "".join(a2.log[-40:])


async def lesson(server: ServerProcess, room: str, arrivals: Arrivals
                 ) -> tuple[RawClient, RawClient, Pumper]:
    teacher = RawClient(server.ws_url, server.mint_token(room, "teacher", role="instructor"))
    student = RawClient(server.ws_url, server.mint_token(room, "student"), on_packet=arrivals)
    await teacher.connect()
    await student.connect()
    await teacher.publish()
    pump = Pumper(teacher).start()
    await student.wait_subscribed()
    await wait_until(lambda: len(arrivals.times) > 30, what="media before the move")
    return teacher, student, pump


async def events(server: ServerProcess, room: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession(headers=server.auth_header) as http, http.get(
            server.base_url + "/api/events", params={"room": room}) as res:
        return list((await res.json())["events"])


async def test_a_drain_moves_the_lesson_to_the_spare(
        origin_and_spare: tuple[ServerProcess, ServerProcess, str]) -> None:
    a1, a2, room = origin_and_spare
    arrivals = Arrivals()
    teacher, student, pump = await lesson(a1, room, arrivals)
    async with aiohttp.ClientSession() as http:
        board = await Peer.open(http, a1, room, "teacher", role="instructor")
        await board.draw(x=12, y=34)
        await teacher.send({"type": "chat_send", "text": "before the drain"})
        await student.wait_for("chat")
        await teacher.send({"type": "recording_start"})
        first_recording = (await student.wait_for("recording"))["recordingId"]
        async with http.get(f"{a1.base_url}/api/rooms/{room}/report",
                            headers=a1.auth_header) as res:
            session_before = await res.json()
        # the drain, as `classroom-sfu drain` asks for it
        drained = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "signalling", "drain", "--url", a1.base_url],
            capture_output=True, text=True, timeout=60,
            env={"SFU_AUTH_API_SECRET": a1.api_secret, "SFU_AUTH_API_KEY": a1.api_key,
                 "PATH": "/usr/bin:/bin"})
        assert drained.returncode == 0, drained.stderr
        assert f"moved {room} to a2 (2 participants)" in drained.stdout
        t_moved = time.monotonic()
        for client in (teacher, student):
            redirect = await client.wait_for("redirect")
            assert redirect == {"type": "redirect", "url": a2.base_url, "node": "a2",
                                "reason": "room_moved"}
        resumed = await asyncio.gather(teacher.move(a2.base_url), student.move(a2.base_url))
        assert all(r["moved"] for r in resumed)
        # the student gets the teacher's media from the spare
        new_tracks = set(teacher.published.values())
        await student.wait_subscribed()
        await wait_until(lambda: any((rec := student.received_for_track(t)) is not None
                                     and rec.packets > 30 for t in new_tracks),
                         what="media after")
        gap = arrivals.gap_around(t_moved)
        print(f"media gap of the student across the drain: {gap * 1000:.0f} ms")
        assert gap < 10.0  # (reported; the target of 2 s is the Chromium test's)
        # the chat history came along, and nobody saw anybody leave
        assert [m["text"] for m in resumed[1]["chat"]] == ["before the drain"]
        assert {p["identity"] for p in resumed[1]["participants"]} <= {"teacher"}
        for client in (teacher, student):
            assert not [m for m in client.log if m["type"] in ("participant_left", "left")]
        # the board too, on the spare
        moved_board = await Peer.open(http, a2, room, "student")
        assert [dict(item) for item in moved_board.items] == [
            {"kind": "pen", "x": 12.0, "y": 34.0}]
        await moved_board.ws.close()
        await board.ws.close()
    await pump.stop()
    on_a1 = [e["type"] for e in await events(a1, room)]
    assert "room.moved" in on_a1 and "session.report" not in on_a1
    taken = [e for e in await events(a2, room) if e["type"] == "room.taken_over"]
    assert taken and taken[0]["data"] == {"chat": 1, "polls": 0, "hands": 0, "board": True,
                                          "session": True}
    # the engagement session went on: the spare's report starts with the lesson, and each
    # participant's presence runs on across the move (one interval, not two)
    async with aiohttp.ClientSession(headers=a2.auth_header) as http, http.get(
            f"{a2.base_url}/api/rooms/{room}/report") as res:
        session_after = await res.json()
    assert session_after["startMs"] == session_before["startMs"]
    before = {p["identity"]: p for p in session_before["participants"]}
    for person in session_after["participants"]:
        assert len(person["intervals"]) == 1, person
        assert person["intervals"][0][0] == before[person["identity"]]["intervals"][0][0]
    async with aiohttp.ClientSession() as http, http.get(a2.base_url + "/metrics") as res:
        metrics = parse_metrics(await res.text())
    assert metrics[("sfu_cluster_room_moves_total", frozenset({("direction", "in")}))] == 1
    # the recording went on on the spare; each node's part is complete, the gap is marked
    assert resumed[0]["recording"]["active"] is True
    second_recording = resumed[0]["recording"]["recordingId"]
    assert second_recording != first_recording
    for client in (teacher, student):
        await client.close()
    async with aiohttp.ClientSession(headers=a2.auth_header) as http, http.delete(
            f"{a2.base_url}/api/rooms/{room}") as res:
        assert res.status == 204
    first = await manifest(a1, first_recording)
    second = await manifest(a2, second_recording)
    assert first["reason"] == "moved", first
    for part in (first, second):
        # the microphone's recording is complete on both copies of both parts (the raw
        # camera sends random bytes, never a VP8 keyframe: nothing of it can be recorded)
        audio = [t for t in part["tracks"] if t["kind"] == "audio"]
        assert audio and all(t["frames"] > 0 and len(t["copies"]) == 2 and all(
            c["ok"] for c in t["copies"]) for t in audio), part
        assert not [p for p in part["problems"] if "-camera-" not in p], part
    gap = second["continues"]
    assert gap["recordingId"] == first_recording and 0 <= gap["gapS"] < 10, gap
    print(f"recording across the drain: {first['durationS']:.1f} s on a1, then "
          f"{second['durationS']:.1f} s on a2 after a marked gap of {gap['gapS']:.2f} s")


async def manifest(server: ServerProcess, recording: str) -> dict[str, Any]:
    """The manifest of one recording on the server's first (local) recording folder."""
    folder = Path(server.env["SFU_RECORDING_DIR"])
    deadline = time.monotonic() + 20
    while True:
        found = list(folder.glob(f"*/*-{recording}/manifest.json"))
        if found:
            return dict(json.loads(found[0].read_text()))
        assert time.monotonic() < deadline, f"no manifest of {recording} under {folder}"
        await asyncio.sleep(0.1)


async def test_a_killed_nodes_room_comes_back_on_the_other(
        nats: NatsServer, origin_and_spare: tuple[ServerProcess, ServerProcess, str]) -> None:
    a1, a2, room = origin_and_spare
    arrivals = Arrivals()
    teacher, student, pump = await lesson(a1, room, arrivals)
    async with aiohttp.ClientSession() as http:
        board = await Peer.open(http, a1, room, "teacher", role="instructor")
        await board.draw(x=5, y=6)
        await teacher.send({"type": "chat_send", "text": "before the crash"})
        await student.wait_for("chat")

        # the chat and the board written to the replica (a crash loses at most 0.5 s)
        await replicated(nats, room, {"classroom": b"before the crash", "board": b"pen"})
        a1.proc.kill()  # SIGKILL: no goodbye, no drain
        a1.proc.wait(10)
        t_killed = time.monotonic()
        await pump.stop()
        # the clients come back through the other node; until a1's entry expires (its TTL,
        # 3 s here) that node sends them to a1, so they try again, as the page does
        back: list[dict[str, Any]] = []
        for client in (teacher, student):
            while True:
                assert time.monotonic() - t_killed < 20, "not back within the window"
                try:
                    back.append(await client.move(a2.base_url))
                    break
                except (RawClientError, TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.5)
        took = time.monotonic() - t_killed
        print(f"back in the room on the other node {took:.1f} s after the kill")
        placed = [e["data"] for e in await events(a2, room) if e["type"] == "room.placed"]
        assert placed == [{"node": "a2", "region": "eu", "movedBecause": "node_gone"}]
        assert [m["text"] for m in back[1]["chat"]] == ["before the crash"]
        moved_board = await Peer.open(http, a2, room, "student")
        assert [dict(item) for item in moved_board.items] == [{"kind": "pen", "x": 5.0,
                                                               "y": 6.0}]
        await moved_board.ws.close()
    pump = Pumper(teacher).start()
    await student.wait_subscribed()
    await wait_until(lambda: any((rec := student.received_for_track(t)) is not None
                                 and rec.packets > 30 for t in teacher.published.values()),
                     what="media after the take-over")
    await pump.stop()
    for client in (teacher, student):
        await client.close()
