"""Soak and churn: participants joining, publishing, leaving, losing their signalling and
resuming, and muting, for minutes, against one server process; the server's resources are
sampled all along and compared before and after.

    .venv/bin/python -m benches.soak                          # 100 participants, 10 min
    .venv/bin/python -m benches.soak --participants 20 --seconds 60 --json out.json

What is sampled (every ``--sample-s``): the server's RSS (/proc), open file descriptors and
sockets among them (/proc/<pid>/fd), and from /metrics its participants, asyncio tasks,
media-port routes and registered transports, ICE-TCP connections and rooms. The verdict:
after everyone left, descriptors, sockets, tasks, routes, transports and rooms are back
where they were before the first join; RSS at the end against RSS after the warm-up (two
minutes, or a quarter of a shorter run: the allocator's arenas and the caches fill first).
``tests/test_soak_smoke.py`` runs a short version in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field

from benches.rawclient import RawClient, RawClientError
from benches.server_process import ServerProcess, start_server, stop_server


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    sockets: int
    participants: float
    tasks: float
    routes: float
    transports: float
    tcp: float
    rooms: float
    #: what the descriptors that are not sockets point at (files, pipes, eventfds)
    files: list[str] = field(default_factory=list)


@dataclass
class Report:
    participants: int
    seconds: float
    actions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    baseline: Sample | None = None
    warm: Sample | None = None
    end: Sample | None = None

    def leaks(self) -> dict[str, tuple[float, float]]:
        """What did not come back to the baseline after everyone left: {name: (before,
        after)}."""
        assert self.baseline is not None and self.end is not None
        out = {}
        for name in ("fds", "sockets", "tasks", "routes", "transports", "tcp", "rooms",
                     "participants"):
            before, after = getattr(self.baseline, name), getattr(self.end, name)
            if after > before:
                out[name] = (before, after)
        return out

    @property
    def rss_growth(self) -> float:
        """RSS at the end over RSS after the warm-up, minus one."""
        assert self.warm is not None and self.end is not None
        return self.end.rss_mb / self.warm.rss_mb - 1.0


def _metrics(server: ServerProcess) -> dict[str, float]:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(sfu_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def sample(server: ServerProcess, t0: float) -> Sample:
    pid = server.proc.pid
    with open(f"/proc/{pid}/status") as f:
        rss_kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]
    fds = sockets = 0
    files = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            files.append(re.sub(r"\[\d+\]$", "", target))
    m = _metrics(server)
    return Sample(round(time.monotonic() - t0, 1), round(rss_kb / 1024, 1), fds, sockets,
                  m.get("sfu_participants", 0), m.get("sfu_asyncio_tasks", 0),
                  m.get("sfu_media_port_routes", 0), m.get("sfu_media_port_transports", 0),
                  m.get("sfu_ice_tcp_connections", 0), m.get("sfu_rooms", 0), sorted(files))


class Churner:
    """One participant slot: joins, publishes (audio, and video for some), then acts at
    random until the deadline: leave and rejoin, lose its signalling and resume, mute and
    unmute, or just stay."""

    def __init__(self, server: ServerProcess, room: str, name: str, video: bool,
                 rng: random.Random, report: Report) -> None:
        self.server, self.room, self.name, self.video = server, room, name, video
        self.rng, self.report = rng, report
        self.client: RawClient | None = None
        self.tracks: dict[str, str] = {}
        self.generation = 0

    def count(self, action: str) -> None:
        self.report.actions[action] = self.report.actions.get(action, 0) + 1

    async def join(self) -> None:
        self.generation += 1
        c = RawClient(self.server.ws_url,
                      self.server.mint_token(self.room, f"{self.name}-{self.generation}"))
        self.client = c
        await c.connect()
        self.tracks = await c.publish(audio=True, video=self.video)
        self.count("join")

    async def run(self, deadline: float) -> None:
        try:
            await self.join()
            while time.monotonic() < deadline:
                await asyncio.sleep(self.rng.uniform(1.0, 4.0))
                if time.monotonic() >= deadline:
                    break
                await self.act()
        except (RawClientError, TimeoutError, ConnectionError, AssertionError) as exc:
            self.report.errors.append(f"{self.name}: {exc!r}")
        finally:
            if self.client is not None:
                await self.client.close()
                self.client = None

    async def act(self) -> None:
        c = self.client
        assert c is not None
        roll = self.rng.random()
        if roll < 0.25:  # leave and come back as a new participant
            await c.close()
            self.client = None
            self.count("leave")
            await self.join()
        elif roll < 0.45:  # the signalling socket dies; resume on a new one
            c.drop_signalling()
            await asyncio.sleep(self.rng.uniform(0.1, 0.8))
            await c.resume()
            self.count("resume")
        elif roll < 0.75 and self.tracks:  # mute, then unmute, one of its tracks
            track = self.rng.choice(list(self.tracks.values()))
            await c.send({"type": "mute", "trackId": track, "muted": True})
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            await c.send({"type": "mute", "trackId": track, "muted": False})
            self.count("mute")
        else:
            self.count("stay")


async def pump(churners: list[Churner], stop: asyncio.Event) -> None:
    """Every publishing client sends audio and video at a low rate (packets keep every
    track alive and exercise forwarding during the churn)."""
    payload = bytes(160)
    while not stop.is_set():
        for ch in churners:
            c = ch.client
            if c is None or c.publisher is None:
                continue
            try:
                c.send_packet(c.build_packet("audio", payload))
                if ch.video:
                    c.send_packet(c.build_packet("video", payload * 4, marker=True))
            except (AttributeError, AssertionError, OSError):
                pass
        await asyncio.sleep(0.05)


async def settle(server: ServerProcess, t0: float, rooms: float, timeout_s: float = 30
                 ) -> None:
    """Until no participant, route, transport or extra room is left (closing transports
    and grace windows take a moment), then one more second for closing tasks."""
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        s = sample(server, t0)
        if s.participants == 0 and s.routes == 0 and s.transports == 0 and s.rooms <= rooms:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)


async def soak(participants: int, seconds: float, sample_s: float, room_size: int,
               seed: int = 7, window_s: float = 20.0) -> Report:
    """``window_s``: the server's reconnection window (its default, 20 s)."""
    report = Report(participants, seconds)
    server = start_server({"SFU_ROOMS_RECONNECT_WINDOW_S": f"{window_s:g}"})
    rng = random.Random(seed)
    stop = asyncio.Event()
    try:
        t0 = time.monotonic()
        # participants come and go first: what the server opens once and keeps (the event
        # log's file, the database) is in the baseline, not counted as a leak
        # (two, with packets flowing: the forwarding path's lazily made io_uring too)
        primers = [Churner(server, "soak-primer", f"primer{i}", True, random.Random(i),
                           Report(2, 0)) for i in range(2)]
        primer_stop = asyncio.Event()
        primer_pump = asyncio.ensure_future(pump(primers, primer_stop))
        await asyncio.gather(*(p.run(time.monotonic() + 3) for p in primers))
        primer_stop.set()
        await primer_pump
        await settle(server, t0, rooms=0)
        report.baseline = sample(server, t0)
        churners = [Churner(server, f"soak-{i // room_size}", f"p{i}", i % room_size == 0,
                            random.Random(rng.random()), report)
                    for i in range(participants)]
        deadline = time.monotonic() + seconds
        pumper = asyncio.ensure_future(pump(churners, stop))
        runs = []
        for ch in churners:  # joins spread over the first few seconds
            runs.append(asyncio.ensure_future(ch.run(deadline)))
            await asyncio.sleep(min(0.05, seconds / participants / 10))

        async def sampler() -> None:
            warm_at = time.monotonic() + min(120.0, seconds / 4)
            while not stop.is_set():
                s = sample(server, t0)
                report.samples.append(s)
                if report.warm is None and time.monotonic() >= warm_at:
                    report.warm = s
                try:
                    await asyncio.wait_for(stop.wait(), sample_s)
                except TimeoutError:
                    pass

        sampling = asyncio.ensure_future(sampler())
        await asyncio.gather(*runs)
        stop.set()
        await pumper
        await sampling
        # everyone left: wait for the server to settle (closed transports, grace windows)
        await settle(server, t0, rooms=report.baseline.rooms)
        report.end = sample(server, t0)
        if report.warm is None:
            report.warm = report.samples[-1] if report.samples else report.end
    finally:
        stop.set()
        stop_server(server)
    return report


