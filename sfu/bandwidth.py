"""Downlink bandwidth estimate for one subscriber (SFU -> browser), sans-IO.

Fed what the browser sends back (transport-wide feedback, REMB, receiver-report loss) and
the SFU's clock in milliseconds; answers ``estimate_bps(now_ms)`` for the allocator. The
delay-based part follows GCC (draft-ietf-rmcat-gcc-02) as libwebrtc implements it: send
bursts grouped like ``InterArrival``, a least-squares trendline over the accumulated
delay variation like ``TrendlineEstimator``, an overuse detector with an adaptive
threshold, and AIMD rate control. The SFU sends no padding probes, so the increase is not
capped at a multiple of the acknowledged rate as GCC does; see docs/bandwidth-estimation.md.
"""

from __future__ import annotations

from typing import Final, Literal

from .twcc import SentPackets, TwccFeedback

BandwidthUsage = Literal["normal", "overusing", "underusing"]
NORMAL: Final = "normal"
OVERUSING: Final = "overusing"
UNDERUSING: Final = "underusing"

_REF_MOD = 1 << 24
_HALF_REF = 1 << 23
#: delta counts fed to the trendline gain saturate here (libwebrtc kMinNumDeltas)
_MAX_NUM_DELTAS = 60
#: overuse must last this long (sum of group send deltas) before it is signalled
_OVERUSE_TIME_MS = 10.0
_THRESHOLD_MIN, _THRESHOLD_MAX, _THRESHOLD_INIT = 6.0, 600.0, 12.5
_MAX_ADAPT_OFFSET_MS = 15.0
_K_UP, _K_DOWN = 0.0087, 0.039
#: a group arrival gap this much larger than its send gap means a pause/clock jump: reset
_ARRIVAL_JUMP_MS = 3000.0
_REORDER_RESET = 3
_BURST_DELTA_MS = 5.0
_MAX_BURST_MS = 100.0
#: time credited to one rate-control step at most (feedback gaps do not become jumps)
_MAX_STEP_MS = 500.0
_ACKED_RING = 8192
_MIN_ACKED_SPAN_MS = 250.0
#: a short run of feedback (at least this many packets sent since the last cut) with at
#: least this share lost is a congested bottleneck: cut at once, do not wait for a window
_BURST_LOSS_FRACTION = 0.4
_BURST_LOSS_MIN_PACKETS = 6
#: arrivals must span this long for their rate to say what the bottleneck delivers
_BURST_LOSS_MIN_SPAN_MS = 20.0
#: feedback gathered for one burst decision spans at most this long
_BURST_MAX_MS = 300.0
#: no feedback for this long, then feedback again: the path was down (a network outage),
#: not congested; what was sent meanwhile was lost to the outage and says nothing about
#: the capacity (the reconnection tests saw an 8 s cut pause video for 15 s without this)
_OUTAGE_MS = 2000.0


