"""A participant removed while one of its coroutines is suspended leaves nothing behind:
no ghost tracks for the others, no UDP sockets left open."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest
from test_room import participant, video_track

from events import EventBus
from sfu.errors import InvalidState
from sfu.negotiation import NoCommonCodecError
from sfu.room import RoomRegistry

OFFER = (Path(__file__).parent / "fixtures" / "chrome_offer.sdp").read_text()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    """Let callbacks scheduled by close() run (sockets close on the next loop iteration)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_removed_while_publishing_publishes_nothing_and_leaks_nothing() -> None:
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    bob, bob_inbox = participant(room, "PA_b", "bob")
    room.add(alice)
    room.add(bob)
    before = open_fds()
    offer = asyncio.ensure_future(alice.handle_publisher_offer(OFFER, None))
    await asyncio.sleep(0)  # the offer coroutine is now inside gather()
    await room.remove(alice, "removed")
    with pytest.raises(InvalidState):
        await offer
    await settle()
    assert bob.subscriptions == {}
    assert [m["type"] for m in bob_inbox] == ["participant_left"]
    assert alice.publisher is not None and alice.publisher.state == "closed"
    assert open_fds() <= before
    await bob.close()


async def test_join_leave_before_the_first_subscriber_offer_leaks_no_socket() -> None:
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    room.add(alice)
    alice.tracks["1"] = video_track(alice)
    before = open_fds()
    for i in range(10):
        bob, _ = participant(room, f"PA_b{i}", f"bob{i}")
        room.add(bob)  # schedules a subscriber offer (which gathers a socket)
        await room.remove(bob, "left")
    await asyncio.sleep(0.2)
    assert open_fds() <= before


async def test_offer_with_only_unreceivable_sections_is_no_common_codec() -> None:
    """A recvonly section without a usable codec next to an unusable video section: there
    is nothing to receive and no transport to start (was an internal error)."""
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    room.add(alice)
    out = []
    for line in OFFER.splitlines():
        if line.startswith("m=audio"):
            line = " ".join(line.split()[:3] + ["0"])  # PCMU only
        elif line.startswith("m=video"):
            line = " ".join(line.split()[:3] + ["45"])  # AV1 only (in the fixture)
        elif line == "a=sendonly" and not any(o.startswith("m=video") for o in out):
            line = "a=recvonly"  # the audio section
        out.append(line)
    with pytest.raises(NoCommonCodecError):
        await alice.handle_publisher_offer("\r\n".join(out) + "\r\n", None)
    await alice.close()


async def test_ssrcs_learned_from_the_mid_extension_are_bounded_per_track() -> None:
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    room.add(alice)
    await alice.handle_publisher_offer(OFFER, None)
    audio = next(t for t in alice.tracks.values() if t.kind == "audio")
    mid_id = next(i for i, u in _extmap(OFFER, "audio").items() if u.endswith("sdes:mid"))
    ext = bytes([(mid_id << 4) | (len(audio.mid) - 1)]) + audio.mid.encode()
    ext += bytes((-len(ext)) % 4)
    for ssrc in range(1000, 1500):  # a publisher spraying new SSRCs
        packet = (struct.pack("!BBHII", 0x90, audio.publisher_pt, 1, 1, ssrc)
                  + struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext + b"opus")
        alice.publishing.on_rtp(packet, 0.0)
    learned = [s for s, la in alice.publishing.ssrc_table.items() if la.track is audio]
    assert len(learned) <= 3 and 1499 in learned
    await alice.close()


def _extmap(text: str, kind: str) -> dict[int, str]:
    from sfu import sdp

    section = next(m for m in sdp.parse(text).media if m.kind == kind)
    return section.extmap
