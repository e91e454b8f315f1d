"""Edge relays: what the edges save the origin, and what a hop costs (issue #23,
docs/cluster.md "Edge relays").

    python -m benches.edge_bench                           # 1 × 50, 20 s windows
    python -m benches.edge_bench --students 20 --seconds 10 --json out.json

The same lecture twice, with real server processes and a real ``nats-server -js``: one
instructor publishing audio (50 packets/s) and video (100 packets/s, 1,000 bytes), and
``--students`` raw clients (benches/rawclient.py) receiving both:

- **direct**: every student on the origin;
- **edges**: the students split over two edge nodes (``cluster.relays``), each in a region
  of its own, so the origin sends each track once to each edge.

Measured over the window, after every student receives and ``--warmup``: each server's CPU
(% of one core, from /proc), the packets the origin forwards per second, and the latency from
the instructor's send to a student's receive (sampled packets, whose payload ends with the
send time: benches.measure.StreamCounter), p50 and p99. The hop's added latency is the edge
run's figure minus the direct one. The clients run in this process, on the same cores:
their CPU is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benches.measure import (
    STAMP,
    StreamCounter,
    heading,
    hook_transport,
    machine_info,
    percentile,
    proc_cpu_s,
)
from benches.nats_process import NatsServer
from benches.rawclient import RawClient
from benches.server_process import ServerProcess, start_server, stop_server
from signalling import tokens

VIDEO_BYTES = 1000
AUDIO_BYTES = 80


def node(nats: NatsServer, node_id: str, region: str, students: int, relays: bool = False
         ) -> ServerProcess:
    return start_server({
        "SFU_CLUSTER_NATS_URL": nats.url, "SFU_CLUSTER_NODE_ID": node_id,
        "SFU_CLUSTER_REGION": region, "SFU_CLUSTER_TTL_S": "5",
        "SFU_CLUSTER_RELAYS": "1" if relays else "0",
        "SFU_ROOMS_MAX_PARTICIPANTS": str(students + 10)})


def http(server: ServerProcess, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        server.base_url + path, data=json.dumps(body).encode() if body is not None else None,
        headers={**server.auth_header, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def metrics(server: ServerProcess) -> dict[str, float]:
    """Unlabelled sums of the server's counters (by name)."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as res:
        out: dict[str, float] = {}
        for line in res.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                key = name.split("{", 1)[0]
                out[key] = out.get(key, 0.0) + float(value)
        return out


async def until_nodes(servers: list[ServerProcess], want: int) -> None:
    deadline = time.monotonic() + 30
    for server in servers:
        while True:
            try:  # (503 until the node is connected to NATS)
                if len(http(server, "/api/cluster/nodes")["nodes"]) >= want:
                    break
            except urllib.error.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the nodes did not see each other")
            await asyncio.sleep(0.2)


