"""A participant's media: its publisher and subscriber connections, tracks and subscriptions.

The signalling layer calls the ``handle_*`` coroutines with parsed client messages and gets
protocol messages back through ``send``; everything packet-shaped stays in here and in
:mod:`sfu.track`. Only :mod:`sfu.transport` touches aiortc.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import fastpath, rtcp, sdp
from .allocator import Allocator, TrackDemand
from .bandwidth import DownlinkEstimator
from .codecs import TWCC_ID
from .errors import InvalidState, PermissionDenied, TooManyTracks, UnknownTrack
from .metrics import Retired
from .negotiation import (
    AcceptedMedia,
    NoCommonCodecError,
    SubscriberSlot,
    answer_publisher,
    build_subscriber_offer,
    read_subscriber_answer,
)
from .presence import Presence, new_resume_token
from .rtp_header import RtpHeaderError, find_extension, header_length
from .track import RETRANSMIT_BUDGET_BPS, Layer, PublishedTrack, Subscription
from .transport import Certificate, MediaTransport, TransportFactory, UdpTransports
from .twcc import TwccError, TwccRecorder, new_recorder, parse_feedback

if TYPE_CHECKING:
    from .room import Room

log = logging.getLogger(__name__)
_SEQ_TS_SSRC = struct.Struct("!HII").unpack_from

ROLES = ("instructor", "student", "observer")
#: SSRCs remembered per published track (a publisher's SSRC changes on restarts)
MAX_SSRCS_PER_TRACK = 3
#: subscriber offers re-sent after unusable answers before giving up
MAX_ANSWER_RETRIES = 2
SOURCES = ("microphone", "camera", "screen")
#: the control tick: TWCC feedback to publishers; every ALLOCATE_EVERY ticks the layer
#: figures, allocation and dynacast; every REPORT_EVERY ticks the RTCP reports
TICK_S = 0.1
ALLOCATE_EVERY = 5
REPORT_EVERY = 10
#: sender reports per compound RTCP packet (28 bytes each: 896 bytes and the SRTCP trailer)
SRS_PER_COMPOUND = 32
#: subscription quality names -> the highest layer index wanted
QUALITIES = {"off": -1, "low": 0, "medium": 1, "high": 2}
UNLIMITED_BPS = 1_000_000_000
#: a subscriber that negotiated transport-cc but sends no feedback this long is not adapted
FEEDBACK_GRACE_MS = 3000.0
#: a transport is replaced at most this often (each one binds sockets and makes a
#: certificate: a client must not be able to make the server do that in a loop)
MIN_RESTART_INTERVAL_MS = 2000.0
#: retransmissions may always use this share of the downlink estimate
RETRANSMIT_MIN_SHARE = 0.1


def now_ms() -> float:
    return time.monotonic() * 1000.0


class SsrcTable(dict[int, Layer]):
    """A publisher's SSRC -> layer routes. Every change tells ``on_change`` (the compiled
    ingress step's table of sources is made from these routes)."""

    __slots__ = ("_on_change",)

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._on_change = on_change

    def __setitem__(self, ssrc: int, layer: Layer) -> None:
        if self.get(ssrc) is not layer:
            super().__setitem__(ssrc, layer)
            self._on_change()

    def __delitem__(self, ssrc: int) -> None:
        super().__delitem__(ssrc)
        self._on_change()

    def forget(self, track: PublishedTrack) -> None:
        """Drop every route to ``track``'s layers."""
        for ssrc in [s for s, la in self.items() if la.track is track]:
            del self[ssrc]


def _random_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


@dataclass(frozen=True, slots=True)
class Grants:
    publish: bool = True
    subscribe: bool = True
    moderate: bool = False
    record: bool = False


@dataclass(frozen=True, slots=True)
class MediaParams:
    """What every participant's media needs from the server (one instance per server)."""

    certificate: Certificate
    #: addresses to bind UDP sockets on and announce as ICE host candidates
    ice_addresses: tuple[str, ...]
    keyframe_interval_ms: float = 500.0
    publisher_max_bitrate_bps: int = 2_500_000
    #: dynacast: a simulcast layer nobody receives for this long is switched off at the
    #: publisher (and back on as soon as someone needs it)
    dynacast_delay_ms: float = 3000.0
    #: the downlink estimate a new subscriber starts from
    initial_downlink_bps: int = 1_000_000
    #: a transport that should be receiving (RTP from a publisher, RTCP feedback from a
    #: subscriber) and received nothing this long is dead: it is replaced
    transport_timeout_ms: float = 10_000.0
    #: where the counters of closed tracks/subscriptions go (metrics never go down)
    retired: Retired = field(default_factory=Retired)
    #: makes the participants' transports (None: sfu.transport.UdpTransports on
    #: ``ice_addresses`` with ``certificate``)
    transport_factory: TransportFactory | None = None


@dataclass(slots=True)
class ParticipantInfo:
    id: str
    identity: str
    name: str
    role: str
    grants: Grants = field(default_factory=Grants)


