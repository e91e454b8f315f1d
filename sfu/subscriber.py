"""A participant's subscribing side: its subscriber connection (the server offers, the
browser answers; :class:`sfu.offer_state.OfferState` is the negotiation), the m-line slots
and subscriptions it carries, the RTCP feedback of the subscriber (receiver reports,
NACK, PLI/FIR, REMB, transport-cc: to the subscriptions and the downlink controller), and
the sender reports it gets.
"""

from __future__ import annotations

import logging
import secrets
import struct
from typing import TYPE_CHECKING, Any

from . import rtcp, sdp
from .codecs import TWCC_ID
from .downlink import DownlinkController
from .errors import InvalidState, UnknownTrack
from .negotiation import SubscriberSlot, build_subscriber_offer, read_subscriber_answer
from .offer_state import Action, OfferState, State
from .track import PublishedTrack, Subscription
from .transport import MediaTransport
from .twcc import TwccError, parse_feedback

if TYPE_CHECKING:
    from .participant import Participant

log = logging.getLogger(__name__)

#: sender reports per compound RTCP packet (28 bytes each: 896 bytes and the SRTCP trailer)
SRS_PER_COMPOUND = 32
#: transport-cc feedback messages handled per RTCP compound (browsers send one)
MAX_TWCC_PER_COMPOUND = 4


