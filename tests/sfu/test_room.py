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
    assert [s.track_id for s in bob.slots] == [None]  # m-line stays, inactive
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
