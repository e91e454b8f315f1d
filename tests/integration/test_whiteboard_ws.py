"""The whiteboard over a real server's ``/ws/whiteboard``: pycrdt clients speaking the Yjs
wire protocol sync, draw and see each other's strokes; an observer is refused; bad frames
get an error and the socket carries on; the instructor clears; and the board is saved and
comes back when the room's board opens again."""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ServerProcess
from tests.whiteboard.peer import Peer
from whiteboard import protocol

pytestmark = pytest.mark.integration


async def test_the_whiteboard_over_its_websocket(server: ServerProcess) -> None:
    room = "board-" + secrets.token_hex(3)
    async with aiohttp.ClientSession() as http:
        ann = await Peer.open(http, server, room, "ann")
        obs = await Peer.open(http, server, room, "parent", "observer")
        teacher = await Peer.open(http, server, room, "teacher", "instructor")
        await ann.draw(points=[1, 2, 3])
        for p in (obs, teacher):
            await p.receive_update()
        assert ann.content() == obs.content() == teacher.content() != "[]"

        await obs.draw(points=[9])  # an observer cannot draw
        assert (await obs.error())["code"] == "permission_denied"
        await ann.ws.send_bytes(b"\x00\x02\x05ab")  # truncated
        assert (await ann.error())["code"] == "bad_whiteboard_message"
        await ann.ws.send_str('{"type": "clear"}')  # students cannot clear
        assert (await ann.error())["code"] == "permission_denied"

        await ann.draw(points=[4, 5])  # the socket carries on
        for p in (obs, teacher):
            await p.receive_update()
        # the refused stroke never went out (only the observer's own copy has it: a refused
        # client drops its change, docs/whiteboard.md)
        assert len(teacher.items) == 2 and ann.content() == teacher.content()
        assert len(obs.items) == 3

        await teacher.ws.send_str('{"type": "clear"}')
        for p in (ann, obs, teacher):
            await p.receive_update()
        assert ann.content() == teacher.content() == "[]"

        await ann.draw(points=[7])
        for p in (obs, teacher):
            await p.receive_update()
        for p in (ann, obs, teacher):
            await p.ws.close()

        # the last one out saved the board; opening it again starts from the file
        saved = Path(server.events_dir) / "whiteboards" / f"{room}.ybin"
        assert saved.exists()
        late = await Peer.open(http, server, room, "late", "observer")
        assert late.content() == ann.content() != "[]"
        await late.ws.close()

        async with http.get(server.base_url + "/ws/whiteboard?token=nope") as resp:
            assert resp.status == 401


async def test_a_stock_client_only_ever_gets_binary_frames(server: ServerProcess) -> None:
    """A client that did not ask for ``control=1`` (y-websocket's provider, say, which
    cannot parse text) gets y-protocols frames only: a refused write is the binary
    permission-denied frame, a bad frame is dropped, and the lock is not announced to it.
    A browser client opening a locked board is told at once."""
    room = "board-" + secrets.token_hex(3)
    async with aiohttp.ClientSession() as http:
        teacher = await Peer.open(http, server, room, "teacher", "instructor")
        stock = await Peer.open(http, server, room, "ann", control=False)
        await teacher.ws.send_str('{"type": "lock", "locked": true}')
        assert await teacher.ws.receive_json(timeout=5) == {"type": "locked", "locked": True}

        await stock.draw(points=[1])
        assert (await stock.binary())[:2] == bytes([protocol.AUTH, 0])
        await stock.ws.send_bytes(b"\x00\x02\x05ab")  # truncated: dropped, no text error
        await stock.ws.send_bytes(bytes([protocol.QUERY_AWARENESS]))
        assert protocol.parse(await stock.binary()).kind == "awareness"
        assert stock.texts == []

        late = await Peer.open(http, server, room, "bob")
        assert late.texts == [{"type": "locked", "locked": True}]
        for p in (teacher, stock, late):
            await p.ws.close()
