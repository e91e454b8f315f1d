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

SEQ_MASK = 0xFFFF
TS_MASK = 0xFFFFFFFF
HALF_SEQ = 1 << 15
#: how many source segments are remembered for NACK lookup
SEGMENT_HISTORY = 8


class RtpForwarder:
    __slots__ = (
        "out_ssrc",
        "clock_rate",
        "source_ssrc",
        "seq_offset",
        "ts_offset",
        "start_ext",
        "last_out_ext",
        "last_out_ts",
        "last_out_ms",
        "forwarded",
        "dropped",
        "switches",
        "_segments",
        "_resync",
    )

    def __init__(self, out_ssrc: int, clock_rate: int, first_seq: int = 0, first_ts: int = 0):
        self.out_ssrc = out_ssrc
        self.clock_rate = clock_rate
        self.source_ssrc = -1
        self.seq_offset = 0
        self.ts_offset = 0
        self.start_ext = 0
        # "previous" output so the first packet lands exactly on first_seq / first_ts
        self.last_out_ext = first_seq - 1
        self.last_out_ts = (first_ts - 1) & TS_MASK
        self.last_out_ms: float | None = None
        self.forwarded = 0
        self.dropped = 0
        self.switches = 0
        #: (first output ext seq, source ssrc, seq_offset, ts_offset) per source, newest last
        self._segments: deque[tuple[int, int, int, int]] = deque(maxlen=SEGMENT_HISTORY)
        self._resync = True

    def resync(self) -> None:
        """Treat the next packet as a new source (after a pause, a mute or a layer switch)."""
        self._resync = True

    def on_packet(self, ssrc: int, ext_seq: int, ts: int, now_ms: float) -> tuple[int, int] | None:
        if ssrc != self.source_ssrc or self._resync:
            self._switch(ssrc, ext_seq, ts, now_ms)
        elif ext_seq < self.start_ext:
            # late packet from before the current segment started: its slot is taken
            self.dropped += 1
            return None
        out_ext = ext_seq + self.seq_offset
        out_ts = (ts + self.ts_offset) & TS_MASK
        if out_ext > self.last_out_ext:
            self.last_out_ext = out_ext
            self.last_out_ts = out_ts
            self.last_out_ms = now_ms
        self.forwarded += 1
        return out_ext & SEQ_MASK, out_ts

    def _switch(self, ssrc: int, ext_seq: int, ts: int, now_ms: float) -> None:
        if self.source_ssrc != -1:
            self.switches += 1
        first_out_ext = self.last_out_ext + 1
        if self.last_out_ms is None:
            step = 1
        else:
            step = max(1, int((now_ms - self.last_out_ms) * self.clock_rate / 1000))
        first_out_ts = (self.last_out_ts + step) & TS_MASK
        self.source_ssrc = ssrc
        self.seq_offset = first_out_ext - ext_seq
        self.ts_offset = (first_out_ts - ts) & TS_MASK
        self.start_ext = ext_seq
        self._resync = False
        self._segments.append((first_out_ext, ssrc, self.seq_offset, self.ts_offset))

    def lookup(self, out_seq: int, current_segment: bool = False
               ) -> tuple[int, int, int] | None:
        """Map a NACKed output sequence number to (source ssrc, source ext seq, ts offset).
        ``current_segment``: only packets sent since the last source change or resync."""
        if self.source_ssrc == -1 or self._resync and current_segment:
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
