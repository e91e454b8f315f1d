"""The transcription workers, seen from the server's event loop.

Each stream (one microphone of one room) is given to one worker process
(:mod:`transcription.worker`), the one with the fewest streams, and stays there: its
decoder, segmenter and engine keep state between packets. Packets are buffered per stream
and sent every ``batch_s`` on a multiprocessing queue, whose feeder thread does the
writing: nothing here blocks the event loop, so a slow engine never delays the media. A
worker more than ``max_backlog`` batches per stream behind (5 s of audio by default) gets
no more audio until it catches up
(what it misses is counted as dropped, and the captions of those seconds are lost: better
than captions that lag further and further). A worker that dies is replaced; its streams
are reopened on the replacement (the utterance in progress is lost) and reported.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from . import worker
from .engines import EngineConfig

log = logging.getLogger(__name__)

OnResult = Callable[[str, tuple[Any, ...]], None]


class _Worker:
    def __init__(self, ctx: Any, index: int) -> None:
        self.index = index
        self.commands = ctx.Queue()
        self.results, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=worker.main, args=(self.commands, send), daemon=True,
                                name=f"transcription-{index}")
        self.proc.start()
        send.close()
        self.streams: set[str] = set()
        self.backlog = 0  # audio batches sent and not yet done
        self.alive = True


class TranscriptionPool:
    def __init__(self, workers: int, engine: EngineConfig, on_result: OnResult, *,
                 batch_s: float = 0.1, max_backlog: int = 50) -> None:
        if workers < 1:
            raise ValueError("transcription needs at least one worker")
        self.size = workers
        self.engine = engine
        self.on_result = on_result
        self.batch_s = batch_s
        self.max_backlog = max_backlog
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._where: dict[str, _Worker] = {}
        self._buffers: dict[str, list[tuple[int, bytes]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        # figures (docs/metrics.md)
        self.worker_restarts = 0
        self.dropped_packets = 0
        self.batches = 0

    # -- streams ----------------------------------------------------------------------

    def open(self, stream: str) -> None:
        if self._closed or stream in self._where:
            return
        w = self._least_loaded()
        w.streams.add(stream)
        self._where[stream] = w
        self._buffers[stream] = []
        w.commands.put(("open", stream, asdict(self.engine)))

    def feed(self, stream: str, rtp_ts: int, payload: bytes) -> None:
        buf = self._buffers.get(stream)
        if buf is None:
            return
        buf.append((rtp_ts, payload))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.batch_s, self._flush)

    def close(self, stream: str) -> None:
        w = self._where.pop(stream, None)
        if w is None:
            return
        self._send_batch(stream, w, self._buffers.pop(stream, []))
        w.streams.discard(stream)
        if w.alive:
            w.commands.put(("close", stream))

    @property
    def backlog(self) -> int:
        return sum(w.backlog for w in self._workers)

    @property
    def streams(self) -> int:
        return len(self._where)

    def workers_alive(self) -> int:
        return sum(1 for w in self._workers if w.alive and w.proc.is_alive())

    # -- workers ----------------------------------------------------------------------

    def _least_loaded(self) -> _Worker:
        live = [w for w in self._workers if w.alive]
        if len(live) < self.size:
            return self._start(len(self._workers))
        return min(live, key=lambda w: (len(w.streams), w.backlog))

    def _start(self, index: int) -> _Worker:
        w = _Worker(self._ctx, index)
        self._workers.append(w)
        asyncio.get_running_loop().add_reader(w.results.fileno(), self._on_readable, w)
        return w

    def _on_readable(self, w: _Worker) -> None:
        try:
            while w.results.poll():
                self._dispatch(w, w.results.recv())
        except (EOFError, OSError):
            self._died(w)

    def _dispatch(self, w: _Worker, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            return
        if kind == "done":
            w.backlog = max(0, w.backlog - 1)
        self.on_result(msg[1], msg)

    def _died(self, w: _Worker) -> None:
        if not w.alive:
            return
        w.alive = False
        asyncio.get_running_loop().remove_reader(w.results.fileno())
        w.results.close()
        if self._closed:
            return
        self.worker_restarts += 1
        log.error("transcription worker %d (pid %s) exited (code %s); reopening its %d "
                  "stream(s)", w.index, w.proc.pid, w.proc.exitcode, len(w.streams))
        self._workers.remove(w)
        orphans = sorted(w.streams)
        for stream in orphans:
            self._where.pop(stream, None)
            self.on_result(stream, ("error", stream, "the transcription worker exited; "
                                    "the utterance in progress is lost"))
        for stream in orphans:
            self.open(stream)

    # -- batching ---------------------------------------------------------------------

    def _flush(self) -> None:
        self._timer = None
        for stream, buf in self._buffers.items():
            if buf:
                self._send_batch(stream, self._where[stream], buf)
                self._buffers[stream] = []

    def _send_batch(self, stream: str, w: _Worker, batch: list[tuple[int, bytes]]) -> None:
        if not batch or not w.alive:
            return
        # max_backlog batches per stream on that worker: a bound on how far behind (in
        # seconds of audio) its streams run, whatever their number
        if w.backlog >= self.max_backlog * max(1, len(w.streams)):
            self.dropped_packets += len(batch)
            return
        w.backlog += 1
        self.batches += 1
        w.commands.put(("audio", stream, batch))

    async def close_all(self, timeout_s: float = 5.0) -> None:
        """Stop every worker (after the streams' last results)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in list(self._where):
            self.close(stream)
        for w in self._workers:
            if w.alive:
                w.commands.put(("stop",))
        loop = asyncio.get_running_loop()
        for w in self._workers:
            await loop.run_in_executor(None, w.proc.join, timeout_s)
            if w.proc.is_alive():
                w.proc.kill()
            self._on_readable(w)  # the last results, then EOF
            if w.alive:
                w.alive = False
                loop.remove_reader(w.results.fileno())
            w.commands.close()
        self._workers.clear()
