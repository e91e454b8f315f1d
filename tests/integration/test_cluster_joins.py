"""Rooms placed across real server processes through a real ``nats-server -js``: a room
created through any node is created on its origin; a join that reaches another node is
redirected to the origin and joins there; many concurrent joins for a new room through
both nodes end up in one room on one node; a room that closes is released."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from signalling import tokens
from tests.conftest import ServerProcess, stop_server
from tests.integration.cluster_harness import nats, node, until_nodes
from tests.integration.sfu_harness import WsProbe, parse_metrics, unique
from tests.nats_server import NatsServer

pytestmark = pytest.mark.integration
__all__ = ["nats"]  # (the fixture)


@pytest_asyncio.fixture
async def two_regions(nats: NatsServer) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    await nats.start()
    eu, us = node(nats, "eu-1", "eu"), node(nats, "us-1", "us")
    try:
        await until_nodes(eu, {"eu-1", "us-1"})
        await until_nodes(us, {"eu-1", "us-1"})
        yield eu, us
    finally:
        stop_server(eu)
        stop_server(us)
    for server in (eu, us):
        assert not any("Traceback" in line for line in server.log), "".join(server.log[-40:])


async def api(server: ServerProcess, method: str, path: str, body: Any = None
              ) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=server.auth_header) as http, http.request(
            method, server.base_url + path, json=body) as res:
        return res.status, await res.json() if res.content_type == "application/json" else None


async def room_names(server: ServerProcess) -> set[str]:
    status, body = await api(server, "GET", "/api/rooms")
    assert status == 200, body
    return {r["name"] for r in body["rooms"]}


async def join(server: ServerProcess, room: str, identity: str, follow: bool = True
               ) -> tuple[WsProbe, ServerProcess | str, list[dict[str, Any]]]:
    """Join ``room`` through ``server``, following one redirect as the page does; the open
    probe, the URL it joined on and the redirects it got."""
    token = server.mint_token(room, identity)
    probe = await WsProbe(server).open()
    await probe.send({"type": "join", "token": token})
    first = await probe.recv()
    assert first is not None, probe.seen
    if first["type"] == "joined":
        return probe, server.base_url, []
    assert first["type"] == "redirect", first
    assert await probe.expect_closed() is not None  # the server closes after a redirect
    await probe.close()
    if not follow:
        return probe, first["url"], [first]
    there = ServerProcess(first["url"], server.proc)  # (only its URLs are used)
    again = await WsProbe(there).open()
    await again.send({"type": "join", "token": token})
    joined = await again.recv()
    assert joined is not None and joined["type"] == "joined", again.seen
    return again, first["url"], [first]


async def test_a_room_is_created_on_its_origin_and_joins_are_redirected_there(
        two_regions: tuple[ServerProcess, ServerProcess]) -> None:
    eu, us = two_regions
    room = unique("geo")
    # created through the European node for the US region: it is created on the US node
    status, body = await api(eu, "POST", "/api/rooms", {"name": room, "region": "us",
                                                         "maxParticipants": 12})
    assert status == 201, body
    assert body["node"] == "us-1" and body["maxParticipants"] == 12
    assert room in await room_names(us) and room not in await room_names(eu)
    status, body = await api(eu, "GET", f"/api/events?room={room}")
    assert [e["data"] for e in body["events"] if e["type"] == "room.placed"] == [
        {"node": "us-1", "region": "us", "movedBecause": ""}]  # placed by the node asked
    status, body = await api(eu, "GET", "/api/cluster/rooms")
    assert status == 200 and {"room": room, "node": "us-1", "url": us.base_url} in [
        {k: r[k] for k in ("room", "node", "url")} for r in body["rooms"]]
    # a student who reached the European node is sent to the US one, and joins there
    probe, joined_on, redirects = await join(eu, room, "student-1")
    assert joined_on == us.base_url
    assert redirects == [{"type": "redirect", "url": us.base_url, "node": "us-1",
                          "reason": "room_elsewhere"}]
    # one who reached the US node joins at once
    direct, joined_on, redirects = await join(us, room, "student-2")
    assert joined_on == us.base_url and redirects == []
    async with aiohttp.ClientSession() as http, http.get(eu.base_url + "/metrics") as res:
        metrics = parse_metrics(await res.text())
    assert metrics[("sfu_cluster_redirects_total", frozenset())] == 2  # creation and join
    for p in (probe, direct):
        await p.send({"type": "leave"})
        await p.expect("left")
        await p.close()

    async def released() -> bool:
        _, listed = await api(eu, "GET", "/api/cluster/rooms")
        return room not in {r["room"] for r in listed["rooms"]}

    # the room API answers for the room through any node, from the room's node
    status, body = await api(eu, "GET", f"/api/rooms/{room}/participants")
    assert status == 200 and body["participants"] == []
    status, _ = await api(eu, "DELETE", f"/api/rooms/{room}")
    assert status == 204 and room not in await room_names(us)
    # the closed room's placement is released
    for _ in range(100):
        if await released():
            break
        await asyncio.sleep(0.1)
    assert await released()


async def test_concurrent_joins_through_both_nodes_end_in_one_room(
        two_regions: tuple[ServerProcess, ServerProcess]) -> None:
    """30 students join a room nobody created, half through each node, all at once: each
    node would place it on itself (its own region), and exactly one does."""
    eu, us = two_regions
    room = unique("race")
    joins = [join(eu if i % 2 else us, room, f"s{i}") for i in range(30)]
    results = await asyncio.gather(*joins)
    hosts = {url for _, url, _ in results}
    assert len(hosts) == 1, hosts
    host = eu if hosts == {eu.base_url} else us
    other = us if host is eu else eu
    assert room in await room_names(host) and room not in await room_names(other)
    status, body = await api(host, "GET", f"/api/rooms/{room}/participants")
    assert status == 200 and len(body["participants"]) == 30
    redirected = sum(1 for _, _, r in results if r)
    assert redirected >= 15  # at least every join that reached the other node
    print(f"30 concurrent joins through two nodes: one room on {host.base_url}, "
          f"{redirected} redirected")
    for probe, _, _ in results:
        await probe.close()


async def test_a_new_room_is_placed_in_the_region_of_its_first_joiner(
        two_regions: tuple[ServerProcess, ServerProcess]) -> None:
    """A student whose token says ``region: us`` reaches the European node first: the room
    its join opens is placed in the US, and the join goes there."""
    eu, us = two_regions
    room = unique("us-lesson")
    token = tokens.mint(eu.api_key, eu.api_secret, room=room, identity="sam", region="us")
    probe = await WsProbe(eu).open()
    await probe.send({"type": "join", "token": token})
    redirect = await probe.expect("redirect")
    assert (redirect["node"], redirect["url"]) == ("us-1", us.base_url)
    await probe.close()
    there = await WsProbe(ServerProcess(us.base_url, us.proc)).open()
    await there.send({"type": "join", "token": token})
    assert (await there.expect("joined"))["room"] == room
    assert room in await room_names(us) and room not in await room_names(eu)
    await there.close()
