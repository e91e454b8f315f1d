"""The naive baseline: an aiortc relay that decodes and re-encodes (aiortc's MediaRelay).

    python -m benches.naive_relay --host 10.77.0.1 --port 0

What a first Python SFU usually is: one ``RTCPeerConnection`` per publisher and per
subscriber; the publisher's tracks are decoded once (aiortc's receiver: jitter buffer +
libvpx/libopus decoders) and :class:`aiortc.contrib.media.MediaRelay` hands the decoded
frames to every subscriber, whose ``RTCRtpSender`` encodes them again, once per subscriber.
The harness (``--server relay``) drives it with the same participants as the SFUs, to show
what forwarding packets untouched saves. Bench-only: no auth, no limits.

HTTP API (JSON), non-trickle (every SDP carries its candidates):

* ``POST /publish`` ``{"sdp": offer}`` → ``{"id": feed, "sdp": answer}``;
* ``POST /subscribe`` ``{"feeds": {feed: ["audio", "video"]}}`` → ``{"id": sub, "sdp":
  offer}`` (the relay offers the decoded-and-re-encoded tracks);
* ``POST /answer/{sub}`` ``{"sdp": answer}``;
* ``POST /close/{id}``.

Must run where aioice gathers a usable host candidate (the bench network namespace, whose
only non-loopback address is the bench address).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from benches.server_process import ROOT, drain_in_background, terminate

TRACK_WAIT_S = 10.0


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


async def _drain(track: MediaStreamTrack) -> None:
    """Consume a relayed track: keeps the publisher's decoder fed into the relay while no one
    subscribes (aiortc queues decoded frames without bound until someone reads them)."""
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


@dataclass
class Feed:
    pc: RTCPeerConnection
    tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    kinds: set[str] = field(default_factory=set)
    drains: list[asyncio.Task[None]] = field(default_factory=list)


class Relay:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.feeds: dict[str, Feed] = {}
        self.subs: dict[str, RTCPeerConnection] = {}
        self._ids = itertools.count(1)

    async def publish(self, offer_sdp: str) -> dict[str, Any]:
        pc = _pc()
        feed_id = str(next(self._ids))
        feed = Feed(pc, kinds=set(re.findall(r"^m=(audio|video) [1-9]", offer_sdp, re.M)))
        self.feeds[feed_id] = feed

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            feed.tracks[track.kind] = track
            # frames each subscriber cannot encode in time are dropped, not queued
            feed.drains.append(asyncio.ensure_future(
                _drain(self.relay.subscribe(track, buffered=False))))
            if feed.kinds <= set(feed.tracks):
                feed.ready.set()

        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return {"id": feed_id, "sdp": pc.localDescription.sdp}

    async def subscribe(self, wanted: dict[str, list[str]]) -> dict[str, Any]:
        pc = _pc()
        for feed_id, kinds in wanted.items():
            feed = self.feeds[feed_id]
            await asyncio.wait_for(feed.ready.wait(), TRACK_WAIT_S)
            for kind in ("audio", "video"):
                if kind in kinds and kind in feed.tracks:
                    pc.addTransceiver(self.relay.subscribe(feed.tracks[kind], buffered=False),
                                     direction="sendonly")
        sub_id = f"s{next(self._ids)}"
        self.subs[sub_id] = pc
        await pc.setLocalDescription(await pc.createOffer())
        return {"id": sub_id, "sdp": pc.localDescription.sdp}

    async def answer(self, sub_id: str, sdp: str) -> None:
        await self.subs[sub_id].setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def close(self, any_id: str) -> None:
        feed = self.feeds.pop(any_id, None)
        if feed is not None:
            for task in feed.drains:
                task.cancel()
        pc = feed.pc if feed is not None else self.subs.pop(any_id, None)
        if pc is not None:
            await pc.close()

    async def close_all(self) -> None:
        for any_id in [*self.subs, *self.feeds]:
            await self.close(any_id)


def app(relay: Relay) -> web.Application:
    async def publish(request: web.Request) -> web.Response:
        return web.json_response(await relay.publish((await request.json())["sdp"]))

    async def subscribe(request: web.Request) -> web.Response:
        return web.json_response(await relay.subscribe((await request.json())["feeds"]))

    async def answer(request: web.Request) -> web.Response:
        await relay.answer(request.match_info["id"], (await request.json())["sdp"])
        return web.json_response({})

    async def close(request: web.Request) -> web.Response:
        await relay.close(request.match_info["id"])
        return web.json_response({})

    async def cleanup(_: web.Application) -> None:
        await relay.close_all()

    application = web.Application()
    application.router.add_post("/publish", publish)
    application.router.add_post("/subscribe", subscribe)
    application.router.add_post("/answer/{id}", answer)
    application.router.add_post("/close/{id}", close)
    application.on_cleanup.append(cleanup)
    return application


@dataclass
class RelayProcess:
    proc: subprocess.Popen[str]
    http_url: str
    log: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid


def start(host: str) -> RelayProcess:
    """Run the relay as a subprocess on ``host``, any free port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benches.naive_relay", "--host", host, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    assert proc.stdout is not None
    log: list[str] = []
    for line in proc.stdout:
        log.append(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            relay = RelayProcess(proc, m.group(1), log)
            drain_in_background(proc, log, keep=500)
            return relay
    proc.wait(5)
    raise RuntimeError("the naive relay did not start:\n" + "".join(log))


def stop(relay: RelayProcess) -> None:
    terminate(relay.proc)
    if relay.proc.stdout is not None:
        relay.proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.naive_relay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    async def serve() -> None:
        runner = web.AppRunner(app(Relay()))
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"naive relay listening on http://{args.host}:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    import uvloop

    try:
        uvloop.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
