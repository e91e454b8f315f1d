"""RTCP through the real server: NACK answered from the cache (RTX), PLI throttled, reports."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from benches.rawclient import RawClient
from sfu import rtcp
from sfu.rtp_header import payload_bounds

pytestmark = pytest.mark.integration


async def until(pred: Callable[[], object], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def pair(sfu_server) -> AsyncIterator[tuple[RawClient, RawClient, str]]:  # type: ignore[no-untyped-def]
    sub = RawClient(sfu_server.ws_url, sfu_server.mint_token("rtcp", "sub"), record=True)
    pub = RawClient(sfu_server.ws_url, sfu_server.mint_token("rtcp", "pub"))
    await sub.connect()
    await pub.connect()
    published = await pub.publish()
    await sub.wait_subscribed()
    video = published["v"]
    # send until the subscription is active end to end
    async def first_packets() -> None:
        while sub.received_for_track(video) is None:
            payload = os.urandom(500)
            pub.send_packet(pub.build_packet("video", payload, marker=True))
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_packets(), 10)
    try:
        yield pub, sub, video
    finally:
        await pub.close()
        await sub.close()


def video_ssrcs(sub: RawClient, track_id: str) -> tuple[int, int]:
    """(media ssrc, rtx ssrc) of the subscriber's m-line for a track, from the offer log."""
    from sfu import sdp

    offer = next(m for m in reversed(sub.log) if m.get("type") == "offer")
    mid = next(t["mid"] for t in offer["tracks"] if t["trackId"] == track_id)
    section = next(m for m in sdp.parse(offer["sdp"]).media if m.mid == mid)
    media, rtx = section.media_ssrc(), section.rtx_ssrc()
    assert media is not None and rtx is not None
    return media, rtx


async def test_nack_is_answered_with_rtx_from_the_cache(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub, video = pair
    media_ssrc, rtx_ssrc = video_ssrcs(sub, video)
    before = len(sub.raw_packets)
    for _ in range(20):
        pub.send_packet(pub.build_packet("video", os.urandom(700), marker=True))
    await until(lambda: sum(1 for p in sub.raw_packets[before:]
                            if struct.unpack_from("!I", p, 8)[0] == media_ssrc) >= 20)
    wanted = [p for p in sub.raw_packets[before:]
              if struct.unpack_from("!I", p, 8)[0] == media_ssrc][5:8]
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in wanted]
    sub.send_subscriber_rtcp(rtcp.build_nack(0x1234, media_ssrc, seqs))

    def rtx_packets() -> list[bytes]:
        return [p for p in sub.raw_packets if struct.unpack_from("!I", p, 8)[0] == rtx_ssrc]

    await until(lambda: len(rtx_packets()) >= 3)
    for original, rtx in zip(wanted, rtx_packets()[:3]):
        o_start, o_end = payload_bounds(original)
        r_start, r_end = payload_bounds(rtx)
        assert rtx[1] & 0x7F == 97  # RTX payload type the subscriber accepted
        assert rtx[r_start : r_start + 2] == original[2:4]  # OSN = original sequence number
        assert rtx[r_start + 2 : r_end] == original[o_start:o_end]
        assert rtx[4:8] == original[4:8]  # same (rewritten) timestamp


async def test_keyframe_requests_are_throttled_towards_the_publisher(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub, video = pair
    media_ssrc, _ = video_ssrcs(sub, video)

    def plis() -> int:
        return sum(1 for m in pub.pub_rtcp if m.pt == rtcp.PSFB and m.fmt == rtcp.FMT_PLI
                   and m.media_ssrc == pub.video_ssrc)

    # the throttle is time-based: let the activation PLI's 500 ms window pass, then burst
    await asyncio.sleep(0.6)
    start = plis()
    for _ in range(10):
        sub.send_subscriber_rtcp(rtcp.build_pli(0x1234, media_ssrc))
        sub.send_subscriber_rtcp(rtcp.build_fir(0x1234, media_ssrc, 1))
    await until(lambda: plis() > start)
    await asyncio.sleep(0.3)  # inside the 500 ms window nothing more may arrive
    assert plis() == start + 1


async def test_server_reports_to_both_sides(pair) -> None:  # type: ignore[no-untyped-def]
    pub, sub, video = pair
    media_ssrc, _ = video_ssrcs(sub, video)
    for _ in range(10):
        pub.send_packet(pub.build_packet("video", os.urandom(300), marker=True))
    # publisher side: RR about its video SSRC and a REMB
    await until(lambda: any(m.pt == rtcp.RR and any(b.ssrc == pub.video_ssrc for b in m.reports)
                            for m in pub.pub_rtcp), timeout=5)
    assert any(m.bitrate_bps > 0 for m in pub.pub_rtcp if m.pt == rtcp.PSFB)
    # subscriber side: SR for its video SSRC counting what it received
    await until(lambda: any(m.pt == rtcp.SR and m.sender_ssrc == media_ssrc
                            for m in sub.sub_rtcp), timeout=5)
    sr = next(m for m in sub.sub_rtcp if m.pt == rtcp.SR and m.sender_ssrc == media_ssrc)
    assert sr.sender_info is not None and sr.sender_info[2] > 0
    # the SR's RTP timestamp maps "now" onto the stream's timeline (lip sync depends on it):
    # it is at most a few seconds of 90 kHz clock past the last packet received
    last_ts = struct.unpack_from("!I", [p for p in sub.raw_packets
                                        if struct.unpack_from("!I", p, 8)[0] == media_ssrc][-1],
                                 4)[0]
    assert (sr.sender_info[1] - last_ts) & 0xFFFFFFFF < 90000 * 3
