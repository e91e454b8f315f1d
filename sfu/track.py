"""Published tracks (ingress, once per packet) and subscriptions (fan-out, once per subscriber).

``PublishedTrack.on_rtp`` runs once per received packet: duplicate/loss tracking, extension
and payload-type mapping to canonical numbers, retransmission cache, then a loop over its
subscriptions. ``Subscription.forward`` is the per-subscriber hot path: a sans-IO
:class:`~sfu.forwarder.RtpForwarder` decision then one in-place rewrite + protect + send.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import rtcp
from .codecs import CodecSpec
from .forwarder import RtpForwarder
from .keyframe import KeyframeThrottle
from .retransmit import RetransmitCache
from .rtp_header import build_id_map, rewrite_extension_ids, rtx_wrap
from .sequence import SequenceTracker

if TYPE_CHECKING:
    from .transport import MediaTransport

_SEQ_TS = struct.Struct("!HI")
#: NACK handling bounds (a NACK is attacker-controlled input)
MAX_NACK_SEQS = 64
RESEND_GUARD_MS = 100.0
RETRANSMIT_BUDGET_PPS = 400.0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (sans-IO: time passed in)."""

    __slots__ = ("rate_per_ms", "burst", "tokens", "_last_ms")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_ms = rate_per_s / 1000.0
        self.burst = burst
        self.tokens = burst
        self._last_ms: float | None = None

    def refill(self, now_ms: float) -> None:
        if self._last_ms is not None and now_ms > self._last_ms:
            self.tokens = min(self.burst, self.tokens + (now_ms - self._last_ms) * self.rate_per_ms)
        self._last_ms = now_ms

    def take(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class TrackStats:
    __slots__ = ("packets_in", "bytes_in", "duplicates", "nacks_sent", "plis_sent", "ssrc_changes")

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.duplicates = 0
        self.nacks_sent = 0
        self.plis_sent = 0
        self.ssrc_changes = 0


class PublishedTrack:
    def __init__(
        self,
        *,
        track_id: str,
        participant_id: str,
        kind: str,
        source: str,
        mid: str,
        codec: CodecSpec,
        publisher_pt: int,
        ext_map: dict[int, int],
        ssrc: int | None,
        rtx_ssrc: int | None,
        upstream: MediaTransport,
        receiver_ssrc: int,
        keyframe_interval_ms: float,
    ) -> None:
        self.id = track_id
        self.participant_id = participant_id
        self.kind = kind
        self.source = source
        self.mid = mid
        self.codec = codec
        self.publisher_pt = publisher_pt
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.muted = False
        self.closed = False
        self.subscriptions: list[Subscription] = []
        self.stats = TrackStats()
        self._ext_id_map = build_id_map(ext_map)
        self._needs_rewrite = publisher_pt != codec.pt
        self._upstream = upstream
        self._receiver_ssrc = receiver_ssrc
        self._trackers: dict[int, SequenceTracker] = {}
        self._caches: dict[int, RetransmitCache] = {}
        self.keyframes = KeyframeThrottle(keyframe_interval_ms)
        #: last sender report from the publisher per ssrc: (ntp middle 32 bits, arrival ms)
        self.last_sr: dict[int, tuple[int, float]] = {}
        self.current_ssrc: int | None = ssrc
        self._restarts_seen = 0

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "participantId": self.participant_id,
            "kind": self.kind,
            "source": self.source,
            "muted": self.muted,
        }

    # -- ingress ----------------------------------------------------------------------

    def on_rtp(self, data: bytes, ssrc: int, seq: int, ts: int, now_ms: float) -> None:
        tracker = self._trackers.get(ssrc)
        if tracker is None:
            tracker = self._new_source(ssrc)
        ext = tracker.update(seq, ts, now_ms)
        stats = self.stats
        if ext < 0:
            stats.duplicates += 1
            return
        stats.packets_in += 1
        stats.bytes_in += len(data)
        if tracker.missing and self.kind == "video":
            self._nack_upstream(ssrc, tracker.missing)
        if data[0] & 0x10 or self._needs_rewrite:
            buf = bytearray(data)
            rewrite_extension_ids(buf, self._ext_id_map)
            buf[1] = (buf[1] & 0x80) | self.codec.pt
            data = bytes(buf)
        self._caches[ssrc].put(ext, data)
        if self.muted or ssrc != self.current_ssrc:
            return  # late packets of a previous SSRC are kept for NACKs, not forwarded
        if tracker.restarts != self._restarts_seen:
            self._restarts_seen = tracker.restarts
            for sub in self.subscriptions:
                sub.forwarder.resync()  # output continues without a sequence jump
        for sub in self.subscriptions:
            sub.forward(data, ssrc, ext, ts, now_ms)

    def _new_source(self, ssrc: int) -> SequenceTracker:
        if self._trackers:
            self.stats.ssrc_changes += 1
        # keep only the newest few sources (a publisher that reconnects gets a new SSRC)
        while len(self._trackers) >= 3:
            oldest = next(iter(self._trackers))
            del self._trackers[oldest]
            self._caches.pop(oldest, None)
        tracker = SequenceTracker(self.codec.clock_rate)
        self._restarts_seen = 0
        self._trackers[ssrc] = tracker
        self._caches[ssrc] = RetransmitCache()
        self.current_ssrc = ssrc
        return tracker

    def cached(self, ssrc: int, ext_seq: int) -> bytes | None:
        cache = self._caches.get(ssrc)
        return cache.get(ext_seq) if cache is not None else None

    def tracker(self, ssrc: int) -> SequenceTracker | None:
        return self._trackers.get(ssrc)

    # -- towards the publisher --------------------------------------------------------

    def _nack_upstream(self, ssrc: int, missing: range) -> None:
        self.stats.nacks_sent += 1
        self._upstream.send_rtcp(rtcp.build_nack(self._receiver_ssrc, ssrc, missing))

    def request_keyframe(self, now_ms: float) -> bool:
        """PLI to the publisher, throttled to one per interval per track."""
        if self.kind != "video" or self.current_ssrc is None:
            return False
        if not self.keyframes.should_send(now_ms):
            return False
        self.stats.plis_sent += 1
        self._upstream.send_rtcp(rtcp.build_pli(self._receiver_ssrc, self.current_ssrc))
        return True

    def receiver_report_blocks(self, now_ms: float) -> list[rtcp.ReportBlock]:
        blocks = []
        for ssrc, tracker in self._trackers.items():
            if tracker.max_ext < 0 or ssrc != self.current_ssrc:
                continue
            fraction, lost, highest, jitter = tracker.report_block()
            lsr, dlsr = 0, 0
            sr = self.last_sr.get(ssrc)
            if sr is not None:
                lsr = sr[0]
                dlsr = min(0xFFFFFFFF, int((now_ms - sr[1]) * 65.536))
            blocks.append(rtcp.ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        return blocks

    # -- subscriptions ----------------------------------------------------------------

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)

    def remove_subscription(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)

    def set_muted(self, muted: bool, now_ms: float) -> None:
        if muted == self.muted:
            return
        self.muted = muted
        if not muted:
            # output continues without a sequence gap; video needs a keyframe to resume
            for sub in self.subscriptions:
                sub.forwarder.resync()
            self.request_keyframe(now_ms)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sub in list(self.subscriptions):
            sub.close()
        self.subscriptions.clear()


