"""Edge relays with real server processes and a real ``nats-server -js``
(docs/cluster.md, "Edge relays"): the room's origin is in region eu, and students of
region us join the us node, which serves their media as an edge. The origin sends each
track once to the edge, however many students the edge serves; the lesson (who is there,
the chat) is the origin's, both ways."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from benches.rawclient import RawClient, RawClientError
from signalling import tokens
from tests.conftest import ServerProcess, stop_server
from tests.integration.cluster_harness import nats, node, until_nodes
from tests.integration.sfu_harness import Pumper, parse_metrics, unique, wait_until
from tests.nats_server import NatsServer
from tests.whiteboard.peer import Peer

pytestmark = pytest.mark.integration
__all__ = ["nats"]  # (the fixture)


@pytest_asyncio.fixture
async def origin_and_edge(nats: NatsServer
                          ) -> AsyncIterator[tuple[ServerProcess, ServerProcess, str]]:
    await nats.start()
    eu = node(nats, "eu1", "eu", SFU_CLUSTER_RELAYS="1")
    us: ServerProcess | None = None
    try:
        us = node(nats, "us1", "us", SFU_CLUSTER_RELAYS="1")
        await until_nodes(eu, {"eu1", "us1"})
        await until_nodes(us, {"eu1", "us1"})
        room = unique("lesson")
        async with aiohttp.ClientSession(headers=eu.auth_header) as http, http.post(
                eu.base_url + "/api/rooms", json={"name": room, "region": "eu"}) as res:
            assert res.status == 201 and (await res.json())["node"] == "eu1"
        yield eu, us, room
    finally:
        for server in (eu, us):
            if server is not None:
                stop_server(server)
    for server in (eu, us):
        assert not any("Traceback" in line for line in server.log), "".join(server.log[-40:])


async def metrics(server: ServerProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as http, http.get(server.base_url + "/metrics") as res:
        return parse_metrics(await res.text())


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def teacher_at(origin: ServerProcess, room: str) -> RawClient:
    return RawClient(origin.ws_url, origin.mint_token(room, "teacher", role="instructor"))


def student_at(edge: ServerProcess, room: str, identity: str, **kw: Any) -> RawClient:
    """A student of the edge's region (its token says so), joining the edge."""
    return RawClient(edge.ws_url, tokens.mint(edge.api_key, edge.api_secret, room=room,
                                              identity=identity, region="us"), **kw)


async def stop_all(pumps: list[Pumper], clients: list[RawClient]) -> None:
    for pump in pumps:
        await pump.stop()
    for client in clients:
        await client.close()


async def test_students_on_an_edge_get_each_track_once_from_the_origin(
        origin_and_edge: tuple[ServerProcess, ServerProcess, str]) -> None:
    eu, us, room = origin_and_edge
    teacher = teacher_at(eu, room)
    students = [student_at(us, room, f"student{i}") for i in range(3)]
    pumps: list[Pumper] = []
    try:
        await teacher.connect()
        published = set((await teacher.publish()).values())
        pump = Pumper(teacher).start()
        pumps.append(pump)
        joined = [await s.connect() for s in students]
        # each student joined the lesson on the origin: it sees the teacher, the teacher
        # sees it, and it is the same participant everywhere
        for s, j in zip(students, joined, strict=True):
            assert [p["identity"] for p in j["participants"]][:1] == ["teacher"]
            assert {t["id"] for t in j["participants"][0]["tracks"]} == published
            await teacher.wait_for("participant_joined", pred=lambda m, s=s: m[
                "participant"]["id"] == s.joined["participant"]["id"])
        # ... and gets the teacher's audio and video from the edge
        for s in students:
            await s.wait_subscribed()
        await wait_until(lambda: all(
            (rec := s.received_for_track(t)) is not None and rec.packets > 50
            for s in students for t in published), what="media on every student")
        # the origin sends each track once to the edge, not once per student
        at_origin = await metrics(eu)
        assert value(at_origin, "sfu_relay_subscriptions", edge="us1") == 2
        sent_to_edge = value(at_origin, "sfu_relay_packets_sent_total", edge="us1")
        sent = pump.sent["audio"] + pump.sent["video"]
        assert 0 < sent_to_edge <= sent * 1.05, (sent_to_edge, sent)
        at_edge = await metrics(us)
        assert value(at_edge, "sfu_edge_rooms") == 1
        assert value(at_edge, "sfu_edge_pages") == 3
        assert value(at_edge, "sfu_edge_relayed_tracks") == 2
        # the edge's media counts as any node's: its 3 pages (not the origin's teacher),
        # the relayed tracks' packets in, the fan-out to the pages out
        assert value(at_edge, "sfu_participants") == 3
        assert value(at_edge, "sfu_rtp_packets_in_total", kind="video") > 50
        assert value(at_edge, "sfu_rtp_packets_out_total", kind="video") > 150
        print(f"origin sent {sent_to_edge:.0f} packets to the edge for 3 students "
              f"({sent} published)")
        # the classroom is the origin's, both ways
        await students[0].send({"type": "chat_send", "text": "hello from the edge"})
        heard = await teacher.wait_for("chat")
        assert (heard["name"], heard["text"]) == ("student0", "hello from the edge")
        await teacher.send({"type": "chat_send", "text": "welcome"})
        for s in students:
            await s.wait_for("chat", pred=lambda m: m["text"] == "welcome")
        # the board is the origin's: a stroke drawn through the edge is on it
        async with aiohttp.ClientSession() as http:
            at_origin_board = await Peer.open(http, eu, room, "teacher", role="instructor")
            through_edge = await Peer.open(http, us, room, "student0")
            await at_origin_board.draw(x=1, y=2)
            await through_edge.receive_update()
            assert [dict(item) for item in through_edge.items] == [
                {"kind": "pen", "x": 1, "y": 2}]
            await through_edge.draw(x=3, y=4)
            await at_origin_board.receive_update()
            assert len(at_origin_board.items) == 2
            for peer in (at_origin_board, through_edge):
                await peer.ws.close()
        # a student who leaves is gone from the lesson; the edge closes with its last
        left_id = students[2].joined["participant"]["id"]
        await students.pop().close()
        gone = await teacher.wait_for("participant_left",
                                      pred=lambda m: m["participantId"] == left_id)
        assert gone["reason"] == "left"
        for s in students:
            await s.close()
        students.clear()

        async def edge_closed() -> bool:
            return value(await metrics(us), "sfu_edge_rooms") == 0 and value(
                await metrics(eu), "sfu_relay_subscriptions", edge="us1") == 0

        for _ in range(100):
            if await edge_closed():
                break
            await asyncio.sleep(0.1)
        assert await edge_closed()
        # the origin's events say when the edge relayed the room
        async with aiohttp.ClientSession(headers=eu.auth_header) as http, http.get(
                eu.base_url + "/api/events", params={"room": room}) as res:
            relayed = [(e["type"], e["data"]) for e in (await res.json())["events"]
                       if e["type"].startswith("relay.")]
        assert relayed == [("relay.started", {"edge": "us1"}),
                           ("relay.ended", {"edge": "us1", "reason": "left", "tracks": 2})]
    finally:
        await stop_all(pumps, [teacher, *students])


