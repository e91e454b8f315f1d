"""Keyframe detection on RTP payloads: hand-built descriptors, real encoder output, fuzz.

VP8 payload descriptor (RFC 7741 section 4.2), one byte per row, ``[x]`` = optional::

    |X|R|N|S|R| PID |      0x10 = S (start of partition), PID in the low 3 bits
    [I|L|T|K| RSV  ]       present when X (0x80) is set
    [M| PictureID  ]       present when I; M (0x80) = 15-bit PictureID, one more byte
    [  TL0PICIDX   ]       present when L
    [TID|Y| KEYIDX ]       present when T or K

then the VP8 bitstream: 3-byte frame tag (bit 0 = P, 0 for a keyframe), and for keyframes
the start code ``9d 01 2a`` followed by 16-bit little-endian width and height.
"""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.payload import (
    h264_keyframe,
    is_keyframe,
    keyframe_detector,
    vp8_frame_start,
    vp8_keyframe,
    vp8_resolution,
)
from sfu.rtp_header import payload_bounds

# A VP8 keyframe frame header for 640x360: frame tag (P=0, show_frame, first partition size),
# start code, width 0x0280, height 0x0168 (scaling bits 0), then some bitstream bytes.
KEY_640x360 = bytes.fromhex("b00e00" "9d012a" "8002" "6801") + b"\x00" * 6
# An interframe: frame tag with P=1.
INTER = bytes.fromhex("3102000c1184") + b"\x00" * 4

#: (name, descriptor bytes, descriptor length) for every optional-field combination
DESCRIPTORS = [
    ("minimal S=1", bytes([0x10]), 1),
    ("N=1 S=1", bytes([0x30]), 1),
    ("X, no ext fields", bytes([0x90, 0x00]), 2),
    ("I 7-bit PictureID", bytes([0x90, 0x80, 0x25]), 3),
    ("I 15-bit PictureID", bytes([0x90, 0x80, 0x81, 0x23]), 4),
    ("L TL0PICIDX", bytes([0x90, 0x40, 0x07]), 3),
    ("T TID/Y/KEYIDX", bytes([0x90, 0x20, 0x40]), 3),
    ("K KEYIDX only", bytes([0x90, 0x10, 0x05]), 3),
    ("I7 + L", bytes([0x90, 0xC0, 0x25, 0x07]), 4),
    ("I15 + L + T + K (Chrome's usual)", bytes([0x90, 0xF0, 0x80 | 0x12, 0x34, 0x07, 0x40]), 6),
    ("I15 + T", bytes([0x90, 0xA0, 0xFF, 0xFF, 0x80]), 5),
]


def rtp(payload: bytes, *, csrcs: int = 0, extension: bytes = b"", seq: int = 1) -> bytes:
    """A minimal RTP packet (pt 96) around ``payload``, optionally with CSRCs/extension."""
    first = 0x80 | csrcs | (0x10 if extension else 0)
    header = struct.pack("!BBHII", first, 96, seq, 1234, 0xCAFE) + b"\x00\x00\x00\x01" * csrcs
    if extension:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header + payload


@pytest.mark.parametrize(("name", "desc", "length"), DESCRIPTORS, ids=[d[0] for d in DESCRIPTORS])
def test_vp8_descriptor_variants_keyframe(name: str, desc: bytes, length: int) -> None:
    packet = rtp(desc + KEY_640x360)
    start, _ = payload_bounds(packet)
    assert vp8_frame_start(packet, start) == start + length
    assert vp8_keyframe(packet, start)
    assert vp8_resolution(packet, start) == (640, 360)
    assert is_keyframe("VP8", packet, start)


@pytest.mark.parametrize(("name", "desc", "length"), DESCRIPTORS, ids=[d[0] for d in DESCRIPTORS])
def test_vp8_descriptor_variants_interframe(name: str, desc: bytes, length: int) -> None:
    packet = rtp(desc + INTER)
    start, _ = payload_bounds(packet)
    assert vp8_frame_start(packet, start) == start + length
    assert not vp8_keyframe(packet, start)
    assert vp8_resolution(packet, start) is None


@pytest.mark.parametrize(("name", "desc", "length"), DESCRIPTORS, ids=[d[0] for d in DESCRIPTORS])
def test_vp8_continuation_packets_are_not_keyframes(name: str, desc: bytes, length: int) -> None:
    # S=0 (not the start of a partition): the bytes after the descriptor are mid-frame
    cont = bytes([desc[0] & ~0x10]) + desc[1:]
    packet = rtp(cont + KEY_640x360)
    assert not vp8_keyframe(packet, 12)
    # S=1 but PID=1: start of the second partition, not of the frame
    other = bytes([desc[0] | 0x01]) + desc[1:]
    assert not vp8_keyframe(rtp(other + KEY_640x360), 12)


