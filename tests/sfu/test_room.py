"""Room membership, fan-out of track publications and events, without signalling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtcdtlstransport import RTCCertificate

from events import EventBus
from sfu import codecs
from sfu.errors import RoomFull, RoomNotFound
from sfu.participant import MediaParams, Participant, ParticipantInfo
from sfu.room import Room, RoomRegistry
from sfu.track import PublishedTrack
from sfu.transport import MediaTransport

CERT = RTCCertificate.generateCertificate()


class Inbox(list[dict[str, Any]]):
    def types(self) -> list[str]:
        return [m["type"] for m in self]

    async def wait(self, mtype: str) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                for m in self:
                    if m["type"] == mtype:
                        return m
                await asyncio.sleep(0.01)
        return await asyncio.wait_for(poll(), 5)


def participant(room: Room, pid: str, identity: str) -> tuple[Participant, Inbox]:
    inbox = Inbox()
    p = Participant(ParticipantInfo(pid, identity, identity.title(), "student"), room,
                    MediaParams(CERT, ("127.0.0.1",)), inbox.append)
    return p, inbox


def video_track(owner: Participant) -> PublishedTrack:
    upstream = MediaTransport(CERT, ["127.0.0.1"], controlling=False, on_rtp=lambda d, t: None,
                              on_rtcp=lambda d: None, on_state=lambda s: None)
    return PublishedTrack(
        track_id="TR_cam", participant_id=owner.id, kind="video", source="camera", mid="1",
        codec=codecs.VP8, publisher_pt=96, ext_map={}, ssrc=1234, rtx_ssrc=None,
        upstream=upstream, receiver_ssrc=1, keyframe_interval_ms=500)


async def test_join_publish_leave_fans_out_messages_and_events() -> None:
    bus = EventBus()
    registry = RoomRegistry(bus, max_participants=10, auto_create=True)
    room = registry.get_for_join("maths")
    alice, alice_inbox = participant(room, "PA_a", "alice")
    bob, bob_inbox = participant(room, "PA_b", "bob")
    room.add(alice)
    room.add(bob)
    assert alice_inbox.types() == ["participant_joined"]
    track = video_track(alice)
    alice.tracks[track.mid] = track
    room.track_published(alice, track)
    assert bob_inbox.types() == ["track_published"]
    offer = await bob_inbox.wait("offer")  # server-initiated renegotiation
    assert offer["target"] == "subscriber"
    assert [t["trackId"] for t in offer["tracks"]] == ["TR_cam"]
    assert "a=msid:PA_a TR_cam" in offer["sdp"]
    assert "TR_cam" in bob.subscriptions and track.subscriptions == [bob.subscriptions["TR_cam"]]

    await room.remove(alice, "left")
    assert "track_unpublished" in bob_inbox.types()
    assert bob_inbox[-1] == {"type": "participant_left", "participantId": "PA_a",
                             "reason": "left"}
    assert bob.subscriptions == {} and track.closed
    assert [s.track_id for s in bob.subscribing.slots] == [None]  # m-line stays, inactive
    await room.remove(bob, "disconnected")
    await registry.left(room)
    assert registry.rooms == {}
    types = [e.type for e in bus.recent]
    assert types == ["room.created", "participant.joined", "participant.joined",
                     "track.published", "track.unpublished", "participant.left",
                     "participant.left", "room.closed"]
    left = [e for e in bus.recent if e.type == "participant.left"]
    assert [e.data["reason"] for e in left] == ["left", "disconnected"]
    assert [e.seq for e in bus.recent] == sorted(e.seq for e in bus.recent)
    envelope = bus.recent[0].envelope()
    assert set(envelope) == {"v", "sv", "id", "type", "room", "ts", "seq", "data"}
    assert envelope["v"] == 1 and envelope["sv"] == 1


async def test_capacity_and_unknown_rooms() -> None:
    registry = RoomRegistry(EventBus(), max_participants=1, auto_create=False)
    with pytest.raises(RoomNotFound):
        registry.get_for_join("nope")
    room = registry.create("one")
    first, _ = participant(room, "PA_1", "one")
    room.add(first)
    with pytest.raises(RoomFull):
        room.add(participant(room, "PA_2", "two")[0])
    await room.close()
    assert room.closed and room.participants == {}


class _Downlink:
    """A ready subscriber transport that records the RTCP it is given."""

    ready = True

    def __init__(self) -> None:
        self.rtcp: list[bytes] = []

    def send_rtcp(self, packet: bytes) -> bool:
        self.rtcp.append(packet)
        return True


def test_sender_reports_go_out_in_few_compound_packets() -> None:
    """A subscriber receiving 40 streams gets one sender report for each stream that has
    sent something, in compound packets of at most 32 (2 sends instead of 40), each SR
    with its stream's own counts."""
    from sfu import rtcp
    from sfu.track import Subscription

    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    owner, _ = participant(room, "PA_a", "alice")
    bob, _ = participant(room, "PA_b", "bob")
    down = _Downlink()
    bob.subscribing.transport = down  # type: ignore[assignment]
    track = video_track(owner)
    for i in range(42):
        sub = Subscription(track, down, out_ssrc=5000 + i, rtx_ssrc=None, rtx_pt=None,  # type: ignore[arg-type]
                           first_seq=0, first_ts=0)
        sub.active = i != 40  # one paused, one that has sent nothing: no report for them
        sub.stats.packets = 0 if i == 41 else 10 + i
        sub.stats.bytes = 1000 * i
        bob.subscriptions[f"TR_{i}"] = sub
    bob.send_reports()
    assert [len(rtcp.parse(p)) for p in down.rtcp] == [32, 8]
    reports = [m for p in down.rtcp for m in rtcp.parse(p)]
    assert all(m.pt == rtcp.SR and m.sender_info is not None for m in reports)
    assert sorted((m.sender_ssrc, m.sender_info[2], m.sender_info[3])  # type: ignore[index]
                  for m in reports) == [
        (5000 + i, 10 + i, 1000 * i) for i in range(40)]
