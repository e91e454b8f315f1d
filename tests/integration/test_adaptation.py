"""Adaptation through the real server with raw clients: active speakers from the audio-level
extension, and the subscriber's set_quality (view size) message."""

from __future__ import annotations

import asyncio
import os

import pytest
from sfu_harness import unique, wait_until

from benches.rawclient import RawClient

pytestmark = pytest.mark.integration


async def _talk(pub: RawClient, level: int, seconds: float) -> None:
    """Audio packets every 20 ms with an RFC 6464 level (0 loudest, 127 silence)."""
    for _ in range(int(seconds * 50)):
        pub.send_packet(pub.build_packet("audio", os.urandom(60), audio_level=level))
        await asyncio.sleep(0.02)


async def test_active_speaker_is_announced_and_cleared(server, raw_client) -> None:  # type: ignore[no-untyped-def]
    room = unique("speak")
    listener = raw_client(room, "listener")
    pub = raw_client(room, "talker")
    await listener.connect()
    joined = await pub.connect()
    talker_id = joined["participant"]["id"]
    await pub.publish(video=False)

    talking = asyncio.ensure_future(_talk(pub, 20, 3.0))
    msg = await listener.wait_for(
        "speakers", timeout=5,
        pred=lambda m: [s["participantId"] for s in m["speakers"]] == [talker_id])
    assert 0 < msg["speakers"][0]["level"] <= 1
    await talking
    silent = asyncio.ensure_future(_talk(pub, 127, 3.0))
    await listener.wait_for("speakers", timeout=5, pred=lambda m: m["speakers"] == [])
    await silent


async def test_set_quality_off_stops_video_and_bad_requests_are_refused(server, raw_client) -> None:  # type: ignore[no-untyped-def]
    room = unique("quality")
    sub = raw_client(room, "viewer", record=True)
    pub = raw_client(room, "cam")
    await sub.connect()
    await pub.connect()
    published = await pub.publish()
    await sub.wait_subscribed()
    video_track = published["v"]

    async def pump(stop: asyncio.Event) -> None:
        while not stop.is_set():
            pub.send_packet(pub.build_packet("video", os.urandom(500), marker=True))
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    pumping = asyncio.ensure_future(pump(stop))
    try:
        await wait_until(lambda: (rec := sub.received_for_track(video_track)) is not None
                         and len(rec.records) > 10)
        await sub.send({"type": "set_quality", "trackId": video_track, "quality": "huge"})
        err = await sub.wait_for("error")
        assert err["code"] == "bad_message" and "quality" in err["message"]
        await sub.send({"type": "set_quality", "trackId": "TR_nope", "quality": "low"})
        err = await sub.wait_for("error")
        assert err["code"] == "unknown_track"

        await sub.send({"type": "set_quality", "trackId": video_track, "quality": "off"})
        await sub.send({"type": "ping", "id": "after-off"})  # handled in order: a barrier
        await sub.wait_for("pong", pred=lambda m: m.get("id") == "after-off")
        rec = sub.received_for_track(video_track)
        assert rec is not None
        await asyncio.sleep(0.2)  # packets already on the wire land
        count = len(rec.records)
        await asyncio.sleep(1.0)  # an absence cannot be awaited: watch for a second
        assert len(rec.records) == count, "video still forwarded after quality 'off'"
        assert not any(m["type"] == "track_paused" for m in sub.log), \
            "a view the client turned off is not a bandwidth pause"

        await sub.send({"type": "set_quality", "trackId": video_track, "quality": "high"})
        await wait_until(lambda: len(rec.records) > count + 10, timeout=5)
    finally:
        stop.set()
        await pumping