class SubscriberSide:
    def __init__(self, owner: Participant, downlink: DownlinkController) -> None:
        self._owner = owner
        self.downlink = downlink
        self.transport: MediaTransport | None = None
        self.slots: list[SubscriberSlot] = []
        self.subscriptions: dict[str, Subscription] = {}  # by track id
        self._by_ssrc: dict[int, Subscription] = {}
        self._next_mid = 0
        self.negotiation = OfferState()
        #: the slots of the outstanding offer with the track each carried in it
        self._offered: list[tuple[SubscriberSlot, str | None]] = []
        #: the subscriber offer sent and not answered yet (resent after a resume)
        self.outstanding_offer: dict[str, Any] | None = None
        #: a transport made to replace a dead one gets a fresh DTLS certificate
        self._fresh_certificate = False

    # -- subscriptions ------------------------------------------------------------------

    def subscribe(self, track: PublishedTrack) -> None:
        owner = self._owner
        if not owner.info.grants.subscribe or track.id in self.subscriptions or owner.closed:
            return
        slot = self._slot_for(track)
        sub = Subscription(
            track, self._transport(), out_ssrc=slot.ssrc, rtx_ssrc=slot.rtx_ssrc,
            rtx_pt=None, first_seq=secrets.randbits(16), first_ts=secrets.randbits(32),
        )
        track.add_subscription(sub)
        self.subscriptions[track.id] = sub
        self._by_ssrc[slot.ssrc] = sub
        self.offer_needed()

    def _slot_for(self, track: PublishedTrack) -> SubscriberSlot:
        """A recycled m-line of the same kind whose removal was negotiated, or a new one.

        Recycling bounds the subscriber SDP by the peak number of tracks, not by churn.
        Fresh SSRCs each time, so packets of the previous track can never be mistaken.
        """
        owner = self._owner
        for slot in self.slots:
            if slot.reusable and slot.kind == track.kind and slot.track_id is None:
                owner.release_ssrc(slot.ssrc)
                owner.release_ssrc(slot.rtx_ssrc)
                slot.ssrc, slot.rtx_ssrc = owner.new_ssrc(), owner.new_ssrc()
                slot.stream_id = slot.cname = track.participant_id
                slot.track_id, slot.codec = track.id, track.codec
                slot.reusable = False
                slot.accepted_pts, slot.accepted_ext_ids = set(), set()
                return slot
        slot = SubscriberSlot(
            mid=str(self._next_mid), kind=track.kind, ssrc=owner.new_ssrc(),
            rtx_ssrc=owner.new_ssrc(), stream_id=track.participant_id,
            track_id=track.id, cname=track.participant_id, codec=track.codec,
        )
        self._next_mid += 1
        self.slots.append(slot)
        return slot

    def unsubscribe(self, track_id: str) -> None:
        sub = self.subscriptions.pop(track_id, None)
        if sub is None:
            return
        self._by_ssrc.pop(sub.out_ssrc, None)
        sub.close()
        self._owner.params.retired.add_subscription(sub)
        if self.transport is not None and self.transport.ready:
            self.transport.send_rtcp(rtcp.build_bye([sub.out_ssrc]))
        for slot in self.slots:
            if slot.track_id == track_id:
                slot.track_id = None
                slot.reusable = False  # only once an answer has seen it inactive
        self.offer_needed()

    def set_quality(self, track_id: str, max_layer: int, t: float) -> None:
        sub = self.subscriptions.get(track_id)
        if sub is None:
            raise UnknownTrack(f"not subscribed to {track_id!r}")
        sub.max_layer = min(max_layer, len(sub.track.layers) - 1)
        self.downlink.allocate(t, self.subscriptions)

    def close_subscriptions(self) -> None:
        for track_id in list(self.subscriptions):
            sub = self.subscriptions.pop(track_id)
            sub.close()
            self._owner.params.retired.add_subscription(sub)

    # -- the transport ------------------------------------------------------------------

    def _transport(self) -> MediaTransport:
        if self.transport is None:
            transport = self._owner.new_transport(
                "sub", controlling=True, fresh_certificate=self._fresh_certificate,
                on_rtp=self._on_rtp, on_rtcp=self._on_rtcp,
                on_state=lambda state: self._on_state(state, transport))
            self.transport = transport
        return self.transport

    async def restart(self) -> None:
        """A fresh subscriber transport (new ICE credentials and DTLS certificate) and a new
        offer: the browser restarts ICE and DTLS on the same peer connection, its receivers
        and our SSRCs stay. For a subscriber path that died (aioice gives up after ~15-20 s
        without consent responses)."""
        owner = self._owner
        old = self.transport
        if old is None or owner.closed:
            return
        owner.check_restart_rate("subscriber")
        log.info("participant %s: new subscriber transport", owner.id)
        owner.transport_restarts += 1
        self.transport = None
        self._fresh_certificate = True
        self.downlink.restart()
        # an offer on the old transport is void (its answer, if any, is refused)
        self.negotiation.reset()
        self.outstanding_offer = None
        transport = self._transport()
        for sub in self.subscriptions.values():
            sub.active = False
            sub.downstream = transport
        await old.close()
        self.offer_needed()

    async def restart_soon(self) -> None:
        """restart from a callback: a refusal (too soon) is only logged."""
        try:
            await self.restart()
        except InvalidState as exc:
            log.info("participant %s: subscriber restart skipped: %s", self._owner.id, exc)

    def _on_state(self, state: str, transport: MediaTransport) -> None:
        if transport is not self.transport:
            return  # a replaced transport closing
        owner = self._owner
        log.info("participant %s subscriber transport %s", owner.id, state)
        if state == "connected":
            self.downlink.connected_ms = owner.clock()
            owner.ensure_control_loop()
            self._maybe_activate()
        elif state == "failed":
            owner.room.transport_failed(owner, "subscriber")
            if transport.was_connected and owner.presence.state == "active":
                # (a resume restarts it otherwise; one that never connected is restarted
                # when the browser asks)
                owner.spawn(self.restart_soon())

    def _maybe_activate(self) -> None:
        if self.transport is None or not self.transport.ready:
            return
        t = self._owner.clock()
        for sub in self.subscriptions.values():
            if sub.accepted:
                sub.activate(t)

    # -- negotiation (sfu.offer_state) --------------------------------------------------

    def offer_needed(self) -> None:
        """What the connection carries changed: an offer goes out (now, or after the one
        outstanding is answered)."""
        if self._owner.closed:
            return
        if self.negotiation.change() is Action.START_OFFER:
            self._owner.spawn(self._send_offer(self.negotiation.generation))

    def resync(self) -> None:
        """After a resume: the offer sent while detached was lost (sent again); with
        nothing outstanding, one is made (an answered one is harmlessly repeated)."""
        if self.transport is not None and self.transport.state in ("failed", "closed"):
            self._owner.spawn(self.restart_soon())  # (offers again)
        elif self.outstanding_offer is not None:
            self._owner.send(self.outstanding_offer)
        elif self.slots:
            self.offer_needed()

    async def _send_offer(self, generation: int) -> None:
        owner = self._owner
        transport = self._transport()
        try:
            await transport.gather()
        except OSError as exc:
            log.error("cannot gather ICE candidates: %s", exc)
            self.negotiation.gather_failed(generation)
            return
        if owner.closed or transport is not self.transport:
            return  # closed, or replaced while gathering (its restart offers again)
        if not self.negotiation.offer_sent(generation):
            return
        # slots added while this offer is outstanding go into the next one; changes made
        # while gathering are in this one
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
        self.outstanding_offer = {"type": "offer", "target": "subscriber", "sdp": offer,
                                  "tracks": tracks}
        owner.send(self.outstanding_offer)

    async def handle_answer(self, sdp_text: str) -> None:
        owner = self._owner
        self.negotiation.expect_answer()
        if self.transport is None:
            raise InvalidState("no subscriber offer is outstanding")
        owner.ensure_open()
        offered = self._offered
        self.outstanding_offer = None
        try:
            info = read_subscriber_answer(sdp.parse(sdp_text), [s for s, _ in offered])
        except sdp.SdpError:
            # the client applied our offer but its answer is unusable: offer again, a
            # couple of times (sfu.offer_state.MAX_ANSWER_RETRIES)
            if self.negotiation.answer_bad() is Action.START_OFFER:
                owner.spawn(self._send_offer(self.negotiation.generation))
            raise
        transport = self.transport
        if any(TWCC_ID in s.accepted_ext_ids for s, _ in offered if not s.rejected):
            transport.enable_twcc()
            self.downlink.twcc_negotiated = True
        # a renegotiation on a running transport repeats the ICE session's candidates: they
        # were added with the first answer (adding them again can race aioice's
        # end-of-candidates and would refuse a valid answer)
        same_session = transport.remote_ice == (info.ice_ufrag, info.ice_pwd)
        transport.start(info.ice_ufrag, info.ice_pwd, info.fingerprints, info.dtls_role)
        if not same_session:
            for cand in info.candidates:
                await owner.add_candidate(transport, cand)
        owner.ensure_open()
        if self.negotiation.state is not State.OFFERED or transport is not self.transport:
            return  # the transport was replaced meanwhile: this answer is void
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
        action = self.negotiation.answer_ok()
        self._maybe_activate()
        if action is Action.START_OFFER:
            owner.spawn(self._send_offer(self.negotiation.generation))

    # -- from the subscriber -----------------------------------------------------------

    def _on_rtp(self, data: bytes, arrival_ms: float) -> None:
        pass  # browsers send no media on the subscriber connection

    def _on_rtcp(self, data: bytes) -> None:
        t = self._owner.clock()
        downlink = self.downlink
        twcc_seen = 0
        for msg in rtcp.parse(data):
            if msg.pt in (rtcp.RR, rtcp.SR):
                worst = -1.0
                for block in msg.reports:
                    sub = self._by_ssrc.get(block.ssrc)
                    if sub is not None:
                        sub.on_receiver_report(block, t)
                        worst = max(worst, block.fraction_lost / 256.0)
                if worst >= 0:
                    downlink.on_receiver_loss(worst, t)
            elif msg.pt == rtcp.RTPFB and msg.fmt == rtcp.FMT_NACK:
                sub = self._by_ssrc.get(msg.media_ssrc)
                if sub is not None:
                    sub.on_nack(msg.items, t)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_PLI:
                sub = self._by_ssrc.get(msg.media_ssrc)
                if sub is not None:
                    sub.on_keyframe_request(t)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_FIR:
                for ssrc in msg.items:
                    sub = self._by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.on_keyframe_request(t, fir=True)
            elif msg.pt == rtcp.PSFB and msg.fmt == rtcp.FMT_AFB and msg.bitrate_bps:
                downlink.on_remb(msg.bitrate_bps, t)
                for ssrc in msg.items:
                    sub = self._by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.stats.remb_bps = msg.bitrate_bps
            elif msg.pt == rtcp.RTPFB and msg.fmt == rtcp.FMT_TWCC:
                transport = self.transport
                history = transport.twcc_history if transport else None
                twcc_seen += 1
                if (history is None or transport is None or twcc_seen > MAX_TWCC_PER_COMPOUND
                        or not _twcc_plausible(msg.fci, transport.twcc_last_seq)):
                    # feedback about more packets than we sent (or a flood of it): parsing
                    # it would be work an attacker chooses for us
                    downlink.twcc_feedback_invalid += 1
                    continue
                try:
                    feedback = parse_feedback(msg.fci)
                except TwccError:
                    downlink.twcc_feedback_invalid += 1
                    continue
                downlink.on_twcc(feedback, history, t, self.subscriptions)

    # -- to the subscriber ---------------------------------------------------------------

    def send_reports(self, t: float, ntp: int) -> None:
        transport = self.transport
        if transport is None or not transport.ready:
            return
        reports = [sub.sender_report(t, ntp) for sub in self.subscriptions.values()
                   if sub.active and sub.stats.packets]
        # several SRs in one compound packet (RFC 8108 section 5.3): one SRTCP protect and
        # one send per subscriber and second instead of one per stream
        for i in range(0, len(reports), SRS_PER_COMPOUND):
            transport.send_rtcp(b"".join(reports[i:i + SRS_PER_COMPOUND]))

    def media_stats(self) -> list[dict[str, Any]]:
        return [
            {"trackId": sub.track.id, "kind": sub.track.kind, "active": sub.active,
             "layer": sub.selector.current, "targetLayer": sub.selector.target,
             "maxLayer": sub.max_layer, "pausedForBandwidth": sub.paused_for_bandwidth,
             "packets": sub.stats.packets, "layerSwitches": sub.selector.switches}
            for sub in self.subscriptions.values()
        ]


def _twcc_plausible(fci: bytes, last_sent: int) -> bool:
    """The feedback's packet count fits within what we have sent since its base number."""
    if len(fci) < 8:
        return False
    base, count = struct.unpack_from("!HH", fci)
    return bool(count <= ((last_sent - base) & 0xFFFF) + 1)
