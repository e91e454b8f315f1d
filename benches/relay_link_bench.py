"""What the inter-node link costs per relayed packet (issue #23, docs/cluster.md): QUIC
datagrams through aioquic, against plain UDP datagrams with the same framing, on loopback
in one process (both ends' CPU counted).

    .venv/bin/python -m benches.relay_link_bench [--rate 4000] [--seconds 5]

A relay link carries each track once per edge: a lecture's instructor camera (three
simulcast layers, ~300 packets/s at the top one) and a few microphones are ~500
packets/s per edge, 4000 packets/s is a large cluster's node pair. Reported: packets
sent and received, loss, one-way latency p50/p99 (the same clock at both ends) and CPU
µs per packet (sender and receiver together).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from benches.quic_link.adapter import Link, dial, listen, make_certificate
from benches.quic_link.wire import datagram, parse_datagram

PAYLOAD = 1100
_STAMP = struct.Struct(">d")


def rtp(seq: int) -> bytes:
    """An RTP-looking packet whose payload starts with the send time."""
    header = bytes([0x80, 96]) + struct.pack(">HII", seq & 0xFFFF, seq * 3000, 0x1234)
    return header + _STAMP.pack(time.perf_counter()) + os.urandom(PAYLOAD - 8)


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []

    def __call__(self, data: bytes) -> None:
        _, packet = parse_datagram(data)
        self.count += 1
        self.latencies.append(time.perf_counter() - _STAMP.unpack_from(packet, 12)[0])


async def paced(send: Callable[[bytes], None], rate: int, seconds: float,
                flush: Callable[[], None] = lambda: None) -> int:
    """Send ``rate`` packets/s for ``seconds`` in 5 ms bursts; how many were sent."""
    sent, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            send(datagram(7, rtp(sent)))
            sent += 1
        flush()
        await asyncio.sleep(0.005)
    return sent


async def run_quic(rate: int, seconds: float) -> dict[str, Any]:
    cert, key = make_certificate("node-a")
    receiver = Receiver()
    port = _free_udp_port()

    def accepted(link: Link) -> None:
        link.on_datagram = lambda _link, data: receiver(data)

    server = await listen("127.0.0.1", port, cert, key, accepted)
    try:
        async with dial("127.0.0.1", port, "node-a", cert) as link:
            return await _measure(lambda: paced(
                lambda d: link.send_datagram(d, flush=False), rate, seconds, link.transmit),
                receiver)
    finally:
        server.close()


async def run_udp(rate: int, seconds: float) -> dict[str, Any]:
    receiver = Receiver()
    loop = asyncio.get_running_loop()

    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            receiver(data)

    rx, _ = await loop.create_datagram_endpoint(Rx, local_addr=("127.0.0.1", 0))
    port = rx.get_extra_info("sockname")[1]
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                remote_addr=("127.0.0.1", port))
    try:
        return await _measure(lambda: paced(tx.sendto, rate, seconds), receiver)
    finally:
        tx.close()
        rx.close()


async def _measure(send: Callable[[], Awaitable[int]], receiver: Receiver) -> dict[str, Any]:
    cpu0 = time.process_time()
    sent = await send()
    await asyncio.sleep(0.2)  # the last packets in flight (loopback: well under 1 ms)
    cpu = time.process_time() - cpu0
    lat = sorted(receiver.latencies) or [0.0]
    return {"sent": sent, "received": receiver.count,
            "loss_pct": round(100.0 * (sent - receiver.count) / max(1, sent), 3),
            "latency_p50_ms": round(statistics.median(lat) * 1000, 3),
            "latency_p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 3),
            "cpu_us_per_packet": round(cpu * 1e6 / max(1, sent), 1)}


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=4000, help="packets per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results = {}
    for name, run in (("quic", run_quic), ("udp", run_udp)):
        results[name] = uvloop.run(run(args.rate, args.seconds))
    print(f"relay link, {args.rate} packets/s of {PAYLOAD + 20} bytes for {args.seconds:g} s "
          "(one process: both ends)")
    print("| | QUIC datagrams (aioquic) | plain UDP |")
    print("|---|---:|---:|")
    for key in ("sent", "received", "loss_pct", "latency_p50_ms", "latency_p99_ms",
                "cpu_us_per_packet"):
        print(f"| {key} | {results['quic'][key]} | {results['udp'][key]} |")


if __name__ == "__main__":
    main()
