"""A page's session on an edge node (docs/cluster.md, "Edge relays").

The page's media is served here, from the room's edge (``cluster.edge``); everything else
it says and hears is the origin's: the edge carries the page's session to the origin as
the same participant (its join token, with the ``via`` claim naming this node), passes its
classroom actions on and brings back the room's messages. The media messages are the
edge's own, both ways.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from cluster.edge import EdgeRoom, OriginSocket, PageAtOrigin
from cluster.rooms import Elsewhere
from cluster.uplink import Uplink
from sfu.participant import MediaParams, Participant

log = logging.getLogger(__name__)

#: what the page's media connections with this node are made of: handled here, not sent
#: to the origin (``mute`` and ``set_quality`` are handled here and told to it)
LOCAL_TYPES = frozenset({"offer", "answer", "candidate", "restart_ice", "ping", "leave"})
#: what the edge's own room tells a page (its media); the rest of what a page hears
#: comes from the origin
FROM_EDGE = frozenset({"offer", "answer", "candidate", "restart_ice", "track_paused",
                       "track_resumed", "publisher_layers", "left", "error", "pong"})
#: the origin's messages about media connections the page does not have with it
NOT_FROM_ORIGIN = frozenset({"offer", "answer", "candidate", "restart_ice",
                             "publisher_layers", "track_paused", "track_resumed"})


class EdgeLink:
    """The origin's side of one page's session on this edge. When the room moves (a drain
    of its origin), the edge follows it for the page: it resumes the page's participant at
    the new origin and publishes the page's tracks there, while the page stays on the
    edge with its media connections."""

    def __init__(self, edge: EdgeRoom, origin: Elsewhere,
                 to_page: Callable[[dict[str, Any]], None], on_ended: Callable[[], None]
                 ) -> None:
        self.edge = edge
        self.socket = OriginSocket(origin)
        self._to_page = to_page
        self._on_ended = on_ended
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: the page's participant (once joined or resumed at the origin)
        self.page_id = ""
        #: the page's published tracks on their way to the origin (once it publishes)
        self.uplink: Uplink | None = None
        self.closed = False
        #: the origin ended the page's session (``left``, ``redirect``)
        self.ended_by_origin = False

    async def join(self, token: str) -> dict[str, Any]:
        """Join the origin as the page's participant: its ``joined`` (or its refusal:
        ``error``, ``redirect``)."""
        answer = await self.socket.join(token)
        if answer.get("type") == "joined":
            self.page_id = str(answer["participant"]["id"])
            self.edge.at_origin[self.page_id] = PageAtOrigin(
                token, str(answer["resumeToken"]), self.socket.origin)
        return answer

    async def resume(self, participant_id: str) -> dict[str, Any]:
        """Resume the page's participant at the origin (its answer: ``resumed``, or why
        not); the page's uplink, if it publishes, goes on on this session."""
        at = self.edge.at_origin.get(participant_id)
        if at is None:
            return {"type": "error", "message": "the page's session at the origin is gone"}
        answer = await self.socket.join_with({
            "type": "resume", "room": self.edge.room.id, "participantId": participant_id,
            "resumeToken": at.resume_token})
        if answer.get("type") == "resumed":
            self.page_id = participant_id
            at.resume_token = str(answer["resumeToken"])
            self.uplink = self.edge.uplinks.get(participant_id)
            if self.uplink is not None:
                self.uplink.send = self.socket.send
        return answer

    def start(self) -> None:
        self._reader = asyncio.ensure_future(self._read(self.socket))

    async def _read(self, socket: OriginSocket) -> None:
        await socket.messages(self._from_origin)
        if socket is self.socket and not self.closed:
            # the origin went away under the page: it reconnects
            log.warning("edge %s: a page's session with the origin ended", self.edge.room.id)
            self._on_ended()

    async def _from_origin(self, msg: dict[str, Any]) -> None:
        mtype = msg.get("type")
        uplink = self.uplink
        if uplink is not None and (
                mtype == "answer" or mtype == "error" and msg.get("ref") == "offer"):
            uplink.answers.put_nowait(msg)  # (the origin's answer to the edge's offer)
            return
        if mtype in NOT_FROM_ORIGIN:
            return
        if mtype == "redirect" and msg.get("reason") == "room_moved" and await self._move(
                Elsewhere(str(msg.get("node")), str(msg.get("url")))):
            return
        self._to_page(msg)
        if mtype in ("left", "redirect"):
            self.closed = self.ended_by_origin = True
            self._on_ended()

    async def _move(self, origin: Elsewhere) -> bool:
        """The room moved to ``origin``: the page's participant resumes there (with its
        token, as a moved page does) and its tracks are published there. False if the new
        origin would not have it (the page is then told to go there itself)."""
        at = self.edge.at_origin.get(self.page_id)
        if at is None:
            return False
        socket = OriginSocket(origin)
        try:
            answer = await socket.join_with({
                "type": "resume", "room": self.edge.room.id, "participantId": self.page_id,
                "resumeToken": at.resume_token, "token": at.token})
        except ConnectionError as exc:
            answer = {"type": "error", "message": str(exc)}
        if answer.get("type") != "resumed":
            log.warning("edge %s: page %s not taken at %s: %s", self.edge.room.id,
                        self.page_id, origin.node, answer)
            await socket.close()
            return False
        old, self.socket = self.socket, socket
        at.resume_token, at.origin = str(answer["resumeToken"]), origin
        self._background(old.close())
        self._reader = asyncio.ensure_future(self._read(socket))
        if self.uplink is not None:
            self.uplink.send = socket.send
            self._background(self._republish(self.uplink))
        log.info("edge %s: page %s follows the room to %s", self.edge.room.id, self.page_id,
                 origin.node)
        return True

    async def _republish(self, uplink: Uplink) -> None:
        try:
            await uplink.restart()
        except (ConnectionError, TimeoutError) as exc:
            log.warning("edge %s: the page's tracks were not taken at the new origin: %s",
                        self.edge.room.id, exc)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, page: Participant, params: MediaParams) -> None:
        """Publish at the origin what the page publishes here (ConnectionError or
        TimeoutError if the origin does not take it)."""
        uplink = self.edge.uplinks.get(page.id)
        if uplink is None:
            uplink = self.edge.uplinks[page.id] = Uplink(page, params, self.socket.send)
        uplink.send = self.socket.send  # (a resumed page: its uplink goes on)
        self.uplink = uplink
        await uplink.sync()

    async def forward(self, msg: dict[str, Any]) -> None:
        await self.socket.send(msg)

    async def close(self, leave: bool) -> None:
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
        await self.socket.close(leave=leave)


