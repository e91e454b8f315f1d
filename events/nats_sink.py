"""Outward sink: NATS JetStream, at-least-once, in order, deduplicated by event id.

Each event is published to ``<prefix>.<room>.<type>`` (e.g.
``sfu.events.maths-7b.participant.joined``; characters NATS reserves in subject tokens,
``.``, ``*``, ``>`` and whitespace, become ``_`` in the room token) with the header
``Nats-Msg-Id: <event id>``, into a file-backed stream (created if missing) whose duplicate
window drops a re-sent event. A publish counts only once JetStream acknowledged it.

Never in the caller's way: the bus listener appends to a bounded buffer; one task publishes
in order, waiting for each acknowledgement. While NATS is down (or restarting) events stay
buffered and go out, in order, when it is back; an event whose acknowledgement was lost is
sent again and dropped by the stream's deduplication. A buffer that fills up (``buffer_max``
events, a long outage) drops the newest events and counts them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import nats
from nats.errors import Error as NatsError
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from .bus import Event

log = logging.getLogger(__name__)
_RESERVED = re.compile(r"[.*>\s]")
DUPLICATE_WINDOW_S = 120.0


@dataclass
class NatsSinkStats:
    published: int = 0
    dropped: int = 0
    errors: int = 0
    connected: bool = False


class NatsSink:
    def __init__(self, url: str, *, stream: str = "SFU_EVENTS",
                 subject_prefix: str = "sfu.events", buffer_max: int = 100_000,
                 publish_timeout_s: float = 2.0) -> None:
        self.url = url
        self.stream = stream
        self.prefix = subject_prefix
        self.buffer_max = buffer_max
        self.publish_timeout_s = publish_timeout_s
        self.stats = NatsSinkStats()
        self._buffer: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._nc: Any = None
        self._js: Any = None
        self._closing = False

    def subject(self, event: Event) -> str:
        return f"{self.prefix}.{_RESERVED.sub('_', event.room) or '_'}.{event.type}"

    # -- the bus side: never blocks ----------------------------------------------------

    def __call__(self, event: Event) -> None:
        if len(self._buffer) >= self.buffer_max:
            self.stats.dropped += 1
            return
        self._buffer.append(event)
        self._empty.clear()
        self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def counters(self) -> list[tuple[str, str, float]]:
        s = self.stats
        return [
            ("sfu_event_nats_published", "events acknowledged by NATS JetStream", s.published),
            ("sfu_event_nats_dropped", "events dropped because the NATS sink's buffer was "
             "full (a long outage)", s.dropped),
            ("sfu_event_nats_errors", "failed connections and publishes to NATS (retried)",
             s.errors),
        ]

    def gauges(self) -> list[tuple[str, str, float]]:
        return [("sfu_event_nats_buffered", "events waiting for NATS (grows while it is "
                 "down)", self.buffered),
                ("sfu_event_nats_connected", "1 while connected to NATS",
                 int(self.stats.connected))]

    async def drained(self, timeout: float | None = None) -> None:
        """Until every event so far is acknowledged (TimeoutError after ``timeout``)."""
        await asyncio.wait_for(self._empty.wait(), timeout)

    # -- the publishing task --------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def close(self, timeout: float = 5.0) -> None:
        """Publish what is buffered (for up to ``timeout``), then disconnect."""
        try:
            await self.drained(timeout)
        except TimeoutError:
            log.error("NATS sink: %d events not published at close", len(self._buffer))
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._nc is not None:
            try:
                await self._nc.close()
            except NatsError:
                pass

    async def _connect(self) -> None:
        async def on_disconnected() -> None:
            self.stats.connected = False

        async def on_reconnected() -> None:
            self.stats.connected = True
            self._wake.set()

        self._nc = await nats.connect(
            servers=[self.url], connect_timeout=2, allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            disconnected_cb=on_disconnected, reconnected_cb=on_reconnected)
        self._js = self._nc.jetstream(timeout=self.publish_timeout_s)
        config = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"],
                              storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S)
        try:
            await self._js.add_stream(config)
        except BadRequestError:  # it exists with another configuration: use it as it is
            log.warning("NATS sink: stream %s exists with another configuration", self.stream)
        self.stats.connected = True

    async def _run(self) -> None:
        backoff = 0.2
        while not self._closing:
            if self._nc is None:
                try:
                    await self._connect()
                    backoff = 0.2
                except (OSError, NatsError, TimeoutError) as exc:
                    self.stats.errors += 1
                    if self._nc is not None:
                        await self._nc.close()
                        self._nc = None
                    log.warning("NATS sink: cannot reach %s (%s); retrying", self.url, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
            if not self._buffer:
                self._empty.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            event = self._buffer[0]
            try:
                await self._js.publish(self.subject(event), event.pack(),
                                       headers={"Nats-Msg-Id": event.id})
            except (OSError, NatsError, TimeoutError):
                # NATS down or restarting: keep the event first in line, try again soon
                self.stats.errors += 1
                await asyncio.sleep(backoff)
                backoff = min(2.0, backoff * 2)
                continue
            self._buffer.popleft()
            self.stats.published += 1
            backoff = 0.2
