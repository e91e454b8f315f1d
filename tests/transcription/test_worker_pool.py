"""The transcription workers as the server runs them: real processes fed from an event
loop. Speech in gives texts out; a worker killed mid-stream is replaced, the stream is
reopened there and later speech is recognised; an engine that cannot load reports why;
the event loop is never blocked by a busy worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benches import speech
from transcription.engines import EngineConfig
from transcription.pool import TranscriptionPool

SENTENCE = "We will have a short test on Friday."


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, bytes]]:
    path = tmp_path_factory.mktemp("pool") / "s.wav"
    samples, rate = speech.read_wav(speech.say(SENTENCE, path, lead_s=0.3, tail_s=1.0))
    return [(ts & 0xFFFFFFFF, p) for ts, p in speech.opus_packets(samples, rate)]


class Results:
    def __init__(self) -> None:
        self.got: list[tuple[str, tuple[Any, ...]]] = []
        self.changed = asyncio.Event()

    def __call__(self, stream: str, msg: tuple[Any, ...]) -> None:
        self.got.append((stream, msg))
        self.changed.set()

    async def until(self, check: Any, timeout: float = 60.0) -> None:
        async def wait() -> None:
            while not check():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)

    def of(self, stream: str, kind: str) -> list[tuple[Any, ...]]:
        return [m for s, m in self.got if s == stream and m[0] == kind]


async def feed_live(pool: TranscriptionPool, stream: str,
                    packets: list[tuple[int, bytes]], offset: int = 0) -> float:
    """Feed in real time's order, 100 ms at a time (faster than real time: the test's
    clock is not the subject); the longest the loop waited for a 1 ms timer meanwhile."""
    worst = 0.0
    for i in range(0, len(packets), 5):
        for ts, payload in packets[i:i + 5]:
            pool.feed(stream, (ts + offset) & 0xFFFFFFFF, payload)
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        worst = max(worst, time.perf_counter() - t0)
    return worst


async def test_two_streams_on_two_workers_are_recognised(packets: list[tuple[int, bytes]]
                                                         ) -> None:
    results = Results()
    pool = TranscriptionPool(2, EngineConfig(), results, batch_s=0.05)
    try:
        pool.open("a")
        pool.open("b")
        assert pool.workers_alive() == 2
        worst_a, worst_b = await asyncio.gather(feed_live(pool, "a", packets),
                                                feed_live(pool, "b", packets))
        pool.close("a")
        pool.close("b")
        await results.until(lambda: results.of("a", "closed") and results.of("b", "closed"))
        for stream in ("a", "b"):
            text = " ".join(m[5] for m in results.of(stream, "final"))
            wer = speech.word_error_rate(SENTENCE, text)
            print(f"{stream}: {text!r} WER {wer:.2f}")
            assert wer <= 0.6, text
            figures = results.of(stream, "closed")[0][2]
            assert 0 < figures["real_time_factor"] < 1
        # the loop went on while the workers recognised (a blocked loop waits seconds)
        assert max(worst_a, worst_b) < 0.5, (worst_a, worst_b)
        assert pool.backlog == 0
    finally:
        await pool.close_all()
    assert pool.workers_alive() == 0


async def test_a_killed_worker_is_replaced_and_its_stream_goes_on(
        packets: list[tuple[int, bytes]]) -> None:
    results = Results()
    pool = TranscriptionPool(1, EngineConfig(), results, batch_s=0.05)
    try:
        pool.open("s")
        await feed_live(pool, "s", packets[:60])
        await results.until(lambda: results.of("s", "done"))
        pid = pool._workers[0].proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await results.until(lambda: results.of("s", "error"))
        assert "worker exited" in results.of("s", "error")[0][2]
        assert pool.worker_restarts == 1 and pool.streams == 1
        # the replacement has the stream: the sentence, said again, is recognised there
        await feed_live(pool, "s", packets, offset=48_000 * 30)
        pool.close("s")
        await results.until(lambda: bool(results.of("s", "closed")))
        text = " ".join(m[5] for m in results.of("s", "final"))
        assert speech.word_error_rate(SENTENCE, text) <= 0.6, text
        assert pool.workers_alive() == 1 and pool._workers[0].proc.pid != pid
    finally:
        await pool.close_all()


async def test_an_engine_that_cannot_load_reports_why(tmp_path: Path) -> None:
    results = Results()
    pool = TranscriptionPool(1, EngineConfig(engine="whisper", model_dir=str(tmp_path)),
                             results)
    try:
        pool.open("w")
        pool.feed("w", 0, b"\xfc\xff\xfe")
        await results.until(lambda: bool(results.of("w", "error")))
        assert "model.bin" in results.of("w", "error")[0][2]
        assert pool.workers_alive() == 1  # the process itself is fine
    finally:
        await pool.close_all()


async def test_a_worker_far_behind_gets_no_more_audio() -> None:
    """The pool stops sending to a worker with max_backlog batches per stream outstanding
    and counts
    what it kept back: captions lag no further, the server's memory does not grow."""
    results = Results()
    pool = TranscriptionPool(1, EngineConfig(), results, batch_s=0.01, max_backlog=3)
    try:
        pool.open("x")
        await results.until(lambda: True)
        w = pool._workers[0]
        w.backlog = 3  # as if three batches were still being recognised
        noise = np.random.default_rng(1).integers(0, 255, 40, dtype=np.uint8).tobytes()
        for k in range(20):
            pool.feed("x", k * 960, noise)
        await asyncio.sleep(0.05)
        assert pool.dropped_packets == 20 and pool.batches == 0
    finally:
        await pool.close_all()
