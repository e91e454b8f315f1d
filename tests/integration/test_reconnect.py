"""Reconnection grace window and resume (issue #5), with raw clients over real ICE/DTLS/SRTP.

A participant whose signalling socket dies stays in the room as ``reconnecting``: the others
see that, not a leave; its tracks and subscriptions stay, and its media keeps flowing where
the media path is intact. A resume with its token inside the window restores it; after the
window it is removed with reason ``timeout`` and a resume is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from sfu_harness import HealthyPair, Http, Pumper, track_counts, unique, wait_until

from benches.rawclient import RawClient, RawClientError
from tests.conftest import ServerProcess, start_server, stop_server

#: this module's default window; one test sets a 1 s window on its own room
WINDOW_S = 30


@pytest.fixture(scope="module")
def module_server() -> Iterator[ServerProcess]:
    server = start_server({"SFU_ROOMS_RECONNECT_WINDOW_S": str(WINDOW_S)})
    yield server
    stop_server(server)


async def blip_client(pair: HealthyPair, identity: str = "blip") -> tuple[RawClient, Pumper,
                                                                         dict[str, str]]:
    """A participant of the pair's room that publishes (and pumps) and subscribes."""
    c = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, identity))
    await c.connect()
    published = await c.publish()
    await c.wait_subscribed()
    pumper = Pumper(c).start()
    await wait_until(lambda: min(track_counts(pair.sub, *published.values())) >= 5, 10,
                     "the healthy subscriber to receive the blip's tracks")
    await wait_until(lambda: min(track_counts(c, pair.audio, pair.video)) >= 5, 10,
                     "the blip to receive the healthy publisher's tracks")
    return c, pumper, published


def of_participant(client: RawClient, pid: str, *types: str) -> list[str]:
    return [m["type"] for m in client.log
            if m["type"] in types and m.get("participantId") == pid]


async def events(http: Http, room: str) -> list[dict[str, Any]]:
    status, body = await http.api("GET", f"/api/events?room={room}")
    assert status == 200, body
    found: list[dict[str, Any]] = body["events"]
    return found


async def test_lost_signalling_keeps_the_participant_and_a_resume_restores_it(
    pair: HealthyPair, http: Http
) -> None:
    blip, pumper, published = await blip_client(pair)
    pid = blip.joined["participant"]["id"]
    first_token = blip.joined["resumeToken"]
    assert blip.joined["reconnectWindowMs"] == WINDOW_S * 1000
    try:
        blip.drop_signalling()
        for c in (pair.pub, pair.sub):
            await c.wait_for("participant_reconnecting", pred=lambda m: m["participantId"] == pid)
        # the media path does not depend on the socket: both directions keep flowing
        before_sub = track_counts(pair.sub, *published.values())
        before_blip = track_counts(blip, pair.audio, pair.video)
        await wait_until(lambda: all(
            a >= b + 10 for a, b in zip(track_counts(pair.sub, *published.values()),
                                        before_sub, strict=True)), 10,
            "the blip's media to keep reaching the others while it reconnects")
        await wait_until(lambda: all(
            a >= b + 10 for a, b in zip(track_counts(blip, pair.audio, pair.video),
                                        before_blip, strict=True)), 10,
            "the others' media to keep reaching the blip while it reconnects")
        assert "blip" in (await http.identities(pair.room) or set())
        participants = (await http.api("GET", f"/api/rooms/{pair.room}/participants"))[1]
        state = {p["identity"]: p["state"] for p in participants["participants"]}
        assert state["blip"] == "reconnecting"

        offers = blip.sub_offers
        resumed = await blip.resume()
        assert resumed["participant"]["id"] == pid
        assert resumed["outageMs"] > 0
        assert resumed["resumeToken"] != first_token
        assert {p["identity"] for p in resumed["participants"]} == {"healthy-pub",
                                                                     "healthy-sub"}
        assert {t["id"] for t in resumed["participant"]["tracks"]} == set(published.values())
        for c in (pair.pub, pair.sub):
            await c.wait_for("participant_resumed", pred=lambda m: m["participantId"] == pid)
            assert of_participant(c, pid, "participant_left", "track_unpublished") == []
        # the subscriber negotiation is redone after a resume (an offer may have been lost)
        await wait_until(lambda: blip.sub_offers > offers, 10, "a fresh subscriber offer")
        await pair.assert_flowing()
        before = track_counts(blip, pair.audio, pair.video)
        await wait_until(lambda: all(a >= b + 10 for a, b in zip(
            track_counts(blip, pair.audio, pair.video), before, strict=True)), 10,
            "media to the resumed participant")
        kinds = [e["type"] for e in await events(http, pair.room)
                 if e["data"].get("participant") == pid]
        assert kinds[kinds.index("participant.reconnecting"):] == [
            "participant.reconnecting", "participant.resumed"], kinds
        assert await http.metric("sfu_participant_reconnects_total", cause="signalling") >= 1
        assert await http.metric("sfu_participant_resumes_total") >= 1
        # the old token was used up
        stale = RawClient(pair.server.ws_url, "")
        stale.joined = {**resumed, "resumeToken": first_token}
        stale.session = aiohttp.ClientSession()
        try:
            with pytest.raises(RawClientError, match="resume_failed"):
                await stale.resume()
        finally:
            await stale.close()
    finally:
        await pumper.stop()
        await blip.close()


