"""A protocol client that speaks raw RTP over real ICE/DTLS/SRTP: no encoder, no decoder.

Used by the integration tests (byte-identical forwarding, bad input) and by the benches as a
cheap load client. It reuses :class:`sfu.transport.MediaTransport` (aiortc's ICE/DTLS/SRTP)
and writes its own SDP, so it costs little CPU per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc.rtcdtlstransport import RTCCertificate

from sfu import rtcp
from sfu import sdp as sdp_mod
from sfu.codecs import EXT_RID, EXT_TWCC
from sfu.negotiation import LocalTransport
from sfu.transport import MediaTransport

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
#: extension ids the raw publisher uses (deliberately not the server's canonical ones)
PUB_MID_ID = 9
PUB_AUDIO_LEVEL_ID = 7
PUB_TWCC_ID = 5
PUB_RID_ID = 10
#: a browser's simulcast rids, lowest first (the page's, webui/src/client/publisher.js)
SIMULCAST_RIDS = ("q", "h", "f")


@dataclass
class Received:
    packets: int = 0
    bytes: int = 0
    first_ms: float | None = None
    #: (seq, ts, marker, payload, extensions raw) when recording is on
    records: list[tuple[int, int, bool, bytes, bytes]] = field(default_factory=list)


def _transport_lines(local: LocalTransport, setup: str) -> list[str]:
    lines = ["c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
             f"a=ice-ufrag:{local.ice_ufrag}", f"a=ice-pwd:{local.ice_pwd}"]
    lines += [f"a=fingerprint:{a} {v}" for a, v in local.fingerprints]
    lines.append(f"a=setup:{setup}")
    lines += [f"a=candidate:{c}" for c in local.candidates]
    lines.append("a=end-of-candidates")
    return lines


def publisher_offer(local: LocalTransport, audio_ssrc: int, video_ssrc: int,
                    *, audio: bool = True, video: bool = True,
                    extra_video: dict[str, int] | None = None, twcc: bool = False,
                    simulcast: bool = False) -> str:
    """A raw publisher offer; ``extra_video`` adds video sections {mid: ssrc} (screen...).
    ``twcc``: transport-cc negotiated (the packets then carry transport-wide numbers, as a
    browser's); ``simulcast``: the video in three rid layers, as a browser offers it (no
    SSRC lines: the server learns each layer's SSRC from the rid extension)."""
    mids = []
    body: list[str] = []
    twcc_lines = [f"a=extmap:{PUB_TWCC_ID} {EXT_TWCC}"] if twcc else []
    if audio:
        mids.append("a")
        body += ["m=audio 9 UDP/TLS/RTP/SAVPF 111 0", *_transport_lines(local, "actpass"),
                 "a=mid:a", "a=sendonly", "a=rtcp-mux",
                 f"a=extmap:{PUB_MID_ID} {MID_URI}",
                 f"a=extmap:{PUB_AUDIO_LEVEL_ID} {AUDIO_LEVEL_URI}", *twcc_lines,
                 "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
                 *(["a=rtcp-fb:111 transport-cc"] if twcc else []),
                 "a=rtpmap:0 PCMU/8000",
                 f"a=ssrc:{audio_ssrc} cname:raw", "a=msid:raw audio"]
    if video:
        mids.append("v")
        body += ["m=video 9 UDP/TLS/RTP/SAVPF 100", *_transport_lines(local, "actpass"),
                 "a=mid:v", "a=sendonly", "a=rtcp-mux", f"a=extmap:{PUB_MID_ID} {MID_URI}",
                 *twcc_lines,
                 *([f"a=extmap:{PUB_RID_ID} {EXT_RID}"] if simulcast else []),
                 "a=rtpmap:100 VP8/90000", "a=rtcp-fb:100 nack", "a=rtcp-fb:100 nack pli",
                 *(["a=rtcp-fb:100 transport-cc"] if twcc else [])]
        if simulcast:
            body += [f"a=rid:{rid} send" for rid in SIMULCAST_RIDS]
            body += ["a=simulcast:send " + ";".join(SIMULCAST_RIDS), "a=msid:raw video"]
        else:
            body += [f"a=ssrc:{video_ssrc} cname:raw", "a=msid:raw video"]
    for mid, ssrc in (extra_video or {}).items():
        mids.append(mid)
        body += ["m=video 9 UDP/TLS/RTP/SAVPF 100", *_transport_lines(local, "actpass"),
                 f"a=mid:{mid}", "a=sendonly", "a=rtcp-mux", f"a=extmap:{PUB_MID_ID} {MID_URI}",
                 "a=rtpmap:100 VP8/90000", f"a=ssrc:{ssrc} cname:raw", f"a=msid:raw {mid}"]
    head = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE " + " ".join(mids)]
    return "\r\n".join(head + body) + "\r\n"


def subscriber_answer(offer: sdp_mod.SessionDescription, local: LocalTransport,
                      twcc: bool = False) -> str:
    """``twcc``: accept transport-cc (a promise to send feedback: browser-like clients
    do, with :class:`benches.feedback.ReceiverFeedback`)."""
    mids = [m.mid for m in offer.media if m.port != 0 and m.mid is not None]
    lines = ["v=0", "o=- 2 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE " + " ".join(mids)]
    for m in offer.media:
        if m.port == 0:
            lines += [f"m={m.kind} 0 {m.proto} {' '.join(m.formats)}", f"a=mid:{m.mid}"]
            continue
        lines.append(f"m={m.kind} 9 {m.proto} {' '.join(m.formats)}")
        lines += _transport_lines(local, "active")
        lines += [f"a=mid:{m.mid}", "a=recvonly" if m.direction == "sendonly" else "a=inactive",
                  "a=rtcp-mux"]
        # transport-cc is a promise to send feedback, which a light client does not send
        lines += [f"a=extmap:{i} {uri}" for i, uri in m.extmap.items()
                  if twcc or uri != EXT_TWCC]
        for c in m.codecs.values():
            ch = f"/{c.channels}" if c.channels > 1 else ""
            lines.append(f"a=rtpmap:{c.pt} {c.name}/{c.clock_rate}{ch}")
            if c.fmtp:
                lines.append(f"a=fmtp:{c.pt} {c.fmtp}")
            if twcc:
                lines.append(f"a=rtcp-fb:{c.pt} transport-cc")
    return "\r\n".join(lines) + "\r\n"


class RawClientError(Exception):
    """The server answered with an error frame."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class PublishRefused(RawClientError):
    """The server answered a publisher offer with an error frame."""


class RtpSource:
    """The publisher side's RTP streams: an audio and a video SSRC, with their sequence
    numbers and timestamps (random starts), and the packets built from payloads."""

    def __init__(self) -> None:
        self.audio_ssrc = secrets.randbits(32) | 1
        self.video_ssrc = secrets.randbits(32) | 1
        self._seq = {"audio": secrets.randbits(16), "video": secrets.randbits(16)}
        self._ts = {"audio": secrets.randbits(32), "video": secrets.randbits(32)}
        #: transport-wide sequence number of the last packet (None: no transport-cc)
        self.twcc_seq: int | None = None
        #: the simulcast layers' SSRCs, lowest first (the first is ``video_ssrc``)
        self.layer_ssrcs = [self.video_ssrc, secrets.randbits(32) | 1, secrets.randbits(32) | 1]
        self._layer_seq = [secrets.randbits(16) for _ in SIMULCAST_RIDS]
        self._layer_ts = [secrets.randbits(32) for _ in SIMULCAST_RIDS]

    def build_layer_packet(self, layer: int, payload: bytes, *, marker: bool = False,
                           ts_step: int = 3000) -> bytes:
        """Next packet of simulcast layer ``layer`` (0: lowest), with its rid."""
        seq = self._layer_seq[layer] = (self._layer_seq[layer] + 1) & 0xFFFF
        ts = self._layer_ts[layer] = (self._layer_ts[layer] + ts_step) & 0xFFFFFFFF
        rid = SIMULCAST_RIDS[layer].encode()
        ext = bytes([(PUB_MID_ID << 4), ord("v"), (PUB_RID_ID << 4) | (len(rid) - 1)]) + rid
        return self._finish(ext, marker, 100, seq, ts, self.layer_ssrcs[layer], payload)

    def _finish(self, ext: bytes, marker: bool, pt: int, seq: int, ts: int, ssrc: int,
                payload: bytes) -> bytes:
        if self.twcc_seq is not None:
            self.twcc_seq = (self.twcc_seq + 1) & 0xFFFF
            ext += bytes([(PUB_TWCC_ID << 4) | 1]) + struct.pack("!H", self.twcc_seq)
        ext += bytes((-len(ext)) % 4)
        header = struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | pt, seq, ts, ssrc)
        return header + struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext + payload

    def build_packet(self, kind: str, payload: bytes, *, marker: bool = False,
                     ts_step: int | None = None, audio_level: int = 30,
                     ssrc: int | None = None, mid: bytes | None = None) -> bytes:
        """Next packet of the audio or video stream (or of an extra video section when
        ``ssrc``/``mid`` are given; it then shares the video sequence counter)."""
        seq = self._seq[kind] = (self._seq[kind] + 1) & 0xFFFF
        step = ts_step if ts_step is not None else (960 if kind == "audio" else 3000)
        ts = self._ts[kind] = (self._ts[kind] + step) & 0xFFFFFFFF
        if ssrc is None:
            ssrc = self.audio_ssrc if kind == "audio" else self.video_ssrc
        pt = 111 if kind == "audio" else 100
        if mid is None:
            mid = b"a" if kind == "audio" else b"v"
        # one-byte header extension: mid (to be dropped) + audio level (to be remapped)
        ext = bytes([(PUB_MID_ID << 4) | (len(mid) - 1)]) + mid
        if kind == "audio":
            ext += bytes([(PUB_AUDIO_LEVEL_ID << 4) | 0, 0x80 | audio_level])
        return self._finish(ext, marker, pt, seq, ts, ssrc, payload)


class RawClient(RtpSource):
    def __init__(self, ws_url: str, token: str, *, certificate: RTCCertificate | None = None,
                 addresses: tuple[str, ...] = ("127.0.0.1",), record: bool = False,
                 on_packet: Callable[[bytes, float], None] | None = None,
                 on_sub_transport: Callable[[MediaTransport], None] | None = None,
                 browser_like: bool = False) -> None:
        """``on_sub_transport`` is called with the subscriber transport once it has its
        sockets, before it connects (the benches hook their packet counters there).
        ``browser_like``: transport-cc both ways (published packets carry transport-wide
        numbers; the subscriber accepts transport-cc, its feedback sent by whoever hooks
        the transport, :class:`benches.feedback.ReceiverFeedback`)."""
        super().__init__()
        self.browser_like = browser_like
        self.ws_url = ws_url
        self.token = token
        self.certificate = certificate or RTCCertificate.generateCertificate()
        self.addresses = list(addresses)
        self.record = record
        self._on_packet = on_packet
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.log: list[dict[str, Any]] = []
        self.joined: dict[str, Any] = {}
        self.publisher: MediaTransport | None = None
        self.subscriber: MediaTransport | None = None
        self.received: dict[int, Received] = {}
        self.offer_tracks: dict[str, dict[str, Any]] = {}  # subscriber ssrc-less: by mid
        self.ssrc_to_track: dict[int, str] = {}
        self.published: dict[str, str] = {}  # mid -> track id
        self._on_sub_transport = on_sub_transport
        self._reader: asyncio.Task[None] | None = None
        self._sub_connected = asyncio.Event()
        self._pub_connected = asyncio.Event()
        self.errors: list[dict[str, Any]] = []
        #: RTCP the server sent on each connection, parsed
        self.pub_rtcp: list[rtcp.RtcpMessage] = []
        self.sub_rtcp: list[rtcp.RtcpMessage] = []
        #: every RTP packet received on the subscriber connection (when recording)
        self.raw_packets: list[bytes] = []
        self.sub_offers = 0
        #: how it published (None: it did not), for :meth:`move`
        self._published_with: dict[str, Any] | None = None

    # -- signalling -------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)
        await self.send({"type": "join", "token": self.token})
        self._reader = asyncio.ensure_future(self._read())
        self.joined = await self.wait_for("joined")
        return self.joined

    async def send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(msg))

    def drop_signalling(self) -> None:
        """The WebSocket dies (TCP aborted, no close frame); the media transports stay up."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self.ws is not None:
            conn = self.ws._response.connection
            if conn is not None and conn.transport is not None:
                conn.transport.abort()

    async def resume(self) -> dict[str, Any]:
        """Open a new WebSocket and resume with the token of the last joined/resumed
        message; returns ``resumed`` (raises RawClientError on an error frame)."""
        return await self._resume({})

    async def _resume(self, extra: dict[str, Any]) -> dict[str, Any]:
        """A new WebSocket on ``ws_url``, resumed with the last joined/resumed message's
        token (and ``extra`` fields); ``resumed``, or RawClientError on anything else."""
        assert self.session is not None
        if self._reader is not None:
            self._reader.cancel()
        self.messages = asyncio.Queue()  # what the old socket left unread is stale
        self.ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)
        await self.send({"type": "resume", "room": self.joined["room"],
                         "participantId": self.joined["participant"]["id"],
                         "resumeToken": self.joined["resumeToken"], **extra})
        self._reader = asyncio.ensure_future(self._read())
        msg = await self.wait_for(("resumed", "error", "redirect"))
        if msg["type"] != "resumed":  # (a redirect: the room is not there yet, or elsewhere)
            raise RawClientError(msg)
        self.joined = msg
        return msg

    async def move(self, url: str) -> dict[str, Any]:
        """Go on on another node after a ``redirect`` while joined (docs/cluster.md): the
        media connections are made anew there, the session resumed with the join token, and
        what was published is published again. Returns ``resumed``."""
        republish = self._published_with
        if self._reader is not None:
            self._reader.cancel()  # (nothing more is read from the old node)
        for transport in (self.publisher, self.subscriber):
            if transport is not None:
                await transport.close()
        self.publisher = self.subscriber = None
        self._pub_connected, self._sub_connected = asyncio.Event(), asyncio.Event()
        self.offer_tracks.clear()
        self.ssrc_to_track.clear()
        self.ws_url = url.rstrip("/").replace("http", "ws", 1) + "/ws"
        msg = await self._resume({"token": self.token})
        if republish is not None:
            await self.publish(**republish)
        return msg

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(frame.data)
            self.log.append(msg)
            if msg.get("type") == "error":
                self.errors.append(msg)
            if msg.get("type") == "offer" and msg.get("target") == "subscriber":
                try:
                    await self._answer(msg)
                except (ConnectionError, RuntimeError):
                    pass  # the socket closed while answering: what follows still counts
            self.messages.put_nowait(msg)
        self.messages.put_nowait({"type": "__closed__"})

    async def wait_for(self, mtype: str | tuple[str, ...], timeout: float = 10.0,
                       pred: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {mtype!r} message; saw {self.log[-5:]}")
            msg = await asyncio.wait_for(self.messages.get(), remaining)
            types = (mtype,) if isinstance(mtype, str) else mtype
            if msg["type"] in types and (pred is None or pred(msg)):
                return msg
            if msg["type"] == "__closed__":
                raise ConnectionError(f"socket closed while waiting for {mtype!r}: "
                                      f"{self.log[-3:]}")

    # -- publishing -------------------------------------------------------------------

    async def publish(self, audio: bool = True, video: bool = True,
                      extra_video: dict[str, int] | None = None,
                      sources: dict[str, str] | None = None,
                      simulcast: bool = False) -> dict[str, str]:
        """Publish; returns {mid: server track id}. ``sources`` declares {mid: source};
        ``simulcast``: the video in three rid layers (:meth:`build_layer_packet`)."""
        if self.browser_like and self.twcc_seq is None:
            self.twcc_seq = secrets.randbits(16)
        self._published_with = {"audio": audio, "video": video, "extra_video": extra_video,
                                "sources": sources, "simulcast": simulcast}
        self.publisher = MediaTransport(
            self.certificate, self.addresses, controlling=True,
            on_rtp=lambda d, t: None, on_rtcp=self._on_pub_rtcp,
            on_state=lambda s: self._pub_connected.set() if s == "connected" else None,
            name="raw-pub")
        await self.publisher.gather()
        offer = publisher_offer(self.publisher.local(), self.audio_ssrc, self.video_ssrc,
                                audio=audio, video=video, extra_video=extra_video,
                                twcc=self.browser_like, simulcast=simulcast)
        msg: dict[str, Any] = {"type": "offer", "target": "publisher", "sdp": offer}
        if sources:
            msg["tracks"] = [{"mid": m, "source": src} for m, src in sources.items()]
        await self.send(msg)
        answer_msg = await self.wait_for(("answer", "error"))
        if answer_msg["type"] == "error":
            raise PublishRefused(answer_msg)
        await self.publisher.start_with(sdp_mod.parse(answer_msg["sdp"]), dtls_role="server")
        await asyncio.wait_for(self._pub_connected.wait(), 10)
        self.published = {t["mid"]: t["trackId"] for t in answer_msg["tracks"]}
        return self.published

    async def restart_publisher(self, new_ssrcs: bool = False) -> dict[str, str]:
        """Reconnect the publisher connection: a new transport with new ICE credentials
        (what a browser's ICE restart offers); with ``new_ssrcs`` also new SSRCs, like a
        browser that had to make a new peer connection. Returns {mid: server track id}."""
        old = self.publisher
        if new_ssrcs:
            self.audio_ssrc = secrets.randbits(32) | 1
            self.video_ssrc = secrets.randbits(32) | 1
        self._pub_connected = asyncio.Event()
        published = await self.publish()
        if old is not None:
            await old.close()
        return published

    def send_packet(self, packet: bytes) -> bool:
        assert self.publisher is not None
        return self.publisher.send_rtp(packet)

    def _on_pub_rtcp(self, data: bytes) -> None:
        self.pub_rtcp.extend(rtcp.parse(data))

    def send_subscriber_rtcp(self, packet: bytes) -> bool:
        assert self.subscriber is not None
        return self.subscriber.send_rtcp(packet)

    # -- subscribing ------------------------------------------------------------------

    async def _answer(self, msg: dict[str, Any]) -> None:
        self.sub_offers += 1
        offer = sdp_mod.parse(msg["sdp"])
        for t in msg.get("tracks", []):
            self.offer_tracks[t["mid"]] = t
        for m in offer.media:
            ssrc = m.media_ssrc()
            if ssrc is not None and m.mid in self.offer_tracks:
                self.ssrc_to_track[ssrc] = self.offer_tracks[m.mid]["trackId"]
        first_offer = self.subscriber is None
        if first_offer:
            self.subscriber = MediaTransport(
                self.certificate, self.addresses, controlling=False,
                on_rtp=self._on_sub_rtp, on_rtcp=lambda d: self.sub_rtcp.extend(rtcp.parse(d)),
                on_state=lambda s: self._sub_connected.set() if s == "connected" else None,
                name="raw-sub")
            await self.subscriber.gather()
            if self._on_sub_transport is not None:
                self._on_sub_transport(self.subscriber)
        assert self.subscriber is not None
        await self.send({"type": "answer", "target": "subscriber",
                         "sdp": subscriber_answer(offer, self.subscriber.local(),
                                                  twcc=self.browser_like)})
        if first_offer:
            await self.subscriber.start_with(offer, dtls_role="client")

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._sub_connected.wait(), timeout)

    def _on_sub_rtp(self, data: bytes, arrival_ms: float) -> None:
        ssrc = struct.unpack_from("!I", data, 8)[0]
        rec = self.received.get(ssrc)
        if rec is None:
            rec = self.received[ssrc] = Received()
        rec.packets += 1
        rec.bytes += len(data)
        if rec.first_ms is None:
            rec.first_ms = arrival_ms
        if self.record:
            self.raw_packets.append(data)
            hlen = 12 + 4 * (data[0] & 0x0F)
            ext = b""
            if data[0] & 0x10:
                ext_len = 4 + 4 * struct.unpack_from("!H", data, hlen + 2)[0]
                ext = data[hlen : hlen + ext_len]
                hlen += ext_len
            seq, ts = struct.unpack_from("!HI", data, 2)
            rec.records.append((seq, ts, bool(data[1] & 0x80), data[hlen:], ext))
        if self._on_packet is not None:
            self._on_packet(data, arrival_ms)

    def received_for_track(self, track_id: str) -> Received | None:
        for ssrc, tid in self.ssrc_to_track.items():
            if tid == track_id and ssrc in self.received:
                return self.received[ssrc]
        return None

    async def close(self) -> None:
        """Leave (a socket closed without ``leave`` is a lost connection: the server keeps
        the participant for its reconnection window) and close everything."""
        if self.ws is not None and not self.ws.closed:
            try:
                await self.send({"type": "leave"})
            except (ConnectionError, RuntimeError):
                pass
            else:
                # the server closes the socket once it has handled the leave: until then
                # the transports stay up (one closed first looks like a failure to the
                # server, and a socket reset in its middle like a lost connection)
                if self._reader is not None:
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        if self._reader is not None:
            self._reader.cancel()
        for t in (self.publisher, self.subscriber):
            if t is not None:
                await t.close()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
