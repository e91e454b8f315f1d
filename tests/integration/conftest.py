"""Fixtures of the integration tests: one server per module, the healthy media pair, raw
WebSocket probes and HTTP access (helpers in sfu_harness.py).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from sfu_harness import HealthyPair, Http, Mailbox, WsProbe, unique

from benches.rawclient import RawClient
from tests.conftest import ServerProcess, start_server, stop_server

# -- servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_server() -> Iterator[ServerProcess]:
    """One server for all the tests of a module (starting one costs about a second)."""
    server = start_server()
    yield server
    stop_server(server)


@pytest.fixture
def server(module_server: ServerProcess, request: pytest.FixtureRequest
           ) -> Iterator[ServerProcess]:
    """The module's server; on failure, prints the server log lines of this test."""
    assert module_server.proc.poll() is None, (
        "server process died:\n" + "".join(module_server.log[-100:]))
    start = len(module_server.log)
    yield module_server
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write("---- server log ----\n" + "".join(module_server.log[start:][-200:]))
    assert module_server.proc.poll() is None, (
        "server process died:\n" + "".join(module_server.log[-100:]))
    # the server logged no exception while this test ran (bad input is handled, not crashed on)
    lines = module_server.log[start:]
    assert not any("Traceback" in line for line in lines), "".join(lines[-60:])


@pytest.fixture
async def raw_client(server: ServerProcess) -> AsyncIterator[Callable[..., RawClient]]:
    """Factory: ``raw_client(room, identity, **kw)`` makes a RawClient with a join token for
    the server (connected by the test); all are closed at teardown."""
    made: list[RawClient] = []

    def make(room: str, identity: str, **kw: Any) -> RawClient:
        c = RawClient(server.ws_url, server.mint_token(room, identity), **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(server, session)


@pytest.fixture
async def probes(server: ServerProcess) -> AsyncIterator[Callable[[], WsProbe]]:
    """Factory of WsProbes (opened by the test), all closed at teardown."""
    made: list[WsProbe] = []

    def make() -> WsProbe:
        p = WsProbe(server)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


@pytest.fixture
async def pair(server: ServerProcess) -> AsyncIterator[HealthyPair]:
    p = HealthyPair(server, unique("room"))
    try:
        await p.start()
        yield p
    finally:
        await p.stop()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()
