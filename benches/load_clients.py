"""Bench participants for each server under test: join, publish raw RTP, subscribe and count.

Every client speaks real ICE/DTLS/SRTP through :class:`sfu.transport.MediaTransport` and
writes its own SDP (:mod:`benches.rawclient`); only the signalling differs:

* ``ours``: the project's WebSocket protocol (:class:`benches.rawclient.RawClient`). The
  server offers every track to everyone; a subscriber turns off (``set_quality off``) the
  videos its scenario does not show, so both servers forward the same streams.
* ``janus``: the VideoRoom plugin over Janus's HTTP transport, non-trickle. A publisher joins
  and publishes; a subscriber joins one multistream subscription with the feeds (all of a
  feed it sees, only the audio of the others).
* ``relay``: the naive decode + re-encode baseline (:mod:`benches.naive_relay`), over its
  small HTTP API, non-trickle, subscribing like a Janus subscriber.

A subscriber's packets are counted in its socket callback before SRTP
(:func:`benches.measure.hook_transport`); it does not decode. Light clients (the default)
send no feedback and publish one video layer without transport-cc; browser-like ones
(``browser=True``) do what Chromium does on the wire: transport-cc both ways, transport-cc
feedback every 100 ms, receiver reports and NACKs (:mod:`benches.feedback`), audio levels
that follow a lesson's talk (:mod:`benches.talk`), and the instructor's video in three
simulcast layers when the scenario says so.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiortc.rtcdtlstransport import RTCCertificate

from benches import janus_server
from benches.feedback import ReceiverFeedback
from benches.measure import StreamCounter, hook_transport
from benches.rawclient import RawClient, RtpSource, publisher_offer, subscriber_answer
from benches.scenario import Participant, Scenario
from sfu import sdp as sdp_mod
from sfu.transport import MediaTransport

OURS_ROOM = "bench"


def room_name(room: int) -> str:
    """Our server's name of a bench classroom (the first is OURS_ROOM)."""
    return OURS_ROOM if room == 0 else f"{OURS_ROOM}-{room}"


def video_pts(offer: sdp_mod.SessionDescription) -> set[int]:
    """The payload types of the offer's video sections (what a frame count looks at)."""
    return {int(pt) for m in offer.media if m.kind == "video" for pt in m.formats
            if pt.isdigit()}


