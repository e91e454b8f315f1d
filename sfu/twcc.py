"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Three pieces, all sans-IO:

* :func:`parse_feedback` reads the FCI of an RTCP RTPFB fmt=15 packet a subscriber's browser
  sent us (``RtcpMessage.fci``) into ``(transport seq, arrival ms | None)`` pairs for the
  downlink estimator. The input is attacker-controlled: the status count is bounded, every
  loop is bounded by the input length, and the only exception raised is :class:`TwccError`.
* :class:`SendHistory` remembers the send time and size of the packets we sent on one
  transport, by transport-wide sequence number, in preallocated arrays.
* :class:`TwccRecorder` is the receive side for a publisher's packets: it records their
  arrival and builds the feedback packets the publisher's browser needs for its own
  congestion control.

Times are milliseconds as floats; on the wire the reference time counts 64 ms units
(24-bit signed) and receive deltas count 250 microseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

RTPFB = 205
FMT_TWCC = 15

SEQ_MOD = 1 << 16
HALF_SEQ = 1 << 15
#: statuses one feedback may report before we reject it (a run-length chunk claims up to
#: 8191 packets in 2 bytes; beyond the send history the reports are useless anyway)
MAX_PACKET_STATUS_COUNT = 8192
#: build side: at most this many statuses / bytes in one RTCP feedback packet, so it fits a
#: datagram after SRTCP overhead
MAX_STATUSES_PER_PACKET = 1000
MAX_FEEDBACK_BYTES = 1100
#: ring sizes (powers of two)
DEFAULT_HISTORY_SIZE = 8192
DEFAULT_RECORDER_SIZE = 8192

#: packet status symbols
NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2

_TICKS_PER_MS = 4  # receive deltas count 250 us
_REF_TICKS = 256  # one reference-time unit (64 ms) in delta ticks
_REF_MOD = 1 << 24
_HEADER = struct.Struct("!BBHIIHHI")
_NAN = float("nan")


class TwccError(ValueError):
    """Malformed transport-wide feedback."""


@dataclass(frozen=True, slots=True)
class TwccFeedback:
    """One parsed feedback: every reported packet in sequence order."""

    base_seq: int
    feedback_count: int
    #: the 24-bit signed reference time times 64 ms, on the receiver's clock
    reference_time_ms: float
    #: (16-bit transport seq, arrival ms on the receiver's clock or None if not received)
    packets: list[tuple[int, float | None]]


def parse_feedback(fci: bytes) -> TwccFeedback:
    """Parse the bytes after the RTCP header, sender SSRC and media SSRC.

    Trailing bytes after the last receive delta (zero padding, or RTCP padding that the
    compound walker left in place) are ignored.
    """
    n = len(fci)
    if n < 8:
        raise TwccError("TWCC feedback shorter than its fixed fields")
    base = (fci[0] << 8) | fci[1]
    count = (fci[2] << 8) | fci[3]
    ref = (fci[4] << 16) | (fci[5] << 8) | fci[6]
    if ref & 0x800000:
        ref -= _REF_MOD
    fb_count = fci[7]
    if count > MAX_PACKET_STATUS_COUNT:
        raise TwccError(f"TWCC packet status count {count} exceeds {MAX_PACKET_STATUS_COUNT}")
    statuses = bytearray(count)
    filled = 0
    pos = 8
    while filled < count:
        if pos + 2 > n:
            raise TwccError("TWCC status chunks truncated")
        chunk = (fci[pos] << 8) | fci[pos + 1]
        pos += 2
        if not chunk & 0x8000:  # run length: 2-bit symbol, 13-bit length
            symbol = (chunk >> 13) & 3
            take = min(chunk & 0x1FFF, count - filled)
            if take and symbol == 3:
                raise TwccError("TWCC reserved status symbol")
            if symbol:
                statuses[filled : filled + take] = bytes((symbol,)) * take
            filled += take
        elif not chunk & 0x4000:  # status vector, 14 one-bit symbols
            for shift in range(13, -1, -1):
                if filled >= count:
                    break
                statuses[filled] = (chunk >> shift) & 1
                filled += 1
        else:  # status vector, 7 two-bit symbols
            for shift in range(12, -1, -2):
                if filled >= count:
                    break
                symbol = (chunk >> shift) & 3
                if symbol == 3:
                    raise TwccError("TWCC reserved status symbol")
                statuses[filled] = symbol
                filled += 1
    ticks = ref * _REF_TICKS
    packets: list[tuple[int, float | None]] = []
    append = packets.append
    for i in range(count):
        status = statuses[i]
        seq = (base + i) & 0xFFFF
        if status == NOT_RECEIVED:
            append((seq, None))
            continue
        if status == SMALL_DELTA:
            if pos >= n:
                raise TwccError("TWCC receive deltas truncated")
            ticks += fci[pos]
            pos += 1
        else:
            if pos + 2 > n:
                raise TwccError("TWCC receive deltas truncated")
            delta = (fci[pos] << 8) | fci[pos + 1]
            if delta & 0x8000:
                delta -= 0x10000
            ticks += delta
            pos += 2
        append((seq, ticks / _TICKS_PER_MS))
    return TwccFeedback(base, fb_count, ref * 64.0, packets)


