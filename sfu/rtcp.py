"""RTCP: walk compound packets and build the messages an SFU sends (RFC 3550, 4585, 5104).

Parsing returns small tuples, never full objects; malformed input raises RtcpError, which the
transport adapter counts and drops.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SR, RR, SDES, BYE, APP, RTPFB, PSFB = 200, 201, 202, 203, 204, 205, 206
FMT_NACK, FMT_TWCC = 1, 15
FMT_PLI, FMT_FIR, FMT_AFB = 1, 4, 15
NTP_EPOCH_OFFSET = 2208988800


class RtcpError(ValueError):
    """Malformed RTCP."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class RtcpMessage:
    """One RTCP packet of a compound: kind + fields relevant to the SFU."""

    pt: int
    fmt: int
    sender_ssrc: int
    media_ssrc: int = 0
    #: SR: (ntp 64-bit, rtp_ts, packets, octets)
    sender_info: tuple[int, int, int, int] | None = None
    reports: tuple[ReportBlock, ...] = ()
    #: NACK: lost sequence numbers; FIR: requested ssrcs
    items: tuple[int, ...] = ()
    #: REMB: bitrate in bit/s
    bitrate_bps: int = 0
    #: TWCC: raw feedback payload (FCI), parsed by the estimator later
    fci: bytes = b""


