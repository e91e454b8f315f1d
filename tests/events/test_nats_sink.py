"""The NATS JetStream sink against a real ``nats-server -js`` started by the test: events
arrive in order with their ids and subjects; NATS stopped for a few seconds mid-stream and
restarted (same store): nothing lost, nothing duplicated once deduplicated by id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import nats
import pytest
import pytest_asyncio
from samples import emit

from benches.server_process import start_server, stop_server
from events import EventBus
from events.nats_sink import NatsSink
from tests.nats_server import NatsServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    srv = NatsServer(tmp_path / "js")
    yield srv
    srv.stop()


@pytest_asyncio.fixture
async def sink(server: NatsServer) -> AsyncIterator[NatsSink]:
    await server.start()
    s = NatsSink(server.url)
    s.start()
    yield s
    await s.close(timeout=1)


async def stream_messages(url: str, stream: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(subject, Nats-Msg-Id, envelope) of every message in the stream, in order."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            out.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""),
                        msgpack.unpackb(msg.data, raw=False)))
        return out
    finally:
        await nc.close()


async def test_events_arrive_in_order_with_ids(server: NatsServer, sink: NatsSink) -> None:
    bus = EventBus()
    bus.subscribe(sink)
    sent = [emit(bus, i, "maths-7b", "joined") for i in range(20)]
    sent.append(bus.emit("room.closed", "odd.room name", {"reason": "empty"}))
    await sink.drained(timeout=10)
    got = await stream_messages(server.url, sink.stream)
    assert [m[1] for m in got] == [e.id for e in sent]
    assert [m[2] for m in got] == [e.envelope() for e in sent]
    assert got[0][0] == "sfu.events.maths-7b.participant.joined"
    assert got[-1][0] == "sfu.events.odd_room_name.room.closed"  # reserved characters
    assert sink.stats.published == 21 and sink.stats.dropped == 0


async def test_a_nats_restart_loses_nothing(server: NatsServer, sink: NatsSink) -> None:
    bus = EventBus()
    bus.subscribe(sink)
    sent = [emit(bus, i, "r", "muted") for i in range(30)]
    await sink.drained(timeout=10)
    server.stop()  # NATS goes away mid-lesson...
    for i in range(30, 60):  # ...for a few seconds, while events keep coming
        sent.append(emit(bus, i, "r", "muted"))
        await asyncio.sleep(0.1)
    assert sink.buffered > 0  # held, not lost
    await server.start()  # back, same store
    sent += [emit(bus, i, "r", "muted") for i in range(60, 90)]
    await sink.drained(timeout=30)
    got = await stream_messages(server.url, sink.stream)
    ids = [m[1] for m in got]
    unique = list(dict.fromkeys(ids))  # what a consumer deduplicating by id sees
    assert unique == [e.id for e in sent]  # all 90, in order
    assert all(m[2]["id"] == m[1] for m in got)  # the header is the envelope's id
    assert ids == unique  # a re-sent event was already dropped by JetStream's deduplication
    assert sink.stats.errors >= 1  # the outage was seen, and ridden out


async def test_the_server_publishes_its_events(server: NatsServer) -> None:
    await server.start()
    srv = start_server({"SFU_EVENTS_NATS_URL": server.url})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(srv.base_url + "/api/rooms", json={"name": "maths-7b"},
                                 headers=srv.auth_header) as resp:
                assert resp.status == 201
    finally:
        stop_server(srv)  # a clean stop publishes what is buffered, room.closed included
    got = await stream_messages(server.url, "SFU_EVENTS")
    assert [(m[0], m[2]["room"]) for m in got][:1] == [
        ("sfu.events.maths-7b.room.created", "maths-7b")]
    assert [m[0] for m in got[-2:]] == ["sfu.events.maths-7b.room.closed",
                                        "sfu.events.maths-7b.session.report"]