async def test_the_window_runs_out_then_left_timeout_and_resume_is_refused(
    server: ServerProcess, http: Http
) -> None:
    room = unique("short")
    status, body = await http.api("POST", "/api/rooms",
                                  body={"name": room, "reconnectWindowS": 1})
    assert status == 201 and body["reconnectWindowS"] == 1, body
    watcher = RawClient(server.ws_url, server.mint_token(room, "watcher"))
    blip = RawClient(server.ws_url, server.mint_token(room, "blip"))
    try:
        await watcher.connect()
        await blip.connect()
        pid = blip.joined["participant"]["id"]
        blip.drop_signalling()
        left = await watcher.wait_for("participant_left", pred=lambda m: m["participantId"] == pid)
        assert left["reason"] == "timeout"
        assert of_participant(watcher, pid, "participant_reconnecting", "participant_left") == [
            "participant_reconnecting", "participant_left"]
        with pytest.raises(RawClientError) as refused:
            await blip.resume()
        assert refused.value.error["code"] == "resume_failed"
        assert refused.value.error["fatal"] is True
        assert "join again" in refused.value.error["message"]
        left_events = [e for e in await events(http, room)
                       if e["type"] == "participant.left" and e["data"]["participant"] == pid]
        assert [e["data"]["reason"] for e in left_events] == ["timeout"]
        assert await http.metric("sfu_participant_grace_expiries_total") >= 1
        assert await http.metric("sfu_participant_resumes_refused_total") >= 1
    finally:
        await blip.close()
        await watcher.close()


async def test_a_wrong_token_is_refused_and_changes_nothing(pair: HealthyPair) -> None:
    blip = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, "blip"))
    try:
        await blip.connect()
        pid = blip.joined["participant"]["id"]
        blip.drop_signalling()
        await pair.sub.wait_for("participant_reconnecting",
                                pred=lambda m: m["participantId"] == pid)
        good = blip.joined
        blip.joined = {**good, "resumeToken": "x" * 32}
        with pytest.raises(RawClientError, match="unknown participant or resume token"):
            await blip.resume()
        blip.joined = {**good, "participant": {**good["participant"], "id": "PA_nobody"}}
        with pytest.raises(RawClientError, match="unknown participant or resume token"):
            await blip.resume()
        blip.joined = good
        resumed = await blip.resume()  # the right token still works
        assert resumed["participant"]["id"] == pid
        pair.assert_untouched()
    finally:
        await blip.close()


async def test_a_new_connection_takes_over_one_the_server_still_thinks_alive(
    pair: HealthyPair
) -> None:
    """The client noticed its socket was dead before the server did: the resume takes the
    participant over, the old socket is told and closed, the others see nothing."""
    blip = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, "blip"))
    taker = RawClient(pair.server.ws_url, "")
    try:
        await blip.connect()
        await blip.wait_subscribed()
        pid = blip.joined["participant"]["id"]
        taker.session = aiohttp.ClientSession()
        taker.joined = blip.joined
        resumed = await taker.resume()
        assert resumed["participant"]["id"] == pid and resumed["outageMs"] == 0
        gone = await blip.wait_for("left", timeout=3)
        assert gone["reason"] == "resumed_elsewhere"
        await pair.barrier()
        for c in (pair.pub, pair.sub):
            assert of_participant(c, pid, "participant_reconnecting", "participant_resumed",
                                  "participant_left") == []
        await taker.send({"type": "ping", "id": "still-here"})
        await taker.wait_for("pong")
    finally:
        await taker.close()
        await blip.close()


async def test_a_join_with_the_same_identity_replaces_a_reconnecting_participant(
    pair: HealthyPair, http: Http
) -> None:
    blip = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, "blip"))
    again = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, "blip"))
    try:
        await blip.connect()
        pid = blip.joined["participant"]["id"]
        blip.drop_signalling()
        await pair.sub.wait_for("participant_reconnecting",
                                pred=lambda m: m["participantId"] == pid)
        await again.connect()
        left = await pair.sub.wait_for("participant_left",
                                       pred=lambda m: m["participantId"] == pid)
        assert left["reason"] == "replaced"
        ids = await http.api("GET", f"/api/rooms/{pair.room}/participants")
        blips = [p for p in ids[1]["participants"] if p["identity"] == "blip"]
        assert [p["id"] for p in blips] == [again.joined["participant"]["id"]]
        with pytest.raises(RawClientError, match="resume_failed"):
            await blip.resume()
    finally:
        await again.close()
        await blip.close()


async def test_a_publisher_reconnecting_its_media_with_new_ssrcs_keeps_its_tracks(
    pair: HealthyPair, http: Http
) -> None:
    """Like a browser that restarts ICE, or makes a new peer connection after an outage:
    new ICE credentials (the server answers from a fresh transport) and new SSRCs. The
    subscriber keeps receiving the same tracks on the same streams, with no new offer."""
    offers = pair.sub.sub_offers
    restarts = await http.metric("sfu_transport_restarts_total")
    old_transport = pair.pub.publisher
    published = await pair.pub.restart_publisher(new_ssrcs=True)
    assert pair.pub.publisher is not old_transport
    assert published == {"a": pair.audio, "v": pair.video}
    await pair.assert_flowing()
    assert pair.sub.sub_offers == offers, "the subscriber had to renegotiate"
    assert await http.metric("sfu_transport_restarts_total") == restarts + 1
