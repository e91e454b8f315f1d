"""The inter-node link's wire format and the edge's demand (benches/quic_link/wire.py,
the measured alternative to the relay): control messages survive any chunking, bad input
is refused with a sentence, media datagrams carry their slot, and an edge asks the
origin for a track's layer only when the highest layer its subscribers need changes."""

from __future__ import annotations

import random

import msgpack
import pytest

from benches.quic_link.wire import (
    MAX_CONTROL_BYTES,
    ControlReader,
    EdgeDemand,
    LinkError,
    Slots,
    datagram,
    encode,
    parse_datagram,
)

MESSAGES = [
    {"t": "hello", "node": "b1", "version": 1, "proof": "ab12"},
    {"t": "track", "slot": 3, "room": "maths", "track": "TR_1", "participant": "PA_1",
     "kind": "video", "layers": 3},
    {"t": "want", "slot": 3, "layer": 2},
    {"t": "nack", "slot": 3, "seqs": [1, 2, 65535]},
    {"t": "pli", "slot": 3},
    {"t": "track_gone", "slot": 3},
]


def test_control_messages_come_through_any_chunking() -> None:
    stream = b"".join(encode(m) for m in MESSAGES)
    rng = random.Random(7)
    for _ in range(50):
        reader, got, i = ControlReader(), [], 0
        while i < len(stream):
            n = rng.randint(1, 9)
            got.extend(reader.feed(stream[i:i + n]))
            i += n
        assert got == MESSAGES


@pytest.mark.parametrize("bad, why", [
    ({"t": "launch"}, "unknown control message type"),
    ({"t": "want", "slot": 3}, "field 'layer' missing"),
    ({"t": "want", "slot": "3", "layer": 1}, "field 'slot' missing or not a int"),
    ({"t": "want", "slot": True, "layer": 1}, "field 'slot'"),
    ({"t": "pli", "slot": 70000}, "slot out of range"),
    ({"t": "nack", "slot": 1, "seqs": [1, -2]}, "16-bit"),
    (["t", "pli"], "must be a map"),
])
def test_malformed_control_messages_are_refused(bad: object, why: str) -> None:
    body = msgpack.packb(bad)
    with pytest.raises(LinkError, match=why):
        list(ControlReader().feed(len(body).to_bytes(4, "big") + body))


def test_garbage_and_oversized_control_frames_are_refused() -> None:
    with pytest.raises(LinkError, match="not msgpack"):
        list(ControlReader().feed(b"\x00\x00\x00\x02\xc1\xc1"))
    with pytest.raises(LinkError, match="limit"):
        list(ControlReader().feed((MAX_CONTROL_BYTES + 1).to_bytes(4, "big")))


def test_datagrams_carry_the_slot_and_only_rtp() -> None:
    rtp = bytes([0x80, 96]) + bytes(10) + b"payload"
    assert parse_datagram(datagram(513, rtp)) == (513, rtp)
    for bad in (b"", b"\x00\x01", datagram(1, b"\x00" * 20), datagram(1, rtp[:11])):
        with pytest.raises(LinkError):
            parse_datagram(bad)


def test_slots_are_reused_only_once_free() -> None:
    slots = Slots()
    a, b = slots.add("TR_a"), slots.add("TR_b")
    assert (a, b) == (0, 1) and slots.add("TR_a") == 0
    assert slots.remove("TR_a") == 0 and slots.remove("TR_a") is None
    assert slots.add("TR_c") == 2  # numbering goes on; a freed slot waits its turn
    assert slots.tracks == {1: "TR_b", 2: "TR_c"}


def test_the_edge_pulls_the_highest_layer_needed_and_nothing_nobody_watches() -> None:
    edge = EdgeDemand()
    edge.track(5)
    assert edge.need(5, "PA_1", 0) == {"t": "want", "slot": 5, "layer": 0}
    assert edge.need(5, "PA_2", 0) is None  # already pulled
    assert edge.need(5, "PA_3", 2) == {"t": "want", "slot": 5, "layer": 2}
    assert edge.need(5, "PA_2", 1) is None
    assert edge.need(5, "PA_3", -1) == {"t": "want", "slot": 5, "layer": 1}
    assert edge.need(5, "PA_2", -1) == {"t": "want", "slot": 5, "layer": 0}
    assert edge.need(5, "PA_1", -1) == {"t": "want", "slot": 5, "layer": -1}
    assert edge.need(9, "PA_1", 2) is None  # a track the origin never announced
    edge.gone(5)
    assert edge.need(5, "PA_1", 1) is None
