"""The Yjs wire protocol (y-protocols, as y-websocket speaks it), parsed strictly, sans-IO.

One binary WebSocket message is one frame::

    [0, 0] + bytes(state vector)   sync step 1
    [0, 1] + bytes(update)         sync step 2 (the answer to a step 1)
    [0, 2] + bytes(update)         an incremental update
    [1] + bytes(awareness update)  awareness (cursors, who is drawing)
    [3]                            query awareness (y-websocket)
    [2, 0] + string(reason)        permission denied (server to client)

``bytes(x)`` is ``varUint(len(x)) + x`` (LEB128). Anything else, a truncated frame, a length
that does not match, or trailing bytes is a :class:`ProtocolError`: unlike pycrdt's own
decoder, nothing here indexes past the end of a malformed frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from classroom.errors import ClassroomError

SYNC, AWARENESS, AUTH, QUERY_AWARENESS = 0, 1, 2, 3
STEP1, STEP2, UPDATE = 0, 1, 2
#: a varUint longer than this many bytes is refused (2^35: far past any frame we take)
MAX_VARUINT_BYTES = 5
#: one client's awareness state (JSON) at most
MAX_AWARENESS_STATE = 4096


class ProtocolError(ClassroomError):
    code = "bad_whiteboard_message"


@dataclass(frozen=True)
class Frame:
    kind: str  # "step1", "step2", "update", "awareness", "query_awareness"
    payload: bytes


def var_uint(n: int) -> bytes:
    out = bytearray()
    while n > 127:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_var_uint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    for k in range(MAX_VARUINT_BYTES):
        if i + k >= len(data):
            raise ProtocolError("truncated number")
        b = data[i + k]
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i + k + 1
    raise ProtocolError("number too long")


def _read_bytes(data: bytes, i: int) -> tuple[bytes, int]:
    length, i = _read_var_uint(data, i)
    if i + length > len(data):
        raise ProtocolError("truncated payload")
    return data[i:i + length], i + length


def _exactly_one(data: bytes, i: int) -> bytes:
    payload, end = _read_bytes(data, i)
    if end != len(data):
        raise ProtocolError("trailing bytes after the payload")
    return payload


def parse(data: bytes) -> Frame:
    if not data:
        raise ProtocolError("empty frame")
    kind = data[0]
    if kind == SYNC:
        if len(data) < 2 or data[1] not in (STEP1, STEP2, UPDATE):
            raise ProtocolError("unknown sync message")
        name = ("step1", "step2", "update")[data[1]]
        return Frame(name, _exactly_one(data, 2))
    if kind == AWARENESS:
        return Frame("awareness", _exactly_one(data, 1))
    if kind == QUERY_AWARENESS and len(data) == 1:
        return Frame("query_awareness", b"")
    raise ProtocolError(f"unknown message type {kind}")


def sync_message(step: int, payload: bytes) -> bytes:
    return bytes([SYNC, step]) + var_uint(len(payload)) + payload


def awareness_message(payload: bytes) -> bytes:
    return bytes([AWARENESS]) + var_uint(len(payload)) + payload


def permission_denied(reason: str) -> bytes:
    text = reason.encode()
    return bytes([AUTH, 0]) + var_uint(len(text)) + text


@dataclass(frozen=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str  # JSON text, "null" when the client went away


def parse_awareness(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; each state must be JSON (an object or null)."""
    count, i = _read_var_uint(payload, 0)
    entries = []
    for _ in range(count):
        client_id, i = _read_var_uint(payload, i)
        clock, i = _read_var_uint(payload, i)
        raw, i = _read_bytes(payload, i)
        if len(raw) > MAX_AWARENESS_STATE:
            raise ProtocolError(f"an awareness state over {MAX_AWARENESS_STATE} bytes")
        try:
            text = raw.decode("utf-8")
            state = json.loads(text)
        except ValueError as exc:
            raise ProtocolError("an awareness state that is not JSON") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("an awareness state must be an object or null")
        entries.append(AwarenessEntry(client_id, clock, text))
    if i != len(payload):
        raise ProtocolError("trailing bytes after the awareness entries")
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray(var_uint(len(entries)))
    for e in entries:
        text = e.state.encode()
        out += var_uint(e.client_id) + var_uint(e.clock) + var_uint(len(text)) + text
    return bytes(out)