def iter_packets(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (pt, count/fmt, whole packet bytes) for each packet of a compound."""
    pos, n = 0, len(data)
    if n < 4:
        raise RtcpError("RTCP packet shorter than its header")
    while pos < n:
        if n - pos < 4:
            raise RtcpError("trailing bytes after RTCP packet")
        first = data[pos]
        if first >> 6 != 2:
            raise RtcpError("bad RTCP version")
        length = 4 * (((data[pos + 2] << 8) | data[pos + 3]) + 1)
        if pos + length > n:
            raise RtcpError("RTCP length exceeds datagram")
        yield data[pos + 1], first & 0x1F, data[pos : pos + length]
        pos += length


def _report_blocks(pkt: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        o = offset + 24 * i
        if o + 24 > len(pkt):
            raise RtcpError("truncated report block")
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", pkt, o)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def parse(data: bytes) -> list[RtcpMessage]:
    out: list[RtcpMessage] = []
    for pt, fmt, pkt in iter_packets(data):
        if len(pkt) < 8:
            if pt in (SR, RR, RTPFB, PSFB):
                raise RtcpError("RTCP packet too short")
            continue
        sender = struct.unpack_from("!I", pkt, 4)[0]
        if pt == SR:
            if len(pkt) < 28:
                raise RtcpError("truncated sender report")
            ntp_hi, ntp_lo, rtp_ts, packets, octets = struct.unpack_from("!IIIII", pkt, 8)
            out.append(
                RtcpMessage(
                    SR, fmt, sender,
                    sender_info=((ntp_hi << 32) | ntp_lo, rtp_ts, packets, octets),
                    reports=_report_blocks(pkt, 28, fmt),
                )
            )
        elif pt == RR:
            out.append(RtcpMessage(RR, fmt, sender, reports=_report_blocks(pkt, 8, fmt)))
        elif pt in (RTPFB, PSFB):
            if len(pkt) < 12:
                raise RtcpError("truncated feedback message")
            media = struct.unpack_from("!I", pkt, 8)[0]
            fci = pkt[12:]
            if pt == RTPFB and fmt == FMT_NACK:
                lost: list[int] = []
                for o in range(0, len(fci) - 3, 4):
                    pid, blp = struct.unpack_from("!HH", fci, o)
                    lost.append(pid)
                    for bit in range(16):
                        if blp & (1 << bit):
                            lost.append((pid + bit + 1) & 0xFFFF)
                out.append(RtcpMessage(pt, fmt, sender, media, items=tuple(lost)))
            elif pt == PSFB and fmt == FMT_FIR:
                ssrcs = tuple(
                    struct.unpack_from("!I", fci, o)[0] for o in range(0, len(fci) - 7, 8)
                )
                out.append(RtcpMessage(pt, fmt, sender, media, items=ssrcs))
            elif pt == PSFB and fmt == FMT_AFB and fci[:4] == b"REMB":
                if len(fci) < 8:
                    raise RtcpError("truncated REMB")
                num, b1, b2, b3 = fci[4], fci[5], fci[6], fci[7]
                exp, mantissa = b1 >> 2, ((b1 & 3) << 16) | (b2 << 8) | b3
                ssrcs = tuple(
                    struct.unpack_from("!I", fci, 8 + 4 * i)[0]
                    for i in range(num)
                    if 12 + 4 * i <= len(fci)
                )
                out.append(
                    RtcpMessage(pt, fmt, sender, media, items=ssrcs, bitrate_bps=mantissa << exp)
                )
            else:
                out.append(RtcpMessage(pt, fmt, sender, media, fci=bytes(fci)))
        elif pt == BYE:
            out.append(RtcpMessage(BYE, fmt, sender))
        # SDES, APP, XR: ignored
    return out


# --- builders -------------------------------------------------------------------------


def _header(pt: int, count: int, total_len: int) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, total_len // 4 - 1)


def ntp_from_unix(unix_s: float) -> int:
    secs = int(unix_s)
    frac = int((unix_s - secs) * (1 << 32))
    return ((secs + NTP_EPOCH_OFFSET) << 32) | frac


def build_sr(
    ssrc: int,
    ntp: int,
    rtp_ts: int,
    packets: int,
    octets: int,
    blocks: Iterable[ReportBlock] = (),
) -> bytes:
    body = struct.pack(
        "!IIIIII", ssrc, ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts, packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )
    blist = list(blocks)
    body += b"".join(_pack_block(b) for b in blist)
    return _header(SR, len(blist), 4 + len(body)) + body


def _pack_block(b: ReportBlock) -> bytes:
    cumulative = b.cumulative_lost & 0xFFFFFF
    return struct.pack(
        "!IIIIII", b.ssrc, (b.fraction_lost << 24) | cumulative, b.highest_seq & 0xFFFFFFFF,
        b.jitter, b.lsr, b.dlsr,
    )


def build_rr(ssrc: int, blocks: Iterable[ReportBlock]) -> bytes:
    blist = list(blocks)
    body = struct.pack("!I", ssrc) + b"".join(_pack_block(b) for b in blist)
    return _header(RR, len(blist), 4 + len(body)) + body


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(PSFB, FMT_PLI, 12) + struct.pack("!II", sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    return _header(PSFB, FMT_FIR, 20) + struct.pack(
        "!IIIB3x", sender_ssrc, 0, media_ssrc, seq_nr & 0xFF
    )


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    seqs = sorted({s & 0xFFFF for s in lost})
    fci = bytearray()
    i = 0
    while i < len(seqs):
        pid, blp = seqs[i], 0
        i += 1
        while i < len(seqs) and 0 < ((seqs[i] - pid) & 0xFFFF) <= 16:
            blp |= 1 << (((seqs[i] - pid) & 0xFFFF) - 1)
            i += 1
        fci += struct.pack("!HH", pid, blp)
    body = struct.pack("!II", sender_ssrc, media_ssrc) + bytes(fci)
    return _header(RTPFB, FMT_NACK, 4 + len(body)) + body


def build_remb(sender_ssrc: int, bitrate_bps: int, ssrcs: Iterable[int]) -> bytes:
    slist = list(ssrcs)
    exp = 0
    mantissa = int(bitrate_bps)
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exp += 1
    fci = b"REMB" + bytes([len(slist), (exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF,
                           mantissa & 0xFF])
    fci += b"".join(struct.pack("!I", s) for s in slist)
    body = struct.pack("!II", sender_ssrc, 0) + fci
    return _header(PSFB, FMT_AFB, 4 + len(body)) + body


def build_bye(ssrcs: Iterable[int]) -> bytes:
    slist = list(ssrcs)
    body = b"".join(struct.pack("!I", s) for s in slist)
    return _header(BYE, len(slist), 4 + len(body)) + body
