"""Media-session behaviour through the real server: a publisher's SSRC change stays
continuous for subscribers, screen share alongside camera and microphone, the per-participant
track limits, and a second join with the same identity replacing the first."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest
from sfu_harness import unique, wait_until

from benches.rawclient import PublishRefused

pytestmark = pytest.mark.integration


async def test_publisher_ssrc_change_is_continuous_for_subscribers(server, raw_client) -> None:  # type: ignore[no-untyped-def]
    room = unique("ssrc")
    sub = raw_client(room, "sub", record=True)
    pub = raw_client(room, "pub")
    await sub.connect()
    await pub.connect()
    video = (await pub.publish())["v"]
    await sub.wait_subscribed()
    while sub.received_for_track(video) is None:  # until the subscription is active
        pub.send_packet(pub.build_packet("video", os.urandom(300), marker=True))
        await asyncio.sleep(0.01)
    rec = sub.received_for_track(video)
    assert rec is not None
    mark = len(rec.records)
    sent = []
    for _ in range(30):
        payload = os.urandom(400)
        sent.append(payload)
        pub.send_packet(pub.build_packet("video", payload, marker=True))
    await wait_until(lambda: len(rec.records) >= mark + 30)
    # the publisher restarts its stream: new SSRC, new random sequence and timestamp bases,
    # without renegotiating (the server finds the track by the MID header extension)
    pub.video_ssrc = secrets.randbits(32) | 1
    pub._seq["video"] = secrets.randbits(16)
    pub._ts["video"] = secrets.randbits(32)
    for _ in range(30):
        payload = os.urandom(400)
        sent.append(payload)
        pub.send_packet(pub.build_packet("video", payload, marker=True))
    await wait_until(lambda: len(rec.records) >= mark + 60)
    got = rec.records[mark : mark + 60]
    assert [r[3] for r in got] == sent
    seqs = [r[0] for r in got]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), seqs
    ts = [r[1] for r in got]
    step = (ts[30] - ts[29]) & 0xFFFFFFFF
    assert 0 < step < 90000 * 5, "timestamp must advance a little across the change, not jump"
    # one subscriber-side SSRC for the track throughout
    assert len({s for s, t in sub.ssrc_to_track.items() if t == video}) == 1


async def test_screen_share_next_to_camera_and_microphone(server, raw_client) -> None:  # type: ignore[no-untyped-def]
    room = unique("screen")
    sub = raw_client(room, "sub", record=True)
    pub = raw_client(room, "teacher")
    await sub.connect()
    await pub.connect()
    screen_ssrc = secrets.randbits(32) | 1
    published = await pub.publish(extra_video={"s": screen_ssrc},
                                  sources={"a": "microphone", "v": "camera", "s": "screen"})
    assert set(published) == {"a", "v", "s"}
    await sub.wait_subscribed()
    await wait_until(lambda: len(sub.offer_tracks) == 3)
    sources = {t["source"] for t in sub.offer_tracks.values()}
    assert sources == {"microphone", "camera", "screen"}
    payload = os.urandom(600)

    def screen_received() -> bool:
        rec = sub.received_for_track(published["s"])
        return rec is not None and any(r[3] == payload for r in rec.records)

    while not screen_received():  # until the subscription is active
        pub.send_packet(pub.build_packet("video", payload, ssrc=screen_ssrc, mid=b"s"))
        await asyncio.sleep(0.01)
    camera = sub.received_for_track(published["v"])
    assert camera is None or all(r[3] != payload for r in camera.records)


async def test_more_than_one_camera_is_refused(server, raw_client) -> None:  # type: ignore[no-untyped-def]
    pub = raw_client(unique("limits"), "pub")
    await pub.connect()
    with pytest.raises(PublishRefused) as refused:
        await pub.publish(extra_video={"c2": 1234}, sources={"v": "camera", "c2": "camera"})
    assert refused.value.error["code"] == "too_many_tracks"
    assert refused.value.error["fatal"] is False
    await pub.send({"type": "ping", "id": 1})
    await pub.wait_for("pong")  # the session carries on


async def test_second_join_with_same_identity_replaces_the_first(server, raw_client, http) -> None:  # type: ignore[no-untyped-def]
    room = unique("dup")
    watcher = raw_client(room, "bob")
    first = raw_client(room, "alice")
    await watcher.connect()
    joined = await first.connect()
    old_id = joined["participant"]["id"]
    second = raw_client(room, "alice")
    new_id = (await second.connect())["participant"]["id"]
    left = await first.wait_for("left")
    assert left["reason"] == "replaced"
    await first.wait_for("__closed__")
    gone = await watcher.wait_for("participant_left", pred=lambda m: m["participantId"] == old_id)
    assert gone["reason"] == "replaced"
    await watcher.wait_for("participant_joined",
                           pred=lambda m: m["participant"]["id"] == new_id)
    # the server keeps only the new session
    status, body = await http.api("GET", f"/api/rooms/{room}/participants")
    assert status == 200
    assert sorted((p["identity"], p["id"]) for p in body["participants"]) == [
        ("alice", new_id), ("bob", watcher.joined["participant"]["id"])]


async def test_counters_do_not_go_down_when_participants_leave(server, raw_client, http) -> None:  # type: ignore[no-untyped-def]
    room = unique("retired")
    sub = raw_client(room, "sub")
    pub = raw_client(room, "pub")
    await sub.connect()
    await pub.connect()
    audio = (await pub.publish())["a"]
    await sub.wait_subscribed()
    while (rec := sub.received_for_track(audio)) is None or rec.packets < 20:
        pub.send_packet(pub.build_packet("audio", os.urandom(60)))
        await asyncio.sleep(0.005)
    before = await http.metric("sfu_rtp_packets_out_total", kind="audio")
    before_in = await http.metric("sfu_rtp_packets_in_total", kind="audio")
    assert before >= 20 and before_in >= 20
    await pub.close()
    await sub.close()
    status, _ = await http.api("GET", f"/api/rooms/{room}/participants")
    while status == 200:  # until the room is gone (auto-created rooms close when empty)
        await asyncio.sleep(0.05)
        status, _ = await http.api("GET", f"/api/rooms/{room}/participants")
    assert await http.metric("sfu_rtp_packets_out_total", kind="audio") >= before
    assert await http.metric("sfu_rtp_packets_in_total", kind="audio") >= before_in


async def test_answers_past_the_candidate_cap_are_accepted(server, raw_client, http) -> None:  # type: ignore[no-untyped-def]
    """A client that repeats its ICE candidates in every subscriber answer (non-trickle, like
    this raw client) renegotiates once per new track. More answers than the cap on remote
    candidates per connection (32) must all be accepted and every track delivered: the
    candidates of an answer on a running ICE session are the ones it already has. (The
    room forwards every microphone: 34 students talking at once, all delivered.)"""
    room = unique("reneg")
    status, _ = await http.api("POST", "/api/rooms", body={"name": room, "audioSpeakers": 0})
    assert status == 201
    sub = raw_client(room, "sub")
    await sub.connect()
    tracks = []
    for i in range(34):  # one publisher at a time: one subscriber offer and answer each
        pub = raw_client(room, f"pub{i}")
        await pub.connect()
        tracks.append((pub, (await pub.publish(video=False))["a"]))
        n = i + 1
        await wait_until(lambda n=n: len(sub.offer_tracks) >= n,  # type: ignore[misc]
                         what=lambda n=n: f"offer {n}; errors {sub.errors[-2:]}")
    await wait_until(lambda: sub.sub_offers >= 34)
    for pub, _ in tracks:
        pub.send_packet(pub.build_packet("audio", os.urandom(80)))

    def missing() -> list[str]:
        for pub, _ in tracks:  # UDP: resend until each track has arrived
            pub.send_packet(pub.build_packet("audio", os.urandom(80)))
        return [t for _, t in tracks if sub.received_for_track(t) is None]

    await wait_until(lambda: not missing(), what=lambda: f"tracks {missing()}; "
                     f"errors {sub.errors[-2:]}")
    assert sub.errors == []
