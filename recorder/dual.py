"""Every recorded byte to two independent sinks, with failure and recovery handled.

Each track's WebM stream is cut into checksummed chunks (:mod:`recorder.chunks`); every
chunk goes to every sink (:mod:`recorder.sinks`), each sink with its own worker task and
backlog, so a slow or dead sink never holds up the other, nor the media path (the muxer
only appends to memory). A sink that fails is reported at once (``on_alarm``) and retried
with backoff; meanwhile its backlog grows, and what it lacks is back-filled when it comes
back: from memory while the chunk is still there, or else read from the other sink's copy
(memory keeps at most ``cache_bytes`` of chunks that another sink already stored; a chunk
no sink has stored yet is never evicted). At the end each sink makes one complete file of
its chunks, and each copy is checked (:mod:`recorder.verify`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .chunks import Chunk, Chunker
from .sinks import Sink, SinkError

log = logging.getLogger(__name__)
RETRY_S = (0.25, 0.5, 1.0, 2.0)
PUT_TIMEOUT_S = 5.0


class TrackOutput:
    """One track file, as the muxer writes it (:meth:`write`), on its way to the sinks."""

    def __init__(self, writer: DualWriter, path: str) -> None:
        self.writer = writer
        self.path = path
        self.chunker = Chunker()
        self.sha256 = hashlib.sha256()
        self.closed = False

    @property
    def chunks(self) -> list[Chunk]:
        return self.chunker.chunks

    @property
    def size(self) -> int:
        return self.chunker.size

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        for chunk, body in self.chunker.feed(data, self.writer.clock()):
            self.writer.enqueue(self, chunk, body)

    def tick(self, now_ms: float) -> None:
        for chunk, body in self.chunker.tick(now_ms):
            self.writer.enqueue(self, chunk, body)

    def close(self) -> None:
        """No more bytes: the last chunk goes out."""
        if not self.closed:
            self.closed = True
            for chunk, body in self.chunker.flush():
                self.writer.enqueue(self, chunk, body)


@dataclass
class Copy:
    """One sink's side of the writer."""

    sink: Sink
    healthy: bool = True
    error: str = ""
    backlog: deque[tuple[TrackOutput, Chunk]] = field(default_factory=deque)
    stored_chunks: int = 0
    stored_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        return {"sink": self.sink.name, "kind": self.sink.kind, "healthy": self.healthy,
                "error": self.error, "backlog": len(self.backlog),
                "storedChunks": self.stored_chunks, "storedBytes": self.stored_bytes}


