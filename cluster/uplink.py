"""A page's tracks, published on an edge, relayed to the room's origin (docs/cluster.md,
"Edge relays").

The edge publishes them on the page's own session with the origin, as the page would: an
offer on target ``publisher`` naming each track by the id it has on the edge (the origin
keeps it for a ``via`` participant), then one DTLS-SRTP connection from the edge to the
origin's media port. Each track is fed to it by a :class:`sfu.track.Subscription` on the
edge (a :class:`sfu.track.PacketDownstream`), at the top simulcast layer arriving: the origin
receives each track once, and answers its own subscribers' NACKs and keyframe requests;
its NACKs and keyframe requests to the edge end at the edge's cache and at the page.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sfu import rtcp, sdp
from sfu.negotiation import SubscriberSlot, build_subscriber_offer
from sfu.participant import MediaParams, Participant, now_ms
from sfu.track import PacketDownstream, PublishedTrack, Subscription
from sfu.transport import MediaTransport

log = logging.getLogger(__name__)

#: how long the origin may take to answer the edge's offer
ANSWER_TIMEOUT_S = 10.0


class Uplink:
    """One page's published tracks, on their way to the origin."""

    def __init__(self, page: Participant, params: MediaParams,
                 send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.page = page
        self.params = params
        #: the page's current session with the origin (a resume gives it a new one)
        self.send = send
        self.transport: MediaTransport | None = None
        #: the origin's answers to our offers (signalling.edge hands them over)
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subs: dict[str, Subscription] = {}  # by track id
        self._slots: dict[str, SubscriberSlot] = {}  # by track id
        self._lock = asyncio.Lock()
        self.closed = False

    async def sync(self) -> None:
        """Publish at the origin what the page publishes here now (new tracks added,
        gone ones removed): one offer, the origin's answer, the subscriptions."""
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        tracks = {t.id: t for t in self.page.tracks.values()}
        if self.closed or set(tracks) == set(self.subs):
            return
        first = self.transport is None
        if first:
            self.transport = MediaTransport(
                self.params.certificate, list(self.params.ice_addresses), controlling=True,
                on_rtp=lambda data, t: None, on_rtcp=self._on_rtcp,
                on_state=lambda state: log.info("uplink of %s: %s", self.page.id, state),
                name=f"uplink/{self.page.id}")
            await self.transport.gather()
        transport = self.transport
        assert transport is not None
        for track_id, track in tracks.items():
            if track_id not in self._slots:
                self._slots[track_id] = SubscriberSlot(
                    mid=f"u{len(self._slots)}", kind=track.kind,
                    ssrc=secrets.randbits(32) | 1, rtx_ssrc=secrets.randbits(32) | 1,
                    stream_id=self.page.id, track_id=track_id, cname=self.page.id,
                    codec=track.codec)
        for track_id, slot in self._slots.items():
            if track_id not in tracks:
                slot.track_id = None
        live = [s for s in self._slots.values() if s.track_id is not None]
        # (a gone track's m-line stays, inactive: the origin unpublishes it)
        offer = build_subscriber_offer(list(self._slots.values()), transport.local())
        await self.send({"type": "offer", "target": "publisher", "sdp": offer, "tracks": [
            {"mid": s.mid, "trackId": s.track_id, "source": tracks[s.track_id].source}
            for s in live if s.track_id is not None]})
        try:
            answer_msg = await asyncio.wait_for(self.answers.get(), ANSWER_TIMEOUT_S)
            if answer_msg.get("type") != "answer":
                raise ConnectionError(f"the origin refused the page's tracks: {answer_msg}")
        except BaseException:
            if first:  # (never started: the next sync makes a new one)
                self.transport = None
                await transport.close()
            raise
        if first and live:
            await transport.start_with(sdp.parse(answer_msg["sdp"]), dtls_role="server")
        self._close_subs(set(tracks))
        now = now_ms()
        for track_id, track in tracks.items():
            if track_id not in self.subs:
                self.subs[track_id] = self._subscribe(track, self._slots[track_id], now)

    async def restart(self) -> None:
        """Publish the page's tracks anew (the room moved to another origin): a new
        connection, a new offer on the page's session there."""
        async with self._lock:
            self._close_subs(set())
            self._slots.clear()
            if self.transport is not None:
                await self.transport.close()
                self.transport = None
            while not self.answers.empty():  # (answers of the old origin)
                self.answers.get_nowait()
            await self._sync()

    def _subscribe(self, track: PublishedTrack, slot: SubscriberSlot, now: float
                   ) -> Subscription:
        transport = self.transport
        assert transport is not None
        sub = Subscription(track, PacketDownstream(transport.send_rtp), out_ssrc=slot.ssrc,
                           rtx_ssrc=slot.rtx_ssrc, rtx_pt=None,
                           first_seq=secrets.randbits(16), first_ts=secrets.randbits(32))
        if track.kind == "video":
            sub.selector.current = -1  # from a keyframe of the top layer
            sub.selector.set_target(len(track.layers) - 1)
        sub.accepted = True
        track.add_subscription(sub)
        sub.activate(now)
        return sub

    def _close_subs(self, keep: set[str]) -> None:
        for track_id in [t for t in self.subs if t not in keep]:
            self.subs.pop(track_id).close()

    def tick(self, now: float) -> None:
        """Follow the top simulcast layer arriving from the page."""
        for sub in self.subs.values():
            sub.follow_top_layer(now)

    def _on_rtcp(self, data: bytes) -> None:
        """The origin's feedback on the relayed tracks: NACKs answered from the edge's
        cache, keyframe requests passed on to the page."""
        t = now_ms()
        by_ssrc = {sub.out_ssrc: sub for sub in self.subs.values()}
        for msg in rtcp.parse(data):
            if msg.pt == rtcp.RTPFB and msg.fmt == rtcp.FMT_NACK:
                sub = by_ssrc.get(msg.media_ssrc)
                if sub is not None:
                    sub.on_nack(msg.items, t)
            elif msg.pt == rtcp.PSFB and msg.fmt in (rtcp.FMT_PLI, rtcp.FMT_FIR):
                ssrcs = msg.items if msg.fmt == rtcp.FMT_FIR else (msg.media_ssrc,)
                for ssrc in ssrcs:
                    sub = by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.on_keyframe_request(t, fir=msg.fmt == rtcp.FMT_FIR)

    async def close(self) -> None:
        self.closed = True
        self._close_subs(set())
        if self.transport is not None:
            await self.transport.close()
