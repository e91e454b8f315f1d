"""The inter-node link over real QUIC (aioquic) on loopback: control messages and media
datagrams both ways, a node that presents another certificate than the pinned one is not
trusted, and a peer that breaks the protocol has its link closed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from benches.quic_link.adapter import Link, dial, hello, listen, make_certificate, proof
from benches.quic_link.wire import datagram, encode, parse_datagram

SECRET = "s" * 40


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Origin:
    """The accepting node: records what each link sent, answers a hello."""

    def __init__(self) -> None:
        self.cert, self.key = make_certificate("origin-1")
        self.port = free_udp_port()
        self.links: list[Link] = []
        self.controls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.Event()

    def accepted(self, link: Link) -> None:
        self.links.append(link)

        def control(link: Link, msg: dict[str, Any]) -> None:
            if msg["t"] == "hello" and msg["proof"] == proof(SECRET, msg["node"], "origin-1"):
                link.peer = msg["node"]
                link.send_control(hello("origin-1", msg["node"], SECRET))
            self.controls.put_nowait(msg)

        link.on_control = control
        link.on_datagram = lambda link, data: self.datagrams.put_nowait(data)
        link.on_closed = lambda link: self.closed.set()


@pytest_asyncio.fixture
async def origin() -> AsyncIterator[Origin]:
    o = Origin()
    server = await listen("127.0.0.1", o.port, o.cert, o.key, o.accepted)
    yield o
    server.close()


RTP = bytes([0x80, 111, 0, 1]) + bytes(8) + b"opus"


async def test_control_and_media_cross_the_link_both_ways(origin: Origin) -> None:
    async with dial("127.0.0.1", origin.port, "origin-1", origin.cert) as edge:
        answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        media: asyncio.Queue[bytes] = asyncio.Queue()
        edge.on_control = lambda link, msg: answers.put_nowait(msg)
        edge.on_datagram = lambda link, data: media.put_nowait(data)
        edge.send_control(hello("edge-1", "origin-1", SECRET))
        got = await asyncio.wait_for(origin.controls.get(), 5)
        assert got["node"] == "edge-1"
        back = await asyncio.wait_for(answers.get(), 5)
        assert back["node"] == "origin-1" and back["proof"] == proof(SECRET, "origin-1",
                                                                      "edge-1")
        edge.send_control({"t": "want", "slot": 4, "layer": 2})
        assert await asyncio.wait_for(origin.controls.get(), 5) == {
            "t": "want", "slot": 4, "layer": 2}
        for i in range(20):
            edge.send_datagram(datagram(4, RTP))
        assert parse_datagram(await asyncio.wait_for(origin.datagrams.get(), 5)) == (4, RTP)
        origin.links[0].send_datagram(datagram(9, RTP))
        assert parse_datagram(await asyncio.wait_for(media.get(), 5)) == (9, RTP)


async def test_a_node_with_another_certificate_is_not_trusted(origin: Origin) -> None:
    impostor_cert, _ = make_certificate("origin-1")  # same name, not the announced one
    with pytest.raises(ConnectionError):
        async with dial("127.0.0.1", origin.port, "origin-1", impostor_cert):
            pass


async def test_a_peer_that_breaks_the_protocol_is_closed(origin: Origin) -> None:
    async with dial("127.0.0.1", origin.port, "origin-1", origin.cert) as edge:
        edge.send_control({"t": "pli", "slot": 1})
        await asyncio.wait_for(origin.controls.get(), 5)
        stream = edge._stream
        assert stream is not None
        edge._quic.send_stream_data(stream, b"\x00\x00\x00\x03\xc1\xc1\xc1")  # not msgpack
        edge.transmit()
        await asyncio.wait_for(origin.closed.wait(), 5)
        await asyncio.wait_for(edge.closed.wait(), 5)
    assert encode({"t": "pli", "slot": 1})  # (the well-formed one went through)
