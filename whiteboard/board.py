"""One room's whiteboard: a pycrdt document (Yjs-compatible) and who may change it, sans-IO.

Fed each participant's binary frames (:mod:`whiteboard.protocol`) with a clock; returns what
to send back to that participant and what to send to everyone else. The document is the
room's only copy: a late joiner syncs from it (its step 1 is answered with a step 2), and
:meth:`Board.snapshot` / ``Board(snapshot=...)`` carry it across a room restart.

Permissions: observers (and, while the board is locked, everyone but the instructor) are
read-only: their updates are refused with a permission-denied frame and never applied; the
answer every client gives to the server's step 1 is dropped silently for them. A client
whose update was refused must drop its local change and sync again (its later updates would
build on the refused one, and wait for it forever). The instructor clears and locks the
board.

Events (``emit``): ``whiteboard.update`` at most once per participant per
``EVENT_INTERVAL_MS`` with the number of updates and bytes since the previous one (a pen
stroke is many small updates), flushed when the participant leaves; ``whiteboard.cleared``
and ``whiteboard.locked``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc

from classroom.errors import MODERATORS, ClassroomError, require_moderator

from . import protocol
from .protocol import AwarenessEntry, ProtocolError

#: the largest update (or step 2) a client may send, in bytes; a whole board pasted in is
#: far smaller, and a document cannot be grown by megabytes per frame
MAX_UPDATE_BYTES = 256 * 1024
#: awareness entries one participant may own (one per open tab)
MAX_CLIENTS_PER_PARTICIPANT = 4
EVENT_INTERVAL_MS = 10_000.0
#: the board's shared types (the browser client draws into them): ``items`` holds one
#: Y.Map per pen stroke, shape or text box; ``clear`` empties these
ROOTS = {"items": Array}
READ_ONLY_ROLES = ("observer",)


class UpdateTooLarge(ClassroomError):
    code = "whiteboard_update_too_large"


class ReadOnly(ClassroomError):
    code = "permission_denied"


@dataclass
class Out:
    """Frames for the sender (``reply``) and for every other participant (``others``)."""

    reply: list[bytes] = field(default_factory=list)
    others: list[bytes] = field(default_factory=list)


@dataclass
class _Writer:
    updates: int = 0
    bytes: int = 0
    last_event_ms: float = -1e18


class Board:
    def __init__(self, room: str, emit: Callable[[str, dict[str, Any]], None], *,
                 snapshot: bytes | None = None,
                 max_update_bytes: int = MAX_UPDATE_BYTES) -> None:
        self.room = room
        self._emit = emit
        self.max_update_bytes = max_update_bytes
        self.doc: Doc[Any] = Doc()
        for name, kind in ROOTS.items():
            self.doc.get(name, type=kind)
        if snapshot:
            self.doc.apply_update(snapshot)
        self.locked = False
        self.updates = 0
        self._writers: dict[str, _Writer] = {}
        #: awareness client id -> (owning participant, last entry)
        self._clients: dict[int, tuple[str, AwarenessEntry]] = {}
        # What an applied update changed, as the document reports it: only a transaction
        # that added or deleted something is reported (the state vector alone misses an
        # update that only deletes, and an erased item must reach everyone), and what is
        # reported includes anything that had waited for this update to integrate.
        self._changes: list[bytes] = []
        self._subscription = self.doc.observe(self._on_change)

    def _on_change(self, event: Any) -> None:
        self._changes.append(bytes(event.update))

    # -- the protocol ----------------------------------------------------------------

    def hello(self) -> bytes:
        """The server's step 1, sent to a participant when it opens the board."""
        return protocol.sync_message(protocol.STEP1, self.doc.get_state())

    def receive(self, who: str, role: str, data: bytes, now_ms: float) -> Out:
        """One frame from ``who``. Raises a ClassroomError (with its protocol code) for a
        malformed frame, an oversized update or a refused write; the board is unchanged."""
        frame = protocol.parse(data)
        if frame.kind == "step1":
            try:
                missing = self.doc.get_update(frame.payload)
            except ValueError as exc:
                raise ProtocolError("a state vector that does not decode") from exc
            return Out(reply=[protocol.sync_message(protocol.STEP2, missing), self.hello()])
        if frame.kind in ("step2", "update"):
            if not self.may_write(role):
                if frame.kind == "step2":
                    return Out()  # every client answers our step 1: nothing to say
                reason = "the board is locked" if self.locked else "observers cannot draw"
                raise ReadOnly(reason)
            return self._apply(who, frame.payload, now_ms)
        if frame.kind == "awareness":
            return self._awareness(who, frame.payload)
        # query_awareness: everything we know
        entries = [entry for _, entry in self._clients.values()]
        return Out(reply=[protocol.awareness_message(protocol.encode_awareness(entries))])

    def may_write(self, role: str) -> bool:
        if role in READ_ONLY_ROLES:
            return False
        return not self.locked or role in MODERATORS

    def _apply(self, who: str, update: bytes, now_ms: float) -> Out:
        if len(update) > self.max_update_bytes:
            raise UpdateTooLarge(f"an update over {self.max_update_bytes} bytes")
        self._changes.clear()
        try:
            self.doc.apply_update(update)
        except ValueError as exc:
            raise ProtocolError("an update that does not decode") from exc
        if not self._changes:
            return Out()  # nothing new (a repeat, an empty step 2, or waiting on another)
        self.updates += 1
        w = self._writers.setdefault(who, _Writer())
        w.updates += 1
        w.bytes += len(update)
        if now_ms - w.last_event_ms >= EVENT_INTERVAL_MS:
            self._flush(who, w, now_ms)
        return Out(others=[protocol.sync_message(protocol.UPDATE, u) for u in self._changes])

    def _flush(self, who: str, w: _Writer, now_ms: float) -> None:
        if w.updates:
            self._emit("whiteboard.update", {"participant": who, "updates": w.updates,
                                             "bytes": w.bytes})
        w.updates = w.bytes = 0
        w.last_event_ms = now_ms

    def _awareness(self, who: str, payload: bytes) -> Out:
        entries = protocol.parse_awareness(payload)
        mine = sum(1 for owner, _ in self._clients.values() if owner == who)
        kept = []
        for e in entries:
            owner = self._clients.get(e.client_id)
            if owner is not None and owner[0] != who:
                continue  # someone else's cursor: not theirs to move
            if owner is None:
                if mine >= MAX_CLIENTS_PER_PARTICIPANT:
                    continue
                mine += 1
            if e.state == "null":
                self._clients.pop(e.client_id, None)
            else:
                self._clients[e.client_id] = (who, e)
            kept.append(e)
        if not kept:
            return Out()
        return Out(others=[protocol.awareness_message(protocol.encode_awareness(kept))])

    # -- instructor actions and presence ---------------------------------------------

    def clear(self, who: str, role: str) -> bytes:
        """Empty the board's shared types (``ROOTS``); returns the update frame for
        everyone."""
        require_moderator(role, "clear the whiteboard")
        before = self.doc.get_state()
        with self.doc.transaction():
            for name, kind in ROOTS.items():
                self.doc.get(name, type=kind).clear()
        self.updates += 1
        self._emit("whiteboard.cleared", {"participant": who})
        return protocol.sync_message(protocol.UPDATE, self.doc.get_update(before))

    def lock(self, who: str, role: str, locked: bool) -> None:
        require_moderator(role, "lock the whiteboard")
        if locked != self.locked:
            self.locked = locked
            self._emit("whiteboard.locked", {"participant": who, "locked": locked})

    def left(self, who: str, now_ms: float) -> list[bytes]:
        """``who`` left: its pending counts go out as an event, and its cursors are
        removed for everyone (the frames to send)."""
        w = self._writers.pop(who, None)
        if w is not None:
            self._flush(who, w, now_ms)
        gone = [AwarenessEntry(cid, entry.clock + 1, "null")
                for cid, (owner, entry) in self._clients.items() if owner == who]
        for e in gone:
            del self._clients[e.client_id]
        return [protocol.awareness_message(protocol.encode_awareness(gone))] if gone else []

    def merge(self, snapshot: bytes) -> list[bytes]:
        """Merge a whole document from elsewhere (another node's replica of this room's
        board): the update frames for the open sockets, empty if it brought nothing new."""
        self._changes.clear()
        try:
            self.doc.apply_update(snapshot)
        except ValueError as exc:
            raise ProtocolError("a document that does not decode") from exc
        if not self._changes:
            return []
        self.updates += 1
        return [protocol.sync_message(protocol.UPDATE, u) for u in self._changes]

    def snapshot(self) -> bytes:
        """The whole document as one update (what ``Board(snapshot=...)`` restores)."""
        return self.doc.get_update()
