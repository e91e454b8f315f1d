"""Ingress sequence tracking for one RTP source (one SSRC): unwrap, duplicates, loss, jitter.

Sans-IO: fed the 16-bit sequence number, the RTP timestamp and the arrival time; returns the
extended (unwrapped) sequence number, or -1 for a duplicate or a packet too old to use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SEQ_MOD = 1 << 16
HALF_SEQ = 1 << 15
#: how far back (in packets) duplicates are remembered and late packets still accepted
REORDER_WINDOW = 512
_WINDOW_MASK = (1 << REORDER_WINDOW) - 1
#: a forward gap larger than this is not NACKed (the source restarted or jumped)
MAX_NACK_GAP = 64


def _update(s: SequenceState, seq: int, ts: int, now_ms: float) -> int:
    max_ext = s.max_ext
    if max_ext < 0:
        s.base_ext = s.max_ext = seq
        s.window = 1
        s.received = 1
        _jitter(s, ts, now_ms)
        return seq
    diff = (seq - max_ext) & 0xFFFF
    if diff == 0:
        s.duplicates += 1
        return -1
    if diff < HALF_SEQ:
        ext = max_ext + diff
        if 1 < diff <= MAX_NACK_GAP:
            s.miss_from, s.miss_to = max_ext + 1, ext
        else:
            s.miss_from = s.miss_to = 0
        s.window = ((s.window << diff) | 1) & _WINDOW_MASK
        s.max_ext = ext
    else:
        back = SEQ_MOD - diff
        s.miss_from = s.miss_to = 0
        if back >= REORDER_WINDOW:
            if seq != s.bad_seq:
                # too old, or the first packet of a new sequence space: wait for the next
                s.bad_seq = (seq + 1) & 0xFFFF
                s.late += 1
                return -1
            # two in a row from far away: the source restarted its numbering (RFC 3550 A.1);
            # move on, keeping extended numbers increasing and the loss figure sane
            ext = max_ext + diff
            s.base_ext += diff - 1
            s.max_ext = ext
            s.window = 1
            s.bad_seq = -1
            s.restarts += 1
            s.received += 1
            s.has_transit = 0
            return ext
        bit = 1 << back
        if s.window & bit:
            s.duplicates += 1
            return -1
        s.window |= bit
        ext = max_ext - back
        if ext < s.base_ext:
            s.base_ext = ext
    s.received += 1
    _jitter(s, ts, now_ms)
    return ext


def _jitter(s: SequenceState, ts: int, now_ms: float) -> None:
    transit = now_ms * s.clock_rate / 1000.0 - ts
    if s.has_transit:
        d = transit - s.last_transit
        if d < 0:
            d = -d
        if d < s.clock_rate * 10:  # ignore timestamp jumps (source restart)
            s.jitter += (d - s.jitter) / 16.0
    s.last_transit = transit
    s.has_transit = 1


class SequenceState:
    """The fields ``update`` reads and writes. The compiled ingress step
    (:mod:`sfu.fastpath`) keeps them in a C struct with the same names instead (and
    ``window`` as 8 words), which its own ``update`` works on."""

    __slots__ = ("base_ext", "max_ext", "received", "duplicates", "late", "restarts",
                 "bad_seq", "miss_from", "miss_to", "jitter", "last_transit", "has_transit",
                 "clock_rate", "window")

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.base_ext = -1
        self.max_ext = -1
        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.jitter = 0.0  # in RTP timestamp units (RFC 3550 A.8)
        self.window = 0  # bit i set = packet (max_ext - i) received
        self.last_transit = 0.0
        self.has_transit = 0
        #: times the source jumped to a new sequence space (RFC 3550 A.1 re-sync)
        self.restarts = 0
        self.bad_seq = -1
        #: extended numbers found missing by the last update: [miss_from, miss_to)
        self.miss_from = 0
        self.miss_to = 0


class SequenceTracker:
    """Tracks one incoming RTP stream.

    ``update`` is called once per received packet, before fan-out, so per-subscriber work
    sees only extended sequence numbers and never a duplicate. ``state`` holds the
    per-packet fields and ``update`` updates them: by default a :class:`SequenceState` and
    the Python update; the compiled engine gives its C struct (which its ingress step
    updates too) and its C update (sfu.engine).
    """

    __slots__ = ("clock_rate", "state", "_update", "_expected_prior", "_received_prior")

    def __init__(self, clock_rate: int, state: Any = None,
                 update: Callable[[Any, int, int, float], int] | None = None) -> None:
        self.clock_rate = clock_rate
        self.state = state if state is not None else SequenceState(clock_rate)
        self._update: Callable[[Any, int, int, float], int] = update or _update
        self._expected_prior = 0
        self._received_prior = 0

    def update(self, seq: int, ts: int, now_ms: float) -> int:
        """The extended sequence number of a received packet, or -1 for a duplicate or a
        packet too old to use."""
        return int(self._update(self.state, seq, ts, now_ms))

    @property
    def missing(self) -> range:
        """Sequence numbers (extended) found missing by the last ``update``; empty if none."""
        s = self.state
        return range(s.miss_from, s.miss_to)

    @property
    def base_ext(self) -> int:
        return int(self.state.base_ext)

    @property
    def max_ext(self) -> int:
        return int(self.state.max_ext)

    @property
    def received(self) -> int:
        return int(self.state.received)

    @property
    def duplicates(self) -> int:
        return int(self.state.duplicates)

    @property
    def late(self) -> int:
        return int(self.state.late)

    @property
    def restarts(self) -> int:
        """Times the source jumped to a new sequence space (RFC 3550 A.1 re-sync)."""
        return int(self.state.restarts)

    @property
    def jitter(self) -> float:
        """Interarrival jitter in RTP timestamp units (RFC 3550 A.8)."""
        return float(self.state.jitter)

    @property
    def expected(self) -> int:
        return 0 if self.max_ext < 0 else self.max_ext - self.base_ext + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    def report_block(self) -> tuple[int, int, int, int]:
        """Figures for an RTCP report block since the previous call.

        Returns (fraction_lost (0..255), cumulative_lost, highest_ext_seq, jitter).
        """
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return fraction, min(self.lost, 0x7FFFFF), max(self.max_ext, 0), int(self.jitter)