class BenchClient:
    """One participant. ``join`` connects (and publishes); ``subscribe`` starts receiving."""

    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, browser: bool = False) -> None:
        self.p = p
        self.scenario = scenario
        self.address = address
        self.certificate = certificate
        self.browser = browser
        self.counter = StreamCounter()
        self.subscribe_started_ns = 0

    @property
    def simulcast(self) -> bool:
        """Whether the video goes out in three layers: a browser-like client of a
        participant the scenario says sends simulcast."""
        return self.browser and self.p.simulcast

    @property
    def rtp(self) -> RtpSource:
        raise NotImplementedError

    def send(self, packet: bytes) -> bool:
        raise NotImplementedError

    async def join(self) -> str:
        """Connect (and publish, if the participant does); returns its directory id."""
        raise NotImplementedError

    async def subscribe(self, directory: dict[str, str]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _hook(self, transport: MediaTransport) -> None:
        hook_transport(transport, self.counter)
        if self.browser:
            self.counter.feedback = ReceiverFeedback(transport.send_rtcp)
            self.counter.feedback.start()

    def _learn(self, offer: sdp_mod.SessionDescription) -> None:
        self.counter.video_pts |= video_pts(offer)
        if self.counter.feedback is not None:
            self.counter.feedback.learn(offer)

    async def _stop_feedback(self) -> None:
        if self.counter.feedback is not None:
            await self.counter.feedback.stop()


# -- ours ----------------------------------------------------------------------------


class _DeferredClient(RawClient):
    """A RawClient that holds the subscriber offer until :meth:`allow`, then hides the
    videos its participant does not see."""

    def __init__(self, *args: Any, sees: tuple[str, ...], owner: BenchClient,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sees = set(sees)
        self.owner = owner
        self.allowed = False
        self.pending: dict[str, Any] | None = None
        self.hidden: set[str] = set()

    async def _answer(self, msg: dict[str, Any]) -> None:
        if not self.allowed:
            self.pending = msg
            return
        await super()._answer(msg)
        self.owner._learn(sdp_mod.parse(msg["sdp"]))
        names = {p["id"]: p["identity"] for p in self.joined.get("participants", [])}
        names.update({m["participant"]["id"]: m["participant"]["identity"] for m in self.log
                      if m.get("type") == "participant_joined"})
        for t in msg.get("tracks", []):
            if (t["kind"] == "video" and names.get(t["participantId"]) not in self.sees
                    and t["trackId"] not in self.hidden):
                self.hidden.add(t["trackId"])
                await self.send({"type": "set_quality", "trackId": t["trackId"],
                                 "quality": "off"})

    async def allow(self) -> None:
        self.allowed = True
        if self.pending is not None:
            msg, self.pending = self.pending, None
            await self._answer(msg)


class OursClient(BenchClient):
    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, ws_url: str, api_key: str,
                 api_secret: str, browser: bool = False) -> None:
        from signalling import tokens

        super().__init__(p, scenario, address, certificate, browser)
        token = tokens.mint(api_key, api_secret, room=room_name(p.room), identity=p.name,
                            role=p.role)
        self.client = _DeferredClient(ws_url, token, certificate=certificate,
                                      addresses=(address,), sees=p.sees, owner=self,
                                      on_packet=self.counter.on_plain,
                                      on_sub_transport=self._hook, browser_like=browser)

    @property
    def rtp(self) -> RtpSource:
        return self.client

    def send(self, packet: bytes) -> bool:
        return self.client.send_packet(packet)

    async def join(self) -> str:
        """A publisher joins and publishes; a participant that only receives joins when it
        subscribes (so its join-to-first-packet time counts the join, as with Janus)."""
        if self.p.publishes:
            await self.client.connect()
            await self.client.publish(audio=self.p.audio, video=bool(self.p.video),
                                      simulcast=self.simulcast)
        return self.p.name

    async def subscribe(self, directory: dict[str, str]) -> None:
        self.subscribe_started_ns = time.monotonic_ns()
        if self.client.ws is None:
            self.client.allowed = True
            await self.client.connect()
        else:
            await self.client.allow()

    async def close(self) -> None:
        await self._stop_feedback()
        await self.client.close()


# -- servers signalled over HTTP, non-trickle (Janus, the naive relay) -------------------


class _HttpSignalledClient(BenchClient):
    """A raw publisher transport (we offer) and a raw subscriber transport (the server
    offers); subclasses only carry the SDPs to and from their server."""

    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, browser: bool = False) -> None:
        super().__init__(p, scenario, address, certificate, browser)
        self.source = RtpSource()
        if browser:
            self.source.twcc_seq = 0
        self.publisher: MediaTransport | None = None
        self.subscriber: MediaTransport | None = None

    @property
    def rtp(self) -> RtpSource:
        return self.source

    def send(self, packet: bytes) -> bool:
        assert self.publisher is not None
        return self.publisher.send_rtp(packet)

    async def _exchange_offer(self, offer: str) -> tuple[str, str]:
        """Send our publisher offer; returns (feed id, the server's answer)."""
        raise NotImplementedError

    async def _request_offer(self, feeds: list[tuple[str, bool]]) -> tuple[Any, str]:
        """Ask for the (feed id, with video) streams; returns (a key, the server's offer)."""
        raise NotImplementedError

    async def _send_answer(self, key: Any, answer: str) -> None:
        raise NotImplementedError

    async def join(self) -> str:
        if not self.p.publishes:
            return ""
        connected = asyncio.Event()
        self.publisher = MediaTransport(
            self.certificate, [self.address], controlling=True, on_rtp=lambda d, t: None,
            on_rtcp=lambda d: None,
            on_state=lambda st: connected.set() if st == "connected" else None,
            name=f"{type(self).__name__}-pub")
        await self.publisher.gather()
        offer = publisher_offer(self.publisher.local(), self.source.audio_ssrc,
                                self.source.video_ssrc, audio=self.p.audio,
                                video=bool(self.p.video), twcc=self.browser,
                                simulcast=self.simulcast)
        feed, answer = await self._exchange_offer(offer)
        await self.publisher.start_with(sdp_mod.parse(answer), "server")
        await asyncio.wait_for(connected.wait(), 15)
        return feed

    async def subscribe(self, directory: dict[str, str]) -> None:
        self.subscribe_started_ns = time.monotonic_ns()
        others = self.scenario.by_name()
        # all of a feed it sees, the audio of the others in its classroom
        feeds: list[tuple[str, bool]] = []
        for name, feed in directory.items():
            q = others[name]
            if name == self.p.name or not feed or q.room != self.p.room:
                continue
            if name in self.p.sees and q.video:
                feeds.append((feed, True))
            elif q.audio:
                feeds.append((feed, False))
        if not feeds:
            return
        key, offer_sdp = await self._request_offer(feeds)
        offer = sdp_mod.parse(offer_sdp)
        self.subscriber = MediaTransport(
            self.certificate, [self.address], controlling=False,
            on_rtp=self.counter.on_plain, on_rtcp=lambda d: None, on_state=lambda st: None,
            name=f"{type(self).__name__}-sub")
        await self.subscriber.gather()
        self._hook(self.subscriber)
        self._learn(offer)
        await self._send_answer(key, subscriber_answer(offer, self.subscriber.local(),
                                                       twcc=self.browser))
        await self.subscriber.start_with(offer, "client")

    async def close(self) -> None:
        await self._stop_feedback()
        for t in (self.publisher, self.subscriber):
            if t is not None:
                await t.close()


