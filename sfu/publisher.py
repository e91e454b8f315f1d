"""A participant's publishing side: its publisher connection (the browser offers, we
answer), the tracks it publishes, the SSRC routes of their packets, and what goes back to
the publisher (transport-cc feedback, receiver reports and REMB, dynacast).

Packets arrive from :mod:`sfu.transport` (the compiled ingress step asks
:meth:`PublisherSide.ingress_sources`; the rest comes through ``_on_rtp``) and go to
:class:`sfu.track.PublishedTrack`. The side tells its room through the participant's
:class:`~sfu.participant.RoomLink`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import rtcp, sdp
from .engine import ENGINE, IngressSource
from .errors import PermissionDenied, TooManyTracks, UnknownTrack
from .negotiation import AcceptedMedia, NoCommonCodecError, answer_publisher
from .rtp_header import find_extension, seq_ts_ssrc
from .track import Layer, PublishedTrack
from .transport import MediaTransport
from .twcc import TwccRecorder

if TYPE_CHECKING:
    from .participant import Participant

log = logging.getLogger(__name__)

SOURCES = ("microphone", "camera", "screen")
TRACK_ID = re.compile(r"^TR_[0-9a-f]{12}$")
#: SSRCs remembered per published track (a publisher's SSRC changes on restarts)
MAX_SSRCS_PER_TRACK = 3


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


class PublisherSide:
    def __init__(self, owner: Participant) -> None:
        self._owner = owner
        self.transport: MediaTransport | None = None
        self.tracks: dict[str, PublishedTrack] = {}  # by mid
        self.ssrc_table = SsrcTable(self._routes_changed)
        self._mid_ext_ids: set[int] = set()
        self._rid_ext_ids: dict[str, int] = {}  # by mid
        self._declared_ids: dict[str, str] = {}  # by mid (an edge's publication)
        #: arrival record of the publisher's transport-wide sequence numbers (its feedback)
        self.twcc_rx: TwccRecorder | None = None
        #: a transport made to replace a dead one gets a fresh DTLS certificate
        self._fresh_certificate = False
        self.twcc_feedback_sent = 0
        self.unknown_ssrc_packets = 0
        self.invalid_rtp_packets = 0
        self.wrong_pt_packets = 0

    def track_by_id(self, track_id: str) -> PublishedTrack | None:
        for t in self.tracks.values():
            if t.id == track_id:
                return t
        return None

    # -- negotiation ------------------------------------------------------------------

    async def handle_offer(self, sdp_text: str, declared: list[dict[str, Any]] | None
                           ) -> dict[str, Any]:
        owner = self._owner
        if not owner.info.grants.publish:
            raise PermissionDenied("this participant may not publish")
        offer = sdp.parse(sdp_text)
        sources = _declared_sources(declared)
        # a page on an edge node: the edge publishes its tracks under the ids it gave them
        # there, so that every node names a track alike (docs/cluster.md, "Edge relays")
        self._declared_ids = _declared_ids(declared) if owner.info.via else {}
        owner.ensure_open()
        await self._maybe_restart(offer)
        if self.transport is None:
            transport = owner.new_transport(
                "pub", controlling=False, fresh_certificate=self._fresh_certificate,
                on_rtp=self.on_rtp, on_rtcp=self._on_rtcp,
                on_state=lambda state: self._on_state(state, transport))
            transport.ingress = self  # the compiled ingress step asks which sources it takes
            self.transport = transport
            for track in self.tracks.values():  # kept across a restart: their NACKs and
                track.upstream = transport      # keyframe requests go to the new transport
            await transport.gather()
            owner.ensure_open()  # removed while gathering: publish nothing
        answer = answer_publisher(offer, self.transport.local())
        self._check_track_limits(answer.accepted, sources)
        first = next((m for m in offer.media
                      if m.port != 0 and m.mid not in answer.rejected_mids), None)
        if first is None:
            raise NoCommonCodecError("no media section of the offer can be received")
        ufrag, pwd = offer.ice_of(first)
        self.transport.start(ufrag, pwd, offer.fingerprints_of(first), dtls_role="client")
        # BUNDLE: only the first accepted section's transport is used
        for cand in first.candidates:
            await owner.add_candidate(self.transport, cand)
        if first.end_of_candidates:
            await self.transport.add_remote_candidate(None)
        owner.ensure_open()
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

    async def _maybe_restart(self, offer: sdp.SessionDescription) -> None:
        """An offer with new ICE credentials (the browser's ``restartIce()``), or any offer
        while our publisher transport is dead, gets a fresh transport with a new DTLS
        certificate: aioice cannot restart ICE in place, and a changed fingerprint makes
        the browser restart DTLS too. Tracks, their ids and subscribers stay; the browser's
        SSRCs are learned again from the MID/RID extensions."""
        old = self.transport
        first = next((m for m in offer.media if m.port != 0), None)
        if old is None or first is None:
            return
        dead = old.state in ("failed", "closed")
        if not dead and old.remote_ice in (None, offer.ice_of(first)):
            return
        owner = self._owner
        owner.check_restart_rate("publisher")
        log.info("participant %s: new publisher transport (%s)", owner.id,
                 "the old one failed" if dead else "ICE restart")
        self.transport = None
        owner.transport_restarts += 1
        self._fresh_certificate = True
        await old.close()
        owner.ensure_open()

    def _check_track_limits(self, accepted: list[AcceptedMedia], sources: dict[str, str]
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

    def _apply_publication(self, accepted: list[AcceptedMedia], sources: dict[str, str]
                           ) -> None:
        assert self.transport is not None
        owner = self._owner
        keep: set[str] = set()
        if self.twcc_rx is None and any(m.twcc_ext_id for m in accepted):
            self.twcc_rx = ENGINE.twcc_recorder()
        for m in accepted:
            keep.add(m.mid)
            if m.mid_ext_id:
                self._mid_ext_ids.add(m.mid_ext_id)
            if m.rid_ext_id:
                self._rid_ext_ids[m.mid] = m.rid_ext_id
            track = self.tracks.get(m.mid)
            if track is not None:
                if m.ssrc is not None and m.ssrc != track.ssrc:
                    self.ssrc_table.forget(track)
                    track.ssrc = m.ssrc
                    self.ssrc_table[m.ssrc] = track.layers[0]
                continue
            source = sources.get(m.mid) or ("microphone" if m.kind == "audio" else "camera")
            track = PublishedTrack(
                track_id=self._declared_ids.get(m.mid) or f"TR_{secrets.token_hex(6)}",
                participant_id=owner.id, kind=m.kind,
                source=source, mid=m.mid, codec=m.codec, publisher_pt=m.pt,
                ext_map=m.ext_map, ssrc=m.ssrc, rtx_ssrc=m.rtx_ssrc,
                upstream=self.transport, receiver_ssrc=owner.rtcp_ssrc,
                keyframe_interval_ms=owner.params.keyframe_interval_ms, rids=m.rids,
                publisher_role=owner.info.role, twcc=self.twcc_rx,
                on_audio_level=owner.room.on_audio_level if m.kind == "audio" else None,
            )
            self.tracks[m.mid] = track
            if m.ssrc is not None:
                self.ssrc_table[m.ssrc] = track.layers[0]
            owner.room.track_published(owner, track)
        for mid in [mid for mid in self.tracks if mid not in keep]:
            self.unpublish(mid)

    def unpublish(self, mid: str) -> None:
        track = self.tracks.pop(mid, None)
        if track is None:
            return
        self.ssrc_table.forget(track)
        track.close()
        self._owner.params.retired.add_track(track)
        self._owner.room.track_unpublished(self._owner, track)

    def _routes_changed(self) -> None:
        if self.transport is not None:
            self.transport.invalidate_ingress()

    def set_track_muted(self, track_id: str, muted: bool, by: Participant) -> PublishedTrack:
        owner = self._owner
        track = self.track_by_id(track_id)
        if track is None:
            raise UnknownTrack(f"no track {track_id!r}")
        if by is not owner and not by.info.grants.moderate:
            raise PermissionDenied("muting another participant's track needs the moderate grant")
        if by is not owner and not muted:
            raise PermissionDenied("only the publisher can unmute its track")
        if track.muted != muted:
            track.set_muted(muted, owner.clock())
            owner.room.track_muted(owner, track)
        return track

    # -- the compiled ingress step (sfu.engine: ENGINE.ingress) -------------------------

    def ingress_sources(self) -> list[IngressSource]:
        """The sources whose packets the compiled ingress step may take now: asked by the
        publisher transport once what they are made from changed."""
        return ingress_sources_of(self.ssrc_table)

    def on_ingress(self, flags: int, rx: Any, data: bytes, handle: Any) -> None:
        """A packet the compiled ingress step handled but left something of to Python
        (``flags`` > 1; ``data``: as rewritten, ``rx``: its results, ``handle``: its
        source's (track, layer))."""
        track, layer = handle
        track.after_ingress(flags, rx, data, layer)

    # -- from the publisher (the Python path) ------------------------------------------

    def on_rtp(self, data: bytes, arrival_ms: float) -> None:
        """The publisher transport's callback: an RTP packet the compiled ingress step
        did not take (or all of them, without it)."""
        fields = seq_ts_ssrc(data)
        if fields is None:
            self.invalid_rtp_packets += 1
            return
        seq, ts, ssrc = fields
        layer = self.ssrc_table.get(ssrc)
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
            learned = [s for s, la in self.ssrc_table.items() if la is layer]
            if len(learned) >= MAX_SSRCS_PER_TRACK:
                del self.ssrc_table[learned[0]]  # a bounded table, oldest out
            self.ssrc_table[ssrc] = layer
            return layer
        return None

    def _on_rtcp(self, data: bytes) -> None:
        arrival = self._owner.clock()
        for msg in rtcp.parse(data):
            if msg.pt == rtcp.SR and msg.sender_info is not None:
                layer = self.ssrc_table.get(msg.sender_ssrc)
                if layer is not None:
                    layer.track.last_sr[msg.sender_ssrc] = (
                        (msg.sender_info[0] >> 16) & 0xFFFFFFFF, arrival)

    def _on_state(self, state: str, transport: MediaTransport) -> None:
        if transport is not self.transport:
            return  # a replaced transport closing
        owner = self._owner
        log.info("participant %s publisher transport %s", owner.id, state)
        if state == "connected":
            owner.ensure_control_loop()
            for track in self.tracks.values():
                if track.subscriptions:
                    track.request_keyframe(owner.clock())
        elif state == "failed":
            owner.room.transport_failed(owner, "publisher")
            if transport.was_connected:
                # a path that worked died: the browser must restart ICE (only it can offer
                # on this connection); while reconnecting, the resume asks. (One that never
                # connected fails on the browser's side too, which restarts it.)
                owner.send({"type": "restart_ice", "target": "publisher"})

    # -- to the publisher ---------------------------------------------------------------

    def send_twcc_feedback(self, t: float) -> None:
        transport = self.transport
        rec = self.twcc_rx
        if rec is None or transport is None or not transport.ready:
            return
        media_ssrc = next(iter(self.ssrc_table), 0)
        for packet in rec.build_feedback(self._owner.rtcp_ssrc, media_ssrc, t):
            if transport.send_rtcp(packet):
                self.twcc_feedback_sent += 1

    def send_reports(self, t: float) -> None:
        """Receiver reports of every source we receive, and REMB capping the publisher."""
        transport = self.transport
        if transport is None or not transport.ready or not self.tracks:
            return
        blocks: list[rtcp.ReportBlock] = []
        video_ssrcs: list[int] = []
        for track in self.tracks.values():
            blocks += track.receiver_report_blocks(t)
            if track.kind == "video":
                video_ssrcs += track.video_ssrcs()
        rtcp_ssrc = self._owner.rtcp_ssrc
        packet = rtcp.build_rr(rtcp_ssrc, blocks[:31])
        if video_ssrcs:
            packet += rtcp.build_remb(
                rtcp_ssrc, self._owner.params.publisher_max_bitrate_bps, video_ssrcs)
        transport.send_rtcp(packet)

    def sample_layers(self, t: float) -> None:
        for track in self.tracks.values():
            for layer in track.layers:
                layer.sample(t)

    def dynacast(self, t: float) -> None:
        """Switch off simulcast layers of our tracks that no subscriber receives or waits
        for (after ``dynacast_delay_ms``), and back on as soon as one is wanted."""
        owner = self._owner
        delay = owner.params.dynacast_delay_ms
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
                owner.send({
                    "type": "publisher_layers", "trackId": track.id, "mid": track.mid,
                    "layers": [{"rid": la.rid, "active": la.enabled} for la in track.layers],
                })
                owner.room.layers_changed(owner, track)

    def media_stats(self, t: float) -> list[dict[str, Any]]:
        return [
            {"trackId": tr.id, "kind": tr.kind, "source": tr.source,
             "layers": [{**la.describe(), "receiving": la.receiving(t)} for la in tr.layers]}
            for tr in self.tracks.values()
        ]

    def unpublish_all(self) -> None:
        for mid in list(self.tracks):
            self.unpublish(mid)


def ingress_sources_of(routes: dict[int, Layer]) -> list[IngressSource]:
    """The compiled ingress step's sources for SSRC routes (a publisher's, a relay's)."""
    found: list[IngressSource] = []
    for ssrc, layer in routes.items():
        track = layer.track
        source = track.ingress_source(layer, ssrc)
        if source is not None:
            found.append(IngressSource(
                ssrc, source[0], track.ingress_state, layer.counters, source[1],
                (track, layer)))
    return found


def _declared_ids(declared: list[dict[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in declared or []:
        if isinstance(item, dict) and isinstance(item.get("mid"), str) and isinstance(
                item.get("trackId"), str) and TRACK_ID.match(item["trackId"]):
            out[item["mid"]] = item["trackId"]
    return out


def _declared_sources(declared: list[dict[str, Any]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in declared or []:
        if not isinstance(item, dict):
            continue
        mid, source = item.get("mid"), item.get("source")
        if isinstance(mid, str) and source in SOURCES:
            out[mid] = source
    return out
