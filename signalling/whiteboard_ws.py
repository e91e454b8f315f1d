"""The whiteboard's WebSocket route, ``/ws/whiteboard?token=<join token>[&control=1]``: a
thin adapter around :class:`whiteboard.board.Board` (docs/whiteboard.md).

Binary messages are y-protocols frames (what ``y-websocket``'s provider sends). Text
messages are JSON, and only for a client that asked for them with ``control=1`` (the
browser client; a stock provider cannot parse text, so it gets binary frames only): the
instructor's ``{"type": "clear"}`` and ``{"type": "lock", "locked": bool}``; the server's
``{"type": "locked", "locked": bool}`` (at once on a locked board, and on every change) and
``{"type": "error", "code", "message"}`` for a refused frame (the socket stays open; a
refused write also gets the binary permission-denied frame, which every client gets).

One :class:`BoardHub` per room holds the board and its sockets. Each socket has its own
send queue and sender task, so a slow reader never holds up the writer or the other
readers; a reader more than ``MAX_QUEUED_FRAMES`` behind is closed (1013) and syncs afresh
when it reconnects. The board is saved to ``<whiteboards_dir>/<room>.ybin`` (written to a
temporary name, synced and renamed) at most every ``SAVE_INTERVAL_S`` after a change and
when its last socket leaves; a hub created later (the room reopened, the server restarted)
starts from that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from classroom.errors import ClassroomError
from classroom.files import room_file_name, write_atomic
from events import EventBus
from whiteboard import protocol
from whiteboard.board import MAX_UPDATE_BYTES, Board, ReadOnly

from . import tokens

log = logging.getLogger(__name__)
SAVE_INTERVAL_S = 5.0
#: frames a socket may have waiting to be sent before it is dropped as too slow (a pen
#: stroke at 60 moves/s is 60 frames/s: this is over a minute of one writer)
MAX_QUEUED_FRAMES = 4096


class BoardPeer:
    """One socket on a board: who it is, and its send queue (bytes or text)."""

    def __init__(self, ws: web.WebSocketResponse, who: str, role: str, control: bool) -> None:
        self.ws = ws
        self.who = who
        self.role = role
        self.control = control
        self.queue: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.dropped = False  # too slow: closing, nothing more is queued
        self.task = asyncio.ensure_future(self._send_loop())

    def send(self, frame: bytes | str) -> None:
        if (isinstance(frame, str) and not self.control) or self.ws.closed or self.dropped:
            return
        if self.queue.qsize() >= MAX_QUEUED_FRAMES:
            log.warning("whiteboard reader %s too slow: closing it", self.who)
            self.dropped = True
            self.queue.put_nowait(None)  # the sender closes the socket when it gets there
            return
        self.queue.put_nowait(frame)

    def error(self, code: str, message: str) -> None:
        self.send(json.dumps({"type": "error", "code": code, "message": message}))

    async def _send_loop(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                if frame is None:
                    await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER,
                                        message=b"too slow for the whiteboard")
                    return
                if isinstance(frame, str):
                    await self.ws.send_str(frame)
                else:
                    await self.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):
            return  # the socket went away; its reader loop ends too

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class BoardHub:
    def __init__(self, room: str, bus: EventBus, folder: Path | None) -> None:
        self.room = room
        self.path = folder / f"{room_file_name(room)}.ybin" if folder else None
        snapshot = None
        if self.path is not None and self.path.exists():
            snapshot = self.path.read_bytes()
        self.bus = bus
        self.board = Board(room, self._emit, snapshot=snapshot)
        self.peers: dict[web.WebSocketResponse, BoardPeer] = {}
        self._saved_at = self.board.updates
        self._last_save = time.monotonic()

    def _emit(self, type_: str, data: dict[str, Any]) -> None:
        self.bus.emit(type_, self.room, data)

    def to_others(self, sender: web.WebSocketResponse | None, frames: list[bytes | str]
                  ) -> None:
        for ws, peer in self.peers.items():
            if ws is not sender:
                for frame in frames:
                    peer.send(frame)

    def save(self, force: bool = False) -> None:
        if self.path is None or self.board.updates == self._saved_at:
            return
        if not force and time.monotonic() - self._last_save < SAVE_INTERVAL_S:
            return
        try:
            write_atomic(self.path, self.board.snapshot())
        except OSError:
            log.exception("could not save the whiteboard of %s", self.room)
            return
        self._saved_at = self.board.updates
        self._last_save = time.monotonic()


class Whiteboards:
    """The hubs of every room with an open board."""

    def __init__(self, bus: EventBus, folder: str | None) -> None:
        self.bus = bus
        self.folder = Path(folder) if folder else None
        self.hubs: dict[str, BoardHub] = {}

    def hub(self, room: str) -> BoardHub:
        hub = self.hubs.get(room)
        if hub is None:
            hub = self.hubs[room] = BoardHub(room, self.bus, self.folder)
        return hub

    def merge(self, room: str, snapshot: bytes) -> bool:
        """Merge another node's replica of the room's board (a take-over) into it: the
        board is kept as if drawn here; False if the replica does not decode."""
        hub = self.hub(room)
        try:
            frames: list[bytes | str] = list(hub.board.merge(snapshot))
        except ClassroomError as exc:
            log.warning("whiteboard of %s: replica not merged (%s)", room, exc)
            return False
        hub.to_others(None, frames)
        hub.save(force=True)
        return True

    def close(self) -> None:
        for hub in self.hubs.values():
            hub.save(force=True)


async def serve(request: web.Request, boards: Whiteboards, claims: tokens.JoinClaims,
                participant_id: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_UPDATE_BYTES + 64, heartbeat=5.0)
    await ws.prepare(request)
    hub = boards.hub(claims.room)
    board = hub.board
    peer = hub.peers[ws] = BoardPeer(ws, participant_id, claims.role,
                                     request.query.get("control") == "1")
    try:
        peer.send(board.hello())
        if board.locked:
            peer.send(_locked(True))
        async for msg in ws:
            try:
                if msg.type == WSMsgType.BINARY:
                    out = board.receive(participant_id, claims.role, msg.data,
                                        time.time() * 1000.0)
                    for frame in out.reply:
                        peer.send(frame)
                    hub.to_others(ws, list(out.others))
                    if out.others:
                        hub.save()
                elif msg.type == WSMsgType.TEXT:
                    _control(hub, peer, msg.data)
            except ReadOnly as exc:
                peer.send(protocol.permission_denied(str(exc)))
                peer.error(exc.code, str(exc))
            except ClassroomError as exc:
                peer.error(exc.code, str(exc))
    finally:
        del hub.peers[ws]
        await peer.close()
        hub.to_others(ws, list(board.left(participant_id, time.time() * 1000.0)))
        if not hub.peers:
            hub.save(force=True)
            boards.hubs.pop(claims.room, None)
    return ws


def _locked(locked: bool) -> str:
    return json.dumps({"type": "locked", "locked": locked})


def _control(hub: BoardHub, peer: BoardPeer, text: str) -> None:
    try:
        msg = json.loads(text)
    except ValueError:
        msg = None
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "clear":
        frame = hub.board.clear(peer.who, peer.role)
        hub.to_others(None, [frame])
        hub.save(force=True)
    elif kind == "lock" and isinstance(msg, dict) and isinstance(msg.get("locked"), bool):
        hub.board.lock(peer.who, peer.role, msg["locked"])
        hub.to_others(None, [_locked(msg["locked"])])
    else:
        raise ClassroomError('text messages are {"type": "clear"} or '
                             '{"type": "lock", "locked": true|false}')
