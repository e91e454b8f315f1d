"""Helpers for the integration tests: a healthy media pair, raw WebSocket probes, /metrics
and room-API access. Fixtures built on them are in conftest.py.

The healthy pair is two :class:`benches.rawclient.RawClient` s in one room: a publisher that
keeps sending audio and video packets from a background task, and a subscriber whose
per-track packet counters are how a test sees that media still flows.
"""

from __future__ import annotations

import asyncio
import email
import itertools
import json
import os
import re
import socket
import time
from collections.abc import Callable
from email.message import Message
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller

from benches.rawclient import RawClient

_room_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_room_ids)}"


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0,
                     what: str | Callable[[], str] = "condition") -> None:
    """Poll ``pred`` (cheap, in-process state) until true; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.02)


# -- HTTP: metrics and room service API ---------------------------------------------------


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = frozenset(_LABEL.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


class Http:
    def __init__(self, server: Any, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        async with self.session.get(self.server.base_url + "/metrics") as resp:
            assert resp.status == 200
            return parse_metrics(await resp.text())

    async def metric(self, name: str, **labels: str) -> float:
        return (await self.metrics()).get((name, frozenset(labels.items())), 0.0)

    async def media_ports(self) -> tuple[int, int]:
        """The server's shared media ports (UDP, TCP), from ``sfu_media_port_info``."""
        for (name, labels), _ in (await self.metrics()).items():
            if name == "sfu_media_port_info":
                got = dict(labels)
                return int(got["udp_port"]), int(got["tcp_port"] or 0)
        raise AssertionError("no sfu_media_port_info in /metrics")

    async def api(self, method: str, path: str, *, body: Any = None,
                  auth: bool = True, headers: dict[str, str] | None = None
                  ) -> tuple[int, Any]:
        hdrs = dict(self.server.auth_header if auth else {})
        hdrs.update(headers or {})
        async with self.session.request(method, self.server.base_url + path, json=body,
                                        headers=hdrs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def identities(self, room: str) -> set[str] | None:
        """Identities listed by GET /api/rooms/<room>/participants (None: no such room)."""
        status, body = await self.api("GET", f"/api/rooms/{room}/participants")
        if status == 404:
            return None
        assert status == 200, body
        return {p["identity"] for p in body["participants"]}

    async def wait_identities(self, room: str, pred: Callable[[set[str]], bool],
                              timeout: float = 10.0) -> set[str]:
        deadline = time.monotonic() + timeout
        while True:
            ids = await self.identities(room) or set()
            if pred(ids):
                return ids
            if time.monotonic() > deadline:
                raise AssertionError(f"participants of {room!r} stayed {sorted(ids)}")
            await asyncio.sleep(0.05)


# -- raw WebSocket probe -----------------------------------------------------------------


class WsProbe:
    """A bare signalling socket: sends whatever a test wants, reads frames one by one."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.seen: list[dict[str, Any]] = []

    async def open(self) -> WsProbe:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.server.ws_url, max_msg_size=0,
                                                autoping=True)
        return self

    async def send(self, msg: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(msg))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next JSON frame, or None once the server closed the socket."""
        assert self.ws is not None
        frame = await self.ws.receive(timeout)
        if frame.type == aiohttp.WSMsgType.TEXT:
            msg = json.loads(frame.data)
            self.seen.append(msg)
            return msg
        assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED), frame
        return None

    async def expect(self, mtype: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg is None:
                raise AssertionError(f"socket closed while waiting for {mtype!r}; saw "
                                     f"{self.seen[-5:]}")
            if msg["type"] == mtype:
                return msg

    async def expect_error(self, code: str, *, fatal: bool) -> dict[str, Any]:
        err = await self.expect("error")
        assert err["code"] == code, err
        assert err["fatal"] is fatal, err
        assert isinstance(err["message"], str) and err["message"]
        return err

    async def expect_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the socket (any further frames are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg is None:
                assert self.ws is not None
                return self.ws.close_code

    async def ping_pong(self, ident: Any = "probe") -> None:
        await self.send({"type": "ping", "id": ident})
        pong = await self.expect("pong")
        assert pong["id"] == ident

    def abort(self) -> None:
        """Vanish: drop the TCP connection without a WebSocket close frame."""
        assert self.ws is not None
        conn = self.ws._response.connection
        if conn is not None and conn.transport is not None:
            conn.transport.abort()

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()


# -- raw RTP clients ---------------------------------------------------------------------


def track_counts(client: RawClient, *track_ids: str) -> tuple[int, ...]:
    out = []
    for tid in track_ids:
        rec = client.received_for_track(tid)
        out.append(rec.packets if rec is not None else 0)
    return tuple(out)


def announced_id(client: RawClient, identity: str) -> str | None:
    """Participant id of ``identity`` from the ``participant_joined`` ``client`` got."""
    for m in client.log:
        if m["type"] == "participant_joined" and m["participant"]["identity"] == identity:
            return str(m["participant"]["id"])
    return None


def left_messages(client: RawClient, identity: str) -> list[dict[str, Any]]:
    pid = announced_id(client, identity)
    return [m for m in client.log
            if m["type"] == "participant_left" and pid is not None and m["participantId"] == pid]


async def vanish(client: RawClient) -> None:
    """``client`` disappears: TCP connection dropped without a close frame, media stopped."""
    if client._reader is not None:
        client._reader.cancel()
    if client.ws is not None:
        conn = client.ws._response.connection
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
    for t in (client.publisher, client.subscriber):
        if t is not None:
            await t.close()


class Pumper:
    """Sends audio + video packets from ``client`` every 10 ms until stopped."""

    def __init__(self, client: RawClient, video_size: int = 900) -> None:
        self.client = client
        self.video_size = video_size
        self.sent = {"audio": 0, "video": 0}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Pumper:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            for kind in ("audio", "video"):
                size = 60 if kind == "audio" else self.video_size
                if self.client.publisher is None:  # (moving to another node)
                    continue
                pkt = self.client.build_packet(kind, os.urandom(size), marker=kind == "video")
                if self.client.send_packet(pkt):
                    self.sent[kind] += 1
            await asyncio.sleep(0.01)  # pacing, ~100 packets/s per kind

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


class HealthyPair:
    """A publisher sending continuously and a subscriber receiving it, in one room."""

    def __init__(self, server: Any, room: str) -> None:
        self.server = server
        self.room = room
        self.pub = RawClient(server.ws_url, server.mint_token(room, "healthy-pub"))
        self.sub = RawClient(server.ws_url, server.mint_token(room, "healthy-sub"))
        self.audio = self.video = ""
        self.pumper = Pumper(self.pub)

    async def start(self) -> None:
        await self.sub.connect()
        await self.pub.connect()
        published = await self.pub.publish()
        self.audio, self.video = published["a"], published["v"]
        await self.sub.wait_subscribed()
        self.pumper.start()
        await self.assert_flowing()

    def counts(self) -> tuple[int, int]:
        a, v = track_counts(self.sub, self.audio, self.video)
        return a, v

    async def assert_flowing(self, n: int = 15, timeout: float = 10.0) -> None:
        """The subscriber's counters for both of the publisher's tracks grow by ``n``."""
        a0, v0 = self.counts()
        await wait_until(lambda: self.counts()[0] >= a0 + n and self.counts()[1] >= v0 + n,
                         timeout, lambda: f"media to the healthy subscriber: counts were "
                         f"{(a0, v0)}, now {self.counts()}, sent {self.pumper.sent}")
        self.assert_untouched()

    def assert_untouched(self) -> None:
        """Neither healthy client got an error or lost its socket."""
        for c in (self.pub, self.sub):
            assert not c.errors, c.errors
            assert not any(m.get("type") in ("left", "__closed__") for m in c.log), c.log[-5:]
            assert c.ws is not None and not c.ws.closed

    def participant_id(self, identity: str) -> str | None:
        """Id of ``identity`` as announced to the healthy subscriber (None if never seen)."""
        return announced_id(self.sub, identity)

    async def wait_left(self, identity: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Both healthy clients get ``participant_left`` for ``identity``; returns them."""
        out: list[dict[str, Any]] = []
        for c in (self.pub, self.sub):
            await wait_until(lambda c=c: bool(left_messages(c, identity)),  # type: ignore[misc]
                             timeout, f"participant_left for {identity!r}")
            out += left_messages(c, identity)
        return out

    async def barrier(self) -> None:
        """Everything the server queued for the healthy clients so far has arrived."""
        for i, c in enumerate((self.pub, self.sub)):
            ident = f"barrier-{time.monotonic_ns()}-{i}"
            await c.send({"type": "ping", "id": ident})
            await c.wait_for("pong", pred=lambda m, ident=ident: m.get("id") == ident)

    async def stop(self) -> None:
        await self.pumper.stop()
        for c in (self.pub, self.sub):
            await c.close()


# -- a real SMTP server --------------------------------------------------------------


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.controller: Controller | None = None
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content)
        self.messages.append(msg)
        return "250 OK"

    def start(self, port: int = 0) -> None:
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self.controller.start()
        self.port = port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]
