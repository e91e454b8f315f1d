"""Per-subscription RTP rewriting: SSRC, sequence number and timestamp (sans-IO).

One ``RtpForwarder`` exists per (subscriber, published track). It is fed the ingress view of
each packet (source SSRC, extended sequence number from :class:`sfu.sequence.SequenceTracker`,
RTP timestamp, arrival time) and returns the sequence number and timestamp to write, or
``None`` to drop the packet. When the source changes (publisher SSRC change after a
reconnect, a simulcast layer switch, or a resume after a pause) the output stays continuous:
the next sequence number follows the last one sent and the timestamp advances by the
wall-clock time elapsed.

It also remembers which output sequence numbers came from which source, so a NACK from the
subscriber can be turned back into the source packet (``lookup``), also across 16-bit wrap.
"""

from __future__ import annotations

from collections import deque
from typing import Any

SEQ_MASK = 0xFFFF
TS_MASK = 0xFFFFFFFF
HALF_SEQ = 1 << 15
#: how many source segments are remembered for NACK lookup
SEGMENT_HISTORY = 8


class ForwarderState:
    """The fields a forwarded packet reads and writes, set by :class:`RtpForwarder`. The
    compiled fan-out (:mod:`sfu.fastpath`) keeps them in a C struct with the same names
    instead."""

    __slots__ = ("source_ssrc", "seq_offset", "ts_offset", "start_ext", "last_out_ext",
                 "last_out_ts", "last_out_ms", "has_last_out", "resync", "forwarded")
    source_ssrc: int
    seq_offset: int
    ts_offset: int
    start_ext: int
    last_out_ext: int
    last_out_ts: int
    last_out_ms: float
    has_last_out: int
    resync: int
    forwarded: int


class RtpForwarder:
    __slots__ = ("out_ssrc", "clock_rate", "dropped", "switches", "_segments", "state")

    def __init__(self, out_ssrc: int, clock_rate: int, first_seq: int = 0, first_ts: int = 0,
                 state: Any = None):
        """``state``: where the per-packet fields live (a :class:`ForwarderState` unless the
        compiled fan-out provides its C struct)."""
        self.out_ssrc = out_ssrc
        self.clock_rate = clock_rate
        s = self.state = state if state is not None else ForwarderState()
        s.source_ssrc = -1
        s.seq_offset = s.ts_offset = s.start_ext = 0
        # "previous" output so the first packet lands exactly on first_seq / first_ts
        s.last_out_ext = first_seq - 1
        s.last_out_ts = (first_ts - 1) & TS_MASK
        s.last_out_ms = 0.0
        s.has_last_out = 0
        s.forwarded = 0
        s.resync = 1
        self.dropped = 0
        self.switches = 0
        #: (first output ext seq, source ssrc, seq_offset, ts_offset) per source, newest last
        self._segments: deque[tuple[int, int, int, int]] = deque(maxlen=SEGMENT_HISTORY)

    # the state's fields, read-only from outside
    @property
    def source_ssrc(self) -> int:
        return int(self.state.source_ssrc)

    @property
    def seq_offset(self) -> int:
        return int(self.state.seq_offset)

    @property
    def ts_offset(self) -> int:
        return int(self.state.ts_offset)

    @property
    def start_ext(self) -> int:
        return int(self.state.start_ext)

    @property
    def last_out_ext(self) -> int:
        return int(self.state.last_out_ext)

    @property
    def last_out_ts(self) -> int:
        return int(self.state.last_out_ts)

    @property
    def last_out_ms(self) -> float | None:
        return float(self.state.last_out_ms) if self.state.has_last_out else None

    @property
    def forwarded(self) -> int:
        return int(self.state.forwarded)

    def resync(self) -> None:
        """Treat the next packet as a new source (after a pause, a mute or a layer switch)."""
        self.state.resync = 1

    def on_packet(self, ssrc: int, ext_seq: int, ts: int, now_ms: float) -> tuple[int, int] | None:
        s = self.state
        if ssrc != s.source_ssrc or s.resync:
            self._switch(ssrc, ext_seq, ts, now_ms)
        elif ext_seq < s.start_ext:
            # late packet from before the current segment started: its slot is taken
            self.dropped += 1
            return None
        out_ext = ext_seq + s.seq_offset
        out_ts = (ts + s.ts_offset) & TS_MASK
        if out_ext > s.last_out_ext:
            s.last_out_ext = out_ext
            s.last_out_ts = out_ts
            s.last_out_ms = now_ms
            s.has_last_out = 1
        s.forwarded += 1
        return out_ext & SEQ_MASK, out_ts

    def _switch(self, ssrc: int, ext_seq: int, ts: int, now_ms: float) -> None:
        s = self.state
        if s.source_ssrc != -1:
            self.switches += 1
        first_out_ext = s.last_out_ext + 1
        if not s.has_last_out:
            step = 1
        else:
            step = max(1, int((now_ms - s.last_out_ms) * self.clock_rate / 1000))
        first_out_ts = (s.last_out_ts + step) & TS_MASK
        s.source_ssrc = ssrc
        s.seq_offset = first_out_ext - ext_seq
        s.ts_offset = (first_out_ts - ts) & TS_MASK
        s.start_ext = ext_seq
        s.resync = 0
        self._segments.append((first_out_ext, ssrc, int(s.seq_offset), int(s.ts_offset)))

    def lookup(self, out_seq: int, current_segment: bool = False
               ) -> tuple[int, int, int] | None:
        """Map a NACKed output sequence number to (source ssrc, source ext seq, ts offset).
        ``current_segment``: only packets sent since the last source change or resync."""
        if self.state.source_ssrc == -1 or self.state.resync and current_segment:
            return None
        last = self.last_out_ext
        diff = (out_seq - last) & SEQ_MASK
        out_ext = last + diff if diff < HALF_SEQ else last - ((SEQ_MASK + 1) - diff)
        if out_ext > last:
            return None
        for first_out_ext, ssrc, offset, ts_offset in reversed(self._segments):
            if out_ext >= first_out_ext:
                return ssrc, out_ext - offset, ts_offset
            if current_segment:
                return None
        return None

    def out_timestamp_at(self, now_ms: float) -> int:
        """The output RTP timestamp that corresponds to ``now_ms`` (for sender reports)."""
        if self.last_out_ms is None:
            return self.last_out_ts
        elapsed = int((now_ms - self.last_out_ms) * self.clock_rate / 1000)
        return (self.last_out_ts + elapsed) & TS_MASK
