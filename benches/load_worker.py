"""A bench worker process: some of a scenario's participants, on one uvloop.

The bench process sends commands over a pipe and the worker answers each:

* ``("join", None)`` → ``("joined", {name: directory id})``: connect every participant;
  publishers publish and start sending their media paced in real time.
* ``("subscribe", directory)`` → ``("subscribed", None)``: every participant that receives
  anything asks for its streams.
* ``("snap", None)`` → ``("snap", {name: {ssrc: (packets, base seq, max seq)}},
  {name: [latency µs]}, {name: join-to-first-packet ms}, errors)``.
* ``("stop", None)`` → ``("bye", None)``.

Publishers send pre-encoded media (:mod:`benches.media`): one VP8 frame every 33.3 ms
(its RTP packets in one burst, marker on the last) and one Opus packet every 20 ms, looping
with increasing RTP timestamps; every payload ends with the send time (8 bytes,
``time.monotonic_ns``, the same clock in every process) so subscribers can sample latency.
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from typing import Any

from benches.measure import STAMP
from benches.scenario import Scenario

AUDIO_TS_STEP = 960


def main(conn: Any, target: dict[str, Any], scenario: Scenario, names: list[str],
         address: str, netns_path: str | None = None) -> None:
    """``netns_path``: the network namespace to run the clients in (entered first)."""
    import uvloop

    try:
        if netns_path is not None:
            from benches import netns

            netns.enter(netns_path)
        uvloop.run(_run(conn, target, scenario, names, address))
    except Exception:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


async def _pace(client: Any, media: Any, stats: dict[str, int], stamps: bool = True,
                layers: list[Any] | None = None, talk: tuple[int, int, float] | None = None
                ) -> None:
    """Send one participant's media in real time until cancelled (``stamps``: each payload
    ends with its send time; off for a server that decodes, as it corrupts the media).
    ``layers``: the simulcast layers' media, lowest first (the video is sent as all of
    them); ``talk``: (index, students, lesson start) for audio levels that follow the
    lesson (:mod:`benches.talk`; else every packet is loud)."""
    from benches import talk as talk_mod

    loop = asyncio.get_running_loop()
    rtp, send, now_ns = client.rtp, client.send, time.monotonic_ns
    stamp = STAMP.pack if stamps else (lambda _: b"")
    audio, video = media.audio if client.p.audio else None, \
        media.video if client.p.video else None
    streams = [(k, m.video) for k, m in enumerate(layers)] if layers else [(-1, video)]
    fps = media.meta["fps"]
    ts_video = 90000 // fps
    t0 = loop.time()
    v_i = a_i = 0
    next_v = t0 if video else float("inf")
    next_a = t0 if audio else float("inf")
    while True:
        now = loop.time()
        while next_a <= now:
            assert audio is not None
            level = (30 if talk is None
                     else talk_mod.level(talk[0], talk[1], time.monotonic() - talk[2]))
            ok = send(rtp.build_packet("audio", audio[a_i % len(audio)] + stamp(now_ns()),
                                       ts_step=AUDIO_TS_STEP, audio_level=level))
            stats["sent" if ok else "failed"] += 1
            a_i += 1
            next_a = t0 + a_i * 0.020
        while next_v <= now:
            assert video is not None
            for k, frames in streams:
                payloads = frames[v_i % len(frames)]
                last = len(payloads) - 1
                for j, p in enumerate(payloads):
                    step = ts_video if j == 0 else 0
                    if k < 0:
                        packet = rtp.build_packet("video", p + stamp(now_ns()),
                                                  marker=j == last, ts_step=step)
                    else:
                        packet = rtp.build_layer_packet(k, p + stamp(now_ns()),
                                                        marker=j == last, ts_step=step)
                    ok = send(packet)
                    stats["sent" if ok else "failed"] += 1
            v_i += 1
            next_v = t0 + v_i / fps
        await asyncio.sleep(max(0.0, min(next_v, next_a) - loop.time()))


def _feedback_sent(clients: list[Any]) -> dict[str, int]:
    """RTCP the browser-like subscribers sent: transport-cc, receiver reports, NACKs."""
    out = {"twcc": 0, "rr": 0, "nack": 0}
    for c in clients:
        fb = c.counter.feedback
        if fb is not None:
            for k in out:
                out[k] += fb.sent[k]
    return out


async def _run(conn: Any, target: dict[str, Any], scenario: Scenario, names: list[str],
               address: str) -> None:
    import aiohttp
    from aiortc.rtcdtlstransport import RTCCertificate

    from benches import janus_server, load_clients, media

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def on_command() -> None:
        try:
            commands.put_nowait(conn.recv())
        except (EOFError, OSError):  # the bench process went away
            loop.remove_reader(conn.fileno())
            commands.put_nowait(("stop", None))

    loop.add_reader(conn.fileno(), on_command)
    cert = RTCCertificate.generateCertificate()
    people = scenario.by_name()
    http = aiohttp.ClientSession()
    session: janus_server.JanusSession | None = None
    tasks: list[asyncio.Task[None]] = []
    clients: list[load_clients.BenchClient] = []
    stats = {"sent": 0, "failed": 0}
    browser = target.get("clients") == "browser"
    try:
        if target["kind"] == "janus":
            session = janus_server.JanusSession(http, target["http_url"])
            await session.create()
            tasks.append(asyncio.ensure_future(session.run_events()))
            for n in names:
                clients.append(load_clients.JanusClient(people[n], scenario, address, cert,
                                                        session, target["room"], browser))
        elif target["kind"] == "relay":
            for n in names:
                clients.append(load_clients.RelayClient(people[n], scenario, address, cert,
                                                        http, target["http_url"]))
        else:
            for n in names:
                clients.append(load_clients.OursClient(people[n], scenario, address, cert,
                                                       target["ws_url"], target["api_key"],
                                                       target["api_secret"], browser))
        # its network namespace (the harness checks where its clients really run)
        conn.send(("ready", os.getpid(), os.stat("/proc/self/ns/net").st_ino))
        while True:
            cmd, arg = await commands.get()
            if cmd == "join":
                ids = await asyncio.gather(*(c.join() for c in clients))
                layers: dict[str, media.Media] = {}  # each layer read and packetized once

                def layer_media(name: str) -> media.Media:
                    if name not in layers:
                        layers[name] = media.load(name)
                    return layers[name]

                for c in clients:
                    if c.p.publishes:
                        simulcast = ([layer_media(n) for n in media.LAYERS]  # lowest first
                                     if c.simulcast else None)
                        talk = ((scenario.index(c.p), scenario.students,
                                 target["lesson_start"]) if browser else None)
                        tasks.append(asyncio.ensure_future(
                            _pace(c, layer_media(c.p.video or "180p"), stats,
                                  target.get("stamps", True), simulcast, talk)))
                conn.send(("joined", {c.p.name: i for c, i in zip(clients, ids)}))
            elif cmd == "subscribe":
                await asyncio.gather(*(c.subscribe(arg) for c in clients
                                       if scenario.expected_streams(c.p)))
                conn.send(("subscribed", None))
            elif cmd == "snap":
                conn.send(("snap",
                           {c.p.name: c.counter.snapshot() for c in clients},
                           {c.p.name: c.counter.take_latencies() for c in clients},
                           {c.p.name: (c.counter.first_ns - c.subscribe_started_ns) / 1e6
                            for c in clients if c.counter.first_ns and c.subscribe_started_ns},
                           {**stats, "feedback": _feedback_sent(clients)}))
            elif cmd == "stop":
                break
    finally:
        loop.remove_reader(conn.fileno())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if session is not None:
            await session.destroy()
        await http.close()
    try:
        conn.send(("bye", None))
    except OSError:
        pass