class JanusClient(_HttpSignalledClient):
    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, session: janus_server.JanusSession,
                 room: int, browser: bool = False) -> None:
        super().__init__(p, scenario, address, certificate, browser)
        self.session = session
        self.room = room
        self.handles: list[int] = []

    async def _exchange_offer(self, offer: str) -> tuple[str, str]:
        s = self.session
        handle = await s.attach()
        self.handles.append(handle)
        await s.message(handle, {"request": "join", "ptype": "publisher",
                                 "room": self.room + self.p.room,
                                 "display": self.p.name})
        joined = await s.event(handle, "id")
        feed = joined["plugindata"]["data"]["id"]
        await s.message(handle, {"request": "publish", "audio": self.p.audio,
                                 "video": bool(self.p.video)},
                        {"type": "offer", "sdp": offer, "trickle": False,
                         # our rids are listed lowest first, as the page sends them
                         # (Janus assumes high, medium, low unless told)
                         **({"rid_order": "lmh"} if self.simulcast else {})})
        ev = await s.event(handle, "configured")
        return str(feed), ev["jsep"]["sdp"]

    async def _request_offer(self, feeds: list[tuple[str, bool]]) -> tuple[Any, str]:
        streams = [{"feed": int(f)} if video else {"feed": int(f), "mid": "a"}
                   for f, video in feeds]
        s = self.session
        handle = await s.attach()
        self.handles.append(handle)
        await s.message(handle, {"request": "join", "ptype": "subscriber",
                                 "room": self.room + self.p.room,
                                 "streams": streams})
        ev = await s.event(handle, "streams")
        return handle, ev["jsep"]["sdp"]

    async def _send_answer(self, key: Any, answer: str) -> None:
        await self.session.message(key, {"request": "start"},
                                   {"type": "answer", "sdp": answer, "trickle": False})

    async def close(self) -> None:
        await super().close()
        for h in self.handles:
            try:
                await self.session.message(h, {"request": "leave"})
            except (aiohttp.ClientError, janus_server.JanusError):
                pass


class RelayClient(_HttpSignalledClient):
    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, http: aiohttp.ClientSession,
                 http_url: str) -> None:
        super().__init__(p, scenario, address, certificate)
        self.counter.sample_every = 0  # re-encoded payloads carry no send time
        self.http = http
        self.url = http_url
        self.ids: list[str] = []

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.url + path, json=body) as resp:
            resp.raise_for_status()
            out: dict[str, Any] = await resp.json()
            return out

    async def _exchange_offer(self, offer: str) -> tuple[str, str]:
        resp = await self._post("/publish", {"sdp": offer})
        self.ids.append(resp["id"])
        return str(resp["id"]), resp["sdp"]

    async def _request_offer(self, feeds: list[tuple[str, bool]]) -> tuple[Any, str]:
        wanted = {f: ["audio", "video"] if video else ["audio"] for f, video in feeds}
        resp = await self._post("/subscribe", {"feeds": wanted})
        self.ids.append(resp["id"])
        return resp["id"], resp["sdp"]

    async def _send_answer(self, key: Any, answer: str) -> None:
        await self._post(f"/answer/{key}", {"sdp": answer})

    async def close(self) -> None:
        await super().close()
        for i in self.ids:
            try:
                await self._post(f"/close/{i}", {})
            except aiohttp.ClientError:
                pass

