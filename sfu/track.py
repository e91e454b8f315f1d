"""Published tracks (ingress, once per packet) and subscriptions (fan-out, once per subscriber).

``PublishedTrack.on_rtp`` runs once per received packet: duplicate/loss tracking, extension
and payload-type mapping to canonical numbers, retransmission cache, then a loop over its
subscriptions. ``Subscription.forward`` is the per-subscriber hot path: a sans-IO
:class:`~sfu.forwarder.RtpForwarder` decision then one in-place rewrite + protect + send.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import rtcp
from .codecs import AUDIO_LEVEL_ID, CodecSpec
from .engine import ENGINE, IN_GATE, IN_LEFT, IN_LEVEL, IN_NACK, IN_TWCC
from .forwarder import RtpForwarder
from .keyframe import KeyframeThrottle
from .layers import LayerSelector
from .payload import keyframe_detector, vp8_resolution
from .retransmit import Cache
from .rtp_header import RtpHeaderError, build_id_map, header_length, rtx_wrap
from .sequence import SequenceTracker
from .speech_gate import ASK, FORWARD, NO_LEVEL, GateState, configure, gate_step

if TYPE_CHECKING:
    from .transport import MediaTransport
    from .twcc import TwccRecorder

_SEQ_TS = struct.Struct("!HI")
_SEQ_TS_SSRC_PACK = struct.Struct("!HII").pack_into
_fanout = ENGINE.fanout
_rewrite = ENGINE.rewrite
#: NACK handling bounds (a NACK is attacker-controlled input)
MAX_NACK_SEQS = 64
RESEND_GUARD_MS = 100.0
#: retransmission budget of a subscription while its downlink is not estimated (bit/s);
#: the participant lowers it to a share of the spare estimate (``set_retransmit_budget``)
RETRANSMIT_BUDGET_BPS = 4_000_000.0
#: the budget may save up this much time's worth for a burst of NACKs
RETRANSMIT_BURST_S = 0.25
#: retransmissions always allowed, however small the estimate (bit/s): a NACKed keyframe
#: packet must get through to a subscriber on a thin link too
RETRANSMIT_FLOOR_BPS = 16_000.0


def _retransmit_bucket(bps: float) -> tuple[float, float]:
    """(bytes per second, burst bytes) of a retransmission budget of ``bps``."""
    rate = max(bps, RETRANSMIT_FLOOR_BPS) / 8.0
    return rate, max(rate * RETRANSMIT_BURST_S, 1500.0)


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

    def set_rate(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_ms = rate_per_s / 1000.0
        self.burst = burst
        self.tokens = min(self.tokens, burst)

    def take(self, amount: float = 1.0) -> bool:
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False


class IngressCounters(GateState):
    """A track's ingress counters and speech gate (``sfu.speech_gate``). With the compiled
    ingress step they live in its C ``sfu_track`` (same names), which it updates."""

    __slots__ = ("packets_in", "bytes_in", "duplicates")

    def __init__(self) -> None:
        super().__init__()
        self.packets_in = 0
        self.bytes_in = 0
        self.duplicates = 0


class TrackStats:
    __slots__ = ("_in", "nacks_sent", "plis_sent", "ssrc_changes")

    def __init__(self, counters: Any = None) -> None:
        self._in = counters if counters is not None else IngressCounters()
        self.nacks_sent = 0
        self.plis_sent = 0
        self.ssrc_changes = 0

    @property
    def packets_in(self) -> int:
        return int(self._in.packets_in)

    @packets_in.setter
    def packets_in(self, n: int) -> None:
        self._in.packets_in = n

    @property
    def bytes_in(self) -> int:
        return int(self._in.bytes_in)

    @bytes_in.setter
    def bytes_in(self, n: int) -> None:
        self._in.bytes_in = n

    @property
    def duplicates(self) -> int:
        return int(self._in.duplicates)

    @duplicates.setter
    def duplicates(self, n: int) -> None:
        self._in.duplicates = n


class Layer:
    """One received encoding of a track: a simulcast layer (by rid), or the only one.

    Keeps per-SSRC ingress state (a publisher's SSRC changes when it restarts) and the
    figures the allocator needs: bitrate, frame rate and resolution, and whether packets
    are arriving at all.
    """

    __slots__ = ("track", "index", "rid", "current_ssrc", "trackers", "restarts_seen",
                 "counters", "keyframes", "width", "height", "bitrate_bps", "fps", "_sample",
                 "enabled", "unneeded_since_ms", "keyframe_throttle", "plan")

    def __init__(self, track: PublishedTrack, index: int, rid: str | None,
                 keyframe_interval_ms: float) -> None:
        self.track = track
        self.index = index
        self.rid = rid
        self.current_ssrc: int | None = None
        #: the compiled fan-out's list of this layer's subscribers (see FanoutPlan); None
        #: when it must be made again (``invalidate_plan``)
        self.plan: FanoutPlan | None = None
        self.trackers: dict[int, SequenceTracker] = {}
        self.restarts_seen = 0
        #: packets, bytes, frames, last_packet_ms and the plan the compiled fan-out uses:
        #: the engine's (sfu.engine.LayerCounters, or a C struct the ingress step updates)
        self.counters: Any = ENGINE.layer_counters()
        self.keyframes = 0
        self.width = 0
        self.height = 0
        self.bitrate_bps = 0
        self.fps = 0.0
        self._sample: tuple[float, int, int] | None = None
        #: dynacast: False once the publisher was told to stop sending this layer
        self.enabled = True
        self.unneeded_since_ms: float | None = None
        self.keyframe_throttle = KeyframeThrottle(keyframe_interval_ms)

    def invalidate_plan(self) -> None:
        """The fan-out plan is made again at the next packet (in Python, and the compiled
        ingress step leaves the layer's packets to Python until then)."""
        self.plan = None
        self.counters.plan_version = -1

    @property
    def packets(self) -> int:
        return int(self.counters.packets)

    @packets.setter
    def packets(self, n: int) -> None:
        self.counters.packets = n

    @property
    def bytes(self) -> int:
        return int(self.counters.bytes)

    @bytes.setter
    def bytes(self, n: int) -> None:
        self.counters.bytes = n

    @property
    def frames(self) -> int:
        return int(self.counters.frames)

    @frames.setter
    def frames(self, n: int) -> None:
        self.counters.frames = n

    @property
    def last_packet_ms(self) -> float:
        return float(self.counters.last_packet_ms)

    @last_packet_ms.setter
    def last_packet_ms(self, ms: float) -> None:
        self.counters.last_packet_ms = ms

    def receiving(self, now_ms: float) -> bool:
        return now_ms - self.last_packet_ms < LAYER_TIMEOUT_MS

    def sample(self, now_ms: float) -> None:
        """Update bitrate and frame rate (called by the participant's control tick)."""
        prev = self._sample
        self._sample = (now_ms, self.bytes, self.frames)
        if prev is None or now_ms <= prev[0]:
            return
        dt = (now_ms - prev[0]) / 1000.0
        rate = (self.bytes - prev[1]) * 8 / dt
        fps = (self.frames - prev[2]) / dt
        if not self.receiving(now_ms):
            # keep the last figures: a layer switched off by dynacast still has a known cost
            return
        # smoothed over ~2 samples: keyframes make single windows spiky
        self.bitrate_bps = int(rate if not self.bitrate_bps else 0.5 * self.bitrate_bps
                               + 0.5 * rate)
        self.fps = fps if not self.fps else 0.5 * self.fps + 0.5 * fps

    def describe(self) -> dict[str, object]:
        return {"rid": self.rid, "bitrate": self.bitrate_bps, "fps": round(self.fps, 1),
                "width": self.width, "height": self.height, "enabled": self.enabled}


#: a layer counts as not arriving after this long without a packet
LAYER_TIMEOUT_MS = 1000.0


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
        rids: tuple[str, ...] = (),
        publisher_role: str = "student",
        twcc: TwccRecorder | None = None,
        on_audio_level: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.id = track_id
        self.participant_id = participant_id
        self.kind = kind
        self.source = source
        self.mid = mid
        self.codec = codec
        self.publisher_pt = publisher_pt
        self.publisher_role = publisher_role
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.muted = False
        self.closed = False
        self.subscriptions: list[Subscription] = []
        self._ext_id_map = build_id_map(ext_map)
        #: the publisher sends RFC 6464 audio levels (what audio by speech goes by)
        self.has_audio_level = kind == "audio" and AUDIO_LEVEL_ID in ext_map.values()
        #: the compiled ingress step's view of this track (None without the compiled module,
        #: or for a video codec it cannot spot keyframes of: those take the Python path)
        self.ingress_state = ENGINE.track_state(
            publisher_pt, codec.pt, self._ext_id_map, video=kind == "video",
            twcc=twcc, level=on_audio_level is not None)
        counters = self.ingress_state if self.ingress_state is not None else IngressCounters()
        self.stats = TrackStats(counters)
        #: the speech gate's fields (``sfu.speech_gate``; off unless the room gates it)
        self.gate = counters
        #: the room's answer to a closed gate's loud packet (None: not gated)
        self._gate_ask: Callable[[PublishedTrack, float], bool] | None = None
        #: times the gate opened (a speaker's utterance forwarded from its first packet)
        self.gate_opens = 0
        #: loud packets of a closed gate the room did not let through (slots all taken)
        self.gate_refusals = 0
        if kind == "video" and codec.name.upper() != "VP8":
            self.ingress_state = None
        self._needs_rewrite = publisher_pt != codec.pt
        self._upstream = upstream
        self._receiver_ssrc = receiver_ssrc
        self._caches: dict[int, Cache] = {}
        self.layers = [Layer(self, i, rid, keyframe_interval_ms)
                       for i, rid in enumerate(rids or (None,))]
        self.simulcast = bool(rids)
        self._is_video = kind == "video"
        self._detect_keyframe = keyframe_detector(codec.name)
        self._fast_keyframe = ENGINE.vp8_keyframe if codec.name.upper() == "VP8" else None
        self.twcc = twcc
        self.on_audio_level = on_audio_level
        #: last sender report from the publisher per ssrc: (ntp middle 32 bits, arrival ms)
        self.last_sr: dict[int, tuple[int, float]] = {}

    @property
    def upstream(self) -> MediaTransport:
        """The publisher's transport: where this track's NACKs and keyframe requests go."""
        return self._upstream

    @upstream.setter
    def upstream(self, transport: MediaTransport) -> None:
        self._upstream = transport

    @property
    def current_ssrc(self) -> int | None:
        """The SSRC of the top layer that is arriving (for reports and metrics)."""
        for layer in reversed(self.layers):
            if layer.current_ssrc is not None:
                return layer.current_ssrc
        return None

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "participantId": self.participant_id,
            "kind": self.kind,
            "source": self.source,
            "muted": self.muted,
        }
        if self.simulcast:
            out["layers"] = [layer.rid for layer in self.layers]
        return out

    def layer_by_rid(self, rid: str) -> Layer | None:
        for layer in self.layers:
            if layer.rid == rid:
                return layer
        return None

    # -- ingress ----------------------------------------------------------------------

    def on_rtp(self, data: bytes, ssrc: int, seq: int, ts: int, now_ms: float,
               layer: Layer | None = None) -> None:
        if layer is None:
            layer = self.layers[0]
        offsets = 0
        if data[0] & 0x10 or self._needs_rewrite:
            data, offsets = _rewrite(data, self._ext_id_map, self.codec.pt)
        twcc_off = offsets & 0xFFFF
        if twcc_off and self.twcc is not None:
            # every packet, duplicates too: the publisher wants feedback on each one
            self.twcc.on_packet((data[twcc_off] << 8) | data[twcc_off + 1], now_ms)
        tracker = layer.trackers.get(ssrc)
        if tracker is None:
            tracker = self._new_source(layer, ssrc)
        ext = tracker.update(seq, ts, now_ms)
        stats = self.stats
        if ext < 0:
            stats.duplicates += 1
            return
        stats.packets_in += 1
        stats.bytes_in += len(data)
        layer.packets += 1
        layer.bytes += len(data)
        layer.last_packet_ms = now_ms
        keyframe = gated = False
        if self._is_video:
            if tracker.missing:
                self._nack_upstream(ssrc, tracker.missing)
            if data[1] & 0x80:
                layer.frames += 1
            keyframe = self._keyframe(data, layer)
        elif not self.muted:
            level_off = offsets >> 16
            if level_off and self.on_audio_level is not None:
                self.on_audio_level(self.participant_id, data[level_off], now_ms)
            # audio by speech: silent, or not among the room's speakers now
            gated = bool(self.gate.gate) and not self._gate_passes(
                data[level_off] if level_off else NO_LEVEL, now_ms)
        self._caches[ssrc].put(ext, data)
        if gated or self.muted or ssrc != layer.current_ssrc:
            return  # late packets of a previous SSRC are kept for NACKs, not forwarded
        index = layer.index
        if tracker.restarts != layer.restarts_seen:
            layer.restarts_seen = tracker.restarts
            self._sources_changed()  # the compiled ingress step takes the source again
            for sub in self.subscriptions:
                if sub.selector.current == index:
                    sub.forwarder.resync()  # output continues without a sequence jump
        # the subscribers of this layer: with the compiled fan-out, one C call forwards to
        # all of them in the steady case and leaves switches, resyncs and late packets to
        # the Python path (status 1); without it, every one takes the Python path
        plan = layer.plan
        if plan is None:
            plan = layer.plan = FanoutPlan(self.subscriptions, layer)
        if plan.n and _fanout(data, len(data), data[1], ssrc, ext, ts, now_ms, twcc_off,
                              plan.array, plan.n):
            for sub in plan.subs:
                if sub.dest.status:
                    sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)
        for sub in plan.python_subs:
            sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)
        if keyframe:
            for sub in self.subscriptions:
                sel = sub.selector
                if sel.current != index and sel.target == index and sel.accept(index, True):
                    sub.forwarder.resync()  # continuous seq/ts across the layer switch
                    sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)

    def after_ingress(self, flags: int, rx: Any, data: bytes, layer: Layer) -> None:
        """What the compiled ingress step (``sfu.engine``'s ``ingress``) left to Python of
        :meth:`on_rtp` for a packet it handled (``rx``: its results; ``data``: the
        rewritten packet; the step has put it in the retransmission cache)."""
        now_ms = rx.now_ms
        if flags & IN_TWCC and self.twcc is not None:
            self.twcc.on_packet(rx.twcc_seq, now_ms)
        if flags & IN_LEVEL and self.on_audio_level is not None:
            self.on_audio_level(self.participant_id, rx.level, now_ms)
        ssrc = rx.ssrc
        if flags & IN_NACK:
            tracker = layer.trackers.get(ssrc)
            if tracker is not None:
                self._nack_upstream(ssrc, tracker.missing)
        if flags & IN_LEFT and layer.plan is not None:
            plan = layer.plan
            ext, ts, twcc_off = rx.ext, rx.ts, rx.twcc_off
            for sub in plan.subs:
                if sub.dest.status:
                    sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)
            for sub in plan.python_subs:
                sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)
        elif flags & IN_GATE and self._gate_opened(now_ms):
            # the compiled step did not forward it: every subscriber takes the Python path
            # once (resynced: the output continues without a sequence gap)
            ext, ts, twcc_off = rx.ext, rx.ts, rx.twcc_off
            for sub in self.subscriptions:
                if sub.selector.current == layer.index:
                    sub.forward(data, ssrc, ext, ts, now_ms, twcc_off)

    # -- audio by speech (sfu.speech_gate) ----------------------------------------------

    def gate_by_speech(self, ask: Callable[[PublishedTrack, float], bool], *,
                       threshold_dbov: int, hold_ms: float) -> None:
        """Forward this microphone only while the room's selection lets it (``ask``: a
        closed gate's loud packet; True opens it)."""
        self._gate_ask = ask
        configure(self.gate, threshold_dbov=threshold_dbov, hold_ms=hold_ms)

    def _gate_passes(self, level_byte: int, now_ms: float) -> bool:
        step = gate_step(self.gate, level_byte, now_ms)
        if step == FORWARD:
            return True
        return step == ASK and self._gate_opened(now_ms)

    def _gate_opened(self, now_ms: float) -> bool:
        """A closed gate's loud packet: open it if the room lets it (then every
        subscription resyncs), else count the packet as suppressed."""
        ask = self._gate_ask
        if ask is None or not ask(self, now_ms):
            self.gate.gate_suppressed += 1
            self.gate_refusals += 1
            return False
        self.gate.gate_open = 1
        self.gate_opens += 1
        for sub in self.subscriptions:
            sub.forwarder.resync()
        return True

    def ingress_source(self, layer: Layer, ssrc: int) -> tuple[Any, Cache] | None:
        """(the ``sfu_seq`` of ``ssrc``, its retransmission cache) when the compiled ingress
        step can take its packets now: the layer's current source, not muted, no restart
        pending; None otherwise."""
        tracker = layer.trackers.get(ssrc)
        cache = self._caches.get(ssrc)
        if (self.ingress_state is None or self.muted or self.closed or tracker is None
                or cache is None or ssrc != layer.current_ssrc
                or tracker.restarts != layer.restarts_seen):
            return None
        return tracker.state, cache

    def _keyframe(self, data: bytes, layer: Layer) -> bool:
        fast = self._fast_keyframe
        if fast is not None:  # VP8, compiled: header and descriptor walked in one call
            if not fast(data, len(data)):
                return False
            offset = header_length(data)
        else:
            try:
                offset = header_length(data)
            except RtpHeaderError:
                return False
            detect = self._detect_keyframe
            if detect is None or not detect(data, offset):
                return False
        layer.keyframes += 1
        if self.codec.name == "VP8":
            size = vp8_resolution(data, offset)
            if size is not None:
                layer.width, layer.height = size
        return True

    def _new_source(self, layer: Layer, ssrc: int) -> SequenceTracker:
        if layer.trackers:
            self.stats.ssrc_changes += 1
        # keep only the newest few sources (a publisher that reconnects gets a new SSRC)
        while len(layer.trackers) >= 3:
            oldest = next(iter(layer.trackers))
            del layer.trackers[oldest]
            self._caches.pop(oldest, None)
        tracker = ENGINE.sequence_tracker(self.codec.clock_rate)
        layer.restarts_seen = 0
        layer.trackers[ssrc] = tracker
        self._caches[ssrc] = ENGINE.retransmit_cache()
        layer.current_ssrc = ssrc
        self._sources_changed()  # the compiled ingress step learns the new source
        return tracker

    def cached(self, ssrc: int, ext_seq: int) -> bytes | None:
        cache = self._caches.get(ssrc)
        return cache.get(ext_seq) if cache is not None else None

    def tracker(self, ssrc: int) -> SequenceTracker | None:
        for layer in self.layers:
            found = layer.trackers.get(ssrc)
            if found is not None:
                return found
        return None

    # -- towards the publisher --------------------------------------------------------

    def _nack_upstream(self, ssrc: int, missing: range) -> None:
        self.stats.nacks_sent += 1
        self._upstream.send_rtcp(rtcp.build_nack(self._receiver_ssrc, ssrc, missing))

    def request_keyframe(self, now_ms: float, layer: int | None = None) -> bool:
        """PLI to the publisher for one layer (default: every layer someone receives or
        waits for), throttled to one per interval per layer."""
        if self.kind != "video":
            return False
        if layer is None:
            wanted = {max(s.selector.current, s.selector.target) for s in self.subscriptions}
            indexes = [i for i in range(len(self.layers)) if i in wanted] or [0]
        else:
            indexes = [layer] if 0 <= layer < len(self.layers) else []
        sent = False
        for i in indexes:
            target = self.layers[i]
            if target.current_ssrc is None or not target.keyframe_throttle.should_send(now_ms):
                continue
            self.stats.plis_sent += 1
            self._upstream.send_rtcp(rtcp.build_pli(self._receiver_ssrc, target.current_ssrc))
            sent = True
        return sent

    def receiver_report_blocks(self, now_ms: float) -> list[rtcp.ReportBlock]:
        blocks = []
        for layer in self.layers:
            ssrc = layer.current_ssrc
            tracker = layer.trackers.get(ssrc) if ssrc is not None else None
            if tracker is None or ssrc is None or tracker.max_ext < 0:
                continue
            fraction, lost, highest, jitter = tracker.report_block()
            lsr, dlsr = 0, 0
            sr = self.last_sr.get(ssrc)
            if sr is not None:
                lsr = sr[0]
                dlsr = min(0xFFFFFFFF, int((now_ms - sr[1]) * 65.536))
            blocks.append(rtcp.ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        return blocks

    def video_ssrcs(self) -> list[int]:
        return [la.current_ssrc for la in self.layers if la.current_ssrc is not None]

    # -- subscriptions ----------------------------------------------------------------

    # -- what the compiled steps were told: made again after a change -------------------

    def invalidate_plans(self) -> None:
        """The set of subscribers forwarding a layer, or how one is reached, changed: each
        layer's fan-out plan is made again at its next packet."""
        for layer in self.layers:
            layer.invalidate_plan()

    def _sources_changed(self) -> None:
        """Which sources the compiled ingress step may take changed (a new or restarted
        SSRC, mute, close): the publisher transport's table is made again, and the plans."""
        self.upstream.invalidate_ingress()
        self.invalidate_plans()

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)
        self.invalidate_plans()

    def remove_subscription(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
            self.invalidate_plans()

    def set_muted(self, muted: bool, now_ms: float) -> None:
        if muted == self.muted:
            return
        self.muted = muted
        self.gate.gate_open = 0  # its slot is free; unmuted, it asks again
        self._sources_changed()  # a muted track's packets take the Python path (not forwarded)
        if not muted:
            # output continues without a sequence gap; video needs a keyframe to resume
            for sub in self.subscriptions:
                sub.forwarder.resync()
            self.request_keyframe(now_ms)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._sources_changed()
        for sub in list(self.subscriptions):
            sub.close()
        self.subscriptions.clear()


class _Sent:
    __slots__ = ("packets", "bytes")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0


class SubscriptionStats:
    __slots__ = ("_sent", "nacks", "retransmits", "retransmit_misses",
                 "retransmits_suppressed", "plis", "firs", "fraction_lost", "rtt_ms", "remb_bps",
                 "bandwidth_pauses")

    def __init__(self, sent: Any = None) -> None:
        """``sent``: where the packet/byte counts live (the compiled fan-out's C struct
        counts there; default a Python object)."""
        self._sent = sent if sent is not None else _Sent()
        self.nacks = 0
        self.retransmits = 0
        self.retransmit_misses = 0
        self.retransmits_suppressed = 0
        self.plis = 0
        self.firs = 0
        self.fraction_lost = 0.0
        self.rtt_ms: float | None = None
        self.remb_bps = 0
        self.bandwidth_pauses = 0

    @property
    def packets(self) -> int:
        return int(self._sent.packets)

    @packets.setter
    def packets(self, n: int) -> None:
        self._sent.packets = n

    @property
    def bytes(self) -> int:
        return int(self._sent.bytes)

    @bytes.setter
    def bytes(self, n: int) -> None:
        self._sent.bytes = n


class FanoutPlan:
    """The subscribers of one layer the compiled fan-out sends to: those forwarding this
    layer (``selector.current``) and active, in subscription order, each with the compiled
    connection of its transport (NULL, i.e. the Python path, without one). Valid until the
    objects it was made from say otherwise (:meth:`Layer.invalidate_plan`): the track's
    subscription set and mute, each subscription's current layer, activation and
    downstream, and each downstream's compiled connection."""

    __slots__ = ("subs", "array", "n", "python_subs")

    def __init__(self, subscriptions: list[Subscription], layer: Layer) -> None:
        index = layer.index
        forwarding = [s for s in subscriptions if s.selector.current == index and s.active]
        self.subs = [s for s in forwarding if s.dest is not None]
        #: subscriptions without a C view (all of them on the Python engine): the Python
        #: path
        self.python_subs = [s for s in forwarding if s.dest is None]
        for s in self.subs:
            t = s.downstream
            fast = getattr(t, "fast_connection", None)
            s.dest.conn = fast if fast is not None else ENGINE.null
        self.array = ENGINE.dest_array([s.dest for s in self.subs]) if self.subs else None
        self.n = len(self.subs)
        c = layer.counters  # the compiled ingress step forwards with it
        c.dests = self.array if self.array is not None else ENGINE.null
        c.n = self.n
        c.python_subs = int(bool(self.python_subs))
        c.plan_version = 0  # valid (-1: made again at the next packet)


class Downstream(Protocol):
    """Where a subscription sends: a subscriber's transport (sfu.transport.MediaTransport),
    or a :class:`PacketDownstream` (a recorder, an edge's uplink). One with a ``fast_connection``
    gets the compiled fan-out; others are sent to from Python. One whose compiled
    connection can change (a transport: connected, failed, closed) has
    ``route_listeners``, a list of callables it calls after each change."""

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool: ...

    def send_rtp(self, packet: bytes) -> bool: ...


class PacketDownstream:
    """A downstream that is no subscriber's transport: each packet, as rewritten for the
    subscription, goes to ``deliver`` (a recorder, an edge's uplink to its origin). The
    compiled fan-out leaves these subscriptions to Python."""

    fast_connection = None

    def __init__(self, deliver: Callable[[bytes], object]) -> None:
        self._deliver = deliver

    def send_rewritten(self, packet: bytes, b1: int, seq: int, ts: int, ssrc: int,
                       twcc_off: int = 0) -> bool:
        buf = bytearray(packet)
        buf[1] = b1
        _SEQ_TS_SSRC_PACK(buf, 2, seq, ts, ssrc)
        self._deliver(bytes(buf))
        return True

    def send_rtp(self, packet: bytes) -> bool:
        """A retransmission (plain RTP: no RTX negotiated)."""
        self._deliver(packet)
        return True


class Subscription:
    """One subscriber receiving one published track."""

    def __init__(
        self,
        track: PublishedTrack,
        downstream: Downstream,
        *,
        out_ssrc: int,
        rtx_ssrc: int,
        rtx_pt: int | None,
        first_seq: int,
        first_ts: int,
        on_close: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.track = track
        self._downstream = downstream
        self.out_ssrc = out_ssrc
        self.rtx_ssrc = rtx_ssrc
        self.rtx_pt = rtx_pt
        state = ENGINE.forwarder_state()
        self.forwarder = RtpForwarder(out_ssrc, track.codec.clock_rate, first_seq, first_ts,
                                      state=state)
        #: the compiled fan-out's view of this subscription (None without it)
        self.dest = ENGINE.dest(state, out_ssrc)
        self.selector = LayerSelector(on_current=track.invalidate_plans)
        if not track.simulcast:
            # one layer: forwarded from the start (audio is never paused; a single-layer
            # video is paused and resumed by the allocator through the selector)
            self.selector.target = self.selector.current = 0
        else:
            self.selector.set_target(0)  # start low; the allocator raises it
        #: the highest layer the subscriber asked for (its view size); -1 = video off
        self.max_layer = len(track.layers) - 1
        #: paused by the allocator for lack of downlink bandwidth (the client was told)
        self.paused_for_bandwidth = False
        self.stats = SubscriptionStats(self.dest)
        self.accepted = False  # the subscriber's answer accepted the m-line and codec
        self._active = False  # accepted and the subscriber transport is connected
        self.closed = False
        self._rtx_seq = first_seq ^ 0x5A5A
        self._resent_ms: dict[int, float] = {}
        #: retransmissions in bytes: a share of the downlink, so NACK storms cannot flood it
        self._retransmit_budget = TokenBucket(*_retransmit_bucket(RETRANSMIT_BUDGET_BPS))
        self._on_close = on_close
        self._watch(downstream)
        #: last SR we sent: compact ntp (middle 32 bits) -> send time in ms
        self.last_sr_ntp: int = 0
        self.last_sr_ms: float = 0.0

    @property
    def active(self) -> bool:
        """Accepted and the subscriber transport is connected."""
        return self._active

    @active.setter
    def active(self, active: bool) -> None:
        if active != self._active:
            self._active = active
            self.track.invalidate_plans()

    @property
    def downstream(self) -> Downstream:
        return self._downstream

    @downstream.setter
    def downstream(self, transport: Downstream) -> None:
        self._unwatch(self._downstream)
        self._downstream = transport
        self._watch(transport)
        self.track.invalidate_plans()

    def _route_changed(self) -> None:
        """The downstream's compiled connection changed."""
        self.track.invalidate_plans()

    def _watch(self, downstream: Downstream) -> None:
        listeners = getattr(downstream, "route_listeners", None)
        if listeners is not None:
            listeners.append(self._route_changed)

    def _unwatch(self, downstream: Downstream) -> None:
        listeners = getattr(downstream, "route_listeners", None)
        if listeners is not None and self._route_changed in listeners:
            listeners.remove(self._route_changed)

    def forward(self, data: bytes, ssrc: int, ext: int, ts: int, now_ms: float,
                twcc_off: int = 0) -> None:
        if not self.active:
            return
        r = self.forwarder.on_packet(ssrc, ext, ts, now_ms)
        if r is None:
            return
        if self.downstream.send_rewritten(data, data[1], r[0], r[1], self.out_ssrc, twcc_off):
            stats = self.stats
            stats.packets += 1
            stats.bytes += len(data)

    def activate(self, now_ms: float) -> None:
        if self.active or self.closed:
            return
        self.active = True
        self.forwarder.resync()
        sel = self.selector
        self.track.request_keyframe(now_ms, sel.target if sel.target >= 0 else max(sel.current, 0))

    def follow_top_layer(self, now_ms: float) -> None:
        """Go to the top simulcast layer that is arriving (the publisher may have stopped
        sending the top one for lack of bandwidth): a recorder's choice, an uplink's."""
        layers = self.track.layers
        if len(layers) < 2:
            return
        best = max((layer.index for layer in layers if layer.receiving(now_ms)),
                   default=len(layers) - 1)
        if best != self.selector.target:
            self.set_target_layer(best, now_ms)

    def set_target_layer(self, layer: int, now_ms: float, at_once: bool = False) -> None:
        """The allocator's choice; a layer not being received yet needs its keyframe.
        ``at_once``: a step down stops the current layer now (see LayerSelector)."""
        if self.selector.set_target(layer, at_once) and self.active:
            self.track.request_keyframe(now_ms, layer)

    def set_retransmit_budget(self, bps: float) -> None:
        """Bit/s this subscription may spend on retransmissions (the participant's share of
        the downlink left over by the allocation)."""
        self._retransmit_budget.set_rate(*_retransmit_bucket(bps))

    def on_nack(self, seqs: tuple[int, ...], now_ms: float) -> None:
        """Resend NACKed packets from the cache, RTX-wrapped where negotiated.

        Bounded against amplification: each sequence number once per NACK, at most
        ``MAX_NACK_SEQS`` per NACK, the same packet at most once per ``RESEND_GUARD_MS``,
        and a byte budget per subscription (``set_retransmit_budget``). Video packets sent
        before the last layer switch or resume, or while paused, are not resent: the
        decoder restarted at that keyframe and cannot use them, and a browser keeps asking
        for them (up to 10 times each), which on a congested link is a flood that starves
        the audio.
        """
        self.stats.nacks += 1
        budget = self._retransmit_budget
        budget.refill(now_ms)
        resent = self._resent_ms
        video = self.track.kind == "video"
        if video and self.selector.current < 0:
            self.stats.retransmits_suppressed += len(seqs)
            return
        for out_seq in list(dict.fromkeys(seqs))[:MAX_NACK_SEQS]:
            last = resent.get(out_seq)
            if last is not None and now_ms - last < RESEND_GUARD_MS:
                self.stats.retransmits_suppressed += 1
                continue
            found = self.forwarder.lookup(out_seq, current_segment=video)
            packet = self.track.cached(found[0], found[1]) if found is not None else None
            if packet is None or found is None:
                self.stats.retransmit_misses += 1
                continue
            if not budget.take(len(packet)):
                self.stats.retransmits_suppressed += 1
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
        # the decoder is broken on the layer it receives; a pending switch needs one too
        sel = self.selector
        for layer in {sel.current, sel.target}:
            if layer >= 0:
                self.track.request_keyframe(now_ms, layer)

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
        self._unwatch(self._downstream)
        self.track.remove_subscription(self)
        if self._on_close is not None:
            self._on_close(self)
