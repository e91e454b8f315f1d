"""A subscriber's downlink: its bandwidth estimate (:class:`sfu.bandwidth.DownlinkEstimator`
fed by transport-cc, REMB and receiver-report loss) and what is sent within it: each
subscription's layer (:class:`sfu.allocator.Allocator`), the pauses the client is told
about, and the retransmission budget.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .allocator import Allocator, TrackDemand
from .bandwidth import DownlinkEstimator
from .track import RETRANSMIT_BUDGET_BPS, Subscription
from .twcc import TwccFeedback

log = logging.getLogger(__name__)

UNLIMITED_BPS = 1_000_000_000
#: a subscriber that negotiated transport-cc but sends no feedback this long is not adapted
FEEDBACK_GRACE_MS = 3000.0
#: retransmissions may always use this share of the downlink estimate
RETRANSMIT_MIN_SHARE = 0.1
#: subscription quality names -> the highest layer index wanted
QUALITIES = {"off": -1, "low": 0, "medium": 1, "high": 2}
#: what a simulcast layer costs before it has been measured (the shipped client's
#: maxBitrate per encoding, lowest first)
NOMINAL_LAYER_BPS = (150_000, 500_000, 1_500_000)


def nominal_layer_bps(index: int, layers: int) -> int:
    return NOMINAL_LAYER_BPS[index + max(0, len(NOMINAL_LAYER_BPS) - layers)]


class DownlinkListener(Protocol):
    """Who hears of a subscription paused or resumed for lack of bandwidth: the
    participant, which tells its client and its room."""

    def subscription_paused(self, sub: Subscription, paused: bool, estimate_bps: int
                            ) -> None: ...


class DownlinkController:
    def __init__(self, participant_id: str, initial_bps: int, listener: DownlinkListener
                 ) -> None:
        self._id = participant_id
        self._initial_bps = initial_bps
        self._listener = listener
        self.estimator = DownlinkEstimator(initial_bps=initial_bps)
        self.allocator = Allocator()
        self.remb_bps = 0
        #: transport-cc feedback messages used on the current transport, in all (the
        #: metric), and refused (implausible or unparsable)
        self.twcc_feedback = 0
        self.twcc_feedback_total = 0
        self.twcc_feedback_invalid = 0
        #: transport-cc negotiated on the current subscriber transport, and when it connected
        self.twcc_negotiated = False
        self.connected_ms: float | None = None
        self._allocated_for_bps = 0  # the estimate the last allocation was made for

    def restart(self) -> None:
        """A new subscriber transport numbers transport-wide sequence numbers afresh: the
        estimate starts over."""
        self.estimator = DownlinkEstimator(initial_bps=self._initial_bps)
        self.twcc_feedback = 0
        self.twcc_negotiated = False
        self.remb_bps = 0
        self.connected_ms = None

    # -- feedback -----------------------------------------------------------------------

    def on_receiver_loss(self, fraction: float, t: float) -> None:
        self.estimator.on_receiver_loss(fraction, t)

    def on_remb(self, bitrate_bps: int, t: float) -> None:
        self.remb_bps = bitrate_bps
        self.estimator.on_remb(bitrate_bps, t)

    def on_twcc(self, feedback: TwccFeedback, history: Any, t: float,
                subscriptions: dict[str, Subscription]) -> None:
        self.twcc_feedback += 1
        self.twcc_feedback_total += 1
        self.estimator.on_twcc(feedback, history, t)
        # (the estimate allocation goes by, as the last allocation saw it: while the
        # estimator is in its start phase both are "unlimited", and a feedback is no drop)
        if self.estimate(t) < self._allocated_for_bps * 0.85:
            # a sharp drop: step down now rather than at the next tick, every 100 ms of
            # congestion costs audio in the bottleneck queue
            self.allocate(t, subscriptions)

    def estimate(self, t: float) -> int:
        """The subscriber's downlink estimate, once it has seen a limit (overuse or loss);
        unlimited before that, and for a client that sends no congestion feedback at all
        (transport-cc not negotiated, or negotiated but no feedback within
        FEEDBACK_GRACE_MS of connecting, and no REMB): there is nothing to adapt to."""
        if not self.twcc_feedback and not self.remb_bps:
            connected = self.connected_ms
            if not self.twcc_negotiated or (
                    connected is not None and t - connected > FEEDBACK_GRACE_MS):
                return UNLIMITED_BPS
        elif self.estimator.in_start_phase:
            # feedback, but no sign of a limit yet (no overuse, no loss): the estimate is
            # only a starting guess, and pausing a camera on a guess blanks it for seconds
            return UNLIMITED_BPS
        return self.estimator.estimate_bps(t)

    # -- allocation ---------------------------------------------------------------------

    def allocate(self, t: float, subscriptions: dict[str, Subscription]) -> None:
        """Choose each subscription's layer for the downlink estimate (sfu.allocator)."""
        if not subscriptions:
            return
        demands = []
        for sub in subscriptions.values():
            if not sub.accepted:
                continue  # not (yet) negotiated: it costs nothing
            track = sub.track
            bitrates: list[int | None] = []
            for layer in track.layers:
                if track.kind == "audio":
                    bitrates.append(layer.bitrate_bps or None)
                elif layer.receiving(t) or not track.simulcast:
                    # (a single layer is never "gone": a static screen share sends a frame
                    # a second or less, and there is nothing to switch to anyway)
                    bitrates.append(layer.bitrate_bps or nominal_layer_bps(
                        layer.index, len(track.layers)))
                elif not layer.enabled:
                    # switched off by dynacast: it can be switched back on; its last known
                    # cost, or a nominal one if it was switched off before it was measured
                    bitrates.append(layer.bitrate_bps or nominal_layer_bps(
                        layer.index, len(track.layers)))
                else:
                    bitrates.append(None)
                    if sub.selector.current == layer.index:
                        sub.selector.layer_gone(layer.index)
            demands.append(TrackDemand(
                track_id=track.id, kind=track.kind, source=track.source,
                publisher_role=track.publisher_role, bitrates=bitrates,
                max_layer=sub.max_layer if track.kind == "video" else 0,
            ))
        estimate = self.estimate(t)
        self._allocated_for_bps = estimate
        targets = self.allocator.allocate(estimate, demands, t)
        self._share_retransmit_budget(estimate, subscriptions)
        for sub in subscriptions.values():
            if sub.track.kind != "video" or sub.track.id not in targets:
                continue
            target = targets[sub.track.id]
            if target != sub.selector.target:
                d = self.estimator
                log.info("participant %s track %s: layer %d -> %d (estimate %d, acked %d, "
                         "loss %.2f, %s)", self._id, sub.track.id, sub.selector.target,
                         target, estimate, d.acked_bps, d.loss, d.state)
                # a step down for lack of bandwidth stops the current layer at once: what
                # it would send until the lower layer's keyframe queues in front of audio
                sub.set_target_layer(target, t, at_once=estimate < UNLIMITED_BPS)
            elif sub.selector.waiting and sub.active:
                # still no keyframe of the wanted layer (the request was lost, or the layer
                # was not arriving yet when it went out): ask again, throttled per layer
                sub.track.request_keyframe(t, target)
            paused = self.allocator.paused_for_bandwidth(sub.track.id)
            if paused != sub.paused_for_bandwidth:
                sub.paused_for_bandwidth = paused
                sub.stats.bandwidth_pauses += paused
                self._listener.subscription_paused(sub, paused, estimate)

    def _share_retransmit_budget(self, estimate: int,
                                 subscriptions: dict[str, Subscription]) -> None:
        """Retransmissions get what the allocation leaves of the estimate (at least
        RETRANSMIT_MIN_SHARE of it), split over the video subscriptions: answering a
        browser's NACKs must not push the downlink past its estimate."""
        video = [s for s in subscriptions.values() if s.accepted and s.track.kind == "video"]
        if not video:
            return
        if estimate >= UNLIMITED_BPS:
            bps = RETRANSMIT_BUDGET_BPS
        else:
            spare = max(estimate - self.allocator.allocated_bps,
                        RETRANSMIT_MIN_SHARE * estimate)
            bps = spare / len(video)
        for sub in video:
            sub.set_retransmit_budget(bps)