def render(r: Report) -> str:
    assert r.baseline and r.warm and r.end
    peak = max(r.samples, key=lambda s: s.participants) if r.samples else r.end
    rows = [("before the first join", r.baseline), ("after the warm-up", r.warm),
            ("most participants", peak), ("after everyone left", r.end)]
    out = [f"soak: {r.participants} participants, {r.seconds:.0f} s; actions "
           + ", ".join(f"{k} {v}" for k, v in sorted(r.actions.items())), "",
           "| | RSS MB | fds | sockets | participants | tasks | routes | transports | rooms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in rows:
        out.append(f"| {label} | {s.rss_mb} | {s.fds} | {s.sockets} | {s.participants:g} | "
                   f"{s.tasks:g} | {s.routes:g} | {s.transports:g} | {s.rooms:g} |")
    out.append("")
    out.append(f"RSS growth warm-up -> end: {100 * r.rss_growth:+.1f} %; leaks: "
               f"{r.leaks() or 'none'}; client errors: {len(r.errors)}")
    new_files = sorted((Counter(r.end.files) - Counter(r.baseline.files)).elements())
    if new_files:
        out.append("descriptors opened since the start and still open: " + ", ".join(new_files))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--window-s", type=float, default=20.0, help="the server's "
                        "reconnection window (default: its own default, 20 s)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.participants, args.seconds, args.sample_s, args.room_size,
                              window_s=args.window_s))
    print(render(report))
    for err in report.errors[:20]:
        print("client error:", err)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(report), f, indent=1)
    ok = not report.leaks() and report.rss_growth <= 0.05
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