class Participant:
    def __init__(
        self,
        info: ParticipantInfo,
        room: Room,
        params: MediaParams,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self.info = info
        self.id = info.id
        self.room = room
        self.send = send
        #: active / reconnecting (grace window) / gone; see sfu.presence
        self.presence = Presence(room.reconnect_window_s * 1000.0)
        #: what the client presents to resume this participant after a lost connection
        self.resume_token = new_resume_token()
        self._on_detached: Callable[[], None] | None = None
        #: the subscriber offer sent and not answered yet (resent after a resume)
        self._outstanding_offer: dict[str, Any] | None = None
        #: transports created to replace dead ones get a fresh DTLS certificate (a new
        #: fingerprint makes the browser restart DTLS); else the server's shared one
        self._fresh_publisher_cert = False
        self._fresh_subscriber_cert = False
        #: transports replaced (ICE restart, or dead after an outage)
        self.transport_restarts = 0
        self._last_restart_ms: dict[str, float] = {}
        self._params = params
        self._retired = params.retired
        self._transports = params.transport_factory or UdpTransports(
            params.certificate, params.ice_addresses)
        self.closed = False
        self.joined_at = time.time()
        self._ssrcs: set[int] = set()
        self._rtcp_ssrc = _random_ssrc(self._ssrcs)
        # publishing
        self.publisher: MediaTransport | None = None
        self.tracks: dict[str, PublishedTrack] = {}  # by mid
        self._ssrc_table = SsrcTable(self._ssrc_routes_changed)
        self._mid_ext_ids: set[int] = set()
        self._rid_ext_ids: dict[str, int] = {}  # by mid
        #: arrival record of the publisher's transport-wide sequence numbers (its feedback)
        self._twcc_rx: TwccRecorder | None = None
        self.twcc_feedback_sent = 0
        self.unknown_ssrc_packets = 0
        self.invalid_rtp_packets = 0
        self.wrong_pt_packets = 0
        # subscribing
        self.subscriber: MediaTransport | None = None
        self.slots: list[SubscriberSlot] = []
        #: the slots of the outstanding offer with the track each carried in it
        self._offered: list[tuple[SubscriberSlot, str | None]] = []
        self._failed_answers = 0
        self.subscriptions: dict[str, Subscription] = {}  # by track id
        self._subs_by_ssrc: dict[int, Subscription] = {}
        self._next_mid = 0
        self._offer_pending = False
        self._offer_dirty = False
        self._negotiation_lock = asyncio.Lock()
        self.downlink_remb_bps = 0
        self.twcc_feedback = 0
        self.twcc_feedback_invalid = 0
        self.downlink = DownlinkEstimator(initial_bps=params.initial_downlink_bps)
        self.allocator = Allocator()
        self._allocated_for_bps = 0  # the estimate the last allocation was made for
        self._subscriber_connected_ms: float | None = None
        self._ticks = 0
        self._rtcp_task: asyncio.Task[None] | None = None
        #: called once when the participant is closed (by leave, removal or room close)
        self.on_closed: Callable[[], None] | None = None

    # -- description ------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identity": self.info.identity,
            "name": self.info.name,
            "role": self.info.role,
            "state": self.presence.state,
            "tracks": [t.describe() for t in self.tracks.values()],
        }

    # -- the client connection ----------------------------------------------------------

    def attach(self, send: Callable[[dict[str, Any]], None], on_closed: Callable[[], None],
               on_detached: Callable[[], None]) -> None:
        """A (new) client connection carries this participant's messages from now on. One
        still attached (a client may reconnect before the server sees its old socket die)
        is told through its ``on_detached`` and must let go."""
        previous = self._on_detached
        self.send, self.on_closed, self._on_detached = send, on_closed, on_detached
        if previous is not None:
            previous()

    def detach(self) -> None:
        """The connection is gone: messages are dropped until one attaches and resyncs."""
        self.send = _discard
        self.on_closed = None
        self._on_detached = None

    def resync(self) -> None:
        """After a resume: what the client missed while detached. The room state comes with
        the ``resumed`` message; the subscriber negotiation is redone (an offer sent while
        detached was lost; one that was answered is harmlessly repeated)."""
        if self.subscriber is not None and self.subscriber.state in ("failed", "closed"):
            asyncio.ensure_future(self._restart_subscriber_soon())  # (offers again)
        elif self._outstanding_offer is not None:
            self.send(self._outstanding_offer)
        elif self.slots:
            self.schedule_subscriber_offer()
        if self.publisher is not None and self.publisher.state in ("failed", "closed"):
            self.send({"type": "restart_ice", "target": "publisher"})

    def media_stats(self) -> dict[str, Any]:
        """Live media figures for operators (room service API): layers received from this
        participant, what it receives and its downlink estimate."""
        t = now_ms()
        return {
            "published": [
                {"trackId": tr.id, "kind": tr.kind, "source": tr.source,
                 "layers": [{**la.describe(), "receiving": la.receiving(t)}
                            for la in tr.layers]}
                for tr in self.tracks.values()
            ],
            "subscriptions": [
                {"trackId": sub.track.id, "kind": sub.track.kind, "active": sub.active,
                 "layer": sub.selector.current, "targetLayer": sub.selector.target,
                 "maxLayer": sub.max_layer, "pausedForBandwidth": sub.paused_for_bandwidth,
                 "packets": sub.stats.packets, "layerSwitches": sub.selector.switches}
                for sub in self.subscriptions.values()
            ],
            "downlinkEstimateBps": self.downlink_estimate(t),
            "twccFeedback": self.twcc_feedback,
        }

    def track_by_id(self, track_id: str) -> PublishedTrack | None:
        for t in self.tracks.values():
            if t.id == track_id:
                return t
        return None

    # -- publishing -------------------------------------------------------------------

    async def handle_publisher_offer(
        self, sdp_text: str, declared: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        if not self.info.grants.publish:
            raise PermissionDenied("this participant may not publish")
        offer = sdp.parse(sdp_text)
        sources = _declared_sources(declared)
        self._ensure_open()
        await self._maybe_restart_publisher(offer)
        if self.publisher is None:
            transport = self._transports(
                name=f"{self.id}/pub", controlling=False,
                fresh_certificate=self._fresh_publisher_cert,
                on_rtp=self._on_publisher_rtp, on_rtcp=self._on_publisher_rtcp,
                on_state=lambda state: self._on_publisher_state(state, transport),
            )
            transport.ingress = self  # the compiled ingress step asks which sources it takes
            self.publisher = transport
            for track in self.tracks.values():  # kept across a restart: their NACKs and
                track.upstream = transport      # keyframe requests go to the new transport
            await transport.gather()
            self._ensure_open()  # removed while gathering: publish nothing
        answer = answer_publisher(offer, self.publisher.local())
        self._check_track_limits(answer.accepted, sources)
        first = next((m for m in offer.media
                      if m.port != 0 and m.mid not in answer.rejected_mids), None)
        if first is None:
            raise NoCommonCodecError("no media section of the offer can be received")
        ufrag, pwd = offer.ice_of(first)
        self.publisher.start(ufrag, pwd, offer.fingerprints_of(first), dtls_role="client")
        # BUNDLE: only the first accepted section's transport is used
        for cand in first.candidates:
            await self._add_candidate(self.publisher, cand)
        if first.end_of_candidates:
            await self.publisher.add_remote_candidate(None)
        self._ensure_open()
        self._apply_publication(answer.accepted, sources)
        return {
            "type": "answer",
            "target": "publisher",
            "sdp": answer.sdp,
            "tracks": [
                {"mid": t.mid, "trackId": t.id, "kind": t.kind, "source": t.source}
                for t in self.tracks.values()
            ],
        }

    async def _maybe_restart_publisher(self, offer: sdp.SessionDescription) -> None:
        """An offer with new ICE credentials (the browser's ``restartIce()``), or any offer
        while our publisher transport is dead, gets a fresh transport with a new DTLS
        certificate: aioice cannot restart ICE in place, and a changed fingerprint makes
        the browser restart DTLS too. Tracks, their ids and subscribers stay; the browser's
        SSRCs are learned again from the MID/RID extensions."""
        old = self.publisher
        first = next((m for m in offer.media if m.port != 0), None)
        if old is None or first is None:
            return
        dead = old.state in ("failed", "closed")
        if not dead and old.remote_ice in (None, offer.ice_of(first)):
            return
        self._check_restart_rate("publisher")
        log.info("participant %s: new publisher transport (%s)", self.id,
                 "the old one failed" if dead else "ICE restart")
        self.publisher = None
        self.transport_restarts += 1
        self._fresh_publisher_cert = True
        await old.close()
        self._ensure_open()

    async def restart_subscriber(self) -> None:
        """A fresh subscriber transport (new ICE credentials and DTLS certificate) and a new
        offer: the browser restarts ICE and DTLS on the same peer connection, its receivers
        and our SSRCs stay. For a subscriber path that died (aioice gives up after ~15-20 s
        without consent responses)."""
        old = self.subscriber
        if old is None or self.closed:
            return
        self._check_restart_rate("subscriber")
        log.info("participant %s: new subscriber transport", self.id)
        self.transport_restarts += 1
        self.subscriber = None
        self._fresh_subscriber_cert = True
        self._subscriber_connected_ms = None
        # the new transport numbers transport-wide sequence numbers afresh
        self.downlink = DownlinkEstimator(initial_bps=self._params.initial_downlink_bps)
        self.twcc_feedback = 0
        self.downlink_remb_bps = 0
        # an offer on the old transport is void (its answer, if any, is refused)
        self._offer_pending = False
        self._outstanding_offer = None
        transport = self._subscriber_transport()
        for sub in self.subscriptions.values():
            sub.active = False
            sub.downstream = transport
        await old.close()
        self.schedule_subscriber_offer()

    async def _restart_subscriber_soon(self) -> None:
        """restart_subscriber from a callback: a refusal (too soon) is only logged."""
        try:
            await self.restart_subscriber()
        except InvalidState as exc:
            log.info("participant %s: subscriber restart skipped: %s", self.id, exc)

    def _check_restart_rate(self, which: str) -> None:
        t = now_ms()
        if t - self._last_restart_ms.get(which, float("-inf")) < MIN_RESTART_INTERVAL_MS:
            raise InvalidState(f"the {which} connection was restarted less than "
                               f"{MIN_RESTART_INTERVAL_MS / 1000:g} s ago")
        self._last_restart_ms[which] = t

    def _ensure_open(self) -> None:
        """Coroutines re-check after each await: the participant may have been removed."""
        if self.closed:
            raise InvalidState("the participant has left the room")

    def _check_track_limits(
        self, accepted: list[AcceptedMedia], sources: dict[str, str]
    ) -> None:
        seen: set[str] = set()
        for m in accepted:
            source = sources.get(m.mid) or ("microphone" if m.kind == "audio" else "camera")
            if source == "microphone" and m.kind != "audio" or (
                source in ("camera", "screen") and m.kind != "video"
            ):
                raise TooManyTracks(f"mid {m.mid}: source {source!r} does not fit kind {m.kind}")
            key = "screen-audio" if source == "screen" and m.kind == "audio" else source
            if key in seen:
                raise TooManyTracks(
                    "at most one microphone, one camera and one screen track per participant"
                )
            seen.add(key)

    def _apply_publication(self, accepted: list[AcceptedMedia], sources: dict[str, str]) -> None:
        assert self.publisher is not None
        keep: set[str] = set()
        if self._twcc_rx is None and any(m.twcc_ext_id for m in accepted):
            self._twcc_rx = new_recorder()
        for m in accepted:
            keep.add(m.mid)
            if m.mid_ext_id:
                self._mid_ext_ids.add(m.mid_ext_id)
            if m.rid_ext_id:
                self._rid_ext_ids[m.mid] = m.rid_ext_id
            track = self.tracks.get(m.mid)
            if track is not None:
                if m.ssrc is not None and m.ssrc != track.ssrc:
                    self._forget_ssrcs(track)
                    track.ssrc = m.ssrc
                    self._ssrc_table[m.ssrc] = track.layers[0]
                continue
            source = sources.get(m.mid) or ("microphone" if m.kind == "audio" else "camera")
            track = PublishedTrack(
                track_id=f"TR_{secrets.token_hex(6)}", participant_id=self.id, kind=m.kind,
                source=source, mid=m.mid, codec=m.codec, publisher_pt=m.pt,
                ext_map=m.ext_map, ssrc=m.ssrc, rtx_ssrc=m.rtx_ssrc,
                upstream=self.publisher, receiver_ssrc=self._rtcp_ssrc,
                keyframe_interval_ms=self._params.keyframe_interval_ms, rids=m.rids,
                publisher_role=self.info.role, twcc=self._twcc_rx,
                on_audio_level=self.room.speakers.on_level if m.kind == "audio" else None,
            )
            self.tracks[m.mid] = track
            if m.ssrc is not None:
                self._ssrc_table[m.ssrc] = track.layers[0]
            self.room.track_published(self, track)
        for mid in [mid for mid in self.tracks if mid not in keep]:
            self._unpublish(mid)

    def _unpublish(self, mid: str) -> None:
        track = self.tracks.pop(mid, None)
        if track is None:
            return
        self._forget_ssrcs(track)
        track.close()
        self._retired.add_track(track)
        self.room.track_unpublished(self, track)

    def _forget_ssrcs(self, track: PublishedTrack) -> None:
        self._ssrc_table.forget(track)

    def _ssrc_routes_changed(self) -> None:
        if self.publisher is not None:
            self.publisher.invalidate_ingress()

    # -- the compiled ingress step (sfu.fastpath.ingress) --------------------------------

    def ingress_sources(self) -> list[fastpath.IngressSource]:
        """The sources whose packets the compiled ingress step may take now: asked by the
        publisher transport once the topology changed."""
        found: list[fastpath.IngressSource] = []
        for ssrc, layer in self._ssrc_table.items():
            track = layer.track
            source = track.ingress_source(layer, ssrc)
            if source is not None:
                found.append(fastpath.IngressSource(
                    ssrc, source[0], track.ingress_state, layer.counters, source[1],
                    (track, layer)))
        return found

    def on_ingress(self, flags: int, rx: Any, data: bytes, handle: Any) -> None:
        """A packet the compiled ingress step handled but left something of to Python
        (``flags`` > 1; ``data``: as rewritten, ``rx``: its results, ``handle``: its
        source's (track, layer))."""
        track, layer = handle
        track.after_ingress(flags, rx, data, layer)

    def set_track_muted(self, track_id: str, muted: bool, by: Participant) -> PublishedTrack:
        track = self.track_by_id(track_id)
        if track is None:
            raise UnknownTrack(f"no track {track_id!r}")
        if by is not self and not by.info.grants.moderate:
            raise PermissionDenied("muting another participant's track needs the moderate grant")
        if by is not self and not muted:
            raise PermissionDenied("only the publisher can unmute its track")
        if track.muted != muted:
            track.set_muted(muted, now_ms())
            self.room.track_muted(self, track)
        return track

    def _on_publisher_rtp(self, data: bytes, arrival_ms: float) -> None:
        try:
            header_length(data)
        except RtpHeaderError:
            self.invalid_rtp_packets += 1
            return
        seq, ts, ssrc = _SEQ_TS_SSRC(data, 2)
        layer = self._ssrc_table.get(ssrc)
        if layer is None:
            layer = self._learn_ssrc(data, ssrc)
            if layer is None:
                self.unknown_ssrc_packets += 1
                return
        track = layer.track
        if data[1] & 0x7F != track.publisher_pt:
            self.wrong_pt_packets += 1
            return
        track.on_rtp(data, ssrc, seq, ts, arrival_ms, layer)

    def _learn_ssrc(self, data: bytes, ssrc: int) -> Layer | None:
        """SSRC not in the SDP: find its track by the MID header extension (RFC 8843) and,
        for simulcast, its layer by the RID extension (RFC 8852)."""
        for ext_id in self._mid_ext_ids:
            value = find_extension(data, ext_id)
            if value is None:
                continue
            mid = value.decode("ascii", "replace")
            track = self.tracks.get(mid)
            if track is None or data[1] & 0x7F != track.publisher_pt:
                continue
            layer: Layer | None = track.layers[0]
            if track.simulcast:
                rid = find_extension(data, self._rid_ext_ids.get(mid, 0))
                layer = track.layer_by_rid(rid.decode("ascii", "replace")) if rid else None
                if layer is None:
                    return None  # a simulcast packet without a known rid: cannot route it
            assert layer is not None
            learned = [s for s, la in self._ssrc_table.items() if la is layer]
            if len(learned) >= MAX_SSRCS_PER_TRACK:
                del self._ssrc_table[learned[0]]  # a bounded table, oldest out
            self._ssrc_table[ssrc] = layer
            return layer
        return None

    def _on_publisher_rtcp(self, data: bytes) -> None:
        arrival = now_ms()
        for msg in rtcp.parse(data):
            if msg.pt == rtcp.SR and msg.sender_info is not None:
                layer = self._ssrc_table.get(msg.sender_ssrc)
                if layer is not None:
                    layer.track.last_sr[msg.sender_ssrc] = (
                        (msg.sender_info[0] >> 16) & 0xFFFFFFFF, arrival)

    def _on_publisher_state(self, state: str, transport: MediaTransport) -> None:
        if transport is not self.publisher:
            return  # a replaced transport closing
        log.info("participant %s publisher transport %s", self.id, state)
        if state == "connected":
            self._ensure_rtcp_loop()
            for track in self.tracks.values():
                if track.subscriptions:
                    track.request_keyframe(now_ms())
        elif state == "failed":
            self.room.transport_failed(self, "publisher")
            if transport.was_connected:
                # a path that worked died: the browser must restart ICE (only it can offer
                # on this connection); while reconnecting, the resume asks. (One that never
                # connected fails on the browser's side too, which restarts it.)
                self.send({"type": "restart_ice", "target": "publisher"})

    # -- subscribing ------------------------------------------------------------------

    def subscribe(self, track: PublishedTrack) -> None:
        if not self.info.grants.subscribe or track.id in self.subscriptions or self.closed:
            return
        slot = self._slot_for(track)
        sub = Subscription(
            track, self._subscriber_transport(), out_ssrc=slot.ssrc, rtx_ssrc=slot.rtx_ssrc,
            rtx_pt=None, first_seq=secrets.randbits(16), first_ts=secrets.randbits(32),
        )
        track.add_subscription(sub)
        self.subscriptions[track.id] = sub
        self._subs_by_ssrc[slot.ssrc] = sub
        self.schedule_subscriber_offer()

    def _slot_for(self, track: PublishedTrack) -> SubscriberSlot:
        """A recycled m-line of the same kind whose removal was negotiated, or a new one.

        Recycling bounds the subscriber SDP by the peak number of tracks, not by churn.
        Fresh SSRCs each time, so packets of the previous track can never be mistaken.
        """
        for slot in self.slots:
            if slot.reusable and slot.kind == track.kind and slot.track_id is None:
                self._ssrcs.discard(slot.ssrc)
                self._ssrcs.discard(slot.rtx_ssrc)
                slot.ssrc, slot.rtx_ssrc = _random_ssrc(self._ssrcs), _random_ssrc(self._ssrcs)
                slot.stream_id = slot.cname = track.participant_id
                slot.track_id, slot.codec = track.id, track.codec
                slot.reusable = False
                slot.accepted_pts, slot.accepted_ext_ids = set(), set()
                return slot
        slot = SubscriberSlot(
            mid=str(self._next_mid), kind=track.kind, ssrc=_random_ssrc(self._ssrcs),
            rtx_ssrc=_random_ssrc(self._ssrcs), stream_id=track.participant_id,
            track_id=track.id, cname=track.participant_id, codec=track.codec,
        )
        self._next_mid += 1
        self.slots.append(slot)
        return slot

    def unsubscribe(self, track_id: str) -> None:
        sub = self.subscriptions.pop(track_id, None)
        if sub is None:
            return
        self._subs_by_ssrc.pop(sub.out_ssrc, None)
        sub.close()
        self._retired.add_subscription(sub)
        if self.subscriber is not None and self.subscriber.ready:
            self.subscriber.send_rtcp(rtcp.build_bye([sub.out_ssrc]))
        for slot in self.slots:
            if slot.track_id == track_id:
                slot.track_id = None
                slot.reusable = False  # only once an answer has seen it inactive
        self.schedule_subscriber_offer()

    def _subscriber_transport(self) -> MediaTransport:
        if self.subscriber is None:
            transport = self._transports(
                name=f"{self.id}/sub", controlling=True,
                fresh_certificate=self._fresh_subscriber_cert,
                on_rtp=self._on_subscriber_rtp, on_rtcp=self._on_subscriber_rtcp,
                on_state=lambda state: self._on_subscriber_state(state, transport),
            )
            self.subscriber = transport
        return self.subscriber

    def schedule_subscriber_offer(self) -> None:
        if self.closed:
            return
        if self._offer_pending:
            self._offer_dirty = True
            return
        self._offer_pending = True
        self._offer_dirty = False
        asyncio.ensure_future(self._send_subscriber_offer())

    async def _send_subscriber_offer(self) -> None:
        async with self._negotiation_lock:
            if self.closed:
                return
            transport = self._subscriber_transport()
            try:
                await transport.gather()
            except OSError as exc:
                log.error("cannot gather ICE candidates: %s", exc)
                self._offer_pending = False
                return
            if self.closed:
                return
            # slots added while this offer is outstanding go into the next one; changes
            # made while gathering are in this one
            self._offer_dirty = False
            self._offered = [(slot, slot.track_id) for slot in self.slots]
            offer = build_subscriber_offer(self.slots, transport.local())
            tracks = []
            for slot in self.slots:
                if slot.active:
                    sub = self.subscriptions.get(slot.track_id or "")
                    if sub is not None:
                        tracks.append({
                            "mid": slot.mid, "trackId": slot.track_id,
                            "participantId": slot.stream_id, "kind": slot.kind,
                            "source": sub.track.source,
                        })
            self._outstanding_offer = {"type": "offer", "target": "subscriber", "sdp": offer,
                                       "tracks": tracks}
            self.send(self._outstanding_offer)

    async def handle_subscriber_answer(self, sdp_text: str) -> None:
        if not self._offer_pending or self.subscriber is None:
            raise InvalidState("no subscriber offer is outstanding")
        self._ensure_open()
        offered = self._offered
        self._outstanding_offer = None
        try:
            info = read_subscriber_answer(sdp.parse(sdp_text), [s for s, _ in offered])
        except sdp.SdpError:
            # the client applied our offer but its answer is unusable: offer again, a
            # couple of times (a client that keeps failing would otherwise loop forever)
            self._offer_pending = False
            self._failed_answers += 1
            if self._failed_answers <= MAX_ANSWER_RETRIES:
                self.schedule_subscriber_offer()
            raise
        self._failed_answers = 0
        transport = self.subscriber
        if any(TWCC_ID in s.accepted_ext_ids for s, _ in offered if not s.rejected):
            transport.enable_twcc()
        # a renegotiation on a running transport repeats the ICE session's candidates: they
        # were added with the first answer (adding them again can race aioice's
        # end-of-candidates and would refuse a valid answer)
        same_session = transport.remote_ice == (info.ice_ufrag, info.ice_pwd)
        transport.start(info.ice_ufrag, info.ice_pwd, info.fingerprints, info.dtls_role)
        if not same_session:
            for cand in info.candidates:
                await self._add_candidate(transport, cand)
        self._ensure_open()
        for slot, offered_track in offered:
            if offered_track is None:
                if slot.track_id is None and not slot.rejected:
                    slot.reusable = True  # the browser has seen it inactive
                continue
            if slot.track_id != offered_track:
                continue  # changed since the offer: the next offer negotiates it
            sub = self.subscriptions.get(offered_track)
            if sub is None:
                continue
            codec = sub.track.codec
            if slot.rejected or codec.pt not in slot.accepted_pts:
                continue
            sub.rtx_pt = codec.rtx_pt if codec.rtx_pt in slot.accepted_pts else None
            sub.accepted = True
        self._offer_pending = False
        self._maybe_activate()
        if self._offer_dirty:
            self.schedule_subscriber_offer()

    def _maybe_activate(self) -> None:
        if self.subscriber is None or not self.subscriber.ready:
            return
        t = now_ms()
        for sub in self.subscriptions.values():
            if sub.accepted:
                sub.activate(t)

    def _on_subscriber_state(self, state: str, transport: MediaTransport) -> None:
        if transport is not self.subscriber:
            return  # a replaced transport closing
        log.info("participant %s subscriber transport %s", self.id, state)
        if state == "connected":
            self._subscriber_connected_ms = now_ms()
            self._ensure_rtcp_loop()
            self._maybe_activate()
        elif state == "failed":
            self.room.transport_failed(self, "subscriber")
            if transport.was_connected and self.presence.state == "active":
                # (a resume restarts it otherwise; one that never connected is restarted
                # when the browser asks)
                asyncio.ensure_future(self._restart_subscriber_soon())

    def _on_subscriber_rtp(self, data: bytes, arrival_ms: float) -> None:
        pass  # browsers send no media on the subscriber connection

    def _on_subscriber_rtcp(self, data: bytes) -> None:
        t = now_ms()
        twcc_seen = 0
        for msg in rtcp.parse(data):
            if msg.pt in (rtcp.RR, rtcp.SR):
                worst = -1.0
                for block in msg.reports:
                    sub = self._subs_by_ssrc.get(block.ssrc)
                    if sub is not None:
                        sub.on_receiver_report(block, t)
                        worst = max(worst, block.fraction_lost / 256.0)
                if worst >= 0:
                    self.downlink.on_receiver_loss(worst, t)
            elif msg.pt == rtcp.RTPFB and msg.fmt == rtcp.FMT_NACK:
                sub = self._subs_by_ssrc.get(msg.media_ssrc)
                if sub is not None:
                    sub.on_nack(msg.items, t)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_PLI:
                sub = self._subs_by_ssrc.get(msg.media_ssrc)
                if sub is not None:
                    sub.on_keyframe_request(t)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_FIR:
                for ssrc in msg.items:
                    sub = self._subs_by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.on_keyframe_request(t, fir=True)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_AFB and msg.bitrate_bps:
                self.downlink_remb_bps = msg.bitrate_bps
                self.downlink.on_remb(msg.bitrate_bps, t)
                for ssrc in msg.items:
                    sub = self._subs_by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.stats.remb_bps = msg.bitrate_bps
            elif msg.pt == rtcp.RTPFB and msg.fmt == rtcp.FMT_TWCC:
                transport = self.subscriber
                history = transport.twcc_history if transport else None
                twcc_seen += 1
                if (history is None or transport is None or twcc_seen > MAX_TWCC_PER_COMPOUND
                        or not _twcc_plausible(msg.fci, transport.twcc_last_seq)):
                    # feedback about more packets than we sent (or a flood of it): parsing
                    # it would be work an attacker chooses for us
                    self.twcc_feedback_invalid += 1
                    continue
                try:
                    feedback = parse_feedback(msg.fci)
                except TwccError:
                    self.twcc_feedback_invalid += 1
                    continue
                self.twcc_feedback += 1
                self.downlink.on_twcc(feedback, history, t)
                if self.downlink.estimate_bps(t) < self._allocated_for_bps * 0.85:
                        # a sharp drop: step down now rather than at the next tick, every
                        # 100 ms of congestion costs audio in the bottleneck queue
                        self.allocate(t)

    # -- shared -----------------------------------------------------------------------

    async def handle_candidate(self, target: str, candidate: dict[str, Any] | None) -> None:
        transport = self.publisher if target == "publisher" else self.subscriber
        if transport is None:
            raise InvalidState(f"no {target} connection yet")
        ufrag = candidate.get("usernameFragment") if candidate is not None else None
        if ufrag and transport.remote_ice is not None and ufrag != transport.remote_ice[0]:
            return  # of an ICE generation before a restart: stale, not an error
        if candidate is None or not candidate.get("candidate"):
            await transport.add_remote_candidate(None)
            return
        await self._add_candidate(transport, str(candidate["candidate"]))

    async def _add_candidate(self, transport: MediaTransport, cand: str) -> None:
        try:
            await transport.add_remote_candidate(cand)
        except (ValueError, IndexError) as exc:
            raise sdp.SdpError(f"bad ICE candidate: {cand[:80]!r}") from exc

    def _ensure_rtcp_loop(self) -> None:
        if self._rtcp_task is None and not self.closed:
            self._rtcp_task = asyncio.ensure_future(self._control_loop())

    async def _control_loop(self) -> None:
        while not self.closed:
            # 100 ms while we owe a publisher transport-cc feedback, else every allocation
            # period: fewer wake-ups for the many participants that only listen
            step = 1 if self._twcc_rx is not None else ALLOCATE_EVERY
            await asyncio.sleep(TICK_S * step)
            try:
                self.tick(now_ms(), step)
            except Exception:
                log.exception("control tick failed for %s", self.id)

    def tick(self, t: float, step: int = 1) -> None:
        """Periodic work (sans-IO apart from the sends): feedback, allocation, reports.
        ``step``: how many 100 ms ticks this call stands for (1 or ALLOCATE_EVERY)."""
        self._ticks += step
        self._send_twcc_feedback(t)
        if self._ticks % ALLOCATE_EVERY == 0:
            for track in self.tracks.values():
                for layer in track.layers:
                    layer.sample(t)
            self.allocate(t)
            self.dynacast(t)
            self._expire_silent_transports(t)
        if self._ticks % REPORT_EVERY == 0:
            self.send_reports()

    def _expire_silent_transports(self, t: float) -> None:
        """Transports that heard nothing, not even ICE checks, for the timeout are dead."""
        timeout = self._params.transport_timeout_ms
        for transport in (self.publisher, self.subscriber):
            if transport is not None:
                transport.expire_if_silent(t, timeout)

    def _send_twcc_feedback(self, t: float) -> None:
        pub = self.publisher
        rec = self._twcc_rx
        if rec is None or pub is None or not pub.ready:
            return
        media_ssrc = next(iter(self._ssrc_table), 0)
        for packet in rec.build_feedback(self._rtcp_ssrc, media_ssrc, t):
            if pub.send_rtcp(packet):
                self.twcc_feedback_sent += 1

    # -- adaptation -------------------------------------------------------------------

    def set_quality(self, track_id: str, quality: str) -> None:
        """The subscriber's wish for one track (its view size): off, low, medium, high."""
        sub = self.subscriptions.get(track_id)
        if sub is None:
            raise UnknownTrack(f"not subscribed to {track_id!r}")
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}")
        sub.max_layer = min(QUALITIES[quality], len(sub.track.layers) - 1)
        self.allocate(now_ms())

    def allocate(self, t: float) -> None:
        """Choose each subscription's layer for the downlink estimate (sfu.allocator)."""
        if not self.subscriptions:
            return
        demands = []
        for sub in self.subscriptions.values():
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
        estimate = self.downlink_estimate(t)
        self._allocated_for_bps = estimate
        targets = self.allocator.allocate(estimate, demands, t)
        self._share_retransmit_budget(estimate)
        for sub in self.subscriptions.values():
            if sub.track.kind != "video" or sub.track.id not in targets:
                continue
            target = targets[sub.track.id]
            if target != sub.selector.target:
                d = self.downlink
                log.info("participant %s track %s: layer %d -> %d (estimate %d, acked %d, "
                         "loss %.2f, %s)", self.id, sub.track.id, sub.selector.target, target,
                         estimate, d.acked_bps, d.loss, d.state)
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
                kind = "track_paused" if paused else "track_resumed"
                message: dict[str, Any] = {"type": kind, "trackId": sub.track.id}
                if paused:
                    message["reason"] = "bandwidth"
                self.send(message)
                self.room.subscription_paused(self, sub, paused, estimate)

    def _share_retransmit_budget(self, estimate: int) -> None:
        """Retransmissions get what the allocation leaves of the estimate (at least
        RETRANSMIT_MIN_SHARE of it), split over the video subscriptions: answering a
        browser's NACKs must not push the downlink past its estimate."""
        video = [s for s in self.subscriptions.values()
                 if s.accepted and s.track.kind == "video"]
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

    def downlink_estimate(self, t: float) -> int:
        """The subscriber's downlink estimate, once it has seen a limit (overuse or loss);
        unlimited before that, and for a client that sends no congestion feedback at all
        (transport-cc not negotiated, or negotiated but no feedback within
        FEEDBACK_GRACE_MS of connecting, and no REMB): there is nothing to adapt to."""
        if not self.twcc_feedback and not self.downlink_remb_bps:
            negotiated = self.subscriber is not None and self.subscriber.twcc_history is not None
            connected = self._subscriber_connected_ms
            if not negotiated or (connected is not None and t - connected > FEEDBACK_GRACE_MS):
                return UNLIMITED_BPS
        elif self.downlink.in_start_phase:
            # feedback, but no sign of a limit yet (no overuse, no loss): the estimate is
            # only a starting guess, and pausing a camera on a guess blanks it for seconds
            return UNLIMITED_BPS
        return self.downlink.estimate_bps(t)

    def dynacast(self, t: float) -> None:
        """Switch off simulcast layers of our tracks that no subscriber receives or waits
        for (after ``dynacast_delay_ms``), and back on as soon as one is wanted."""
        delay = self._params.dynacast_delay_ms
        for track in self.tracks.values():
            if not track.simulcast:
                continue
            # the lowest layer stays on while anyone subscribes: stepping down under
            # congestion must not wait for the publisher to restart an encoder
            wanted: set[int] = {0} if track.subscriptions else set()
            for sub in track.subscriptions:
                wanted.add(sub.selector.target)
                wanted.add(sub.selector.current)
            changed = False
            for layer in track.layers:
                if layer.index in wanted:
                    layer.unneeded_since_ms = None
                    if not layer.enabled:
                        layer.enabled = changed = True
                elif layer.unneeded_since_ms is None:
                    layer.unneeded_since_ms = t
                elif layer.enabled and t - layer.unneeded_since_ms >= delay:
                    layer.enabled = False
                    changed = True
            if changed:
                self.send({
                    "type": "publisher_layers", "trackId": track.id, "mid": track.mid,
                    "layers": [{"rid": la.rid, "active": la.enabled} for la in track.layers],
                })
                self.room.layers_changed(self, track)

    def send_reports(self) -> None:
        t = now_ms()
        ntp = rtcp.ntp_from_unix(time.time())
        sub_t = self.subscriber
        if sub_t is not None and sub_t.ready:
            reports = [sub.sender_report(t, ntp) for sub in self.subscriptions.values()
                       if sub.active and sub.stats.packets]
            # several SRs in one compound packet (RFC 8108 section 5.3): one SRTCP protect
            # and one send per subscriber and second instead of one per stream
            for i in range(0, len(reports), SRS_PER_COMPOUND):
                sub_t.send_rtcp(b"".join(reports[i:i + SRS_PER_COMPOUND]))
        pub_t = self.publisher
        if pub_t is not None and pub_t.ready and self.tracks:
            blocks: list[rtcp.ReportBlock] = []
            video_ssrcs: list[int] = []
            for track in self.tracks.values():
                blocks += track.receiver_report_blocks(t)
                if track.kind == "video":
                    video_ssrcs += track.video_ssrcs()
            packet = rtcp.build_rr(self._rtcp_ssrc, blocks[:31])
            if video_ssrcs:
                packet += rtcp.build_remb(
                    self._rtcp_ssrc, self._params.publisher_max_bitrate_bps, video_ssrcs
                )
            pub_t.send_rtcp(packet)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for mid in list(self.tracks):
            self._unpublish(mid)
        for track_id in list(self.subscriptions):
            sub = self.subscriptions.pop(track_id)
            sub.close()
            self._retired.add_subscription(sub)
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
        for transport in (self.publisher, self.subscriber):
            if transport is not None:
                await transport.close()
        self._retired.add_participant(self)
        if self.on_closed is not None:
            self.on_closed()


def _discard(message: dict[str, Any]) -> None:
    """Where messages go while no client connection is attached."""


#: what a simulcast layer costs before it has been measured (the shipped client's
#: maxBitrate per encoding, lowest first)
NOMINAL_LAYER_BPS = (150_000, 500_000, 1_500_000)


def nominal_layer_bps(index: int, layers: int) -> int:
    return NOMINAL_LAYER_BPS[index + max(0, len(NOMINAL_LAYER_BPS) - layers)]


#: transport-cc feedback messages handled per RTCP compound (browsers send one)
MAX_TWCC_PER_COMPOUND = 4


def _twcc_plausible(fci: bytes, last_sent: int) -> bool:
    """The feedback's packet count fits within what we have sent since its base number."""
    if len(fci) < 8:
        return False
    base, count = struct.unpack_from("!HH", fci)
    return bool(count <= ((last_sent - base) & 0xFFFF) + 1)


def _declared_sources(declared: list[dict[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in declared or []:
        if not isinstance(item, dict):
            continue
        mid, source = item.get("mid"), item.get("source")
        if isinstance(mid, str) and source in SOURCES:
            out[mid] = source
    return out
