"""A pycrdt client of the whiteboard route for the tests: it speaks the Yjs wire protocol in
frames (whiteboard.protocol) over a real server's ``/ws/whiteboard``. With ``control`` it
asks for the server's JSON text messages (``&control=1``, as the browser client does);
without, it is a stock y-protocols client that must only ever get binary frames."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
from pycrdt import Array, Doc, Map

from benches.server_process import ServerProcess
from whiteboard import protocol

TIMEOUT = 5.0


class Peer:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.items = self.doc.get("items", type=Array)
        #: text messages that arrived while a binary frame was awaited
        self.texts: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, server: ServerProcess, room: str,
                   identity: str, role: str = "student", control: bool = True) -> Peer:
        token = server.mint_token(room, identity, role=role)
        url = server.base_url.replace("http", "ws", 1) + f"/ws/whiteboard?token={quote(token)}"
        ws = await http.ws_connect(url + ("&control=1" if control else ""))
        peer = cls(ws)
        hello = protocol.parse(await peer.binary())
        assert hello.kind == "step1"
        await ws.send_bytes(protocol.sync_message(protocol.STEP2,
                                                  peer.doc.get_update(hello.payload)))
        await ws.send_bytes(protocol.sync_message(protocol.STEP1, peer.doc.get_state()))
        step2 = protocol.parse(await peer.binary())
        assert step2.kind == "step2"
        peer.doc.apply_update(step2.payload)
        assert protocol.parse(await peer.binary()).kind == "step1"
        return peer

    async def binary(self) -> bytes:
        """The next binary frame; text messages before it go to ``texts``."""
        while True:
            msg = await self.ws.receive(timeout=TIMEOUT)
            if msg.type == aiohttp.WSMsgType.BINARY:
                return bytes(msg.data)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            self.texts.append(json.loads(msg.data))

    async def draw(self, **fields: Any) -> None:
        before = self.doc.get_state()
        self.items.append(Map({"kind": "pen", **fields}))
        await self.ws.send_bytes(protocol.sync_message(protocol.UPDATE,
                                                       self.doc.get_update(before)))

    async def receive_update(self) -> None:
        """Apply the next update; awareness frames (others' cursors) before it are skipped."""
        frame = protocol.parse(await self.binary())
        while frame.kind == "awareness":
            frame = protocol.parse(await self.binary())
        assert frame.kind == "update", frame
        self.doc.apply_update(frame.payload)

    async def error(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=TIMEOUT)
        if msg.type == aiohttp.WSMsgType.BINARY:  # a refused write: permission denied first
            assert msg.data[:2] == bytes([protocol.AUTH, 0])
            msg = await self.ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        body: dict[str, Any] = json.loads(msg.data)
        assert body["type"] == "error"
        return body

    def content(self) -> str:
        return json.dumps(self.items.to_py(), sort_keys=True)
