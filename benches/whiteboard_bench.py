"""Whiteboard fan-out: one writer, N readers on one board, updates at a steady rate.

    python -m benches.whiteboard_bench                      # 1 writer -> 50 readers, 20/s, 20 s
    python -m benches.whiteboard_bench --readers 5 --seconds 2   # tiny (the smoke test)

Starts the server (``serve --dev`` on loopback), opens the room's board on
``/ws/whiteboard`` for every reader and the writer (each syncs as a Yjs client does), then
the writer draws one pen stroke per update (a Y.Map appended to ``items``: ~60–80 bytes on
the wire) at the given rate. The server relays each update to every reader in order, so the
k-th update frame a reader gets is the writer's k-th update: its latency is the receive
time minus the send time (same host clock), with no decoding at the readers. Reports p50,
p99 and max over every reader and update, updates lost (should be none), the server's CPU
per relayed update frame, and the writer's send rate actually achieved. ``--json`` writes
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from pycrdt import Array, Doc, Map

from benches.measure import heading, machine_info, proc_cpu_s
from benches.server_process import start_server, stop_server
from whiteboard import protocol


async def _open(http: aiohttp.ClientSession, base: str, token: str
                ) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(base.replace("http", "ws", 1)
                               + f"/ws/whiteboard?token={quote(token)}", max_msg_size=0)
    hello = protocol.parse(await ws.receive_bytes(timeout=10))
    empty: Doc[Any] = Doc()
    await ws.send_bytes(protocol.sync_message(protocol.STEP2, empty.get_update(hello.payload)))
    return ws


async def _read(ws: aiohttp.ClientWebSocketResponse, arrivals: list[float], n: int) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:2] == b"\x00\x02":
            arrivals.append(time.perf_counter())
            if len(arrivals) >= n:
                return


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def run(readers: int, rate: float, seconds: float) -> dict[str, Any]:
    server = start_server()
    try:
        room = f"wb-bench-{int(time.time())}"
        n = int(rate * seconds)
        async with aiohttp.ClientSession() as http:
            socks = [await _open(http, server.base_url,
                                 server.mint_token(room, f"reader{i}", role="observer"))
                     for i in range(readers)]
            writer = await _open(http, server.base_url, server.mint_token(
                room, "writer", role="instructor"))
            arrivals: list[list[float]] = [[] for _ in socks]
            tasks = [asyncio.ensure_future(_read(ws, a, n)) for ws, a in zip(socks, arrivals,
                                                                               strict=True)]
            doc: Doc[Any] = Doc()
            items = doc.get("items", type=Array)
            sent: list[float] = []
            cpu0 = proc_cpu_s(server.proc.pid)
            start = time.perf_counter()
            for k in range(n):
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                before = doc.get_state()
                items.append(Map({"kind": "pen", "points": [k % 640, k % 360, 3, 4, 5, 6]}))
                frame = protocol.sync_message(protocol.UPDATE, doc.get_update(before))
                sent.append(time.perf_counter())
                await writer.send_bytes(frame)
            elapsed = time.perf_counter() - start
            done, pending = await asyncio.wait(tasks, timeout=10)
            cpu = proc_cpu_s(server.proc.pid) - cpu0
            for t in pending:
                t.cancel()
            for ws in [*socks, writer]:
                await ws.close()
        lat = [(a[k] - sent[k]) * 1000 for a in arrivals for k in range(min(len(a), n))]
        received = sum(len(a) for a in arrivals)
        return {
            "readers": readers, "rate_per_s": rate, "seconds": seconds, "updates": n,
            "sent_rate_per_s": round(n / elapsed, 1),
            "latency_p50_ms": round(_pct(lat, 0.50), 2),
            "latency_p99_ms": round(_pct(lat, 0.99), 2),
            "latency_max_ms": round(max(lat), 2) if lat else None,
            "lost": n * readers - received,
            "server_cpu_s": round(cpu, 3),
            # /proc counts CPU in 10 ms ticks: below a few ticks the figure is noise, so a
            # short run reports none rather than a made-up 0 or a jumpy tick multiple
            "server_us_per_relayed_frame": (round(cpu / received * 1e6, 1)
                                            if cpu >= MIN_CPU_S and received else None),
        }
    finally:
        stop_server(server)


def _cpu_cell(f: dict[str, Any]) -> str:
    us = f["server_us_per_relayed_frame"]
    return f"{us}" if us is not None else f"n/a (server CPU {f['server_cpu_s']} s < {MIN_CPU_S} s)"


MIN_CPU_S = 0.05  # five /proc ticks: the least server CPU a per-frame figure is taken from


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.whiteboard_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0, help="updates per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    figures = asyncio.run(run(args.readers, args.rate, args.seconds))
    m = machine_info()
    print(heading("Whiteboard fan-out", m) + "\n")
    print("| readers | updates/s (sent) | p50 ms | p99 ms | max ms | lost | server µs / "
          "relayed frame |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    f = figures
    print(f"| {f['readers']} | {f['rate_per_s']:g} ({f['sent_rate_per_s']}) | "
          f"{f['latency_p50_ms']} | {f['latency_p99_ms']} | {f['latency_max_ms']} | "
          f"{f['lost']} | {_cpu_cell(f)} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": m, "figures": figures}, fh, indent=2)
    return 0 if figures["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