def test_vp8_offset_after_csrcs_and_header_extension() -> None:
    packet = rtp(bytes([0x90, 0x80, 0x7F]) + KEY_640x360, csrcs=2, extension=b"\x10\x55\x00\x00")
    start, _ = payload_bounds(packet)
    assert start == 12 + 8 + 8
    assert vp8_keyframe(packet, start)
    assert not vp8_keyframe(packet, 12)  # wrong offset: CSRC bytes are no descriptor


def test_vp8_resolution_ignores_scaling_bits() -> None:
    frame = bytes.fromhex("b00e00" "9d012a") + struct.pack("<HH", 0xC000 | 1280, 0x4000 | 720)
    assert vp8_resolution(bytearray(rtp(b"\x10" + frame)), 12) == (1280, 720)


def test_vp8_keyframe_without_start_code_has_no_resolution() -> None:
    packet = rtp(b"\x10" + bytes.fromhex("b00e00" "000000" "80026801"))
    assert vp8_keyframe(packet, 12)  # the P bit decides, as the brief requires
    assert vp8_resolution(packet, 12) is None


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"", False),
        (b"\x10", False),  # descriptor only, no bitstream byte
        (b"\x90", False),  # X set, extension byte missing
        (b"\x90\x80", False),  # I set, PictureID missing
        (b"\x90\x80\x80", False),  # 15-bit PictureID cut after its first byte
        (b"\x90\x80\x80\x01", False),  # full descriptor, no bitstream
        (b"\x90\xf0\x01\x02", False),  # T/K byte missing
        (b"\x10\xb0\x0e", True),  # keyframe tag cut short: keyframe, no resolution
        (b"\x10" + KEY_640x360[:9], True),  # height cut in half
    ],
)
def test_vp8_truncated_inputs(payload: bytes, key: bool) -> None:
    packet = rtp(payload)
    assert vp8_keyframe(packet, 12) is key
    assert vp8_resolution(packet, 12) is None


def test_vp8_out_of_range_offsets() -> None:
    packet = rtp(b"\x10" + KEY_640x360)
    assert not vp8_keyframe(packet, len(packet))
    assert not vp8_keyframe(packet, -1)
    assert vp8_resolution(packet, 10_000) is None


# -- real encoder output -----------------------------------------------------------------


def encode(codec: str, width: int, height: int, frames: int, **options: str) -> list[bytes]:
    """Frames from a real encoder (libvpx / libx264 through PyAV), moving picture content."""
    enc = av.CodecContext.create(codec, "w")
    assert isinstance(enc, av.VideoCodecContext)
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.options = options
    out: list[bytes] = []
    for i in range(frames):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[:, : 8 + 16 * i] = 200
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def vp8_packetize(frame: bytes, picture_id: int, mtu: int = 120) -> list[bytes]:
    """RFC 7741 packetization with Chrome's descriptor: X, I (15-bit), L, T."""
    packets = []
    for n, i in enumerate(range(0, len(frame), mtu)):
        first = 0x80 | (0x10 if n == 0 else 0)
        desc = bytes([first, 0xE0, 0x80 | (picture_id >> 8), picture_id & 0xFF, 3, 0x20])
        packets.append(rtp(desc + frame[i : i + mtu], seq=picture_id * 100 + n))
    return packets


@pytest.mark.parametrize(("width", "height"), [(320, 180), (642, 362)])
def test_real_vp8_frames(width: int, height: int) -> None:
    frames = encode("libvpx", width, height, 4, deadline="realtime", **{"cpu-used": "8",
                    "lag-in-frames": "0", "auto-alt-ref": "0"})
    assert len(frames) == 4
    for pid, frame in enumerate(frames):
        packets = vp8_packetize(frame, 300 + pid)
        assert len(packets) >= 1
        first, rest = packets[0], packets[1:]
        if pid == 0:
            assert vp8_keyframe(first, 12)
            assert vp8_resolution(first, 12) == (width, height)
        else:
            assert not vp8_keyframe(first, 12)
            assert vp8_resolution(first, 12) is None
        assert not any(vp8_keyframe(p, 12) for p in rest)


def annexb_nals(stream: bytes) -> list[bytes]:
    """Split an Annex B byte stream on 00 00 01 / 00 00 00 01 start codes."""
    parts = stream.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return [p for p in parts if p]