class DualWriter:
    def __init__(self, sinks: list[Sink], *,
                 on_alarm: Callable[[Sink, str], None],
                 on_recovered: Callable[[Sink], None],
                 cache_bytes: int = 64 * 1024 * 1024,
                 clock: Callable[[], float] = lambda: time.monotonic() * 1000.0) -> None:
        self.copies = [Copy(s) for s in sinks]
        #: milliseconds, for closing chunks (a bench feeding media faster than real time
        #: gives its media clock, so chunks are as many as in a real lesson)
        self.clock = clock
        self.outputs: list[TrackOutput] = []
        self.on_alarm = on_alarm
        self.on_recovered = on_recovered
        self.cache_limit = cache_bytes
        #: (output, chunk index) -> bytes, oldest first; with which copies stored it
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._stored_by: dict[tuple[int, int], set[int]] = {}
        self.cache_bytes = 0
        self._closing = False

    def start(self) -> None:
        for i, copy in enumerate(self.copies):
            copy.task = asyncio.ensure_future(self._worker(i, copy))

    def output(self, path: str) -> TrackOutput:
        out = TrackOutput(self, path)
        self.outputs.append(out)
        return out

    def tick(self, now_ms: float) -> None:
        for out in self.outputs:
            if not out.closed:
                out.tick(now_ms)

    # -- chunks in --------------------------------------------------------------------

    def enqueue(self, out: TrackOutput, chunk: Chunk, data: bytes) -> None:
        key = (id(out), chunk.index)
        self._cache[key] = data
        self._stored_by[key] = set()
        self.cache_bytes += len(data)
        for copy in self.copies:
            copy.backlog.append((out, chunk))
            copy.wake.set()
        self._evict()

    def _evict(self) -> None:
        """Over the limit: drop the oldest chunks some copy already stored (a copy that
        still lacks one reads it back from that copy)."""
        if self.cache_bytes <= self.cache_limit:
            return
        for key in list(self._cache):
            if self.cache_bytes <= self.cache_limit:
                break
            if self._stored_by.get(key):
                self.cache_bytes -= len(self._cache.pop(key))

    def _stored(self, i: int, out: TrackOutput, chunk: Chunk) -> None:
        key = (id(out), chunk.index)
        who = self._stored_by.get(key)
        if who is None:
            return
        who.add(i)
        if len(who) == len(self.copies):
            del self._stored_by[key]
            data = self._cache.pop(key, None)
            if data is not None:
                self.cache_bytes -= len(data)

    async def _data(self, i: int, out: TrackOutput, chunk: Chunk) -> bytes:
        data = self._cache.get((id(out), chunk.index))
        if data is not None:
            return data
        who = self._stored_by.get((id(out), chunk.index), set())
        for j in sorted(who):
            try:
                return await asyncio.to_thread(self.copies[j].sink.get, out.path, chunk)
            except SinkError as exc:
                log.warning("back-fill of %s from %s: %s", out.path,
                            self.copies[j].sink.name, exc)
        raise SinkError(f"chunk {chunk.index} of {out.path} is on no healthy copy")

    # -- one worker per sink ----------------------------------------------------------

    async def _worker(self, i: int, copy: Copy) -> None:
        attempt = 0
        while True:
            if not copy.backlog:
                if self._closing:
                    return
                copy.wake.clear()
                await copy.wake.wait()
                continue
            out, chunk = copy.backlog[0]
            try:
                data = await self._data(i, out, chunk)
                await asyncio.wait_for(asyncio.to_thread(copy.sink.put, out.path, chunk,
                                                         data), PUT_TIMEOUT_S)
            except Exception as exc:  # SinkError, a timeout, or a bug in a sink: all retried
                error = str(exc) or type(exc).__name__
                if copy.healthy:
                    copy.healthy = False
                    copy.error = error
                    log.error("recording sink %s failed: %s", copy.sink.name, error)
                    self.on_alarm(copy.sink, error)
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1
                continue
            attempt = 0
            copy.backlog.popleft()
            copy.stored_chunks += 1
            copy.stored_bytes += chunk.length
            self._stored(i, out, chunk)
            if not copy.healthy and not copy.backlog:
                copy.healthy = True
                copy.error = ""
                log.info("recording sink %s recovered and back-filled", copy.sink.name)
                self.on_recovered(copy.sink)

    # -- the end ----------------------------------------------------------------------

    async def close(self, timeout_s: float) -> dict[str, bool]:
        """Every output closed, every backlog written (or ``timeout_s`` passed), each sink's
        copy made one complete file. Returns, per sink, whether its copy is complete."""
        for out in self.outputs:
            out.close()
        self._closing = True
        for copy in self.copies:
            copy.wake.set()
        tasks = [c.task for c in self.copies if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        complete: dict[str, bool] = {}
        for i, copy in enumerate(self.copies):
            if copy.task is not None and not copy.task.done():
                copy.task.cancel()
            ok = not copy.backlog
            if ok:
                for out in self.outputs:
                    try:
                        await asyncio.to_thread(copy.sink.finish, out.path, out.chunks,
                                                self._source(i, out))
                    except SinkError as exc:
                        ok = False
                        copy.healthy, copy.error = False, str(exc)
                        self.on_alarm(copy.sink, str(exc))
                        break
            complete[copy.sink.name] = ok
            copy.sink.close()
        return complete

    def _source(self, i: int, out: TrackOutput) -> Callable[[Chunk], bytes]:
        """Chunks for sink ``i``'s final file: from memory, else from the other copies
        (a local one first), else its own."""
        order = sorted(range(len(self.copies)),
                       key=lambda j: (j == i, self.copies[j].sink.kind != "local"))

        def read(chunk: Chunk) -> bytes:
            data = self._cache.get((id(out), chunk.index))
            if data is not None:
                return data
            errors = []
            for j in order:
                try:
                    return self.copies[j].sink.get(out.path, chunk)
                except SinkError as exc:
                    errors.append(str(exc))
            raise SinkError("; ".join(errors))
        return read