class _Trendline:
    """Inter-group delay variation -> trend of the queueing delay -> usage hypothesis."""

    __slots__ = (
        "window",
        "smoothing",
        "gain",
        "_xs",
        "_ys",
        "_n",
        "_pos",
        "_first_arrival",
        "_accumulated",
        "_smoothed",
        "_num_deltas",
        "_prev_trend",
        "_time_over",
        "_over_count",
        "threshold",
        "_last_threshold_ms",
        "modified_trend",
        "state",
    )

    def __init__(self, window: int, smoothing: float, gain: float) -> None:
        self.window = window
        self.smoothing = smoothing
        self.gain = gain
        self._xs = [0.0] * window
        self._ys = [0.0] * window
        self.reset()

    def reset(self) -> None:
        self._n = 0
        self._pos = 0
        self._first_arrival: float | None = None
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._num_deltas = 0
        self._prev_trend = 0.0
        self._time_over = -1.0
        self._over_count = 0
        self.threshold = _THRESHOLD_INIT
        self._last_threshold_ms: float | None = None
        self.modified_trend = 0.0
        self.state: BandwidthUsage = NORMAL

    def update(self, recv_delta_ms: float, send_delta_ms: float, arrival_ms: float) -> None:
        self._num_deltas = min(self._num_deltas + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = arrival_ms
        self._accumulated += recv_delta_ms - send_delta_ms
        self._smoothed = (
            self.smoothing * self._smoothed + (1.0 - self.smoothing) * self._accumulated
        )
        self._xs[self._pos] = arrival_ms - self._first_arrival
        self._ys[self._pos] = self._smoothed
        self._pos = (self._pos + 1) % self.window
        if self._n < self.window:
            self._n += 1
        trend = self._prev_trend
        if self._n == self.window:
            slope = self._slope()
            if slope is not None:
                trend = slope
        self._detect(trend, send_delta_ms, arrival_ms)

    def _slope(self) -> float | None:
        xs, ys, n = self._xs, self._ys, self._n
        x_avg = sum(xs) / n
        y_avg = sum(ys) / n
        num = 0.0
        den = 0.0
        for i in range(n):
            dx = xs[i] - x_avg
            num += dx * (ys[i] - y_avg)
            den += dx * dx
        return num / den if den > 0.0 else None

    def _detect(self, trend: float, send_delta_ms: float, now_ms: float) -> None:
        if self._num_deltas < 2:
            self.state = NORMAL
            return
        modified = min(self._num_deltas, _MAX_NUM_DELTAS) * trend * self.gain
        self.modified_trend = modified
        if modified > self.threshold:
            if self._time_over < 0:
                self._time_over = send_delta_ms / 2.0
            else:
                self._time_over += send_delta_ms
            self._over_count += 1
            if (
                self._time_over > _OVERUSE_TIME_MS
                and self._over_count > 1
                and trend >= self._prev_trend
            ):
                self._time_over = 0.0
                self._over_count = 0
                self.state = OVERUSING
        elif modified < -self.threshold:
            self._time_over = -1.0
            self._over_count = 0
            self.state = UNDERUSING
        else:
            self._time_over = -1.0
            self._over_count = 0
            self.state = NORMAL
        self._prev_trend = trend
        self._adapt_threshold(modified, now_ms)

    def _adapt_threshold(self, modified: float, now_ms: float) -> None:
        """Threshold follows |trend| slowly up, faster down (GCC 5.4), so a competing
        TCP flow's standing queue does not starve us and noise does not trigger."""
        last = self._last_threshold_ms
        self._last_threshold_ms = now_ms
        if last is None:
            return
        magnitude = abs(modified)
        if magnitude > self.threshold + _MAX_ADAPT_OFFSET_MS:
            return  # a spike: do not let it drag the threshold up
        k = _K_DOWN if magnitude < self.threshold else _K_UP
        dt = min(max(now_ms - last, 0.0), 100.0)
        threshold = self.threshold + k * (magnitude - self.threshold) * dt
        self.threshold = min(max(threshold, _THRESHOLD_MIN), _THRESHOLD_MAX)


class DownlinkEstimator:
    """Estimate of one subscriber's downlink in bit/s.

    Call ``on_twcc`` for each parsed transport-wide feedback (with the ``SendHistory`` of
    the transport it acknowledges), ``on_remb`` for each REMB, ``on_receiver_loss`` with
    the fraction lost from receiver reports, and read ``estimate_bps(now_ms)`` whenever
    allocating. Only ``now_ms`` values passed in are used as time.
    """

    __slots__ = (
        "initial_bps",
        "min_bps",
        "max_bps",
        "start_increase_per_s",
        "increase_per_s",
        "backoff",
        "decrease_interval_ms",
        "loss_high",
        "loss_low",
        "loss_decrease_interval_ms",
        "loss_window_ms",
        "loss_min_packets",
        "headroom_factor",
        "stable_ramp_ms",
        "stable_increase_per_s",
        "headroom_step_bps",
        "acked_window_ms",
        "group_ms",
        "remb_timeout_ms",
        "twcc_timeout_ms",
        "state",
        "acked_bps",
        "loss",
        "in_start_phase",
        "_estimate",
        "_trend",
        "_last_ext",
        "_ref_ticks",
        "_ref_unwrapped",
        "_has_group",
        "_has_prev",
        "_g_first_send",
        "_g_send",
        "_g_first_arrival",
        "_g_arrival",
        "_p_send",
        "_p_arrival",
        "_reordered",
        "_acked_t",
        "_acked_sz",
        "_acked_head",
        "_acked_len",
        "_acked_bytes",
        "_acked_max_t",
        "_acked_first_t",
        "_acked_overflow",
        "_loss_lost",
        "_loss_reported",
        "_loss_start_ms",
        "_loss_fresh",
        "_last_decrease_ms",
        "_last_loss_decrease_ms",
        "_last_control_ms",
        "_last_twcc_ms",
        "_remb_bps",
        "_remb_ms",
        "_rr_loss_ms",
        "_outage_ms",
        "_burst_start_ms",
        "_burst_reported",
        "_burst_lost",
        "_burst_bytes",
        "_burst_first_size",
        "_burst_first",
        "_burst_last",
    )

    def __init__(
        self,
        *,
        initial_bps: int = 1_000_000,
        min_bps: int = 50_000,
        max_bps: int = 8_000_000,
        start_increase_per_s: float = 1.5,
        increase_per_s: float = 1.08,
        backoff: float = 0.85,
        decrease_interval_ms: float = 200.0,
        loss_high: float = 0.10,
        loss_low: float = 0.02,
        loss_decrease_interval_ms: float = 300.0,
        loss_window_ms: float = 500.0,
        loss_min_packets: int = 20,
        headroom_factor: float = 2.0,
        headroom_step_bps: float = 100_000.0,
        stable_ramp_ms: float = 3000.0,
        stable_increase_per_s: float = 1.15,
        acked_window_ms: float = 500.0,
        group_ms: float = 5.0,
        trendline_window: int = 20,
        trendline_smoothing: float = 0.9,
        threshold_gain: float = 4.0,
        remb_timeout_ms: float = 2000.0,
        twcc_timeout_ms: float = 2000.0,
    ) -> None:
        if not 0 < min_bps <= initial_bps <= max_bps:
            raise ValueError("need 0 < min_bps <= initial_bps <= max_bps")
        if trendline_window < 2:
            raise ValueError("trendline_window must be at least 2")
        self.initial_bps = initial_bps
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.start_increase_per_s = start_increase_per_s
        self.increase_per_s = increase_per_s
        self.backoff = backoff
        self.decrease_interval_ms = decrease_interval_ms
        self.loss_high = loss_high
        self.loss_low = loss_low
        self.loss_decrease_interval_ms = loss_decrease_interval_ms
        self.loss_window_ms = loss_window_ms
        self.loss_min_packets = loss_min_packets
        self.headroom_factor = headroom_factor
        self.headroom_step_bps = headroom_step_bps
        self.stable_ramp_ms = stable_ramp_ms
        self.stable_increase_per_s = stable_increase_per_s
        self.acked_window_ms = acked_window_ms
        self.group_ms = group_ms
        self.remb_timeout_ms = remb_timeout_ms
        self.twcc_timeout_ms = twcc_timeout_ms
        #: delay-based usage hypothesis from the last send group
        self.state: BandwidthUsage = NORMAL
        #: bit/s the browser acknowledged receiving over the last ``acked_window_ms``
        self.acked_bps = 0
        #: fraction of reported packets lost (TWCC window, or receiver reports without TWCC)
        self.loss = 0.0
        #: exponential start-up until the first overuse or heavy loss
        self.in_start_phase = True
        self._estimate = float(initial_bps)
        self._trend = _Trendline(trendline_window, trendline_smoothing, threshold_gain)
        self._last_ext = -1
        self._ref_ticks = -1
        self._ref_unwrapped = 0
        self._has_group = False  # a send group is being filled
        self._has_prev = False  # a complete group precedes it
        self._g_first_send = 0.0
        self._g_send = 0.0
        self._g_first_arrival = 0.0
        self._g_arrival = 0.0
        self._p_send = 0.0
        self._p_arrival = 0.0
        self._reordered = 0
        self._acked_t = [0.0] * _ACKED_RING
        self._acked_sz = [0] * _ACKED_RING
        self._acked_head = 0
        self._acked_len = 0
        self._acked_bytes = 0
        self._acked_max_t = float("-inf")
        self._acked_first_t: float | None = None
        self._acked_overflow = False
        self._loss_lost = 0
        self._loss_reported = 0
        self._loss_start_ms: float | None = None
        self._loss_fresh = False
        self._last_decrease_ms = float("-inf")
        self._last_loss_decrease_ms = float("-inf")
        self._last_control_ms: float | None = None
        self._last_twcc_ms = float("-inf")
        self._remb_bps = 0
        self._remb_ms = float("-inf")
        self._rr_loss_ms = float("-inf")
        self._outage_ms = float("-inf")
        self._burst_start_ms = -1.0
        self._burst_reported = self._burst_lost = 0
        self._burst_bytes = self._burst_first_size = 0
        self._burst_first = self._burst_last = -1.0

    # --- inputs --------------------------------------------------------------------------

    def on_twcc(self, feedback: TwccFeedback, history: SentPackets, now_ms: float) -> None:
        """One transport-wide feedback from the subscriber, about packets in ``history``.

        Packets not in the history (never sent, too old, or garbage) and packets already
        reported by an earlier feedback are ignored.
        """
        if now_ms - self._last_twcc_ms > _OUTAGE_MS and self._last_twcc_ms > float("-inf"):
            self._after_outage(now_ms)
        self._last_twcc_ms = now_ms
        offset = self._unwrap_reference(feedback.reference_time_ms)
        last_ext = self._last_ext
        reported = lost = 0
        # loss of packets sent before our last cut says nothing about the new rate (they
        # are the overshoot still draining): only later packets count towards the next cut
        cut_ms = max(self._last_decrease_ms, self._last_loss_decrease_ms, self._outage_ms)
        for seq, arrival in feedback.packets:
            if last_ext < 0:
                ext = seq + (1 << 16)
            else:
                diff = (seq - last_ext) & 0xFFFF
                ext = last_ext + diff if diff < 0x8000 else last_ext + diff - 0x10000
                if ext <= last_ext:
                    continue  # reported before (overlapping or reordered feedback)
            sent = history.lookup(seq)
            if sent is None:
                continue
            last_ext = ext
            send_ms, size = sent
            counts = send_ms >= cut_ms
            reported += counts
            if arrival is None:
                lost += counts
                continue
            arrival += offset
            self._add_acked(arrival, size)
            self._add_to_group(send_ms, arrival)
            # everything that arrives meanwhile: its rate is what the bottleneck delivers
            if self._burst_first < 0 or arrival < self._burst_first:
                self._burst_first, self._burst_first_size = arrival, size
            self._burst_last = max(self._burst_last, arrival)
            self._burst_bytes += size
        self._last_ext = last_ext
        self.state = self._trend.state
        self.acked_bps = self._acked_rate()
        self._add_loss(reported, lost, now_ms)
        self._burst_loss(reported, lost, now_ms)
        self._control(now_ms)

    def on_remb(self, bps: int, now_ms: float) -> None:
        """A REMB from the subscriber: the estimate while no TWCC arrives, a cap while fresh."""
        self._remb_bps = max(0, int(bps))
        self._remb_ms = now_ms
        if not self._twcc_active(now_ms):
            self.in_start_phase = False
            lossy = now_ms - self._rr_loss_ms < self.remb_timeout_ms and self.loss > self.loss_low
            # the browser's own delay-based estimate; while receiver reports show loss it
            # may lower ours but not raise it
            target = min(self._estimate, bps) if lossy else bps
            self._estimate = self._clamp(target)
            self._last_control_ms = now_ms

    def on_receiver_loss(self, fraction: float, now_ms: float) -> None:
        """Fraction lost (0..1) from an RTCP receiver report; ignored while TWCC flows."""
        if self._twcc_active(now_ms):
            return
        fraction = min(max(fraction, 0.0), 1.0)
        self.loss = fraction
        self._rr_loss_ms = now_ms
        if fraction > self.loss_high:
            self._loss_decrease(now_ms)
            self._last_control_ms = now_ms
        elif fraction < self.loss_low:
            self._increase(now_ms, self.increase_per_s)
        else:
            self._last_control_ms = now_ms

    # --- output --------------------------------------------------------------------------

    def estimate_bps(self, now_ms: float) -> int:
        estimate = self._estimate
        if now_ms - self._remb_ms < self.remb_timeout_ms and self._remb_bps < estimate:
            estimate = self._remb_bps
        return int(self._clamp(estimate))

    # --- internals -----------------------------------------------------------------------

    def _twcc_active(self, now_ms: float) -> bool:
        return now_ms - self._last_twcc_ms < self.twcc_timeout_ms

    def _clamp(self, bps: float) -> float:
        return min(max(bps, float(self.min_bps)), float(self.max_bps))

    def _unwrap_reference(self, reference_ms: float) -> float:
        """Offset turning this feedback's arrival times into one continuous receiver clock
        (the 24-bit reference time wraps every ~12 days, or jumps at its sign change)."""
        ticks = int(reference_ms // 64) % _REF_MOD
        if self._ref_ticks < 0:
            self._ref_unwrapped = ticks
        else:
            diff = (ticks - self._ref_ticks) % _REF_MOD
            if diff >= _HALF_REF:
                diff -= _REF_MOD
            self._ref_unwrapped += diff
        self._ref_ticks = ticks
        return self._ref_unwrapped * 64.0 - reference_ms

    def _add_to_group(self, send_ms: float, arrival_ms: float) -> None:
        """Group packets sent within ``group_ms`` (or arriving in one burst), like libwebrtc's
        InterArrival; each completed group pair gives one delay-variation sample."""
        if not self._has_group:
            self._start_group(send_ms, arrival_ms)
            return
        if send_ms < self._g_first_send:
            return  # sent before the current group started: out of order, unusable
        if not self._new_group(send_ms, arrival_ms):
            if send_ms > self._g_send:
                self._g_send = send_ms
            self._g_arrival = arrival_ms
            return
        if self._has_prev:
            send_delta = self._g_send - self._p_send
            arrival_delta = self._g_arrival - self._p_arrival
            if arrival_delta - send_delta >= _ARRIVAL_JUMP_MS:
                self._reset_groups()
                self._start_group(send_ms, arrival_ms)
                return
            if arrival_delta < 0:
                self._reordered += 1
                if self._reordered >= _REORDER_RESET:
                    self._reset_groups()
                    self._start_group(send_ms, arrival_ms)
                    return
            else:
                self._reordered = 0
                self._trend.update(arrival_delta, send_delta, self._g_arrival)
        self._p_send = self._g_send
        self._p_arrival = self._g_arrival
        self._has_prev = True
        self._start_group(send_ms, arrival_ms)

    def _new_group(self, send_ms: float, arrival_ms: float) -> bool:
        arrival_delta = arrival_ms - self._g_arrival
        send_delta = send_ms - self._g_send
        if send_delta == 0:
            return False
        if (
            arrival_delta - send_delta < 0
            and arrival_delta <= _BURST_DELTA_MS
            and arrival_ms - self._g_first_arrival < _MAX_BURST_MS
        ):
            return False  # arrived in a burst after being queued: same group
        return send_ms - self._g_first_send > self.group_ms

    def _start_group(self, send_ms: float, arrival_ms: float) -> None:
        self._has_group = True
        self._g_first_send = send_ms
        self._g_send = send_ms
        self._g_first_arrival = arrival_ms
        self._g_arrival = arrival_ms

    def _reset_groups(self) -> None:
        self._has_group = False
        self._has_prev = False
        self._reordered = 0
        self._trend.reset()

    def _add_acked(self, arrival_ms: float, size: int) -> None:
        """Received bytes on the receiver's clock, in a preallocated ring (no allocation)."""
        if self._acked_first_t is None:
            self._acked_first_t = arrival_ms
        if arrival_ms > self._acked_max_t:
            self._acked_max_t = arrival_ms
        n = self._acked_len
        head = self._acked_head
        if n == _ACKED_RING:  # full: forget the oldest
            self._acked_bytes -= self._acked_sz[head]
            head = (head + 1) % _ACKED_RING
            self._acked_head = head
            self._acked_overflow = True
            n -= 1
        i = (head + n) % _ACKED_RING
        self._acked_t[i] = arrival_ms
        self._acked_sz[i] = size
        self._acked_len = n + 1
        self._acked_bytes += size

    def _acked_rate(self) -> int:
        first = self._acked_first_t
        if first is None:
            return 0
        newest = self._acked_max_t
        horizon = newest - self.acked_window_ms
        times, sizes = self._acked_t, self._acked_sz
        head, n = self._acked_head, self._acked_len
        while n and times[head] <= horizon:
            self._acked_bytes -= sizes[head]
            head = (head + 1) % _ACKED_RING
            n -= 1
        self._acked_head, self._acked_len = head, n
        if n == 0:
            return 0
        span = min(self.acked_window_ms, max(newest - first, _MIN_ACKED_SPAN_MS))
        if self._acked_overflow:  # tiny packets overflowed the ring: it may cover less
            span = min(span, max(newest - times[head], _MIN_ACKED_SPAN_MS))
        return int(self._acked_bytes * 8000.0 / span)

    def _add_loss(self, reported: int, lost: int, now_ms: float) -> None:
        if self._loss_start_ms is None:
            self._loss_start_ms = now_ms
        self._loss_reported += reported
        self._loss_lost += lost
        if (
            now_ms - self._loss_start_ms >= self.loss_window_ms
            and self._loss_reported >= self.loss_min_packets
        ):
            self.loss = self._loss_lost / self._loss_reported
            self._loss_fresh = True
            self._loss_reported = self._loss_lost = 0
            self._loss_start_ms = now_ms

    def _control(self, now_ms: float) -> None:
        """AIMD on the delay signal, multiplicative decrease on loss, hold otherwise."""
        if self._loss_fresh:
            self._loss_fresh = False
            if self.loss > self.loss_high:
                self._loss_decrease(now_ms)
        if self.state == OVERUSING:
            self.in_start_phase = False
            if now_ms - self._last_decrease_ms >= self.decrease_interval_ms:
                # just under what the congested path delivered, to drain the queue; never an
                # increase (a sender ignoring the estimate can push acked above it)
                if self.acked_bps > 0:
                    target = self.backoff * self.acked_bps
                else:
                    target = self.backoff * self._estimate
                if target < self._estimate:
                    self._estimate = self._clamp(target)
                self._last_decrease_ms = now_ms
            self._last_control_ms = now_ms
            return
        if self.state == UNDERUSING or self.loss >= self.loss_low:
            self._last_control_ms = now_ms  # hold: let the queue drain / loss settle
            return
        # normal, low loss: the link demonstrably carried the acknowledged rate for a
        # whole window since our last cut, so the estimate cannot sensibly be below it
        if (
            now_ms - max(self._last_decrease_ms, self._last_loss_decrease_ms)
            >= self.acked_window_ms
            and self.acked_bps > self._estimate
        ):
            self._estimate = self._clamp(float(self.acked_bps))
        # after a calm period (no cut for stable_ramp_ms) climb as fast as at the start:
        # without probes this is what brings video back quickly once a cap is lifted; the
        # headroom cap in _increase still keeps the estimate near what was really carried
        calm = now_ms - max(self._last_decrease_ms, self._last_loss_decrease_ms)
        if self.in_start_phase:
            rate = self.start_increase_per_s
        elif calm >= self.stable_ramp_ms:
            rate = self.stable_increase_per_s
        else:
            rate = self.increase_per_s
        self._increase(now_ms, rate)

    def _increase(self, now_ms: float, factor_per_s: float) -> None:
        """Multiplicative increase over the time since the last control step, capped at
        ``max(headroom_factor * acked, estimate) + headroom_step_bps * dt`` so an idle
        link's estimate climbs only slowly past what was actually tested."""
        last = self._last_control_ms
        self._last_control_ms = now_ms
        if last is None:
            return
        dt_s = min(max(now_ms - last, 0.0), _MAX_STEP_MS) / 1000.0
        if dt_s <= 0.0:
            return
        current = self._estimate
        grown = current * factor_per_s**dt_s
        cap = max(self.headroom_factor * self.acked_bps, current) + self.headroom_step_bps * dt_s
        self._estimate = self._clamp(min(grown, cap))

    def _burst_loss(self, reported: int, lost: int, now_ms: float) -> None:
        """Heavy loss over the last few feedbacks (``_BURST_LOSS_MIN_PACKETS`` packets): a
        sudden cut of the path overflowed its queue. Go at once to just under what the
        bottleneck delivered meanwhile (or, with too few arrivals to tell, the loss cut)
        instead of waiting for the loss window or the trendline, which take 300-600 ms, all
        of it with the audio queued behind video that does not fit."""
        if self._burst_start_ms < 0:
            self._burst_start_ms = now_ms
        self._burst_reported += reported
        self._burst_lost += lost
        total = self._burst_reported
        if total < _BURST_LOSS_MIN_PACKETS:
            if now_ms - self._burst_start_ms > _BURST_MAX_MS:
                self._burst_reset()  # too slow a trickle to be a burst: start over
            return
        fraction = self._burst_lost / total
        span = self._burst_last - self._burst_first
        delivered = ((self._burst_bytes - self._burst_first_size) * 8000.0 / span
                     if span >= _BURST_LOSS_MIN_SPAN_MS else None)
        self._burst_reset()
        if fraction < _BURST_LOSS_FRACTION:
            return
        self.in_start_phase = False
        if now_ms - max(self._last_loss_decrease_ms, self._last_decrease_ms) < (
                self.decrease_interval_ms):
            return
        if delivered is not None:
            target = self.backoff * delivered
        else:
            target = self._estimate * (1.0 - 0.5 * fraction)
        if target < self._estimate:
            self._estimate = self._clamp(target)
        self._last_loss_decrease_ms = now_ms

    def _after_outage(self, now_ms: float) -> None:
        """Feedback resumes after a silence: only packets sent from now on count for loss;
        the delay history is void (arrival times jumped)."""
        self._outage_ms = now_ms
        self._burst_reset()
        self._reset_groups()
        self._loss_reported = self._loss_lost = 0
        self._loss_start_ms = None

    def _burst_reset(self) -> None:
        self._burst_start_ms = -1.0
        self._burst_reported = self._burst_lost = 0
        self._burst_bytes = self._burst_first_size = 0
        self._burst_first = self._burst_last = -1.0

    def _loss_decrease(self, now_ms: float) -> None:
        self.in_start_phase = False
        if now_ms - self._last_loss_decrease_ms < self.loss_decrease_interval_ms:
            return
        reduced = self._estimate * (1.0 - 0.5 * self.loss)
        # never far below what the path is delivering right now: loss while a layer
        # switch drains an overfull queue would otherwise cut the estimate to the floor
        # (seen in the browser test: a 350 kbit/s cap took it to 50 kbit/s and paused video)
        floor = self.backoff * self.acked_bps
        if reduced < self._estimate:
            self._estimate = self._clamp(max(reduced, min(floor, self._estimate)))
        self._last_loss_decrease_ms = now_ms
