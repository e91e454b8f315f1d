"""Prometheus metrics for the media path, read from the live objects at scrape time.

The forwarding path only bumps plain integer attributes; this collector walks rooms,
participants, tracks and subscriptions when /metrics is scraped, and adds the totals of
objects already closed (folded into ``Retired`` as they close), so counters never go
down. Names are documented in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .engine import ENGINE
from .presence import RECONNECTING

if TYPE_CHECKING:
    from .media_ports import MediaPorts
    from .participant import Participant
    from .room import Room, RoomRegistry
    from .track import PublishedTrack, Subscription

KINDS = ("audio", "video")


class Retired:
    """Counters of closed tracks/subscriptions/transports, so totals never go down."""

    def __init__(self) -> None:
        self.packets_in = {k: 0 for k in KINDS}
        self.bytes_in = {k: 0 for k in KINDS}
        self.packets_out = {k: 0 for k in KINDS}
        self.bytes_out = {k: 0 for k in KINDS}
        self.nacks = 0
        self.retransmits = 0
        self.plis_in = 0
        self.plis_out = 0
        self.duplicates = 0
        self.srtp_failures = 0
        self.unknown_ssrc = 0
        self.layer_switches = 0
        self.bandwidth_pauses = 0
        self.twcc_in = 0
        self.twcc_out = 0
        self.transport_restarts = 0
        self.audio_suppressed = 0
        self.gate_opens = 0
        self.gate_refusals = 0

    def add_track(self, track: PublishedTrack) -> None:
        self.audio_suppressed += int(track.gate.gate_suppressed)
        self.gate_opens += track.gate_opens
        self.gate_refusals += track.gate_refusals
        self.packets_in[track.kind] += track.stats.packets_in
        self.bytes_in[track.kind] += track.stats.bytes_in
        self.duplicates += track.stats.duplicates
        self.plis_out += track.stats.plis_sent

    def add_subscription(self, sub: Subscription) -> None:
        kind = sub.track.kind
        self.packets_out[kind] += sub.stats.packets
        self.bytes_out[kind] += sub.stats.bytes
        self.nacks += sub.stats.nacks
        self.retransmits += sub.stats.retransmits
        self.plis_in += sub.stats.plis + sub.stats.firs
        self.layer_switches += sub.selector.switches
        self.bandwidth_pauses += sub.stats.bandwidth_pauses

    def add_participant(self, p: Participant) -> None:
        """Counters kept on the participant and its transports (not its tracks)."""
        for t in (p.publisher, p.subscriber):
            if t is not None:
                self.srtp_failures += t.stats.srtp_auth_failures
        self.unknown_ssrc += (p.publishing.unknown_ssrc_packets + p.publishing.wrong_pt_packets
                              + p.publishing.invalid_rtp_packets)
        self.twcc_in += p.downlink.twcc_feedback_total
        self.twcc_out += p.publishing.twcc_feedback_sent
        self.transport_restarts += p.transport_restarts


def forwarded_packets(rooms: RoomRegistry, retired: Retired, also: Iterable[Room] = ()
                      ) -> int:
    """RTP packets forwarded to subscribers since the start (what the cluster announces
    per second); ``also``: more rooms (an edge node's, docs/cluster.md)."""
    total = sum(retired.packets_out.values())
    for room in [*rooms.rooms.values(), *also]:
        for p in [*room.participants.values(), *room.relays.values()]:
            total += sum(sub.stats.packets for sub in list(p.subscriptions.values()))
    return total


class SfuCollector(Collector):
    def __init__(self, rooms: RoomRegistry, retired: Retired,
                 errors: dict[str, int], also: Callable[[], Iterable[Room]] = tuple) -> None:
        """``also``: more rooms whose media this node forwards (an edge node's rooms,
        docs/cluster.md: their pages count as participants, the origin's remote
        participants do not, their packets do)."""
        self.rooms = rooms
        self.retired = retired
        self.errors = errors
        self.also = also

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        r = self.retired
        now = monotonic() * 1000.0
        packets_in = dict(r.packets_in)
        bytes_in = dict(r.bytes_in)
        packets_out = dict(r.packets_out)
        bytes_out = dict(r.bytes_out)
        nacks, retransmits, plis_in, plis_out = r.nacks, r.retransmits, r.plis_in, r.plis_out
        duplicates, srtp, unknown = r.duplicates, r.srtp_failures, r.unknown_ssrc
        switches, pauses, twcc_in, twcc_out = (r.layer_switches, r.bandwidth_pauses, r.twcc_in,
                                               r.twcc_out)
        participants = tracks = subscriptions = paused_now = layers_off = reconnecting = 0
        restarts = r.transport_restarts
        suppressed, gate_opens, gate_refusals = r.audio_suppressed, r.gate_opens, r.gate_refusals
        gated = {"open": 0, "closed": 0}
        by_layer: dict[str, int] = {"0": 0, "1": 0, "2": 0, "none": 0}
        estimates: list[float] = []
        loss = GaugeMetricFamily("sfu_subscriber_fraction_lost",
                                 "Loss fraction the subscriber reported in its last RTCP RR",
                                 labels=["room", "kind"])
        rtt = GaugeMetricFamily("sfu_subscriber_rtt_seconds",
                                "RTT from the subscriber's last RR (LSR/DLSR), averaged per room",
                                labels=["room"])
        jitter = GaugeMetricFamily("sfu_publisher_jitter_seconds",
                                   "Interarrival jitter of published streams, max per room",
                                   labels=["room", "kind"])
        for room in [*self.rooms.rooms.values(), *self.also()]:
            rtts: list[float] = []
            loss_by_kind: dict[str, list[float]] = {k: [] for k in KINDS}
            jitter_by_kind: dict[str, float] = {k: 0.0 for k in KINDS}
            for p in list(room.participants.values()):
                participants += not p.remote
                reconnecting += p.presence.state == RECONNECTING
                restarts += p.transport_restarts
                for t in (p.publisher, p.subscriber):
                    if t is not None:
                        srtp += t.stats.srtp_auth_failures
                unknown += (p.publishing.unknown_ssrc_packets + p.publishing.wrong_pt_packets
                              + p.publishing.invalid_rtp_packets)
                twcc_in += p.downlink.twcc_feedback_total
                twcc_out += p.publishing.twcc_feedback_sent
                if p.subscriptions:
                    estimates.append(p.downlink.estimator.estimate_bps(now))
                for track in list(p.tracks.values()):
                    tracks += 1
                    layers_off += sum(1 for la in track.layers if not la.enabled)
                    packets_in[track.kind] += track.stats.packets_in
                    bytes_in[track.kind] += track.stats.bytes_in
                    duplicates += track.stats.duplicates
                    plis_out += track.stats.plis_sent
                    if track.kind == "audio":
                        g = track.gate
                        suppressed += int(g.gate_suppressed)
                        gate_opens += track.gate_opens
                        gate_refusals += track.gate_refusals
                        if g.gate:
                            gated["open" if g.gate_open else "closed"] += 1
                    tr = track.tracker(track.current_ssrc) if track.current_ssrc else None
                    if tr is not None:
                        jitter_by_kind[track.kind] = max(
                            jitter_by_kind[track.kind], tr.jitter / track.codec.clock_rate)
                for sub in list(p.subscriptions.values()):
                    subscriptions += 1
                    kind = sub.track.kind
                    packets_out[kind] += sub.stats.packets
                    bytes_out[kind] += sub.stats.bytes
                    nacks += sub.stats.nacks
                    retransmits += sub.stats.retransmits
                    plis_in += sub.stats.plis + sub.stats.firs
                    switches += sub.selector.switches
                    pauses += sub.stats.bandwidth_pauses
                    if kind == "video":
                        current = sub.selector.current
                        by_layer[str(current) if current >= 0 else "none"] += 1
                        paused_now += sub.paused_for_bandwidth
                    loss_by_kind[kind].append(sub.stats.fraction_lost)
                    if sub.stats.rtt_ms is not None:
                        rtts.append(sub.stats.rtt_ms / 1000.0)
            for relay in list(room.relays.values()):  # (edge nodes': docs/cluster.md)
                for sub in list(relay.subscriptions.values()):
                    packets_out[sub.track.kind] += sub.stats.packets
                    bytes_out[sub.track.kind] += sub.stats.bytes
                    nacks += sub.stats.nacks
                    retransmits += sub.stats.retransmits
                    plis_in += sub.stats.plis + sub.stats.firs
            for kind in KINDS:
                if loss_by_kind[kind]:
                    loss.add_metric([room.id, kind],
                                    sum(loss_by_kind[kind]) / len(loss_by_kind[kind]))
                jitter.add_metric([room.id, kind], jitter_by_kind[kind])
            if rtts:
                rtt.add_metric([room.id], sum(rtts) / len(rtts))
        yield GaugeMetricFamily("sfu_rooms", "Open rooms", value=len(self.rooms.rooms))
        yield GaugeMetricFamily(
            "sfu_fastpath_enabled",
            "1 when the compiled send step (sfu._fastpath) forwards packets, 0 on the Python path",
            value=1 if ENGINE.name == "compiled" else 0)
        yield GaugeMetricFamily(
            "sfu_send_batched",
            "1 when the compiled fan-out hands each packet's sends to the kernel in one "
            "io_uring call, 0 when it uses one sendto per subscriber",
            value=1 if ENGINE.batch_state() == "io_uring" else 0)
        yield CounterMetricFamily(
            "sfu_ingress_compiled_packets",
            "RTP packets from publishers handled by the compiled ingress step (the rest of "
            "sfu_rtp_packets_in took the Python path)",
            value=ENGINE.ingress_handled())
        yield GaugeMetricFamily("sfu_participants", "Connected participants", value=participants)
        yield GaugeMetricFamily("sfu_published_tracks", "Published tracks", value=tracks)
        yield GaugeMetricFamily("sfu_subscriptions", "Track subscriptions", value=subscriptions)
        for name, doc, values in (
            ("sfu_rtp_packets_in", "RTP packets received from publishers", packets_in),
            ("sfu_rtp_bytes_in", "RTP bytes received from publishers", bytes_in),
            ("sfu_rtp_packets_out", "RTP packets forwarded to subscribers", packets_out),
            ("sfu_rtp_bytes_out", "RTP bytes forwarded to subscribers", bytes_out),
        ):
            c = CounterMetricFamily(name, doc, labels=["kind"])
            for kind in KINDS:
                c.add_metric([kind], values[kind])
            yield c
        for name, doc, value in (
            ("sfu_nacks_received", "NACK messages received from subscribers", nacks),
            ("sfu_retransmissions", "Packets retransmitted from the cache", retransmits),
            ("sfu_keyframe_requests_received", "PLI/FIR received from subscribers", plis_in),
            ("sfu_keyframe_requests_sent", "PLI sent to publishers (after throttling)", plis_out),
            ("sfu_rtp_duplicates", "Duplicate RTP packets dropped at ingress", duplicates),
            ("sfu_srtp_auth_failures", "Datagrams failing SRTP/SRTCP authentication", srtp),
            ("sfu_rtp_unroutable", "RTP packets with an unknown SSRC or payload type", unknown),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        errors = CounterMetricFamily("sfu_signalling_errors", "Error frames sent, by code",
                                     labels=["code"])
        for code, n in sorted(self.errors.items()):
            errors.add_metric([code], n)
        yield errors
        yield loss
        yield rtt
        yield jitter
        layer_gauge = GaugeMetricFamily(
            "sfu_video_subscriptions_by_layer",
            "Video subscriptions by the simulcast layer forwarded now (0 = lowest; none = "
            "paused or waiting for a keyframe)", labels=["layer"])
        for layer, n in by_layer.items():
            layer_gauge.add_metric([layer], n)
        yield layer_gauge
        yield GaugeMetricFamily("sfu_video_subscriptions_paused_bandwidth",
                                "Video subscriptions paused for lack of downlink bandwidth",
                                value=paused_now)
        yield GaugeMetricFamily("sfu_dynacast_layers_off",
                                "Simulcast layers switched off at their publisher (dynacast)",
                                value=layers_off)
        for name, doc, value in (
            ("sfu_layer_switches", "Simulcast layer switches completed (at keyframes)", switches),
            ("sfu_bandwidth_pauses", "Video subscriptions paused for bandwidth", pauses),
            ("sfu_twcc_feedback_received", "TWCC feedback packets from subscribers", twcc_in),
            ("sfu_twcc_feedback_sent", "TWCC feedback packets sent to publishers", twcc_out),
            ("sfu_audio_suppressed_packets", "Microphone packets not forwarded by audio by "
             "speech (silent, or not among the room's speakers)", suppressed),
            ("sfu_audio_speech_gate_opens", "Times a student's microphone started being "
             "forwarded (an utterance, from its first loud packet)", gate_opens),
            ("sfu_audio_speech_gate_refusals", "Loud microphone packets not forwarded because "
             "every speaker slot of the room was taken by someone speaking", gate_refusals),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        gate_gauge = GaugeMetricFamily(
            "sfu_audio_speech_gated_microphones",
            "Microphones forwarded by speech, by whether they are forwarded now",
            labels=["state"])
        for state, n in gated.items():
            gate_gauge.add_metric([state], n)
        yield gate_gauge
        presence = self.rooms.presence_stats
        yield GaugeMetricFamily("sfu_participants_reconnecting",
                                "Participants inside their reconnection grace window",
                                value=reconnecting)
        lost = CounterMetricFamily("sfu_participant_reconnects",
                                   "Participants whose connection was lost (grace window "
                                   "started), by what was lost", labels=["cause"])
        for cause, n in presence.reconnects.items():
            lost.add_metric([cause], n)
        yield lost
        for name, doc, value in (
            ("sfu_participant_resumes", "Participants resumed inside their grace window",
             presence.resumes),
            ("sfu_participant_grace_expiries", "Grace windows that ran out (left: timeout)",
             presence.expiries),
            ("sfu_participant_resumes_refused", "Resume attempts refused (window over, "
             "unknown participant or token)", presence.refused),
            ("sfu_transport_restarts", "Media transports replaced (ICE restart, or dead after "
             "an outage)", restarts),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        buckets = (100e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6)
        counts = [sum(1 for e in estimates if e <= b) for b in buckets]
        yield HistogramMetricFamily(
            "sfu_subscriber_downlink_estimate_bps",
            "Downlink bandwidth estimates of the subscribers now (bits/s)",
            buckets=[(str(int(b)), c) for b, c in zip(buckets, counts, strict=True)]
            + [("+Inf", len(estimates))],
            sum_value=sum(estimates))


class MediaPortsCollector(Collector):
    """The shared media ports (sfu.media_ports): what they dropped and why, their routes,
    and which path each connected transport uses."""

    def __init__(self, ports: MediaPorts, rooms: RoomRegistry) -> None:
        self.ports = ports
        self.rooms = rooms

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        ports = self.ports
        info = GaugeMetricFamily("sfu_media_port_info", "The shared media ports (value 1)",
                                 labels=["udp_port", "tcp_port"])
        info.add_metric([str(ports.udp_port), str(ports.tcp_port or "")], 1)
        yield info
        rejected = CounterMetricFamily(
            "sfu_media_port_rejected",
            "Datagrams and ICE-TCP frames the shared media ports dropped, by reason",
            labels=["reason"])
        for reason, n in sorted(ports.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield GaugeMetricFamily("sfu_media_port_routes",
                                "Remote addresses validated on the shared UDP ports",
                                value=ports.routes)
        yield GaugeMetricFamily("sfu_ice_tcp_connections", "Open ICE-TCP connections",
                                value=len(ports.tcp_connections))
        yield GaugeMetricFamily("sfu_media_port_transports",
                                "Media transports registered on the shared ports (by ICE ufrag)",
                                value=ports.transports)
        by_path = {"udp": 0, "tcp": 0}
        for room in list(self.rooms.rooms.values()):
            for p in list(room.participants.values()):
                for t in (p.publisher, p.subscriber):
                    if t is not None and t.state == "connected":
                        proto = getattr(t, "path_protocol", None) or "udp"
                        by_path[proto] = by_path.get(proto, 0) + 1
        paths = GaugeMetricFamily("sfu_media_transports_connected",
                                  "Connected media transports by the path they use",
                                  labels=["protocol"])
        for proto, n in by_path.items():
            paths.add_metric([proto], n)
        yield paths


class LoopCollector(Collector):
    """The event loop the server runs on: its live tasks (a number that must come back down
    after churn; ``benches/soak.py`` watches it)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped from outside the loop (tests)
            tasks = 0
        yield GaugeMetricFamily("sfu_asyncio_tasks", "Live asyncio tasks of the server's loop",
                                value=tasks)
