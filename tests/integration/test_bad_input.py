"""Bad input from one client never hurts the server or the other participants.

In every test a healthy pair (a publisher sending audio and video all the time and a
subscriber receiving it, see ``pair`` in conftest.py) shares the room with a misbehaving
client. The misbehaving client gets the error code docs/protocol.md documents (or its
datagrams are dropped and counted in /metrics), and the healthy subscriber's packet
counters for both tracks keep increasing afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sfu_harness import HealthyPair, Http, Pumper, WsProbe, track_counts, vanish, wait_until

from benches.rawclient import RawClient, publisher_offer
from sfu import stun
from sfu.negotiation import LocalTransport
from signalling import tokens
from tests.conftest import ServerProcess, start_server, stop_server


@pytest.fixture(scope="module")
def module_server() -> Iterator[ServerProcess]:
    """A 1 s reconnection window: a client that vanishes is removed (timeout) quickly."""
    server = start_server({"SFU_ROOMS_RECONNECT_WINDOW_S": "1"})
    yield server
    stop_server(server)

pytestmark = pytest.mark.integration

Probes = Callable[[], WsProbe]

#: transport attributes of a client that never answers ICE checks (port 9: discard)
DEAD_END = LocalTransport(
    "deadUfrag", "d" * 24, (("sha-256", ":".join(["AB"] * 32)),),
    ("1 1 udp 2130706431 127.0.0.1 9 typ host",),
)


def valid_offer() -> str:
    return publisher_offer(DEAD_END, secrets.randbits(31) | 1, secrets.randbits(31) | 1)


def without(sdp: str, prefix: str) -> str:
    out = "".join(line for line in sdp.splitlines(keepends=True)
                  if not line.startswith(prefix))
    assert out != sdp
    return out


async def error_count(http: Http, code: str) -> float:
    return await http.metric("sfu_signalling_errors_total", code=code)


async def joined_client(pair: HealthyPair, identity: str) -> RawClient:
    client = RawClient(pair.server.ws_url, pair.server.mint_token(pair.room, identity))
    await client.connect()
    return client


async def expect_error(client: RawClient, code: str, *, fatal: bool, ref: str | None
                       ) -> dict[str, Any]:
    err = await client.wait_for("error")
    assert err["code"] == code, err
    assert err["fatal"] is fatal, err
    assert err.get("ref") == ref, err
    return err


async def ping_pong(client: RawClient) -> None:
    ident = f"p{time.monotonic_ns()}"
    await client.send({"type": "ping", "id": ident})
    await client.wait_for("pong", pred=lambda m: m.get("id") == ident)


async def publishes_to(pair: HealthyPair, client: RawClient) -> None:
    """``client`` publishes and the healthy subscriber receives both of its tracks."""
    published = await client.publish()
    assert set(published) == {"a", "v"}
    pumper = Pumper(client, video_size=300).start()
    try:
        await wait_until(lambda: min(track_counts(pair.sub, *published.values())) >= 10,
                         10, "the healthy subscriber to receive the recovered publisher")
    finally:
        await pumper.stop()


# -- SDP ---------------------------------------------------------------------------------


async def bad_sdp_then_publish(pair: HealthyPair, http: Http, sdps: list[str]) -> None:
    before = await error_count(http, "bad_sdp")
    bad = await joined_client(pair, "sdp-sender")
    try:
        for text in sdps:
            await bad.send({"type": "offer", "target": "publisher", "sdp": text})
            await expect_error(bad, "bad_sdp", fatal=False, ref="offer")
            await pair.assert_flowing()
        assert await error_count(http, "bad_sdp") == before + len(sdps)
        assert not any(m["type"] == "answer" for m in bad.log)
        # not fatal: the same socket publishes with a good offer afterwards
        await publishes_to(pair, bad)
        await pair.assert_flowing()
    finally:
        await bad.close()


async def test_malformed_sdp_is_bad_sdp(pair: HealthyPair, http: Http) -> None:
    garbage = "this is not SDP at all \x00\x01 \u2603\r\nm=\r\n"
    rng = random.Random(1)
    binaryish = "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(500)) + "\n"
    await bad_sdp_then_publish(pair, http, [garbage, binaryish, "v=0\r\nm=audio\r\n"])


async def test_truncated_sdp_is_bad_sdp(pair: HealthyPair, http: Http) -> None:
    offer = valid_offer()
    await bad_sdp_then_publish(pair, http, [offer[: len(offer) // 2], offer[:40]])


async def test_sdp_without_fingerprint_or_ice_ufrag_is_bad_sdp(pair: HealthyPair,
                                                               http: Http) -> None:
    offer = valid_offer()
    await bad_sdp_then_publish(pair, http, [
        without(offer, "a=fingerprint:"),
        without(offer, "a=ice-ufrag:"),
        without(offer, "a=ice-pwd:"),
        without(offer, "a=group:BUNDLE"),  # BUNDLE and rtcp-mux are required too
        without(offer, "a=rtcp-mux"),
    ])


async def test_offer_without_usable_codec_is_no_common_codec(pair: HealthyPair,
                                                            http: Http) -> None:
    offer = valid_offer()
    offer = offer.replace("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "m=audio 9 UDP/TLS/RTP/SAVPF 0")
    offer = re.sub(r"a=(rtpmap|fmtp):111 [^\r\n]*\r\n", "", offer)
    offer = offer.replace("m=video 9 UDP/TLS/RTP/SAVPF 100", "m=video 9 UDP/TLS/RTP/SAVPF 98")
    offer = offer.replace("a=rtpmap:100 VP8/90000", "a=rtpmap:98 H265/90000")
    offer = offer.replace("a=rtcp-fb:100", "a=rtcp-fb:98")
    assert "opus" not in offer and "VP8" not in offer and "PCMU" in offer
    before = await error_count(http, "no_common_codec")
    bad = await joined_client(pair, "pcmu-h265")
    try:
        await bad.send({"type": "offer", "target": "publisher", "sdp": offer})
        await expect_error(bad, "no_common_codec", fatal=False, ref="offer")
        assert await error_count(http, "no_common_codec") == before + 1
        await ping_pong(bad)  # the session carries on
        await pair.barrier()
        pid = pair.participant_id("pcmu-h265")
        assert pid is not None
        assert not any(m["type"] == "track_published" and m["track"]["participantId"] == pid
                       for m in pair.sub.log)
        await pair.assert_flowing()
        await publishes_to(pair, bad)
        await pair.assert_flowing()
    finally:
        await bad.close()


# -- tokens ------------------------------------------------------------------------------

OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"


def _token(kind: str, server: Any, room: str) -> str:
    key, secret = server.api_key, server.api_secret
    if kind == "expired":
        return tokens.mint(key, secret, room=room, identity="intruder", ttl_s=60,
                           now=time.time() - 3600)
    if kind == "not_yet_valid":
        return tokens.mint(key, secret, room=room, identity="intruder",
                           now=time.time() + 3600)
    if kind == "forged":
        return tokens.mint(key, OTHER_SECRET, room=room, identity="intruder")
    if kind == "wrong_issuer":
        return tokens.mint("another-api-key", secret, room=room, identity="intruder")
    if kind == "garbage":
        return "garbage.not-a.jwt"
    if kind in ("relay", "via"):  # (genuine, but a single node has no edges)
        return tokens.mint(key, secret, room=room, identity="intruder", **{kind: "edge-1"})
    if kind == "alg_none":
        header = b'{"alg":"none","typ":"JWT"}'
        body = json.dumps({"iss": key, "sub": "intruder", "room": room,
                           "exp": int(time.time()) + 600}).encode()
        enc = [base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in (header, body)]
        return ".".join(enc) + "."
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,code", [
    ("expired", "token_expired"),
    ("not_yet_valid", "token_expired"),
    ("forged", "invalid_token"),
    ("wrong_issuer", "invalid_token"),
    ("garbage", "invalid_token"),
    ("alg_none", "invalid_token"),
    ("relay", "invalid_token"),
    ("via", "invalid_token"),
])
async def test_bad_token_is_refused_and_socket_closed(
    pair: HealthyPair, http: Http, probes: Probes, kind: str, code: str
) -> None:
    before = await error_count(http, code)
    probe = await probes().open()
    await probe.send({"type": "join", "token": _token(kind, pair.server, pair.room)})
    err = await probe.expect_error(code, fatal=True)
    assert err.get("ref") == "join"
    await probe.expect_closed()
    assert await error_count(http, code) == before + 1
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub"}
    await pair.barrier()
    assert pair.participant_id("intruder") is None
    await pair.assert_flowing()


async def test_token_for_room_a_does_not_enter_room_b(pair: HealthyPair, http: Http,
                                                      probes: Probes) -> None:
    room_a, room_b = pair.room + "-a", pair.room  # the healthy pair is in room B
    probe = await probes().open()
    # the room comes only from the token: a "room" field naming B is ignored
    await probe.send({"type": "join", "room": room_b,
                      "token": pair.server.mint_token(room_a, "wanderer")})
    joined = await probe.expect("joined")
    assert joined["room"] == room_a
    assert joined["participants"] == []  # nobody from room B is visible to it
    await probe.send({"type": "offer", "target": "publisher", "sdp": valid_offer()})
    answer = await probe.expect("answer")
    assert {t["kind"] for t in answer["tracks"]} == {"audio", "video"}
    assert await http.identities(room_a) == {"wanderer"}
    assert await http.identities(room_b) == {"healthy-pub", "healthy-sub"}
    await pair.barrier()
    wanderer = joined["participant"]["id"]
    for c in (pair.pub, pair.sub):
        assert not any(m["type"] == "participant_joined" and
                       m["participant"]["identity"] == "wanderer" for m in c.log), c.log
        assert not any(m["type"] == "track_published" and
                       m["track"]["participantId"] == wanderer for m in c.log), c.log
    # and room B's tracks are not offered to it
    await probe.ping_pong()
    assert not any(m["type"] == "offer" for m in probe.seen)
    await pair.assert_flowing()


# -- frames ------------------------------------------------------------------------------


async def test_unknown_message_type_is_not_fatal(pair: HealthyPair, http: Http) -> None:
    before = await error_count(http, "unknown_type")
    bad = await joined_client(pair, "unknown-type")
    try:
        await bad.send({"type": "subscribe_everything", "please": True})
        await expect_error(bad, "unknown_type", fatal=False, ref="subscribe_everything")
        assert await error_count(http, "unknown_type") == before + 1
        await ping_pong(bad)
        assert bad.ws is not None and not bad.ws.closed
        await pair.assert_flowing()
    finally:
        await bad.close()


@pytest.mark.parametrize("filler", ["x", "\u20ac"])  # 1 byte, 3 bytes in UTF-8
async def test_oversized_message_closes_the_socket(pair: HealthyPair, http: Http,
                                                   probes: Probes, filler: str) -> None:
    before = await error_count(http, "message_too_large")
    probe = await probes().open()
    await probe.send({"type": "join", "token": pair.server.mint_token(pair.room, "big")})
    await probe.expect("joined")
    assert probe.ws is not None
    # over 64 KiB of UTF-8 (for the euro sign: in fewer than 64 Ki characters)
    frame = json.dumps({"type": "ping", "id": filler * (64 * 1024 // len(filler.encode()) + 1)},
                       ensure_ascii=False)
    assert len(frame.encode()) > 64 * 1024
    await probe.ws.send_str(frame)
    await probe.expect_error("message_too_large", fatal=True)
    assert await probe.expect_closed() == 1009  # docs/protocol.md: closed with code 1009
    assert await error_count(http, "message_too_large") == before + 1
    left = await pair.wait_left("big")
    assert {m["reason"] for m in left} == {"disconnected"}
    await http.wait_identities(pair.room, lambda ids: "big" not in ids)
    await pair.assert_flowing()


BAD_FRAMES: dict[str, Callable[[WsProbe], Any]] = {
    "not_json": lambda p: p.ws.send_str("{'type': 'ping'"),
    "binary": lambda p: p.ws.send_bytes(b'{"type": "ping"}'),
    "json_array": lambda p: p.ws.send_str('["ping", {"id": 1}]'),
    "json_string": lambda p: p.ws.send_str('"ping"'),
    "no_type": lambda p: p.send({"id": 3}),
    "type_not_string": lambda p: p.send({"type": 7}),
    "offer_without_sdp": lambda p: p.send({"type": "offer", "target": "publisher"}),
    "sdp_not_string": lambda p: p.send({"type": "offer", "target": "publisher", "sdp": 5}),
    "mute_without_track": lambda p: p.send({"type": "mute", "muted": True}),
    "mute_muted_not_bool": lambda p: p.send({"type": "mute", "trackId": "x", "muted": "yes"}),
    "candidate_without_target": lambda p: p.send({"type": "candidate", "candidate": None}),
}


@pytest.mark.parametrize("frame", list(BAD_FRAMES))
async def test_bad_frame_after_join_is_bad_message(pair: HealthyPair, http: Http,
                                                   probes: Probes, frame: str) -> None:
    before = await error_count(http, "bad_message")
    probe = await probes().open()
    await probe.send({"type": "join", "token": pair.server.mint_token(pair.room, "sloppy")})
    await probe.expect("joined")
    await BAD_FRAMES[frame](probe)
    await probe.expect_error("bad_message", fatal=False)
    assert await error_count(http, "bad_message") == before + 1
    await probe.ping_pong()  # still joined, still answered
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub", "sloppy"}
    await pair.assert_flowing()


@pytest.mark.parametrize("frame", ["not_json", "binary", "json_array", "no_type"])
async def test_bad_frame_before_join_is_fatal_bad_message(pair: HealthyPair,
                                                          probes: Probes, frame: str) -> None:
    probe = await probes().open()
    await BAD_FRAMES[frame](probe)
    await probe.expect_error("bad_message", fatal=True)
    await probe.expect_closed()
    await pair.assert_flowing()


@pytest.mark.parametrize("first", [
    {"type": "ping", "id": 1},
    {"type": "offer", "target": "publisher", "sdp": "v=0\r\n"},
    {"type": "leave"},
    {"type": "hello"},
])
async def test_first_frame_not_join_is_not_joined(pair: HealthyPair, http: Http,
                                                  probes: Probes, first: dict[str, Any]
                                                  ) -> None:
    before = await error_count(http, "not_joined")
    probe = await probes().open()
    await probe.send(first)
    await probe.expect_error("not_joined", fatal=True)
    await probe.expect_closed()
    assert not any(m["type"] == "pong" for m in probe.seen)
    assert await error_count(http, "not_joined") == before + 1
    await pair.assert_flowing()


# -- media ports -------------------------------------------------------------------------


def server_media_ports(pair: HealthyPair) -> set[tuple[str, int]]:
    """UDP addresses from the host candidates the server put in its SDP for the pair."""
    sdps = [m["sdp"] for c in (pair.pub, pair.sub) for m in c.log
            if m["type"] in ("answer", "offer")]
    found = set()
    for text in sdps:
        for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", text):
            found.add((m.group(1), int(m.group(2))))
    return found


def server_ice_ufrags(pair: HealthyPair) -> set[str]:
    sdps = [m["sdp"] for c in (pair.pub, pair.sub) for m in c.log
            if m["type"] in ("answer", "offer")]
    return {u for text in sdps for u in re.findall(r"a=ice-ufrag:(\S+)", text)}


def garbage_datagrams(rng: random.Random) -> list[bytes]:
    out: list[bytes] = [b"", b"\x80", b"\x00", b"\x16", b"\x80\xc8", bytes(12)]
    for i in range(400):
        first = (rng.randrange(0x80, 0xC0), 0x00, 0x01, 0x16, 0x17,
                 rng.randrange(256))[i % 6]
        size = rng.choice((1, 2, 4, 11, 12, 20, 28, 64, 200, 1200))
        body = bytearray(rng.randbytes(size))
        body[0] = first
        if first == 0x01 and size >= 20:  # STUN header with a plausible length and cookie
            body[2:4] = (size - 20).to_bytes(2, "big")
            body[4:8] = bytes.fromhex("2112a442")
        out.append(bytes(body))
    return out


async def rejected_total(http: Http) -> float:
    return sum(v for (name, _), v in (await http.metrics()).items()
               if name == "sfu_media_port_rejected_total")


async def refused_check_total(http: Http) -> float:
    """Checks naming a real transport that it refused (wrong peer or password)."""
    return (await http.metric("sfu_media_port_rejected_total", reason="unauthenticated")
            + await http.metric("sfu_media_port_rejected_total", reason="wrong_username"))


async def send_paced(send: Callable[[bytes], Any], datagrams: list[bytes]) -> None:
    for i, d in enumerate(datagrams):
        send(d)
        if i % 25 == 24:
            await asyncio.sleep(0.002)  # pacing, keep the receive buffer from overflowing


async def test_garbage_udp_on_the_shared_media_port_is_dropped_and_counted(
        pair: HealthyPair, http: Http) -> None:
    ports = server_media_ports(pair)
    assert len(ports) == 1, ports  # the publisher and the subscriber: one shared port
    (addr,) = ports
    rng = random.Random(20240601)
    datagrams = garbage_datagrams(rng)
    # checks naming the pair's real ICE ufrags, with a wrong password or none
    for ufrag in server_ice_ufrags(pair):
        datagrams.append(stun.binding_request(b"k" * 12, f"{ufrag}:x", b"wrong" * 5))
        datagrams.append(stun.binding_request(b"u" * 12, f"{ufrag}:x", b"wrong" * 5)[:-32])
    datagrams.append(stun.binding_request(b"n" * 12, "nobody:x", b"k" * 24))
    before = await rejected_total(http)
    refused_checks = await refused_check_total(http)
    # 1. from an address no check validated: every datagram is dropped and counted
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        await send_paced(lambda d: sock.sendto(d, addr), datagrams)
    finally:
        sock.close()
    await wait_until_metric(http, rejected_total, before + 0.95 * len(datagrams))
    assert await refused_check_total(http) >= refused_checks + 2
    # 2. from the publisher's own validated address: SRTP-looking ones fail authentication
    srtp_before = await http.metric("sfu_srtp_auth_failures_total")
    srtp_looking = sum(1 for d in datagrams if d and 0x80 <= d[0] < 0xC0)
    publisher = pair.pub.publisher
    assert publisher is not None
    await send_paced(publisher.send_datagram, datagrams)
    await wait_until_metric_at_least(http, "sfu_srtp_auth_failures_total",
                                     srtp_before + 0.9 * srtp_looking)
    await pair.assert_flowing(n=50)
    # the transports are still up: a publisher joining now is received too
    late = await joined_client(pair, "after-garbage")
    try:
        await publishes_to(pair, late)
    finally:
        await late.close()
    await pair.assert_flowing()


async def wait_until_metric(http: Http, read: Callable[[Http], Any], value: float,
                            timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        got = await read(http)
        if got >= value:
            return float(got)
        if time.monotonic() > deadline:
            raise AssertionError(f"{read.__name__} is {got}, expected at least {value}")
        await asyncio.sleep(0.05)


async def wait_until_metric_at_least(http: Http, name: str, value: float,
                                     timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        got = await http.metric(name)
        if got >= value:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is {got}, expected at least {value}")
        await asyncio.sleep(0.05)


# -- clients vanishing mid-handshake -----------------------------------------------------


async def gone(pair: HealthyPair, http: Http, identity: str) -> None:
    """A client that vanished: the others see it reconnecting, then (this module's window
    is 1 s) leaving with reason timeout; the healthy pair never notices otherwise."""
    left = await pair.wait_left(identity)
    assert {m["reason"] for m in left} == {"timeout"}
    pid = left[0]["participantId"]
    for c in (pair.pub, pair.sub):
        kinds = [m["type"] for m in c.log if m.get("participantId") == pid
                 and m["type"] in ("participant_reconnecting", "participant_left")]
        assert kinds == ["participant_reconnecting", "participant_left"], kinds
    await http.wait_identities(pair.room, lambda ids: identity not in ids)
    assert await http.identities(pair.room) == {"healthy-pub", "healthy-sub"}
    await pair.assert_flowing()


async def test_disconnect_right_after_join(pair: HealthyPair, http: Http,
                                           probes: Probes) -> None:
    probe = await probes().open()
    await probe.send({"type": "join", "token": pair.server.mint_token(pair.room, "hit-and-run")})
    await probe.close()
    await gone(pair, http, "hit-and-run")


async def test_disconnect_after_publisher_offer_before_ice(pair: HealthyPair, http: Http,
                                                           probes: Probes) -> None:
    probe = await probes().open()
    await probe.send({"type": "join", "token": pair.server.mint_token(pair.room, "half-pub")})
    await probe.expect("joined")
    await probe.send({"type": "offer", "target": "publisher", "sdp": valid_offer()})
    await probe.close()  # without reading the answer; its ICE never answers
    pid = (await pair.wait_left("half-pub"))[0]["participantId"]
    await gone(pair, http, "half-pub")
    # the offer was handled before the close was read: its tracks were announced to the
    # others, then withdrawn again
    published = {m["track"]["id"] for m in pair.sub.log
                 if m["type"] == "track_published" and m["track"]["participantId"] == pid}
    assert len(published) == 2
    unpublished = {m["trackId"] for m in pair.sub.log if m["type"] == "track_unpublished"}
    assert published <= unpublished


async def test_vanish_with_subscriber_offer_unanswered(pair: HealthyPair, http: Http,
                                                       probes: Probes) -> None:
    probe = await probes().open()
    await probe.send({"type": "join", "token": pair.server.mint_token(pair.room, "ghost")})
    await probe.expect("joined")
    offer = await probe.expect("offer")
    assert offer["target"] == "subscriber"
    assert {t["trackId"] for t in offer["tracks"]} == {pair.audio, pair.video}
    probe.abort()  # no answer, no close frame: the TCP connection just goes away
    await gone(pair, http, "ghost")


async def test_vanish_mid_publish_with_media_flowing(pair: HealthyPair, http: Http) -> None:
    """A publisher whose tracks the healthy subscriber receives disappears abruptly."""
    bad = await joined_client(pair, "dropout")
    published = await bad.publish()
    pumper = Pumper(bad, video_size=300).start()
    try:
        await wait_until(lambda: min(track_counts(pair.sub, *published.values())) >= 5, 10,
                         "the healthy subscriber to receive the dropout's tracks")
    finally:
        await pumper.stop()
    await vanish(bad)
    try:
        await gone(pair, http, "dropout")
        unpublished = {m["trackId"] for m in pair.sub.log if m["type"] == "track_unpublished"}
        assert set(published.values()) <= unpublished
    finally:
        await bad.close()

