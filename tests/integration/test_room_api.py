"""The room service API (``Authorization: Bearer <api secret>``), health and metrics, seen
through real clients: what the API does shows up on the participants' sockets and media.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sfu_harness import HealthyPair, Http, track_counts, unique, wait_until

from benches.rawclient import RawClient
from sfu.engine import ENGINE
from signalling import tokens

pytestmark = pytest.mark.integration


async def joined(server, room: str, identity: str, **kw: str) -> RawClient:  # type: ignore[no-untyped-def]
    client = RawClient(server.ws_url, server.mint_token(room, identity, **kw))
    await client.connect()
    return client


async def closed_by_server(client: RawClient) -> None:
    await client.wait_for("__closed__")
    assert client.ws is not None
    await wait_until(lambda: client.ws is not None and client.ws.closed, 5, "socket closed")


@pytest.fixture
async def clients() -> AsyncIterator[list[RawClient]]:
    made: list[RawClient] = []
    yield made
    for c in made:
        await c.close()


# -- authentication ----------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/rooms", None),
    ("POST", "/api/rooms", {"name": "not-created"}),
    ("DELETE", "/api/rooms/{room}", None),
    ("GET", "/api/rooms/{room}/participants", None),
    ("DELETE", "/api/rooms/{room}/participants/healthy-pub", None),
    ("POST", "/api/rooms/{room}/participants/healthy-pub/mute",
     {"trackId": "{video}", "muted": True}),
    ("POST", "/api/tokens", {"room": "x", "identity": "y"}),
]


async def test_api_refuses_missing_or_wrong_key(pair: HealthyPair, http: Http) -> None:
    wrong = [
        None,
        {"Authorization": "Bearer not-the-secret-0123456789abcdef0123456789"},
        {"Authorization": f"Bearer {pair.server.api_key}"},  # the key id is not the secret
        {"Authorization": f"Basic {pair.server.api_secret}"},
        {"Authorization": pair.server.api_secret},
        {"Authorization": "Bearer "},
    ]
    for method, path, body in PROTECTED:
        path = path.format(room=pair.room)
        if body is not None:
            body = {k: v.format(video=pair.video) if isinstance(v, str) else v
                    for k, v in body.items()}
        for headers in wrong:
            status, resp = await http.api(method, path, body=body, auth=False,
                                          headers=headers)
            assert status == 401, (method, path, headers, resp)
            assert resp["error"]["code"] == "unauthorized"
    # nothing happened: no room created or closed, nobody removed or muted
    status, rooms = await http.api("GET", "/api/rooms")
    assert status == 200
    assert "not-created" not in {r["name"] for r in rooms["rooms"]}
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub"}
    await pair.barrier()
    assert not any(m["type"] == "track_muted" for m in pair.sub.log)
    await pair.assert_flowing()
    # the unauthenticated routes stay open
    async with http.session.get(pair.server.base_url + "/api/config") as resp:
        assert resp.status == 200 and (await resp.json()) == {"devMode": True}


# -- rooms -------------------------------------------------------------------------------


async def test_create_list_and_close_rooms(server, http: Http,  # type: ignore[no-untyped-def]
                                           clients: list[RawClient]) -> None:
    name = unique("api-room")
    status, room = await http.api("POST", "/api/rooms", body={"name": name,
                                                              "maxParticipants": 2})
    assert status == 201, room
    assert room["name"] == name and room["maxParticipants"] == 2
    assert room["numParticipants"] == 0
    status, again = await http.api("POST", "/api/rooms", body={"name": name})
    assert status == 200 and again["name"] == name
    for bad in ({"name": "has space"}, {"name": ""}, {}, {"name": name, "maxParticipants": 0},
                {"name": name, "maxParticipants": "2"}):
        status, err = await http.api("POST", "/api/rooms", body=bad)
        assert status == 400 and err["error"]["code"] == "bad_message", bad

    a = await joined(server, name, "alice")
    clients.append(a)
    b = await joined(server, name, "bob")
    clients.append(b)
    assert a.joined["room"] == name
    status, rooms = await http.api("GET", "/api/rooms")
    listed = {r["name"]: r for r in rooms["rooms"]}
    assert listed[name]["numParticipants"] == 2
    # maxParticipants is enforced
    third = RawClient(server.ws_url, server.mint_token(name, "carol"))
    clients.append(third)
    with pytest.raises(ConnectionError):
        await third.connect()
    assert third.errors and third.errors[0]["code"] == "room_full"
    assert third.errors[0]["fatal"] is True

    status, _ = await http.api("DELETE", f"/api/rooms/{name}")
    assert status == 204
    for c in (a, b):
        left = await c.wait_for("left")
        assert left["reason"] == "room_closed"
        await closed_by_server(c)
    status, rooms = await http.api("GET", "/api/rooms")
    assert name not in {r["name"] for r in rooms["rooms"]}
    assert await http.identities(name) is None  # 404
    status, err = await http.api("DELETE", f"/api/rooms/{name}")
    assert status == 404 and err["error"]["code"] == "room_not_found"


async def test_list_participants(pair: HealthyPair, http: Http) -> None:
    status, body = await http.api("GET", f"/api/rooms/{pair.room}/participants")
    assert status == 200
    by_identity = {p["identity"]: p for p in body["participants"]}
    assert set(by_identity) == {"healthy-pub", "healthy-sub"}
    pub, sub = by_identity["healthy-pub"], by_identity["healthy-sub"]
    assert pub["id"] == pair.pub.joined["participant"]["id"]
    assert pub["role"] == "student" and pub["name"] == "healthy-pub"
    assert {(t["id"], t["kind"], t["source"], t["muted"]) for t in pub["tracks"]} == {
        (pair.audio, "audio", "microphone", False), (pair.video, "video", "camera", False)}
    assert sub["tracks"] == []
    status, err = await http.api("GET", "/api/rooms/no-such-room/participants")
    assert status == 404 and err["error"]["code"] == "room_not_found"


# -- moderation --------------------------------------------------------------------------


async def test_mute_track_stops_forwarding_it(pair: HealthyPair, http: Http) -> None:
    pub_id = pair.pub.joined["participant"]["id"]
    path = f"/api/rooms/{pair.room}/participants/healthy-pub/mute"
    status, track = await http.api("POST", path, body={"trackId": pair.video, "muted": True})
    assert status == 200, track
    assert track["id"] == pair.video and track["muted"] is True
    for c in (pair.sub, pair.pub):
        msg = await c.wait_for("track_muted")
        assert msg == {"type": "track_muted", "trackId": pair.video, "participantId": pub_id,
                       "muted": True}

    # packets already in flight may still land; then video stops while audio goes on
    a0, _ = pair.counts()
    await wait_until(lambda: pair.counts()[0] >= a0 + 10, 10, "audio after the mute")
    _, v_muted = pair.counts()
    sent_video = pair.pumper.sent["video"]
    a1, _ = pair.counts()
    await wait_until(lambda: pair.counts()[0] >= a1 + 40, 10, "audio while video is muted")
    assert pair.counts()[1] == v_muted, "video kept arriving after the mute"
    assert pair.pumper.sent["video"] >= sent_video + 30  # the publisher kept sending
    status, body = await http.api("GET", f"/api/rooms/{pair.room}/participants")
    pub = next(p for p in body["participants"] if p["identity"] == "healthy-pub")
    assert {t["id"]: t["muted"] for t in pub["tracks"]} == {pair.audio: False,
                                                          pair.video: True}

    # the API may not unmute; the publisher can
    status, err = await http.api("POST", path, body={"trackId": pair.video, "muted": False})
    assert status == 409 and err["error"]["code"] == "permission_denied"
    await pair.pub.send({"type": "mute", "trackId": pair.video, "muted": False})
    msg = await pair.sub.wait_for("track_muted")
    assert msg["trackId"] == pair.video and msg["muted"] is False
    await pair.assert_flowing()

    # errors
    status, err = await http.api("POST", path, body={"trackId": "TR_nope", "muted": True})
    assert status == 404 and err["error"]["code"] == "unknown_track"
    status, err = await http.api("POST", path, body={"muted": True})
    assert status == 400 and err["error"]["code"] == "bad_message"
    status, err = await http.api(
        "POST", f"/api/rooms/{pair.room}/participants/nobody/mute",
        body={"trackId": pair.video, "muted": True})
    assert status == 404 and err["error"]["code"] == "participant_not_found"
    await pair.assert_flowing()


async def test_remove_participant(pair: HealthyPair, http: Http,
                                  clients: list[RawClient]) -> None:
    troll = await joined(pair.server, pair.room, "troll")
    clients.append(troll)
    published = await troll.publish()
    troll_id = troll.joined["participant"]["id"]
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub", "troll"}

    status, _ = await http.api("DELETE", f"/api/rooms/{pair.room}/participants/troll")
    assert status == 204
    left = await troll.wait_for("left")
    assert left["reason"] == "removed"
    await closed_by_server(troll)
    for c in (pair.pub, pair.sub):
        msg = await c.wait_for("participant_left", pred=lambda m: m["participantId"] == troll_id)
        assert msg["reason"] == "removed"
    unpublished = {m["trackId"] for m in pair.sub.log if m["type"] == "track_unpublished"}
    assert set(published.values()) <= unpublished
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub"}
    status, err = await http.api("DELETE", f"/api/rooms/{pair.room}/participants/troll")
    assert status == 404 and err["error"]["code"] == "participant_not_found"
    await pair.assert_flowing()


# -- tokens ------------------------------------------------------------------------------


async def test_minted_token_joins(server, http: Http,  # type: ignore[no-untyped-def]
                                  clients: list[RawClient]) -> None:
    room = unique("minted")
    status, body = await http.api("POST", "/api/tokens", body={
        "room": room, "identity": "obs-1", "name": "Observer One", "role": "observer",
        "ttl": 120})
    assert status == 201, body
    claims = tokens.verify(body["token"], server.api_key, server.api_secret)
    assert claims.room == room and claims.role == "observer"
    assert 100 <= claims.expires_at - time.time() <= 120

    client = RawClient(server.ws_url, body["token"])
    clients.append(client)
    msg = await client.connect()
    assert msg["room"] == room
    me = msg["participant"]
    assert (me["identity"], me["name"], me["role"]) == ("obs-1", "Observer One", "observer")
    assert await http.identities(room) == {"obs-1"}
    # an observer token carries no publish grant
    await client.send({"type": "offer", "target": "publisher", "sdp": "v=0\r\n"})
    err = await client.wait_for("error")
    assert err["code"] == "permission_denied" and err["fatal"] is False

    for bad in ({"room": room}, {"identity": "x"}, {"room": "bad room", "identity": "x"},
                {"room": room, "identity": "x", "role": "admin"},
                {"room": room, "identity": "x", "ttl": 5},
                {"room": room, "identity": "x", "ttl": "60"}):
        status, err = await http.api("POST", "/api/tokens", body=bad)
        assert status == 400 and err["error"]["code"] == "bad_message", bad


# -- health and metrics ------------------------------------------------------------------


async def test_health_endpoints(server, http: Http) -> None:  # type: ignore[no-untyped-def]
    for path, expected in (("/healthz", "ok"), ("/readyz", "ready")):
        async with http.session.get(server.base_url + path) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == expected


async def test_metrics_match_the_situation(sfu_server) -> None:  # type: ignore[no-untyped-def]
    """A fresh server: the gauges and packet counters follow what the clients do."""
    async with aiohttp.ClientSession() as session:
        http = Http(sfu_server, session)
        m = await http.metrics()

        def value(name: str, **labels: str) -> float:
            return m.get((name, frozenset(labels.items())), 0.0)

        assert value("sfu_rooms") == 0 and value("sfu_participants") == 0
        assert value("sfu_rtp_packets_out_total", kind="audio") == 0
        assert value("sfu_rtp_packets_out_total", kind="video") == 0
        compiled_before = value("sfu_ingress_compiled_packets_total")

        pair = HealthyPair(sfu_server, "metrics")
        extra: RawClient | None = None
        try:
            await pair.start()
            m = await http.metrics()
            assert value("sfu_rooms") == 1
            assert value("sfu_participants") == 2
            assert value("sfu_published_tracks") == 2
            assert value("sfu_subscriptions") == 2

            extra = await joined(sfu_server, "metrics", "late-sub")
            await extra.wait_subscribed()
            await wait_until(lambda: min(track_counts(extra, pair.audio, pair.video)) > 0, 10,
                             "the late subscriber to receive media")
            m = await http.metrics()
            assert value("sfu_participants") == 3 and value("sfu_subscriptions") == 4

            # stop sending: the counters settle on exactly what was sent and received
            await pair.pumper.stop()
            sent = pair.pumper.sent

            def received(kind: str) -> int:
                i = 0 if kind == "audio" else 1
                return sum(track_counts(c, pair.audio, pair.video)[i] for c in (pair.sub, extra))

            deadline = time.monotonic() + 10
            while True:
                m = await http.metrics()
                ok = all(
                    value("sfu_rtp_packets_in_total", kind=k) == sent[k]
                    and value("sfu_rtp_packets_out_total", kind=k) == received(k) > 0
                    for k in ("audio", "video"))
                if ok:
                    break
                assert time.monotonic() < deadline, (
                    f"sent {sent}, received audio {received('audio')} video "
                    f"{received('video')}, metrics "
                    f"{ {k: v for k, v in m.items() if k[0].startswith('sfu_rtp_packets')} }")
                await asyncio.sleep(0.05)  # poll interval
            assert value("sfu_rtp_bytes_out_total", kind="video") > \
                value("sfu_rtp_bytes_out_total", kind="audio") > 0
            if ENGINE.name == "compiled":  # most packets took the compiled ingress step (not the
                # first of each source, nor the first after each of the joins and
                # subscriptions above: there are only ~40 here)
                compiled = value("sfu_ingress_compiled_packets_total") - compiled_before
                assert 0.5 * (sent["audio"] + sent["video"]) < compiled <= sum(sent.values())
        finally:
            await pair.stop()
            if extra is not None:
                await extra.close()

        # everyone left: the auto-created room is gone
        deadline = time.monotonic() + 10
        while True:
            m = await http.metrics()
            if value("sfu_participants") == 0 and value("sfu_rooms") == 0:
                break
            assert time.monotonic() < deadline, m
            await asyncio.sleep(0.05)  # poll interval
        assert value("sfu_published_tracks") == 0 and value("sfu_subscriptions") == 0