class SentPackets(Protocol):
    """What a transport-wide feedback is matched against: :class:`SendHistory` (the Python
    send path) or :class:`sfu.fastpath.TwccHistory` (the compiled one)."""

    def lookup(self, seq: int) -> tuple[float, int] | None: ...


class SendHistory:
    """Send time and size of the last ``size`` packets sent on one transport.

    ``record`` runs once per sent packet: three list stores, no allocation. A lookup only
    answers for sequence numbers within the last ``size`` recorded, so a 16-bit number that
    wrapped around cannot match a stale slot.
    """

    __slots__ = ("_mask", "_size", "_seqs", "_times", "_sizes", "_last_seq")

    def __init__(self, size: int = DEFAULT_HISTORY_SIZE) -> None:
        if size <= 0 or size & (size - 1) or size > SEQ_MOD // 2:
            raise ValueError("history size must be a power of two <= 32768")
        self._mask = size - 1
        self._size = size
        self._seqs = [-1] * size
        self._times = [0.0] * size
        self._sizes = [0] * size
        self._last_seq = -1

    def record(self, seq: int, size: int, now_ms: float) -> None:
        """``seq``: the 16-bit transport-wide number written in the packet; ``size`` in bytes."""
        seq &= 0xFFFF
        i = seq & self._mask
        self._seqs[i] = seq
        self._times[i] = now_ms
        self._sizes[i] = size
        self._last_seq = seq

    def lookup(self, seq: int) -> tuple[float, int] | None:
        """(send time ms, size bytes), or None if never sent or no longer remembered."""
        seq &= 0xFFFF
        last = self._last_seq
        if last < 0 or ((last - seq) & 0xFFFF) >= self._size:
            return None
        i = seq & self._mask
        if self._seqs[i] != seq:
            return None
        return self._times[i], self._sizes[i]


#: a forward jump of the transport-wide sequence number larger than this restarts the record
MAX_FORWARD_JUMP = 1024