def page_messages(send: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The sender a page's participant in the edge's room uses: only its media messages
    reach the page (the room's news comes from the origin)."""

    def to_page(message: dict[str, Any]) -> None:
        if message.get("type") in FROM_EDGE:
            send(message)

    return to_page


async def proxy_socket(request: web.Request, url: str, max_msg_size: int
                       ) -> web.WebSocketResponse:
    """A page's other socket with its room (the whiteboard's) carried to the origin frame
    for frame, both ways: the room has one board, the origin's. ``max_msg_size``: the
    origin's limit for a page's frame, held here too."""
    page = web.WebSocketResponse(heartbeat=5.0, max_msg_size=max_msg_size)
    await page.prepare(request)
    async with aiohttp.ClientSession() as http:
        try:
            origin = await http.ws_connect(url, max_msg_size=0, heartbeat=15)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("edge: the origin's socket %s cannot be reached: %s", url, exc)
            await page.close(code=WSCloseCode.TRY_AGAIN_LATER)
            return page

        async def pump(source: Any, sink: Any) -> None:
            try:
                async for msg in source:
                    if msg.type == WSMsgType.BINARY:
                        await sink.send_bytes(msg.data)
                    elif msg.type == WSMsgType.TEXT:
                        await sink.send_str(msg.data)
                    else:
                        break
            except (ConnectionError, RuntimeError):
                pass  # one side went away: both close

        ways = [asyncio.ensure_future(pump(page, origin)),
                asyncio.ensure_future(pump(origin, page))]
        try:
            await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for way in ways:
                way.cancel()
            await origin.close()
            await page.close()
    return page
