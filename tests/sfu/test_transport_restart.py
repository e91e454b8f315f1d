"""Replacing a participant's dead or restarted media transports (issue #5), without network
peers: the browser's side is only SDP here; what the browser does is in the e2e tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_participant_lifecycle import settle
from test_room import CERT, participant, video_track

from events import EventBus
from sfu.errors import InvalidState
from sfu.room import RoomRegistry
from sfu.transport import MediaTransport

OFFER = (Path(__file__).parent / "fixtures" / "chrome_offer.sdp").read_text()


async def test_an_offer_with_new_ice_credentials_gets_a_fresh_transport_and_keeps_tracks(
) -> None:
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    room.add(alice)
    first = await alice.handle_publisher_offer(OFFER, None)
    old = alice.publisher
    assert old is not None and old.remote_ice is not None and old.remote_ice[0] == "4c/h"
    again = await alice.handle_publisher_offer(OFFER, None)  # same credentials: same transport
    assert alice.publisher is old and alice.transport_restarts == 0
    restarted = OFFER.replace("a=ice-ufrag:4c/h", "a=ice-ufrag:NeW1")
    answer = await alice.handle_publisher_offer(restarted, None)
    new = alice.publisher
    assert new is not None and new is not old
    assert old.state == "closed"
    assert new.remote_ice is not None and new.remote_ice[0] == "NeW1"
    assert alice.transport_restarts == 1
    assert answer["tracks"] == first["tracks"] == again["tracks"]  # same track ids
    # the kept tracks ask the new transport for keyframes and retransmissions (a PLI to
    # the closed one never reaches the browser: video paused in the outage never resumed)
    assert alice.tracks and all(t.upstream is new for t in alice.tracks.values())
    # the new transport's certificate differs: the browser restarts DTLS too
    assert new.local().fingerprints != old.local().fingerprints

    # a late candidate of the old ICE generation is dropped; one of the new is taken
    taken = new._remote_candidates
    cand = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    await alice.handle_candidate("publisher", {"candidate": cand, "usernameFragment": "4c/h"})
    assert new._remote_candidates == taken
    await alice.handle_candidate("publisher", {"candidate": cand, "usernameFragment": "NeW1"})
    assert new._remote_candidates == taken + 1
    await room.remove(alice, "left")
    await settle()


async def test_restart_subscriber_moves_every_subscription_to_a_new_transport_and_offers(
) -> None:
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    bob, bob_inbox = participant(room, "PA_b", "bob")
    room.add(alice)
    room.add(bob)
    track = video_track(alice)
    alice.tracks["1"] = track
    bob.subscribe(track)
    await bob_inbox.wait("offer")
    old = bob.subscriber
    offers = [m for m in bob_inbox if m["type"] == "offer"]
    assert old is not None and offers
    sub = bob.subscriptions[track.id]
    sub.active = True
    await bob.restart_subscriber()
    await asyncio.sleep(0.05)  # the new offer gathers a socket first
    for _ in range(100):
        if len([m for m in bob_inbox if m["type"] == "offer"]) > len(offers):
            break
        await asyncio.sleep(0.01)
    new = bob.subscriber
    assert new is not None and new is not old and old.state == "closed"
    assert sub.downstream is new and not sub.active  # until the new transport connects
    latest = [m for m in bob_inbox if m["type"] == "offer"][-1]
    assert latest is not offers[-1]
    assert new.local().ice_ufrag in latest["sdp"]
    assert bob.transport_restarts == 1
    await room.remove(bob, "left")
    await room.remove(alice, "left")
    await settle()


async def test_a_connected_transport_that_hears_nothing_for_the_timeout_fails() -> None:
    states: list[str] = []
    t = MediaTransport(CERT, ["127.0.0.1"], controlling=False, on_rtp=lambda d, a: None,
                       on_rtcp=lambda d: None, on_state=states.append)
    assert not t.expire_if_silent(60_000, 10_000)  # not connected: nothing to expire
    t.state = "connected"
    t.last_rx_ms = 50_000
    assert not t.expire_if_silent(59_999, 10_000)
    assert t.expire_if_silent(60_000, 10_000)
    await settle()
    assert states[0] == "failed" and not t.ready


async def test_restarts_are_rate_limited() -> None:
    """Each restart binds sockets and makes a certificate: a client asking in a loop gets
    an error, not a new transport."""
    room = RoomRegistry(EventBus(), max_participants=10, auto_create=True).get_for_join("r")
    alice, _ = participant(room, "PA_a", "alice")
    room.add(alice)
    await alice.handle_publisher_offer(OFFER, None)
    await alice.handle_publisher_offer(OFFER.replace("a=ice-ufrag:4c/h", "a=ice-ufrag:one1"),
                                       None)
    with pytest.raises(InvalidState, match="restarted less than 2 s ago"):
        await alice.handle_publisher_offer(
            OFFER.replace("a=ice-ufrag:4c/h", "a=ice-ufrag:two2"), None)
    assert alice.transport_restarts == 1
    await room.remove(alice, "left")
    await settle()