class SubscriptionStats:
    __slots__ = ("packets", "bytes", "nacks", "retransmits", "retransmit_misses",
                 "retransmits_suppressed", "plis", "firs", "fraction_lost", "rtt_ms", "remb_bps")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.nacks = 0
        self.retransmits = 0
        self.retransmit_misses = 0
        self.retransmits_suppressed = 0
        self.plis = 0
        self.firs = 0
        self.fraction_lost = 0.0
        self.rtt_ms: float | None = None
        self.remb_bps = 0


class Subscription:
    """One subscriber receiving one published track."""

    def __init__(
        self,
        track: PublishedTrack,
        downstream: MediaTransport,
        *,
        out_ssrc: int,
        rtx_ssrc: int,
        rtx_pt: int | None,
        first_seq: int,
        first_ts: int,
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.track = track
        self.downstream = downstream
        self.out_ssrc = out_ssrc
        self.rtx_ssrc = rtx_ssrc
        self.rtx_pt = rtx_pt
        self.forwarder = RtpForwarder(out_ssrc, track.codec.clock_rate, first_seq, first_ts)
        self.stats = SubscriptionStats()
        self.accepted = False  # the subscriber's answer accepted the m-line and codec
        self.active = False  # accepted and the subscriber transport is connected
        self.closed = False
        self._rtx_seq = first_seq ^ 0x5A5A
        self._resent_ms: dict[int, float] = {}
        self._retransmit_budget = TokenBucket(RETRANSMIT_BUDGET_PPS, RETRANSMIT_BUDGET_PPS / 2)
        self._on_close = on_close
        #: last SR we sent: compact ntp (middle 32 bits) -> send time in ms
        self.last_sr_ntp: int = 0
        self.last_sr_ms: float = 0.0

    def forward(self, data: bytes, ssrc: int, ext: int, ts: int, now_ms: float) -> None:
        if not self.active:
            return
        r = self.forwarder.on_packet(ssrc, ext, ts, now_ms)
        if r is None:
            return
        if self.downstream.send_rewritten(data, data[1], r[0], r[1], self.out_ssrc):
            stats = self.stats
            stats.packets += 1
            stats.bytes += len(data)

    def activate(self, now_ms: float) -> None:
        if self.active or self.closed:
            return
        self.active = True
        self.forwarder.resync()
        self.track.request_keyframe(now_ms)

    def on_nack(self, seqs: tuple[int, ...], now_ms: float) -> None:
        """Resend NACKed packets from the cache, RTX-wrapped where negotiated.

        Bounded against amplification: each sequence number once per NACK, at most
        ``MAX_NACK_SEQS`` per NACK, the same packet at most once per ``RESEND_GUARD_MS``,
        and a per-subscription budget of ``RETRANSMIT_BUDGET_PPS`` packets per second.
        """
        self.stats.nacks += 1
        budget = self._retransmit_budget
        budget.refill(now_ms)
        resent = self._resent_ms
        for out_seq in list(dict.fromkeys(seqs))[:MAX_NACK_SEQS]:
            last = resent.get(out_seq)
            if last is not None and now_ms - last < RESEND_GUARD_MS:
                self.stats.retransmits_suppressed += 1
                continue
            if not budget.take():
                self.stats.retransmits_suppressed += 1
                continue
            found = self.forwarder.lookup(out_seq)
            packet = self.track.cached(found[0], found[1]) if found is not None else None
            if packet is None or found is None:
                self.stats.retransmit_misses += 1
                continue
            ts = (_SEQ_TS.unpack_from(packet, 2)[1] + found[2]) & 0xFFFFFFFF
            buf = bytearray(packet)
            _SEQ_TS.pack_into(buf, 2, out_seq, ts)
            struct.pack_into("!I", buf, 8, self.out_ssrc)
            if self.rtx_pt is not None:
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                out = rtx_wrap(buf, self.rtx_pt, self._rtx_seq, self.rtx_ssrc)
            else:
                out = bytes(buf)
            if self.downstream.send_rtp(out):
                self.stats.retransmits += 1
                resent[out_seq] = now_ms
                if len(resent) > 1024:
                    del resent[next(iter(resent))]

    def on_keyframe_request(self, now_ms: float, fir: bool = False) -> None:
        if fir:
            self.stats.firs += 1
        else:
            self.stats.plis += 1
        self.track.request_keyframe(now_ms)

    def sender_report(self, now_ms: float, ntp: int) -> bytes:
        self.last_sr_ntp = (ntp >> 16) & 0xFFFFFFFF
        self.last_sr_ms = now_ms
        return rtcp.build_sr(
            self.out_ssrc, ntp, self.forwarder.out_timestamp_at(now_ms),
            self.stats.packets, self.stats.bytes,
        )

    def on_receiver_report(self, block: rtcp.ReportBlock, now_ms: float) -> None:
        self.stats.fraction_lost = block.fraction_lost / 256.0
        if block.lsr and block.lsr == self.last_sr_ntp:
            rtt = now_ms - self.last_sr_ms - block.dlsr / 65.536
            if rtt >= 0:
                self.stats.rtt_ms = rtt

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.active = False
        self.track.remove_subscription(self)
        if self._on_close is not None:
            self._on_close(self)
