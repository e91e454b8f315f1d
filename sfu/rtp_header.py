"""RTP header helpers for the forwarding path: read and rewrite in place, never parse fully.

RFC 3550 fixed header (12 bytes) + CSRCs + optional header extension (RFC 8285 one-byte
``0xBEDE`` or two-byte ``0x100X`` profile). Functions here work on ``bytes``/``bytearray``
with ``struct`` and never build packet objects.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

HEADER = struct.Struct("!BBHII")  # v/p/x/cc, m/pt, seq, ts, ssrc
_SEQ_TS_SSRC = struct.Struct("!HII").unpack_from
SEQ_TS_SSRC = struct.Struct("!HII")
MIN_HEADER_LEN = 12
ONE_BYTE_PROFILE = 0xBEDE


class RtpHeaderError(ValueError):
    """A packet too short or inconsistent to be RTP."""


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing: RTCP packet types 192..223 share the second byte range."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def header_length(data: bytes | bytearray) -> int:
    """Length of fixed header + CSRCs + extension block; raises RtpHeaderError if truncated."""
    n = len(data)
    if n < MIN_HEADER_LEN or data[0] >> 6 != 2:
        raise RtpHeaderError("not an RTP packet")
    length = MIN_HEADER_LEN + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if n < length + 4:
            raise RtpHeaderError("truncated header extension")
        length += 4 + 4 * ((data[length + 2] << 8) | data[length + 3])
    if length > n:
        raise RtpHeaderError("truncated RTP header")
    return length


def seq_ts_ssrc(data: bytes) -> tuple[int, int, int] | None:
    """(sequence number, timestamp, SSRC) of an RTP packet whose header is whole; None for
    a malformed one (what a receiving side routes by)."""
    try:
        header_length(data)
    except RtpHeaderError:
        return None
    fields: tuple[int, int, int] = _SEQ_TS_SSRC(data, 2)
    return fields


def payload_bounds(data: bytes | bytearray) -> tuple[int, int]:
    """(start, end) of the payload, excluding padding."""
    start = header_length(data)
    end = len(data)
    if data[0] & 0x20:
        pad = data[-1]
        if pad == 0 or start + pad > end:
            raise RtpHeaderError("bad padding")
        end -= pad
    return start, end


def _elements(data: bytes | bytearray) -> Iterator[tuple[int, int, int]]:
    """(id, value offset, value length) of each header extension element (slow paths)."""
    if not data[0] & 0x10:
        return
    start = MIN_HEADER_LEN + 4 * (data[0] & 0x0F)
    if len(data) < start + 4:
        return
    profile = (data[start] << 8) | data[start + 1]
    end = min(len(data), start + 4 + 4 * ((data[start + 2] << 8) | data[start + 3]))
    i = start + 4
    two_byte = profile >> 4 == 0x100
    if profile != ONE_BYTE_PROFILE and not two_byte:
        return
    while i < end:
        b = data[i]
        if b == 0:
            i += 1
            continue
        if two_byte:
            if i + 1 >= end:
                return
            ext_id, length, value = b, data[i + 1], i + 2
        else:
            ext_id, length, value = b >> 4, (b & 0x0F) + 1, i + 1
            if ext_id == 15:
                return
        if value + length > end:
            return
        yield ext_id, value, length
        i = value + length


def extension_ids(data: bytes | bytearray) -> dict[int, bytes]:
    """All header extension elements as {id: value}; for tests and slow paths only."""
    return {ext_id: bytes(data[o : o + n]) for ext_id, o, n in _elements(data)}


def find_extension(data: bytes | bytearray, wanted_id: int) -> bytes | None:
    """Value of one extension element, or None. Cheap enough to call once per packet."""
    offset, length = _locate(data, wanted_id)
    return bytes(data[offset : offset + length]) if offset else None


def rewrite_extension_ids(
    buf: bytearray, id_map: bytes, a_id: int = 0, b_id: int = 0
) -> int:
    """Rewrite header extension ids in place through ``id_map`` (256 bytes: old id -> new id).

    Elements whose new id is 0 are overwritten with zero bytes, which RFC 8285 receivers
    skip as padding, so the packet length never changes and no allocation is needed.

    Returns where the values of the elements now numbered ``a_id`` (only a 2-byte element:
    transport-cc) and ``b_id`` start, as ``a_offset | b_offset << 16`` (0 where absent; the
    first element of each if repeated): the forwarding path reads the audio level and writes
    its own transport-wide sequence number there without searching again.
    """
    if not buf[0] & 0x10:
        return 0
    start = MIN_HEADER_LEN + 4 * (buf[0] & 0x0F)
    if len(buf) < start + 4:
        return 0  # callers validate with header_length first; never index past the end
    profile = (buf[start] << 8) | buf[start + 1]
    end = min(len(buf), start + 4 + 4 * ((buf[start + 2] << 8) | buf[start + 3]))
    i = start + 4
    found = 0
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = buf[i]
            if b == 0:
                i += 1
                continue
            ext_id, length = b >> 4, (b & 0x0F) + 1
            if ext_id == 15:
                return found
            if i + 1 + length > end:  # element runs past the block: blank the rest
                buf[i:end] = bytes(end - i)
                return found
            new_id = id_map[ext_id]
            if new_id == 0:
                buf[i : i + 1 + length] = bytes(1 + length)
            else:
                if new_id != ext_id:
                    buf[i] = (new_id << 4) | (b & 0x0F)
                if new_id == a_id:
                    if length == 2 and not found & 0xFFFF:
                        found |= i + 1
                elif new_id == b_id and not found >> 16:
                    found |= (i + 1) << 16
            i += 1 + length
    elif profile >> 4 == 0x100:
        while i + 1 < end:
            ext_id = buf[i]
            if ext_id == 0:
                i += 1
                continue
            length = buf[i + 1]
            if i + 2 + length > end:
                buf[i:end] = bytes(end - i)
                return found
            new_id = id_map[ext_id]
            if new_id == 0:
                buf[i : i + 2 + length] = bytes(2 + length)
            else:
                buf[i] = new_id
                if new_id == a_id:
                    if length == 2 and not found & 0xFFFF:
                        found |= i + 2
                elif new_id == b_id and length and not found >> 16:
                    found |= (i + 2) << 16
            i += 2 + length
    return found


def extension_offset(data: bytes | bytearray, wanted_id: int, length: int = 0) -> int:
    """Where the value of extension element ``wanted_id`` starts (only if its value is
    ``length`` bytes long, when given), or 0."""
    offset, found = _locate(data, wanted_id)
    return offset if not length or found == length else 0


def _locate(data: bytes | bytearray, wanted_id: int) -> tuple[int, int]:
    """(value offset, value length) of extension element ``wanted_id``; (0, 0) if absent."""
    if wanted_id > 0:
        for ext_id, offset, length in _elements(data):
            if ext_id == wanted_id:
                return offset, length
    return 0, 0


def build_id_map(pairs: dict[int, int]) -> bytes:
    """A 256-byte id map for :func:`rewrite_extension_ids`; unlisted ids map to 0 (dropped)."""
    table = bytearray(256)
    for old, new in pairs.items():
        table[old] = new
    return bytes(table)


def rtx_wrap(packet: bytes | bytearray, rtx_pt: int, rtx_seq: int, rtx_ssrc: int) -> bytes:
    """RFC 4588 retransmission packet: original header with RTX pt/seq/ssrc, OSN + payload."""
    hlen = header_length(packet)
    out = bytearray(len(packet) + 2)
    out[:hlen] = packet[:hlen]
    out[1] = (packet[1] & 0x80) | rtx_pt
    osn = packet[2:4]
    struct.pack_into("!H", out, 2, rtx_seq)
    struct.pack_into("!I", out, 8, rtx_ssrc)
    out[hlen : hlen + 2] = osn
    out[hlen + 2 :] = packet[hlen:]
    return bytes(out)


def rtx_unwrap(packet: bytes, media_pt: int, media_ssrc: int) -> bytes | None:
    """Original packet from an RFC 4588 RTX packet; None for padding-only probes."""
    start, end = payload_bounds(packet)
    if end - start < 2:
        return None
    hlen = start
    out = bytearray(packet[:hlen])
    out[0] &= 0xDF  # padding is dropped with the OSN shift below
    out[1] = (packet[1] & 0x80) | media_pt
    out[2:4] = packet[start : start + 2]
    struct.pack_into("!I", out, 8, media_ssrc)
    out += packet[start + 2 : end]
    return bytes(out)