async def test_students_on_an_edge_publish_to_the_origin_once(
        origin_and_edge: tuple[ServerProcess, ServerProcess, str]) -> None:
    eu, us, room = origin_and_edge
    teacher = teacher_at(eu, room)
    students = [student_at(us, room, f"student{i}") for i in range(2)]
    pumps: list[Pumper] = []
    try:
        await teacher.connect()
        await teacher.publish()
        pumps.append(Pumper(teacher).start())
        for s in students:
            await s.connect()
        # each student publishes on the edge: under the same track ids on both nodes
        published = {}
        for s in students:
            published[s.joined["participant"]["id"]] = set((await s.publish()).values())
            pumps.append(Pumper(s).start())
        for pid, ids in published.items():
            announced = await teacher.wait_for(
                "track_published", pred=lambda m, pid=pid: m["track"]["participantId"] == pid)
            assert announced["track"]["id"] in ids
        # the teacher (origin) and the other student (same edge) get each student's media
        await teacher.wait_subscribed()
        for s in students:
            await s.wait_subscribed()
        wanted = [(teacher, t) for ids in published.values() for t in ids]
        wanted += [(students[0], t) for t in published[students[1].joined["participant"]["id"]]]
        wanted += [(students[1], t) for t in published[students[0].joined["participant"]["id"]]]
        await wait_until(lambda: all(
            (rec := c.received_for_track(t)) is not None and rec.packets > 50
            for c, t in wanted), timeout=15, what="every student's media everywhere")
        # the origin relays back to the edge only the teacher's tracks (the students' are
        # the edge's own), and each student's tracks reached the origin once
        at_origin = await metrics(eu)
        assert value(at_origin, "sfu_relay_subscriptions", edge="us1") == 2
        at_edge = await metrics(us)
        assert value(at_edge, "sfu_edge_relayed_tracks") == 2
        # a student mutes its microphone on the edge: the origin's copy is muted too
        sid = students[0].joined["participant"]["id"]
        mic = students[0].published["a"]
        await students[0].send({"type": "mute", "trackId": mic, "muted": True})
        muted = await teacher.wait_for("track_muted", pred=lambda m: m["trackId"] == mic)
        assert (muted["participantId"], muted["muted"]) == (sid, True)
    finally:
        await stop_all(pumps, [teacher, *students])


