"""Signed webhooks against a real HTTP receiver on loopback: signed, in order, retried on
5xx with the same delivery id, refused ones and exhausted ones in the dead-letter file, a
stalled receiver never blocks the caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from samples import emit

from benches.server_process import start_server, stop_server
from events import EventBus
from events.webhook_sink import WebhookSink, sign, verify

SECRET = "s3cret-0123456789-0123456789-abcdef"


class Receiver:
    """Records each request; answers from ``script`` (status codes), then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []
        self.stall = asyncio.Event()
        self.stall.set()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await self.stall.wait()
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.script.pop(0) if self.script else 200)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    yield rec
    rec.stall.set()
    await runner.cleanup()


def make_sink(rec: Receiver, tmp_path: Path, **kw: Any) -> tuple[EventBus, WebhookSink]:
    sink = WebhookSink([rec.url], SECRET, tmp_path / "dead.jsonl", first_backoff_s=0.01,
                       **kw)
    sink.start()
    bus = EventBus()
    bus.subscribe(sink)
    return bus, sink


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_signed_in_order_and_retried(receiver: Receiver, tmp_path: Path) -> None:
    bus, sink = make_sink(receiver, tmp_path)
    receiver.script = [503, 503]  # the receiver is briefly unwell
    sent = [emit(bus, i, "r", "joined") for i in range(5)]
    await sink.drained(timeout=10)
    await sink.close()
    deliveries = [h["X-SFU-Delivery"] for h, _ in receiver.requests]
    assert deliveries == [sent[0].id] * 3 + [e.id for e in sent[1:]]  # same id when retried
    for headers, body in receiver.requests:
        assert verify(SECRET, body, headers["X-SFU-Signature"])
        assert not verify("another-secret", body, headers["X-SFU-Signature"])
        assert headers["X-SFU-Event"] == "participant.joined"
    assert [json.loads(b) for _, b in receiver.requests[2:]] == [e.envelope() for e in sent]
    assert sink.stats.delivered == 5 and sink.stats.retries == 2
    assert dead_letters(tmp_path) == []


async def test_refused_and_exhausted_deliveries_are_dead_lettered(
        receiver: Receiver, tmp_path: Path) -> None:
    bus, sink = make_sink(receiver, tmp_path, max_attempts=3)
    receiver.script = [400, 500, 500, 500]
    refused = emit(bus, 1, "r", "joined")  # 400: not retried
    exhausted = emit(bus, 2, "r", "muted")  # 500 x 3: given up
    delivered = bus.emit("room.closed", "r", {"reason": "empty"})
    await sink.drained(timeout=10)
    await sink.close()
    dead = dead_letters(tmp_path)
    assert [(d["event"]["id"], d["attempts"], d["error"]) for d in dead] == [
        (refused.id, 1, "HTTP 400"), (exhausted.id, 3, "HTTP 500")]
    assert all(d["url"] == receiver.url for d in dead)
    assert json.loads(receiver.requests[-1][1])["id"] == delivered.id
    assert sink.stats.dead_lettered == 2 and sink.stats.delivered == 1


async def test_a_stalled_receiver_never_blocks_the_caller(receiver: Receiver,
                                                          tmp_path: Path) -> None:
    bus, sink = make_sink(receiver, tmp_path, queue_max=10, timeout_s=30)
    receiver.stall.clear()  # the receiver hangs
    sent = [emit(bus, i, "r", "muted") for i in range(25)]  # at once
    assert sink.queued == 10
    dead = dead_letters(tmp_path)  # what did not fit is written down, not lost
    assert [d["event"]["id"] for d in dead] == [e.id for e in sent[10:]]
    receiver.stall.set()
    await sink.drained(timeout=10)
    await sink.close()
    assert [json.loads(b)["id"] for _, b in receiver.requests] == [e.id for e in sent[:10]]


def test_signatures_expire_and_must_be_well_formed() -> None:
    body = b'{"a":1}'
    assert verify(SECRET, body, sign(SECRET, body, t=1000), now=1100)
    assert not verify(SECRET, body, sign(SECRET, body, t=1000), now=2000)  # replayed later
    assert not verify(SECRET, body + b" ", sign(SECRET, body))  # body changed
    assert not verify(SECRET, body, "v1=abc")
    assert not verify(SECRET, body, "garbage")


async def test_the_server_sends_signed_webhooks(receiver: Receiver) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.run_in_executor(None, lambda: start_server(
        {"SFU_EVENTS_WEBHOOK_URLS": receiver.url}))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(srv.base_url + "/api/rooms", json={"name": "maths-7b"},
                                 headers=srv.auth_header) as resp:
                assert resp.status == 201
    finally:  # in a thread: the receiver shares this event loop
        await loop.run_in_executor(None, stop_server, srv)
    events = [(h["X-SFU-Event"], json.loads(b)["room"]) for h, b in receiver.requests]
    assert events == [("room.created", "maths-7b"), ("room.closed", "maths-7b"),
                      ("session.report", "maths-7b")]
    assert all(verify(srv.api_secret, b, h["X-SFU-Signature"]) for h, b in receiver.requests)
