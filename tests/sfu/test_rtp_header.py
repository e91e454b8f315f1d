from __future__ import annotations

import struct

import pytest

from sfu.rtp_header import (
    RtpHeaderError,
    build_id_map,
    extension_ids,
    find_extension,
    header_length,
    payload_bounds,
    rewrite_extension_ids,
    rtx_unwrap,
    rtx_wrap,
)


def packet(exts: bytes = b"", payload: bytes = b"PAYLOAD", pt: int = 96, pad: int = 0) -> bytes:
    first = 0x80 | (0x10 if exts else 0) | (0x20 if pad else 0)
    head = struct.pack("!BBHII", first, pt, 7, 1234, 0xDEADBEEF)
    if exts:
        exts += bytes((-len(exts)) % 4)
        head += struct.pack("!HH", 0xBEDE, len(exts) // 4) + exts
    tail = bytes(pad - 1) + bytes([pad]) if pad else b""
    return head + payload + tail


def test_header_length_and_payload_bounds() -> None:
    p = packet(bytes([0x10, 0xAA, 0xBB]), b"xyz", pad=4)
    start, end = payload_bounds(p)
    assert header_length(p) == 16 + 4
    assert p[start:end] == b"xyz"


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, b"\x40" + bytes(20),
                                  bytes([0x90]) + bytes(13),
                                  struct.pack("!BBHIIHH", 0x90, 96, 1, 1, 1, 0xBEDE, 50)])
def test_truncated_or_foreign_packets_raise(data: bytes) -> None:
    with pytest.raises(RtpHeaderError):
        header_length(data)


def test_rewrite_maps_ids_and_zeroes_dropped_elements_in_place() -> None:
    mid = bytes([(9 << 4) | 0]) + b"a"
    level = bytes([(7 << 4) | 0, 0x9E])
    p = bytearray(packet(mid + level))
    before = len(p)
    rewrite_extension_ids(p, build_id_map({7: 1}))
    assert len(p) == before
    assert extension_ids(p) == {1: b"\x9e"}
    assert find_extension(p, 1) == b"\x9e"
    assert find_extension(p, 9) is None
    assert p.endswith(b"PAYLOAD")


def test_rewrite_two_byte_profile() -> None:
    ext = bytes([5, 2, 0xAA, 0xBB, 6, 1, 0xCC, 0])
    head = struct.pack("!BBHII", 0x90, 96, 1, 1, 1) + struct.pack("!HH", 0x1000, 2) + ext
    p = bytearray(head + b"P")
    rewrite_extension_ids(p, build_id_map({6: 3}))
    assert extension_ids(p) == {3: b"\xcc"}


def test_rtx_wrap_and_unwrap_roundtrip() -> None:
    orig = packet(bytes([0x10, 0x01]), b"frame-data")
    rtx = rtx_wrap(orig, rtx_pt=97, rtx_seq=555, rtx_ssrc=0x1111)
    seq, ts, ssrc = struct.unpack_from("!HII", rtx, 2)
    assert (rtx[1] & 0x7F, seq, ssrc) == (97, 555, 0x1111)
    back = rtx_unwrap(rtx, media_pt=96, media_ssrc=0xDEADBEEF)
    assert back == orig


def test_rtx_padding_probe_unwraps_to_nothing() -> None:
    probe = packet(b"", b"", pad=200)
    assert rtx_unwrap(probe, 96, 1) is None


def test_rewrite_never_writes_past_the_extension_block() -> None:
    # one-byte element claiming 16 bytes inside a 4-byte block: the payload must survive
    head = struct.pack("!BBHII", 0x90, 96, 1, 1, 1) + struct.pack("!HH", 0xBEDE, 1)
    p = bytearray(head + bytes([(7 << 4) | 15, 1, 2, 3]) + b"PAYLOAD")
    rewrite_extension_ids(p, build_id_map({}))
    assert len(p) == len(head) + 4 + 7 and p.endswith(b"PAYLOAD")
    two = struct.pack("!BBHII", 0x90, 96, 1, 1, 1) + struct.pack("!HH", 0x1000, 1)
    q = bytearray(two + bytes([5, 200, 1, 2]) + b"PAYLOAD")
    rewrite_extension_ids(q, build_id_map({5: 6}))
    assert q.endswith(b"PAYLOAD") and len(q) == len(two) + 4 + 7


def test_rewrite_on_a_truncated_packet_does_not_raise() -> None:
    p = bytearray(struct.pack("!BBHII", 0x90, 96, 1, 1, 1))  # X bit, no extension
    rewrite_extension_ids(p, build_id_map({}))
    assert len(p) == 12


def test_extension_offsets_take_the_first_element_and_a_two_byte_transport_cc_only() -> None:
    from sfu.rtp_header import build_id_map, extension_offset, rewrite_extension_ids

    # one-byte profile: transport-cc (id 5, 2 bytes) twice, audio level (id 1) once
    ext = bytes([0x51, 0x00, 0x07, 0x51, 0x00, 0x08, 0x10, 0x85])
    header = bytes([0x90, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]) + bytes([0xBE, 0xDE, 0, 2])
    buf = bytearray(header + ext + b"payload")
    found = rewrite_extension_ids(buf, build_id_map({5: 3, 1: 1}), 3, 1)
    assert found & 0xFFFF == 17 and buf[17:19] == b"\x00\x07"  # the first one
    assert found >> 16 == 23 and buf[23] == 0x85
    # a 1-byte "transport-cc" element at the end of the block is not written into
    short = bytearray(header[:14] + bytes([0, 1]) + bytes([0x30, 0x05, 0, 0]) + b"x")
    assert rewrite_extension_ids(short, build_id_map({3: 3}), 3, 1) == 0
    assert extension_offset(bytes(short), 3, 2) == 0 and extension_offset(bytes(short), 3) == 17
