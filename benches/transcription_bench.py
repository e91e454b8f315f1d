"""How many transcribed rooms a node holds: the real-time factor and the caption lag.

    python -m benches.transcription_bench                   # 1, 2, 4, 6, 8, 10 streams
    python -m benches.transcription_bench --counts 1,4 --seconds 20 --workers 2

Each stream is one room's instructor (the ``instructor`` policy): a lesson-like microphone
(espeak-ng sentences with pauses, as Opus packets a browser would send) fed in real time to
the server's own worker pool (:mod:`transcription.pool`, the same processes the server
runs). For each count of concurrent streams: the engine's real-time factor (CPU seconds
per second of audio), the CPU of the workers, and the **caption lag**: from the moment the
last audio of an utterance was handed to the pool to its final text coming back (what a
page waits for after the speaker stops), p50 / p95 / max. A count passes while the p95 lag
stays under ``--max-lag-s`` and no audio was dropped for a lagging worker; the figure is
the largest count that passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benches import speech
from benches.measure import git_state, heading, machine_info, percentile, proc_cpu_s
from transcription.engines import EngineConfig
from transcription.pool import TranscriptionPool

LESSON = ["Good morning everyone, please sit down.", "We will have a short test on Friday.",
          "The water cycle has three parts.", "Water goes up into the sky as vapour.",
          "Then it comes down again as rain.", "Please write the answer in your notebook.",
          "Who can tell me what the story is about?"]
PAUSE_S = 1.5


def lesson_packets(folder: Path) -> tuple[list[tuple[int, bytes]], float]:
    """The lesson's sentences with pauses, as (timestamp, payload) at 20 ms; its seconds."""
    parts = []
    rate = 0
    for i, text in enumerate(LESSON):
        samples, rate = speech.read_wav(speech.say(text, folder / f"l{i}.wav"))
        parts += [samples, np.zeros(int(PAUSE_S * rate), dtype=np.int16)]
    audio = np.concatenate(parts)
    packets = [(ts & 0xFFFFFFFF, p) for ts, p in speech.opus_packets(audio, rate)]
    return packets, len(audio) / rate


async def run_count(n: int, packets: list[tuple[int, bytes]], seconds: float, workers: int,
                    engine: EngineConfig) -> dict[str, Any]:
    fed_at: dict[str, list[float]] = {}  # per stream: wall time each packet was handed over
    lags: list[float] = []
    finals = 0
    figures: dict[str, dict[str, Any]] = {}

    def on_result(stream: str, msg: tuple[Any, ...]) -> None:
        nonlocal finals
        if msg[0] == "final":
            end_s = msg[4]
            times = fed_at[stream]
            k = min(len(times) - 1, int(end_s / 0.02))
            lags.append(time.monotonic() - times[k])
            finals += 1
        elif msg[0] in ("done", "closed"):
            figures[stream] = msg[2]

    pool = TranscriptionPool(workers, engine, on_result)
    streams = [f"s{i}" for i in range(n)]
    for s in streams:
        pool.open(s)
        fed_at[s] = []
    await asyncio.sleep(3.0)  # the workers start and load their engines before the clock
    pids = [w.proc.pid for w in pool._workers]
    cpu0 = sum(proc_cpu_s(p) for p in pids if p)
    t0 = time.monotonic()
    count = int(seconds / 0.02)
    loop_len = len(packets)
    for i in range(count):
        now = time.monotonic()
        for k, s in enumerate(streams):
            # each stream at its own point of the lesson, so their speech does not align
            j = (i + k * 37) % loop_len
            laps = (i + k * 37) // loop_len
            ts, payload = packets[j]
            pool.feed(s, (ts + laps * loop_len * 960) & 0xFFFFFFFF, payload)
            fed_at[s].append(now)
        delay = t0 + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = time.monotonic() - t0
    cpu1 = sum(proc_cpu_s(p) for p in pids if p)
    for s in streams:
        pool.close(s)
    deadline = time.monotonic() + 30
    while len([s for s in streams if s in figures]) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    dropped = pool.dropped_packets
    await pool.close_all()
    rtf = [float(f["real_time_factor"]) for f in figures.values()]
    audio_s = sum(float(f["audio_s"]) for f in figures.values())
    lags.sort()
    return {
        "streams": n, "workers": workers, "seconds": round(elapsed, 1),
        "workers_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "rtf_mean": round(float(np.mean(rtf)), 3) if rtf else None,
        "audio_s": round(audio_s, 1), "finals": finals,
        "lag_p50_s": round(percentile(lags, 50), 2) if lags else None,
        "lag_p95_s": round(percentile(lags, 95), 2) if lags else None,
        "lag_max_s": round(lags[-1], 2) if lags else None,
        "dropped_packets": dropped,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.transcription_bench",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,2,4,6,8,10")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-lag-s", type=float, default=3.0)
    ap.add_argument("--engine", default="pocketsphinx")
    ap.add_argument("--model-dir", default="")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    engine = EngineConfig(args.engine, args.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        packets, lesson_s = lesson_packets(Path(tmp))
    rows, results, best = [], [], 0
    import uvloop

    for n in [int(c) for c in args.counts.split(",") if c]:
        r = uvloop.run(run_count(n, packets, args.seconds, args.workers, engine))
        ok = (r["lag_p95_s"] is not None and r["lag_p95_s"] <= args.max_lag_s
              and r["dropped_packets"] == 0)
        r["pass"] = ok
        results.append(r)
        rows.append(f"| {n} | {args.workers} | {r['workers_cpu_pct']} | {r['rtf_mean']} | "
                    f"{r['finals']} | {r['lag_p50_s']} / {r['lag_p95_s']} / {r['lag_max_s']} "
                    f"| {r['dropped_packets']} | {'pass' if ok else 'FAIL'} |")
        print(rows[-1], file=sys.stderr, flush=True)
        if not ok:
            break
        best = n
    m = machine_info()
    print(f"{heading('Transcription', m)}, engine {args.engine}, {args.workers} worker(s), "
          f"{args.seconds:.0f} s per count, a {lesson_s:.0f} s lesson loop "
          f"(~{100 * (1 - PAUSE_S * len(LESSON) / lesson_s):.0f} % speech)\n")
    print("| streams (rooms) | workers | workers' CPU, % of one core | real-time factor | "
          "final lines | caption lag p50 / p95 / max s | audio dropped (packets) | |")
    print("|---:|---:|---:|---:|---:|---|---:|---|")
    print("\n".join(rows))
    print(f"\n**{best} concurrently transcribed rooms** (p95 caption lag <= {args.max_lag_s} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": m, "git": git_state(),
                                               "best": best, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
