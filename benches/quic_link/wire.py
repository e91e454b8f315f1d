"""The proposed inter-node link's wire format and the edge's demand, sans-IO (measured, not
used: benches/quic_link/__init__.py): bytes and a clock in, messages and decisions out; the
QUIC adapter (aioquic) carries them.

One link per node pair. On it:

- **Control messages** on one QUIC stream, each a 4-byte big-endian length and a msgpack
  map with its type in ``t`` (:func:`encode` / :class:`ControlReader`): what tracks a room
  has (``track``, ``track_gone``), what the edge wants of them (``want``: a layer, or -1
  for nothing), and the feedback that ends at each hop (``nack``, ``pli``).
- **Media as QUIC datagrams**: a 2-byte slot (the track's number on this link, given by
  the sending side in its ``track`` message) and the RTP packet as the origin forwards it
  (:func:`datagram` / :func:`parse_datagram`). No RTCP crosses a hop: each node makes its
  own reports; NACKs and keyframe requests go as control messages to the previous hop,
  which answers from its own cache or asks its own publisher.

Malformed input raises :class:`LinkError` with a sentence; a link that sends it is closed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

VERSION = 1
#: the largest control message accepted (a room's track list fits many times over)
MAX_CONTROL_BYTES = 1 << 20
#: slots per link and direction (a node pair's tracks at once)
MAX_SLOTS = 0xFFFF
_LEN = struct.Struct(">I")
_SLOT = struct.Struct(">H")

#: control message types and the fields each must carry (with their types)
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {"node": str, "version": int, "proof": str},
    "track": {"slot": int, "room": str, "track": str, "participant": str, "kind": str,
              "layers": int},
    "track_gone": {"slot": int},
    "want": {"slot": int, "layer": int},
    "nack": {"slot": int, "seqs": list},
    "pli": {"slot": int},
}


class LinkError(Exception):
    """Input that breaks the link's protocol; the link is closed."""


def encode(message: dict[str, Any]) -> bytes:
    """A control message, framed."""
    check(message)
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def check(message: Any) -> dict[str, Any]:
    """The message if it is well formed (LinkError otherwise)."""
    if not isinstance(message, dict):
        raise LinkError("a control message must be a map")
    kind = message.get("t")
    fields = FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise LinkError(f"unknown control message type {str(kind)[:40]!r}")
    for name, want in fields.items():
        value = message.get(name)
        if not isinstance(value, want) or isinstance(value, bool) and want is int:
            raise LinkError(f"{kind}: field {name!r} missing or not a {_name(want)}")
    if "slot" in fields and not 0 <= message["slot"] < MAX_SLOTS:
        raise LinkError(f"{kind}: slot out of range")
    if kind == "nack" and not all(isinstance(s, int) and 0 <= s <= 0xFFFF
                                  for s in message["seqs"]):
        raise LinkError("nack: seqs must be 16-bit sequence numbers")
    return message


def _name(want: type | tuple[type, ...]) -> str:
    return want.__name__ if isinstance(want, type) else "/".join(w.__name__ for w in want)


class ControlReader:
    """Reassembles control messages from a stream's bytes, whatever their chunking."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        self._buf += data
        while len(self._buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buf)
            if size > MAX_CONTROL_BYTES:
                raise LinkError(f"a control message of {size} bytes (limit "
                                f"{MAX_CONTROL_BYTES})")
            if len(self._buf) < _LEN.size + size:
                return
            body = bytes(self._buf[_LEN.size:_LEN.size + size])
            del self._buf[:_LEN.size + size]
            try:
                message = msgpack.unpackb(body, raw=False, strict_map_key=True)
            except (ValueError, msgpack.UnpackException) as exc:
                raise LinkError(f"a control message that is not msgpack: {exc}") from None
            yield check(message)


def datagram(slot: int, packet: bytes) -> bytes:
    return _SLOT.pack(slot) + packet


def parse_datagram(data: bytes) -> tuple[int, bytes]:
    """(slot, RTP packet); LinkError for what cannot be one."""
    if len(data) < _SLOT.size + 12 or data[_SLOT.size] >> 6 != 2:
        raise LinkError("a datagram that does not hold an RTP packet")
    return _SLOT.unpack_from(data)[0], data[_SLOT.size:]


class Slots:
    """The sending side's numbering of its tracks on one link."""

    def __init__(self) -> None:
        self.by_track: dict[str, int] = {}
        self.tracks: dict[int, str] = {}
        self._next = 0

    def add(self, track: str) -> int:
        if track in self.by_track:
            return self.by_track[track]
        if len(self.tracks) >= MAX_SLOTS:
            raise LinkError("no slot left on this link")
        while self._next in self.tracks:
            self._next = (self._next + 1) % MAX_SLOTS
        slot = self._next
        self._next = (slot + 1) % MAX_SLOTS
        self.by_track[track] = slot
        self.tracks[slot] = track
        return slot

    def remove(self, track: str) -> int | None:
        slot = self.by_track.pop(track, None)
        if slot is not None:
            del self.tracks[slot]
        return slot


@dataclass
class Demand:
    """What an edge wants of one relayed track: the highest layer any of its local
    subscribers needs (-1: nobody; the origin stops sending it)."""

    slot: int
    #: local subscription -> the layer it needs
    needs: dict[str, int] = field(default_factory=dict)
    #: what the origin was last asked for
    asked: int = -1

    @property
    def layer(self) -> int:
        return max(self.needs.values(), default=-1)


class EdgeDemand:
    """The edge's side of pulling: local subscribers' needs in, ``want`` messages out,
    only when the layer to pull changes (pull nothing nobody here watches)."""

    def __init__(self) -> None:
        self.tracks: dict[int, Demand] = {}

    def track(self, slot: int) -> None:
        self.tracks.setdefault(slot, Demand(slot))

    def gone(self, slot: int) -> None:
        self.tracks.pop(slot, None)

    def need(self, slot: int, subscriber: str, layer: int) -> dict[str, Any] | None:
        """A local subscriber needs ``layer`` of the track (-1: no longer): the ``want``
        message to send, or None if what is pulled does not change."""
        demand = self.tracks.get(slot)
        if demand is None:
            return None
        if layer < 0:
            demand.needs.pop(subscriber, None)
        else:
            demand.needs[subscriber] = layer
        if demand.layer == demand.asked:
            return None
        demand.asked = demand.layer
        return {"t": "want", "slot": slot, "layer": demand.asked}