async def test_a_page_on_an_edge_resumes_there_after_losing_its_socket(
        origin_and_edge: tuple[ServerProcess, ServerProcess, str]) -> None:
    eu, us, room = origin_and_edge
    teacher = teacher_at(eu, room)
    student = student_at(us, room, "student")
    pumps: list[Pumper] = []
    try:
        await teacher.connect()
        teacher_tracks = set((await teacher.publish()).values())
        pumps.append(Pumper(teacher).start())
        await student.connect()
        sid = student.joined["participant"]["id"]
        student_tracks = set((await student.publish()).values())
        pumps.append(Pumper(student).start())
        await teacher.wait_subscribed()
        await student.wait_subscribed()

        def flowing(client: RawClient, tracks: set[str], more_than: dict[str, int]) -> bool:
            return all((rec := client.received_for_track(t)) is not None
                       and rec.packets > more_than.get(t, 0) + 30 for t in tracks)

        await wait_until(lambda: flowing(teacher, student_tracks, {})
                         and flowing(student, teacher_tracks, {}), what="media both ways")
        # the student's socket to the edge dies (its media connections stay up)
        student.drop_signalling()
        lost = await teacher.wait_for("participant_reconnecting")
        assert lost["participantId"] == sid
        resumed = await student.resume()
        assert resumed["participant"]["id"] == sid
        assert [p["identity"] for p in resumed["participants"]] == ["teacher"]
        back = await teacher.wait_for("participant_resumed")
        assert back["participantId"] == sid
        # the media goes on both ways, on the same connections
        seen = {t: rec.packets for c, ts in ((teacher, student_tracks),
                                             (student, teacher_tracks))
                for t in ts if (rec := c.received_for_track(t)) is not None}
        await wait_until(lambda: flowing(teacher, student_tracks, seen)
                         and flowing(student, teacher_tracks, seen), what="media after")
        # nobody saw the student leave, and the lesson still works through the edge
        assert not [m for m in teacher.log if m["type"] == "participant_left"]
        await student.send({"type": "chat_send", "text": "back again"})
        assert (await teacher.wait_for("chat"))["text"] == "back again"
        # a resume with a wrong token is refused by the edge
        student.drop_signalling()
        student.joined = {**student.joined, "resumeToken": "not-the-token"}
        with pytest.raises(RawClientError) as refused:
            await student.resume()
        assert refused.value.error["code"] == "resume_failed"
    finally:
        await stop_all(pumps, [teacher, student])


async def test_a_drain_of_the_origin_leaves_the_edge_pages_where_they_are(
        origin_and_edge: tuple[ServerProcess, ServerProcess, str], nats: NatsServer) -> None:
    """The origin drains: the room moves to the spare in its region; the edge opens its
    relay with the spare and moves each of its pages' sessions there itself. The student on
    the edge sees no redirect and no leave, and its media goes on both ways."""
    eu, us, room = origin_and_edge
    spare = node(nats, "eu2", "eu")
    teacher = teacher_at(eu, room)
    arrivals: list[float] = []
    student = student_at(us, room, "student",
                         on_packet=lambda data, t: arrivals.append(time.monotonic()))
    pumps: list[Pumper] = []
    try:
        for server in (eu, us, spare):
            await until_nodes(server, {"eu1", "eu2", "us1"})
        await teacher.connect()
        await teacher.publish()
        pumps.append(Pumper(teacher).start())
        await student.connect()
        student_tracks = set((await student.publish()).values())
        pumps.append(Pumper(student).start())
        await teacher.wait_subscribed()
        await student.wait_subscribed()
        await wait_until(lambda: len(arrivals) > 50, what="the teacher's media on the edge")
        # the drain, as `classroom-sfu drain` asks for it
        async with aiohttp.ClientSession(headers=eu.auth_header) as http, http.post(
                eu.base_url + "/api/cluster/drain") as res:
            assert res.status == 200, await res.text()
            moved = (await res.json())["moved"]
        assert [m["node"] for m in moved] == ["eu2"], moved
        t_moved = time.monotonic()
        redirect = await teacher.wait_for("redirect")
        assert redirect["node"] == "eu2"
        await teacher.move(spare.base_url)
        new_tracks = set(teacher.published.values())
        # the student gets the teacher's new tracks through its edge, and the teacher the
        # student's tracks (the same ids) from the spare
        await wait_until(lambda: all(
            (rec := student.received_for_track(t)) is not None and rec.packets > 30
            for t in new_tracks), timeout=15, what="the teacher's media after the drain")
        await teacher.wait_subscribed()
        await wait_until(lambda: all(
            (rec := teacher.received_for_track(t)) is not None and rec.packets > 30
            for t in student_tracks), timeout=15, what="the student's media at the spare")
        after = [t for t in arrivals if t > t_moved]
        before = [t for t in arrivals if t <= t_moved]
        gap = after[0] - before[-1]
        print(f"the edge's student: media gap across the drain {gap * 1000:.0f} ms")
        assert not [m for m in student.log if m["type"] in ("redirect", "left",
                                                            "participant_left")]
        # the lesson goes on at the spare: chat both ways
        await student.send({"type": "chat_send", "text": "still here"})
        assert (await teacher.wait_for("chat"))["text"] == "still here"
        assert value(await metrics(us), "sfu_edge_relay_moves_total") == 1
        assert value(await metrics(spare), "sfu_relay_subscriptions", edge="us1") == 2
    finally:
        await stop_all(pumps, [teacher, student])
        stop_server(spare)
