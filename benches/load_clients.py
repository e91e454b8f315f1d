"""Bench participants for each server under test: join, publish raw RTP, subscribe and count.

Every client speaks real ICE/DTLS/SRTP through :class:`sfu.transport.MediaTransport` and
writes its own SDP (:mod:`benches.rawclient`); only the signalling differs:

* ``ours``: the project's WebSocket protocol (:class:`benches.rawclient.RawClient`). The
  server offers every track to everyone; a subscriber turns off (``set_quality off``) the
  videos its scenario does not show, so both servers forward the same streams.
* ``janus``: the VideoRoom plugin over Janus's HTTP transport, non-trickle. A publisher joins
  and publishes; a subscriber joins one multistream subscription with the feeds (all of a
  feed it sees, only the audio of the others).

A subscriber's packets are counted in its UDP socket callback before SRTP
(:func:`benches.measure.hook_transport`); it neither decodes nor sends feedback.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiortc.rtcdtlstransport import RTCCertificate

from benches import janus_server
from benches.measure import StreamCounter, hook_transport
from benches.rawclient import RawClient, RtpSource, publisher_offer, subscriber_answer
from benches.scenario import Participant, Scenario
from sfu import sdp as sdp_mod
from sfu.transport import MediaTransport

OURS_ROOM = "bench"


class BenchClient:
    """One participant. ``join`` connects (and publishes); ``subscribe`` starts receiving."""

    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate) -> None:
        self.p = p
        self.scenario = scenario
        self.address = address
        self.certificate = certificate
        self.counter = StreamCounter()
        self.subscribe_started_ns = 0

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
        if not hook_transport(transport, self.counter):
            raise RuntimeError("no UDP socket to hook")


# -- ours ----------------------------------------------------------------------------


class _DeferredClient(RawClient):
    """A RawClient that holds the subscriber offer until :meth:`allow`, then hides the
    videos its participant does not see."""

    def __init__(self, *args: Any, sees: tuple[str, ...], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sees = set(sees)
        self.allowed = False
        self.pending: dict[str, Any] | None = None
        self.hidden: set[str] = set()

    async def _answer(self, msg: dict[str, Any]) -> None:
        if not self.allowed:
            self.pending = msg
            return
        await super()._answer(msg)
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
                 api_secret: str) -> None:
        from signalling import tokens

        super().__init__(p, scenario, address, certificate)
        token = tokens.mint(api_key, api_secret, room=OURS_ROOM, identity=p.name,
                            role=p.role)
        self.client = _DeferredClient(ws_url, token, certificate=certificate,
                                      addresses=(address,), sees=p.sees,
                                      on_packet=self.counter.on_plain,
                                      on_sub_transport=self._hook)

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
            await self.client.publish(audio=self.p.audio, video=bool(self.p.video))
        return self.p.name

    async def subscribe(self, directory: dict[str, str]) -> None:
        self.subscribe_started_ns = time.monotonic_ns()
        if self.client.ws is None:
            self.client.allowed = True
            await self.client.connect()
        else:
            await self.client.allow()

    async def close(self) -> None:
        await self.client.close()


# -- janus ---------------------------------------------------------------------------


class JanusClient(BenchClient):
    def __init__(self, p: Participant, scenario: Scenario, address: str,
                 certificate: RTCCertificate, session: janus_server.JanusSession,
                 room: int) -> None:
        super().__init__(p, scenario, address, certificate)
        self.session = session
        self.room = room
        self.source = RtpSource()
        self.publisher: MediaTransport | None = None
        self.subscriber: MediaTransport | None = None
        self.handles: list[int] = []

    @property
    def rtp(self) -> RtpSource:
        return self.source

    def send(self, packet: bytes) -> bool:
        assert self.publisher is not None
        return self.publisher.send_rtp(packet)

    async def join(self) -> str:
        if not self.p.publishes:
            return ""
        s = self.session
        handle = await s.attach()
        self.handles.append(handle)
        await s.message(handle, {"request": "join", "ptype": "publisher", "room": self.room,
                                 "display": self.p.name})
        joined = await s.event(handle, "id")
        feed = joined["plugindata"]["data"]["id"]
        connected = asyncio.Event()
        self.publisher = MediaTransport(
            self.certificate, [self.address], controlling=True, on_rtp=lambda d, t: None,
            on_rtcp=lambda d: None,
            on_state=lambda st: connected.set() if st == "connected" else None,
            name="janus-pub")
        await self.publisher.gather()
        offer = publisher_offer(self.publisher.local(), self.source.audio_ssrc,
                                self.source.video_ssrc, audio=self.p.audio,
                                video=bool(self.p.video))
        await s.message(handle, {"request": "publish", "audio": self.p.audio,
                                 "video": bool(self.p.video)},
                        {"type": "offer", "sdp": offer, "trickle": False})
        ev = await s.event(handle, "configured")
        answer = sdp_mod.parse(ev["jsep"]["sdp"])
        await _start(self.publisher, answer, "server")
        await asyncio.wait_for(connected.wait(), 15)
        return str(feed)

    async def subscribe(self, directory: dict[str, str]) -> None:
        self.subscribe_started_ns = time.monotonic_ns()
        others = self.scenario.by_name()
        streams: list[dict[str, Any]] = []
        for name, feed in directory.items():
            q = others[name]
            if name == self.p.name or not feed:
                continue
            if name in self.p.sees and q.video:
                streams.append({"feed": int(feed)})  # audio and video
            elif q.audio:
                streams.append({"feed": int(feed), "mid": "a"})
        if not streams:
            return
        s = self.session
        handle = await s.attach()
        self.handles.append(handle)
        await s.message(handle, {"request": "join", "ptype": "subscriber", "room": self.room,
                                 "streams": streams})
        ev = await s.event(handle, "streams")
        offer = sdp_mod.parse(ev["jsep"]["sdp"])
        self.subscriber = MediaTransport(
            self.certificate, [self.address], controlling=False,
            on_rtp=self.counter.on_plain, on_rtcp=lambda d: None, on_state=lambda st: None,
            name="janus-sub")
        await self.subscriber.gather()
        self._hook(self.subscriber)
        answer = subscriber_answer(offer, self.subscriber.local())
        await s.message(handle, {"request": "start"},
                        {"type": "answer", "sdp": answer, "trickle": False})
        await _start(self.subscriber, offer, "client")

    async def close(self) -> None:
        for t in (self.publisher, self.subscriber):
            if t is not None:
                await t.close()
        for h in self.handles:
            try:
                await self.session.message(h, {"request": "leave"})
            except (aiohttp.ClientError, janus_server.JanusError):
                pass


async def _start(transport: MediaTransport, remote: sdp_mod.SessionDescription,
                 dtls_role: str) -> None:
    first = next(m for m in remote.media if m.port != 0)
    ufrag, pwd = remote.ice_of(first)
    transport.start(ufrag, pwd, remote.fingerprints_of(first), dtls_role=dtls_role)
    cands = [c for m in remote.media for c in m.candidates]
    for cand in dict.fromkeys(cands):
        await transport.add_remote_candidate(cand)
    await transport.add_remote_candidate(None)
