"""Protocol-state errors and self-mute, each while a healthy pair keeps receiving media."""

from __future__ import annotations

import asyncio

import pytest
from sfu_harness import HealthyPair, WsProbe, track_counts, wait_until

from benches.rawclient import RawClient
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


async def joined_probe(server: ServerProcess, room: str, identity: str,
                       role: str = "student") -> WsProbe:
    probe = await WsProbe(server).open()
    await probe.send({"type": "join", "token": server.mint_token(room, identity, role=role)})
    await probe.expect("joined")
    return probe


async def test_state_errors_are_reported_and_not_fatal(server: ServerProcess,
                                                       pair: HealthyPair) -> None:
    # alone in its own room: no subscriber offer is outstanding, no connection exists
    probe = await joined_probe(server, pair.room + "-alone", "confused")
    try:
        cases = [
            ({"type": "join", "token": server.mint_token(pair.room, "x")}, "already_joined"),
            ({"type": "answer", "target": "subscriber", "sdp": "v=0\r\n"}, "invalid_state"),
            ({"type": "candidate", "target": "publisher",
              "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}},
             "invalid_state"),
            ({"type": "mute", "trackId": "TR_nope", "muted": True}, "unknown_track"),
            ({"type": "mute", "trackId": pair.audio, "muted": True}, "unknown_track"),
            ({"type": "offer", "target": "subscriber", "sdp": "v=0\r\n"}, "bad_message"),
            ({"type": "candidate", "target": "sideways", "candidate": None}, "bad_message"),
            ({"type": "mute", "trackId": 5, "muted": True}, "bad_message"),
        ]
        for msg, code in cases:
            await probe.send(msg)
            err = await probe.expect_error(code, fatal=False)
            assert err["ref"] == msg["type"]
        await probe.ping_pong()
        await pair.assert_flowing()
    finally:
        await probe.close()


async def test_muting_someone_elses_track_needs_the_moderate_grant(
        server: ServerProcess, pair: HealthyPair) -> None:
    # tracks are looked up on the sender's own participant: another's track id is unknown
    # there, and the moderation path is the room API (tests/integration/test_room_api.py)
    student = await joined_probe(server, pair.room, "student-2")
    try:
        await student.send({"type": "mute", "trackId": pair.video, "muted": True})
        await student.expect_error("unknown_track", fatal=False)
        await pair.assert_flowing()
    finally:
        await student.close()


async def test_bad_candidate_line_is_bad_sdp(server: ServerProcess, pair: HealthyPair) -> None:
    pub = RawClient(server.ws_url, server.mint_token(pair.room, "cand"))
    try:
        await pub.connect()
        await pub.publish(audio=True, video=False)
        await pub.send({"type": "candidate", "target": "publisher",
                        "candidate": {"candidate": "candidate:garbage", "sdpMid": "a"}})
        err = await pub.wait_for("error")
        assert err["code"] == "bad_sdp" and err["fatal"] is False
        await pair.assert_flowing()
    finally:
        await pub.close()


async def test_self_mute_stops_forwarding_and_unmute_resumes_without_a_gap(
        pair: HealthyPair) -> None:
    await pair.pub.send({"type": "mute", "trackId": pair.video, "muted": True})
    notice = await pair.sub.wait_for("track_muted")
    assert (notice["trackId"], notice["muted"]) == (pair.video, True)
    await pair.barrier()
    await asyncio.sleep(0.2)  # packets in flight when the mute landed
    rec = pair.sub.received_for_track(pair.video)
    assert rec is not None
    frozen_video, audio_before = track_counts(pair.sub, pair.video, pair.audio)
    await wait_until(lambda: track_counts(pair.sub, pair.audio)[0] >= audio_before + 30)
    assert track_counts(pair.sub, pair.video)[0] == frozen_video  # nothing while muted
    await pair.pub.send({"type": "mute", "trackId": pair.video, "muted": False})
    unmuted = await pair.sub.wait_for("track_muted")
    assert unmuted["muted"] is False
    await pair.assert_flowing()


async def test_socket_that_never_joins_is_closed_after_the_join_timeout() -> None:
    from tests.conftest import start_server, stop_server

    server = start_server({"SFU_SERVER_JOIN_TIMEOUT_S": "0.5"})
    probe = WsProbe(server)
    try:
        await probe.open()
        err = await probe.expect_error("not_joined", fatal=True)
        assert "0.5 s" in err["message"]
        await probe.expect_closed()
        # a socket that does join in time is not affected by the deadline
        joined = await joined_probe(server, "timely", "ann")
        await asyncio.sleep(0.8)  # past the deadline: it must still be open and answering
        await joined.ping_pong()
        await joined.close()
    finally:
        await probe.close()
        stop_server(server)


async def test_sdp_frames_may_exceed_64_kib_but_not_256(server: ServerProcess,
                                                        pair: HealthyPair) -> None:
    probe = await joined_probe(server, pair.room + "-big", "big")
    try:
        # a 100 KiB answer is read (and refused for what it says, not for its size)
        await probe.send({"type": "answer", "target": "subscriber",
                          "sdp": "v=0\r\n" + "a=x\r\n" * 20000})
        await probe.expect_error("invalid_state", fatal=False)
        await probe.send({"type": "offer", "target": "publisher",
                          "sdp": "v=0\r\n" + "a=x\r\n" * 60000})
        await probe.expect_error("message_too_large", fatal=True)
        assert await probe.expect_closed() == 1009
        await pair.assert_flowing()
    finally:
        await probe.close()
