"""Real server processes announcing themselves to a real ``nats-server -js``: each sees the
other in the registry with its region, rooms and participants; a node that shuts down
leaves the registry at once; a node started before NATS joins when NATS comes; and a
server without ``cluster.nats_url`` needs no NATS and says the cluster is off."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import ServerProcess, stop_server
from tests.integration.cluster_harness import nats, node, nodes_seen, until_nodes
from tests.nats_server import NatsServer

pytestmark = pytest.mark.integration
__all__ = ["nats"]  # (the fixture)


async def test_nodes_announce_themselves_and_leave_cleanly(nats: NatsServer) -> None:
    await nats.start()
    eu = node(nats, "eu-1", "eu")
    us = node(nats, "us-1", "us")
    try:
        seen = await until_nodes(eu, {"eu-1", "us-1"})
        regions = {n["id"]: n["region"] for n in seen}
        assert regions == {"eu-1": "eu", "us-1": "us"}
        assert all(n["url"].startswith("http://") and not n["draining"] for n in seen)
        # a room with a participant shows in the next announcement
        async with aiohttp.ClientSession(headers=eu.auth_header) as http:
            async with http.post(eu.base_url + "/api/rooms", json={"name": "r1"}) as res:
                assert res.status == 201

        async def eu_has_a_room() -> bool:
            _, body = await nodes_seen(us)
            return any(n["id"] == "eu-1" and n["rooms"] == 1 for n in body["nodes"])

        deadline = time.monotonic() + 10
        while not await eu_has_a_room():
            assert time.monotonic() < deadline, await nodes_seen(us)
            await asyncio.sleep(0.2)
    finally:
        stop_server(us)
    # a clean shutdown leaves at once, not after the TTL
    t0 = time.monotonic()
    await until_nodes(eu, {"eu-1"}, timeout=2.5)
    print(f"a stopped node left the registry within {time.monotonic() - t0:.1f} s")
    stop_server(eu)


async def test_a_node_started_before_nats_joins_when_it_comes(nats: NatsServer) -> None:
    early = node(nats, "early", "eu")  # NATS is not running yet: the server still serves
    try:
        status, body = await nodes_seen(early)
        assert status == 503 and body["error"]["code"] == "cluster_unreachable"
        await nats.start()
        await until_nodes(early, {"early"}, timeout=20)
    finally:
        stop_server(early)
    assert not any("Traceback" in line for line in early.log), "".join(early.log[-40:])


async def test_a_single_node_needs_no_nats(server: ServerProcess) -> None:
    status, body = await nodes_seen(server)
    assert status == 404 and body["error"]["code"] == "cluster_off"
    assert "cluster.nats_url" in body["error"]["message"]