class TwccRecorder:
    """Arrival times of one publisher transport's packets, turned into feedback on demand.

    Sequence numbers are unwrapped to extended numbers; arrivals live in a ring indexed by
    extended number, NaN meaning "not (yet) received". Every slot outside the unreported
    window ``[_next_ext, _max_ext]`` is NaN, so the window is all there is to report and
    clear. Memory is bounded: if feedback is never built, the oldest unreported packets
    are forgotten.
    """

    __slots__ = (
        "_mask",
        "_size",
        "_arrivals",
        "_next_ext",
        "_max_ext",
        "_reported",
        "_fb_count",
        "_last_ref",
        "duplicates",
        "late",
        "forgotten",
    )

    def __init__(self, size: int = DEFAULT_RECORDER_SIZE) -> None:
        if size <= 0 or size & (size - 1) or size > SEQ_MOD // 2:
            raise ValueError("recorder size must be a power of two <= 32768")
        self._mask = size - 1
        self._size = size
        self._arrivals = [_NAN] * size
        self._next_ext = 0
        self._max_ext = -1
        self._reported = False
        self._fb_count = 0
        self._last_ref = 0
        #: packets seen twice (the first arrival is kept)
        self.duplicates = 0
        #: packets that arrived after the feedback covering them was built (ignored)
        self.late = 0
        #: unreported packets dropped because feedback was not built in time
        self.forgotten = 0

    def on_packet(self, seq: int, arrival_ms: float) -> None:
        """Record one received packet's transport-wide sequence number and arrival time."""
        mx = self._max_ext
        if mx < 0:
            ext = (seq & 0xFFFF) + SEQ_MOD  # keeps extended numbers positive when going back
            self._next_ext = ext
            self._max_ext = ext
            self._arrivals[ext & self._mask] = arrival_ms
            return
        diff = (seq - mx) & 0xFFFF
        ext = mx + diff if diff < HALF_SEQ else mx + diff - SEQ_MOD
        if ext < self._next_ext:
            if self._reported or mx - ext >= self._size:
                self.late += 1
                return
            self._next_ext = ext  # reordered before the first feedback: widen the window
        elif ext > mx:
            if ext - mx > MAX_FORWARD_JUMP:
                # a jump no real sender makes: start afresh rather than walk (and report
                # as lost) thousands of slots; bounds the work per packet an attacker gets
                self._forget(mx + 1)
                self._next_ext = ext
            elif ext - self._next_ext >= self._size:
                self._forget(ext - self._size + 1)
            self._max_ext = ext
        i = ext & self._mask
        arrivals = self._arrivals
        if arrivals[i] == arrivals[i]:  # not NaN: already received
            self.duplicates += 1
            return
        arrivals[i] = arrival_ms

    def _forget(self, new_next: int) -> None:
        arrivals, mask = self._arrivals, self._mask
        for ext in range(self._next_ext, min(self._max_ext + 1, new_next)):
            if arrivals[ext & mask] == arrivals[ext & mask]:
                self.forgotten += 1
            arrivals[ext & mask] = _NAN
        self._next_ext = new_next

    def build_feedback(self, sender_ssrc: int, media_ssrc: int, now_ms: float) -> list[bytes]:
        """Complete RTCP packets covering everything recorded since the last call.

        Gaps between received packets are reported as lost. One call usually gives one
        packet; more if there are over ``MAX_STATUSES_PER_PACKET`` statuses, the packet
        would exceed ``MAX_FEEDBACK_BYTES``, or a receive delta does not fit 16 bits.
        ``now_ms`` is not needed by the format and only kept for a uniform interface.
        """
        start, end = self._next_ext, self._max_ext
        if end < 0 or start > end:
            return []
        out: list[bytes] = []
        ext = start
        while ext <= end:
            ext = self._build_one(sender_ssrc, media_ssrc, ext, end, out)
        arrivals, mask = self._arrivals, self._mask
        for e in range(start, end + 1):
            arrivals[e & mask] = _NAN
        self._next_ext = end + 1
        self._reported = True
        return out

    def _build_one(
        self, sender_ssrc: int, media_ssrc: int, start: int, end: int, out: list[bytes]
    ) -> int:
        """Encode statuses from ``start`` on into one packet; return the first ext left out."""
        arrivals, mask = self._arrivals, self._mask
        statuses = bytearray()
        deltas = bytearray()
        ref: int | None = None
        prev = 0
        ext = start
        while ext <= end:
            count = len(statuses)
            if count >= MAX_STATUSES_PER_PACKET:
                break
            arrival = arrivals[ext & mask]
            if arrival != arrival:  # NaN: lost
                if 20 + 2 * ((count + 7) // 7) + len(deltas) > MAX_FEEDBACK_BYTES:
                    break
                statuses.append(NOT_RECEIVED)
                ext += 1
                continue
            ticks = round(arrival * _TICKS_PER_MS)
            if ref is None:
                ref = ticks >> 8  # floor: the first delta is in [0, 256)
                prev = ref * _REF_TICKS
            delta = ticks - prev
            if 0 <= delta <= 0xFF:
                width = 1
            elif -0x8000 <= delta <= 0x7FFF:
                width = 2
            else:
                break  # starts the next packet, with its own reference time
            if 20 + 2 * ((count + 7) // 7) + len(deltas) + width > MAX_FEEDBACK_BYTES:
                break
            if width == 1:
                statuses.append(SMALL_DELTA)
                deltas.append(delta)
            else:
                statuses.append(LARGE_DELTA)
                deltas += (delta & 0xFFFF).to_bytes(2, "big")
            prev = ticks
            ext += 1
        if ref is None:
            ref = self._last_ref  # only losses in this packet: any reference will do
        self._last_ref = ref
        chunks = _encode_chunks(statuses)
        body_len = 20 + len(chunks) + len(deltas)
        pad = -body_len % 4
        total = body_len + pad
        pkt = bytearray(total)
        _HEADER.pack_into(
            pkt, 0,
            0x80 | (0x20 if pad else 0) | FMT_TWCC, RTPFB, total // 4 - 1,
            sender_ssrc & 0xFFFFFFFF, media_ssrc & 0xFFFFFFFF,
            start & 0xFFFF, len(statuses),
            ((ref % _REF_MOD) << 8) | self._fb_count,
        )
        pkt[20 : 20 + len(chunks)] = chunks
        pkt[20 + len(chunks) : body_len] = deltas
        if pad:
            pkt[-1] = pad  # RTCP padding (RFC 3550): last byte counts the padding, as libwebrtc
        self._fb_count = (self._fb_count + 1) & 0xFF
        out.append(bytes(pkt))
        return ext


def _encode_chunks(statuses: bytearray) -> bytearray:
    """Run-length chunks for runs of 7 or more (or a run to the end), 2-bit vectors otherwise."""
    out = bytearray()
    count = len(statuses)
    i = 0
    while i < count:
        symbol = statuses[i]
        j = i + 1
        while j < count and statuses[j] == symbol and j - i < 0x1FFF:
            j += 1
        if j - i >= 7 or j == count:
            word = (symbol << 13) | (j - i)
            i = j
        else:
            word = 0xC000
            for k in range(7):
                if i + k < count:
                    word |= statuses[i + k] << (12 - 2 * k)
            i += 7
        out += word.to_bytes(2, "big")
    return out