class Instructor:
    """Publishes audio and video whose payloads end with their send time."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        step = 0
        while True:
            kinds = ("audio", "video") if step % 2 else ("video",)
            for kind in kinds:
                size = AUDIO_BYTES if kind == "audio" else VIDEO_BYTES
                payload = os.urandom(size - 8) + STAMP.pack(time.monotonic_ns())
                if self.client.send_packet(self.client.build_packet(
                        kind, payload, marker=kind == "video" and step % 3 == 0)):
                    self.sent += 1
            step += 1
            await asyncio.sleep(0.01)  # video 100/s, audio 50/s

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def run(mode: str, students: int, seconds: float, warmup: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        nats = NatsServer(Path(tmp) / "js")
        await nats.start()
        servers: dict[str, ServerProcess] = {}
        clients: list[RawClient] = []
        instructor: Instructor | None = None
        try:
            servers["origin"] = node(nats, "origin", "a", students)
            if mode == "edges":
                for i in (1, 2):
                    servers[f"edge{i}"] = node(nats, f"edge{i}", f"r{i}", students, True)
            await until_nodes(list(servers.values()), len(servers))
            origin = servers["origin"]
            room = f"bench-{secrets.token_hex(3)}"
            http(origin, "/api/rooms", {"name": room, "region": "a",
                                        "maxParticipants": students + 10})
            teacher = RawClient(origin.ws_url, origin.mint_token(room, "teacher",
                                                                 role="instructor"))
            clients.append(teacher)
            await teacher.connect()
            published = set((await teacher.publish()).values())
            instructor = Instructor(teacher)
            instructor.start()
            counters: list[StreamCounter] = []
            for i in range(students):
                counter = StreamCounter(sample_every=8)
                counters.append(counter)
                where, region = origin, "a"
                if mode == "edges":
                    where, region = servers[f"edge{1 + i % 2}"], f"r{1 + i % 2}"
                token = tokens.mint(where.api_key, where.api_secret, room=room,
                                    identity=f"student{i}", region=region)
                clients.append(RawClient(
                    where.ws_url, token, on_packet=counter.on_plain,
                    on_sub_transport=lambda t, c=counter: hook_transport(t, c)))
            # with edges, one more student on the origin, in the same window: the
            # latency through an edge against the latency without one
            probe = StreamCounter(sample_every=4)
            if mode == "edges":
                clients.append(RawClient(
                    origin.ws_url, origin.mint_token(room, "probe"), on_packet=probe.on_plain,
                    on_sub_transport=lambda t: hook_transport(t, probe)))
            for batch in range(0, len(clients) - 1, 10):
                await asyncio.gather(*(c.connect() for c in clients[1 + batch:11 + batch]))
            await asyncio.gather(*(c.wait_subscribed(30) for c in clients[1:]))
            deadline = time.monotonic() + 30
            while not all(len(c.streams) >= len(published) for c in counters):
                if time.monotonic() > deadline:
                    raise RuntimeError("not every student receives the instructor")
                await asyncio.sleep(0.2)
            await asyncio.sleep(warmup)
            # the window
            for c in (*counters, probe):
                c.take_latencies()
            before = {name: proc_cpu_s(s.proc.pid) for name, s in servers.items()}
            out_before = metrics(origin).get("sfu_rtp_packets_out_total", 0.0)
            relay_before = metrics(origin).get("sfu_relay_packets_sent_total", 0.0)
            me_before, sent_before = proc_cpu_s(), instructor.sent
            received_before = sum(sum(s[0] for s in c.streams.values()) for c in counters)
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - t0
            cpu = {name: 100 * (proc_cpu_s(s.proc.pid) - before[name]) / elapsed
                   for name, s in servers.items()}
            at_origin = metrics(origin)
            lat = [x / 1000 for c in counters for x in c.take_latencies()]
            direct = [x / 1000 for x in probe.take_latencies()]
            received = sum(sum(s[0] for s in c.streams.values()) for c in counters)
            return {
                "mode": mode, "students": students, "window_s": round(elapsed, 1),
                "cpu_pct": {k: round(v, 1) for k, v in cpu.items()},
                "harness_cpu_pct": round(100 * (proc_cpu_s() - me_before) / elapsed, 1),
                "published_pps": round((instructor.sent - sent_before) / elapsed),
                "origin_forwarded_pps": round((at_origin.get("sfu_rtp_packets_out_total", 0)
                                               - out_before) / elapsed),
                "origin_to_edges_pps": round((at_origin.get("sfu_relay_packets_sent_total", 0)
                                              - relay_before) / elapsed),
                "students_received_pps": round((received - received_before) / elapsed),
                "latency_p50_ms": round(percentile(lat, 50) or 0, 2),
                "latency_p99_ms": round(percentile(lat, 99) or 0, 2),
                "latency_samples": len(lat),
                "on_origin_latency_p50_ms": round(percentile(direct, 50) or 0, 2),
                "on_origin_latency_p99_ms": round(percentile(direct, 99) or 0, 2),
            }
        finally:
            if instructor is not None:
                await instructor.stop()
            for c in clients:
                try:
                    await asyncio.wait_for(c.close(), 5)
                except (TimeoutError, ConnectionError, RuntimeError):
                    pass
            for s in servers.values():
                stop_server(s)
            nats.stop()


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| run | origin CPU % | edges' CPU % | origin forwards pkt/s | of which to "
            "edges | students receive pkt/s | latency p50 / p99 ms | harness CPU % |",
            "|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        edges = [v for k, v in r["cpu_pct"].items() if k.startswith("edge")]
        rows.append(
            f"| {r['mode']} 1 × {r['students']} | {r['cpu_pct']['origin']} | "
            f"{' + '.join(str(e) for e in edges) or '–'} | {r['origin_forwarded_pps']} | "
            f"{r['origin_to_edges_pps'] or '–'} | {r['students_received_pps']} | "
            f"{r['latency_p50_ms']} / {r['latency_p99_ms']} | {r['harness_cpu_pct']} |")
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> int:
    m = machine_info()
    print(heading("edge relays: origin CPU with and without edges", m))
    results = []
    for mode in ("direct", "edges"):
        result = await run(mode, args.students, args.seconds, args.warmup)
        print(json.dumps(result))
        results.append(result)
    print(table(results))
    direct, edges = results
    print(f"origin CPU with the students on two edges: {edges['cpu_pct']['origin']} % of a "
          f"core against {direct['cpu_pct']['origin']} % with them all on it")
    print(f"latency through an edge p50 / p99 {edges['latency_p50_ms']} / "
          f"{edges['latency_p99_ms']} ms, on the origin in the same window "
          f"{edges['on_origin_latency_p50_ms']} / {edges['on_origin_latency_p99_ms']} ms: the "
          f"hop adds {edges['latency_p50_ms'] - edges['on_origin_latency_p50_ms']:+.2f} / "
          f"{edges['latency_p99_ms'] - edges['on_origin_latency_p99_ms']:+.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": m, "results": results}, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--json", default="")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