def h264_packetize(nals: list[bytes], mtu: int = 100) -> list[bytes]:
    """RFC 6184 mode 1: small parameter sets aggregated in a STAP-A, big NALs as FU-A."""
    payloads: list[bytes] = []
    params = [n for n in nals if n[0] & 0x1F in (7, 8)]
    if params:
        payloads.append(bytes([0x18]) + b"".join(struct.pack("!H", len(n)) + n for n in params))
    for nal in nals:
        if nal[0] & 0x1F in (7, 8):
            continue
        if len(nal) <= mtu:
            payloads.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        for i in range(0, len(body), mtu):
            start = 0x80 if i == 0 else 0
            end = 0x40 if i + mtu >= len(body) else 0
            payloads.append(bytes([indicator, start | end | (nal[0] & 0x1F)]) + body[i : i + mtu])
    return [rtp(p) for p in payloads]


def test_real_h264_frames() -> None:
    frames = encode("libx264", 320, 180, 4, preset="ultrafast", tune="zerolatency")
    assert len(frames) == 4
    for index, frame in enumerate(frames):
        nals = annexb_nals(frame)
        types = [n[0] & 0x1F for n in nals]
        packets = h264_packetize(nals)
        flags = [h264_keyframe(p, 12) for p in packets]
        if index == 0:
            assert 5 in types and 7 in types
            assert flags[0]  # the STAP-A with SPS/PPS starts the keyframe
            assert is_keyframe("H264", packets[0], 12)
        else:
            assert 5 not in types
            assert not any(flags)


def test_h264_packetization_variants() -> None:
    idr, slice_, sps, pps, sei = b"\x65\x88", b"\x41\x9a", b"\x67\x42", b"\x68\xce", b"\x06\x05"
    stap = bytes([0x18]) + b"".join(struct.pack("!H", len(n)) + n for n in (sei, pps, idr))
    cases = {
        idr: True,
        sps: True,
        pps: False,
        slice_: False,
        sei: False,
        stap: True,  # IDR is the third aggregated unit
        bytes([0x18]) + struct.pack("!H", 2) + sei + struct.pack("!H", 2) + pps: False,
        bytes([0x7C, 0x85, 0x88]): True,  # FU-A start of IDR
        bytes([0x7C, 0x05, 0x88]): False,  # FU-A continuation of IDR
        bytes([0x5C, 0x81, 0x9A]): False,  # FU-A start of non-IDR slice
        bytes([0x18, 0x00, 0x00, 0x67]): False,  # zero-size aggregation unit
        bytes([0x18, 0x00, 0x09, 0x41, 0x00]): False,  # truncated STAP-A
        bytes([0x7C]): False,  # FU-A without FU header
        b"": False,
    }
    for payload, expected in cases.items():
        assert h264_keyframe(rtp(payload), 12) is expected, payload.hex()


def test_dispatch_by_codec_name() -> None:
    vp8 = rtp(b"\x10" + KEY_640x360)
    h264 = rtp(b"\x65\x88")
    assert is_keyframe("VP8", vp8, 12) and is_keyframe("vp8", vp8, 12)
    assert is_keyframe("H264", h264, 12) and is_keyframe("h264", h264, 12)
    assert not is_keyframe("VP8", h264, 12)
    assert not is_keyframe("opus", vp8, 12)
    assert not is_keyframe("VP9", vp8, 12)
    assert keyframe_detector("vp8") is vp8_keyframe
    assert keyframe_detector("H264") is h264_keyframe
    assert keyframe_detector("AV1") is None


@settings(max_examples=500)
@given(st.binary(max_size=64), st.integers(min_value=-4, max_value=80))
def test_garbage_never_raises(data: bytes, offset: int) -> None:
    for fn in (vp8_keyframe, h264_keyframe):
        assert isinstance(fn(data, offset), bool)
        assert isinstance(fn(bytearray(data), offset), bool)
    res = vp8_resolution(data, offset)
    assert res is None or (0 <= res[0] < 1 << 14 and 0 <= res[1] < 1 << 14)
    assert isinstance(is_keyframe("VP8", data, offset), bool)
    assert isinstance(is_keyframe("H264", data, offset), bool)
    assert vp8_frame_start(data, offset) < len(data)


@given(st.binary(min_size=1, max_size=32), st.integers(min_value=0, max_value=3))
def test_garbage_after_valid_descriptor_never_raises(tail: bytes, variant: int) -> None:
    desc = DESCRIPTORS[variant * 3 % len(DESCRIPTORS)][1]
    packet = rtp(desc + tail)
    key = vp8_keyframe(packet, 12)
    assert key is (not tail[0] & 1)
    if not key:
        assert vp8_resolution(packet, 12) is None
