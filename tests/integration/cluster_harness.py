"""Helpers of the cluster tests: a real ``nats-server -js`` and server processes that are
nodes of one cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats as nats_py
import pytest_asyncio
from nats.js.errors import KeyNotFoundError

from tests.conftest import ServerProcess, start_server
from tests.nats_server import NatsServer


@pytest_asyncio.fixture
async def nats(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "js")
    yield server
    server.stop()


def node(nats: NatsServer, node_id: str, region: str, *, host: str = "127.0.0.1",
         ice_addresses: tuple[str, ...] = ("127.0.0.1",), netns: str = "",
         **env: str) -> ServerProcess:
    """A server process that is a node of the cluster (on ``host``, in the network
    namespace ``netns`` if given: another region)."""
    return start_server({"SFU_CLUSTER_NATS_URL": nats.url, "SFU_CLUSTER_NODE_ID": node_id,
                         "SFU_CLUSTER_REGION": region, "SFU_CLUSTER_TTL_S": "3", **env},
                        host=host, ice_addresses=ice_addresses, netns=netns)


async def nodes_seen(server: ServerProcess) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=server.auth_header) as http:
        async with http.get(server.base_url + "/api/cluster/nodes") as res:
            return res.status, await res.json()


async def until_nodes(server: ServerProcess, want: set[str], timeout: float = 15.0
                      ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await nodes_seen(server)
        # (each announced as it runs: its URL known, not starting or stopping)
        if status == 200 and {n["id"] for n in body["nodes"]} == want and all(
                n["url"] and not n["draining"] for n in body["nodes"]):
            return list(body["nodes"])
        if time.monotonic() > deadline:
            raise AssertionError(f"wanted nodes {want}, last answer {status} {body}")
        await asyncio.sleep(0.2)


async def replicated(nats: NatsServer, room: str, want: dict[str, bytes]) -> None:
    """Until the room's replica (the ``SFU_STATE`` bucket) holds each part's bytes."""
    nc = await nats_py.connect(nats.url)
    try:
        kv = await nc.jetstream().key_value("SFU_STATE")
        deadline = time.monotonic() + 10
        while True:
            missing = []
            for part, data in want.items():
                try:
                    entry = await kv.get(f"r_{room}.{part}")
                except KeyNotFoundError:
                    missing.append(part)
                    continue
                if data not in (entry.value or b""):
                    missing.append(part)
            if not missing:
                return
            assert time.monotonic() < deadline, f"not replicated: {missing}"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
