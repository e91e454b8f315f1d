"""Recorder cost: CPU per recorded track-second, and what that leaves room for.

    python -m benches.recorder_bench [--seconds 30] [--json out.json]

Feeds pre-encoded media (benches/media.py: VP8 720p and 180p, Opus) as RTP packets through
the whole recording pipeline of one track: reorder buffer, depacketizer, WebM muxer
(PyAV), chunks, and the dual writer to two real local folders (fdatasync per chunk), as
fast as it goes. The CPU of the process (all threads: the sinks write in worker threads)
divided by the media seconds recorded is the cost of recording one such track for one
second. No network: the forwarding that hands the packets over is the SFU's, measured by
benches.compare.

From those figures, the recorded tracks one core carries, and the recorded lecture rooms
(instructor 720p + microphone, ``--subscribers`` students) a 2-core node carries with
their forwarding, at 80 % load: derived, not measured together; the forwarding cost is our
CPU µs per forwarded packet at lecture 1 x 20 from benches.compare (``--forward-us``)
times the packets such a room forwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benches import media
from benches.measure import heading, machine_info
from recorder.dual import DualWriter
from recorder.sinks import LocalSink, Sink
from recorder.track_recorder import TrackRecorder

VIDEO_TS = 90000 // media.FPS


def _rtp(seq: int, ts: int, payload: bytes, marker: bool, pt: int) -> bytes:
    return bytes([0x80, (0x80 if marker else 0) | pt]) + (seq & 0xFFFF).to_bytes(2, "big") \
        + (ts & 0xFFFFFFFF).to_bytes(4, "big") + (0x1234).to_bytes(4, "big") + payload


def packets(kind: str, layer: str, seconds: float) -> list[bytes]:
    m = media.load(layer)
    out: list[bytes] = []
    seq = ts = 0
    if kind == "video":
        for i in range(round(seconds * media.FPS)):
            payloads = m.video[i % len(m.video)]
            for j, p in enumerate(payloads):
                out.append(_rtp(seq, ts, p, j == len(payloads) - 1, 96))
                seq += 1
            ts += VIDEO_TS
    else:
        for i in range(round(seconds * media.AUDIO_RATE / media.AUDIO_FRAME)):
            out.append(_rtp(seq, ts, m.audio[i % len(m.audio)], False, 111))
            seq += 1
            ts += media.AUDIO_FRAME
    return out


async def record(kind: str, layer: str, seconds: float, folder: Path) -> dict[str, Any]:
    pkts = packets(kind, layer, seconds)
    alarms: list[str] = []
    sinks: list[Sink] = [LocalSink("a", folder / "a"), LocalSink("b", folder / "b")]
    media_ms = [0.0]  # chunks close on the media clock: as many chunks as in a real lesson
    writer = DualWriter(sinks, on_alarm=lambda s, e: alarms.append(e),
                        on_recovered=lambda s: None, clock=lambda: media_ms[0])
    writer.start()
    out = writer.output(f"{kind}-{layer}.webm")
    rec = TrackRecorder(kind=kind, codec="VP8" if kind == "video" else "opus",
                        sink=out.write)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    per_media_second = len(pkts) / seconds
    for i, p in enumerate(pkts):
        now = media_ms[0] = i / per_media_second * 1000.0
        rec.on_rtp(p, now)
        if i % 16 == 0:
            writer.tick(now)
            await asyncio.sleep(0)  # the sink workers run
    rec.close()
    complete = await writer.close(60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "track": f"{kind} {layer}" if kind == "video" else "audio opus",
        "mediaSeconds": seconds, "packets": len(pkts), "bytes": out.size,
        "written": rec.packets_written, "complete": all(complete.values()),
        "alarms": alarms, "cpuS": round(cpu, 3), "wallS": round(wall, 3),
        "cpuUsPerTrackSecond": round(cpu / seconds * 1e6, 1),
        "cpuUsPerPacket": round(cpu / len(pkts) * 1e6, 2),
        "tracksPerCore": int(seconds / cpu) if cpu else None,
    }


def rooms_estimate(results: list[dict[str, Any]], forward_us: float, subscribers: int
                   ) -> dict[str, Any]:
    """Recorded lecture rooms (720p + microphone to ``subscribers``) on 2 cores kept at
    80 %: the recording cost measured here, the forwarding cost from our CPU µs per
    forwarded packet (benches.compare) times the packets the room forwards."""
    by = {r["track"]: r for r in results}
    video, audio = by["video 720p"], by["audio opus"]
    record_us = video["cpuUsPerTrackSecond"] + audio["cpuUsPerTrackSecond"]
    pps = (video["packets"] + audio["packets"]) / video["mediaSeconds"] * subscribers
    forward_cpu_us = forward_us * pps
    return {"recordUsPerRoomSecond": round(record_us), "forwardedPps": round(pps),
            "forwardUsPerRoomSecond": round(forward_cpu_us),
            "rooms": int(2 * 0.8 * 1e6 / (record_us + forward_cpu_us)),
            "roomsRecordingOnly": int(2 * 0.8 * 1e6 / record_us)}


async def run(seconds: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as tmp:
        results = []
        for i, (kind, layer) in enumerate((("video", "720p"), ("video", "180p"),
                                           ("audio", "180p"))):
            results.append(await record(kind, layer, seconds, Path(tmp) / str(i)))
        return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.recorder_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="media seconds per track")
    ap.add_argument("--forward-us", type=float, default=15.0,
                    help="our CPU µs per forwarded packet at lecture 1 x 20 "
                    "(benches/README.md)")
    ap.add_argument("--subscribers", type=int, default=20,
                    help="students per lecture room (each gets video and audio)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    results = asyncio.run(run(args.seconds))
    estimate = rooms_estimate(results, args.forward_us, args.subscribers)
    m = machine_info()
    print(heading("Recorder cost", m) + "\n")
    print("| track | media s | packets | MB | CPU s | CPU µs / track-second | "
          "CPU µs / packet | tracks per core | both copies complete |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['track']} | {r['mediaSeconds']:g} | {r['packets']} | "
              f"{r['bytes'] / 1e6:.2f} | {r['cpuS']} | {r['cpuUsPerTrackSecond']} | "
              f"{r['cpuUsPerPacket']} | {r['tracksPerCore']} | {r['complete']} |")
    print(f"\nA recorded lecture room (720p + microphone) costs {estimate['recordUsPerRoomSecond']}"
          f" µs of CPU per second to record and ~{estimate['forwardUsPerRoomSecond']} µs to "
          f"forward to {args.subscribers} ({args.forward_us:g} µs x "
          f"{estimate['forwardedPps']} packets/s): "
          f"a 2-core node at 80 % carries ~{estimate['rooms']} such rooms recorded and "
          f"forwarded (~{estimate['roomsRecordingOnly']} if it only recorded).")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": m, "tracks": results, "estimate": estimate}, fh, indent=2)
    ok = all(r["complete"] and not r["alarms"] and r["written"] == r["packets"]
             for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
