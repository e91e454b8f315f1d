"""A live server fed the fuzzers' garbage (benches/fuzz.py: inputs mutated from each
parser's valid seeds) on every input it has, while a healthy pair's media flows: RTP, RTCP
and STUN on the shared media port (from a fresh address and from the publisher's own
validated one), SDP offers, signalling frames and join tokens on the WebSocket, and
y-protocols frames on the whiteboard socket. Nobody else notices, and the server logs no
traceback (the ``server`` fixture checks)."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from sfu_harness import HealthyPair, Http, WsProbe

from benches.fuzz import mutants

pytestmark = pytest.mark.integration

N = 300  # per kind of input


async def paced(send, items: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    for i, item in enumerate(items):
        send(item)
        if i % 25 == 24:
            await asyncio.sleep(0.002)


async def test_fuzzed_inputs_everywhere_leave_the_healthy_pair_untouched(
        pair: HealthyPair, http: Http, server) -> None:  # type: ignore[no-untyped-def]
    udp_port, _ = await http.media_ports()
    datagrams = mutants("rtp", N, 1) + mutants("rtcp", N, 2) + mutants("stun", N, 3)
    # the media port, from a fresh address and from the publisher's validated one
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        await paced(lambda d: s.sendto(d, ("127.0.0.1", udp_port)), datagrams)
    assert pair.pub.publisher is not None
    await paced(pair.pub.publisher.send_datagram, datagrams)
    # the signalling socket of a joined participant: fuzzed frames, then fuzzed offers
    probe = await WsProbe(server).open()
    try:
        await probe.send({"type": "join", "token": server.mint_token(pair.room, "fuzzer")})
        await probe.expect("joined")
        for frame in mutants("signalling", N, 4):
            assert probe.ws is not None
            await probe.ws.send_str(frame.decode("utf-8", "replace"))
            if probe.ws.closed:
                break
        for offer in mutants("sdp", 50, 5):
            if probe.ws is None or probe.ws.closed:
                break
            await probe.send({"type": "offer", "target": "publisher",
                              "sdp": offer.decode("utf-8", "replace")})
    finally:
        await probe.close()
    # join attempts with fuzzed tokens: each refused on its own socket
    for token in mutants("token", 20, 6):
        refused = await WsProbe(server).open()
        try:
            await refused.send({"type": "join", "token": token.decode("utf-8", "replace")})
            err = await refused.expect("error")
            assert err["fatal"] is True and err["code"] != "internal_error", err
        finally:
            await refused.close()
    # the whiteboard socket of a joined participant: fuzzed y-protocols frames
    token = server.mint_token(pair.room, "board-fuzzer")
    async with aiohttp.ClientSession() as session:
        url = server.base_url.replace("http", "ws", 1) + "/ws/whiteboard?token=" + token
        async with session.ws_connect(url) as ws:
            for frame in mutants("whiteboard", N, 7):
                if ws.closed:
                    break
                await ws.send_bytes(frame)
    # nothing reached the healthy pair, and nothing was an internal error
    await pair.assert_flowing(n=50)
    assert await http.metric("sfu_signalling_errors_total", code="internal_error") == 0
