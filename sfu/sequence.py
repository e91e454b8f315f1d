"""Ingress sequence tracking for one RTP source (one SSRC): unwrap, duplicates, loss, jitter.

Sans-IO: fed the 16-bit sequence number, the RTP timestamp and the arrival time; returns the
extended (unwrapped) sequence number, or -1 for a duplicate or a packet too old to use.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
HALF_SEQ = 1 << 15
#: how far back (in packets) duplicates are remembered and late packets still accepted
REORDER_WINDOW = 512
_WINDOW_MASK = (1 << REORDER_WINDOW) - 1
#: a forward gap larger than this is not NACKed (the source restarted or jumped)
MAX_NACK_GAP = 64


class SequenceTracker:
    """Tracks one incoming RTP stream.

    ``update`` is called once per received packet, before fan-out, so per-subscriber work
    sees only extended sequence numbers and never a duplicate.
    """

    __slots__ = (
        "clock_rate",
        "base_ext",
        "max_ext",
        "received",
        "duplicates",
        "late",
        "jitter",
        "_window",
        "_last_transit",
        "_expected_prior",
        "_received_prior",
        "missing",
        "restarts",
        "_bad_seq",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.base_ext = -1
        self.max_ext = -1
        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.jitter = 0.0  # in RTP timestamp units (RFC 3550 A.8)
        self._window = 0  # bit i set = packet (max_ext - i) received
        self._last_transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0
        #: sequence numbers (extended) found missing by the last ``update``; empty if none
        self.missing: range = range(0)
        #: times the source jumped to a new sequence space (RFC 3550 A.1 re-sync)
        self.restarts = 0
        self._bad_seq = -1

    def update(self, seq: int, ts: int, now_ms: float) -> int:
        max_ext = self.max_ext
        if max_ext < 0:
            ext = seq
            self.base_ext = ext
            self.max_ext = ext
            self._window = 1
            self.received = 1
            self._jitter(ts, now_ms)
            return ext
        diff = (seq - max_ext) & 0xFFFF
        if diff == 0:
            self.duplicates += 1
            return -1
        if diff < HALF_SEQ:
            ext = max_ext + diff
            self.missing = range(max_ext + 1, ext) if 1 < diff <= MAX_NACK_GAP else range(0)
            self._window = ((self._window << diff) | 1) & _WINDOW_MASK
            self.max_ext = ext
        else:
            back = SEQ_MOD - diff
            self.missing = range(0)
            if back >= REORDER_WINDOW:
                if seq != self._bad_seq:
                    # too old, or the first packet of a new sequence space: wait for the next
                    self._bad_seq = (seq + 1) & 0xFFFF
                    self.late += 1
                    return -1
                # two in a row from far away: the source restarted its numbering (RFC 3550
                # A.1); move on, keeping extended numbers increasing and the loss figure sane
                ext = max_ext + diff
                self.base_ext += diff - 1
                self.max_ext = ext
                self._window = 1
                self._bad_seq = -1
                self.restarts += 1
                self.received += 1
                self._last_transit = None
                return ext
            bit = 1 << back
            if self._window & bit:
                self.duplicates += 1
                return -1
            self._window |= bit
            ext = max_ext - back
            if ext < self.base_ext:
                self.base_ext = ext
        self.received += 1
        self._jitter(ts, now_ms)
        return ext

    def _jitter(self, ts: int, now_ms: float) -> None:
        transit = now_ms * self.clock_rate / 1000.0 - ts
        last = self._last_transit
        self._last_transit = transit
        if last is not None:
            d = transit - last
            if d < 0:
                d = -d
            if d < self.clock_rate * 10:  # ignore timestamp jumps (source restart)
                self.jitter += (d - self.jitter) / 16.0

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
