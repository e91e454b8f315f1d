"""Outward sink: signed webhooks, retried with backoff, a dead-letter file for the rest.

Each event is POSTed as JSON (the envelope) to every configured URL, in order per URL, with

* ``X-SFU-Event: <type>`` and ``X-SFU-Delivery: <event id>`` (the same on every retry: a
  receiver deduplicates by it);
* ``X-SFU-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``: the
  receiver recomputes it with the shared secret and refuses old timestamps
  (:func:`verify` does both).

A 2xx answer delivers the event. A 5xx, 408, 429, a timeout or a connection error is
retried after 0.5, 1, 2, 4 ... s (capped at 30 s) up to ``max_attempts``; any other answer
(a 4xx: the receiver refuses it) or running out of attempts writes the event to the
dead-letter file (JSON lines: url, envelope, attempts, last error), so nothing is lost
silently. The bus listener only queues (bounded per URL; an overflow goes straight to the
dead-letter file).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .bus import Event

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 429})


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The ``X-SFU-Signature`` value for ``body`` sent at unix time ``t`` (now)."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300.0,
           now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and is at most ``tolerance_s`` old."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class WebhookStats:
    delivered: int = 0
    retries: int = 0
    dead_lettered: int = 0


class WebhookSink:
    def __init__(self, urls: list[str], secret: str, dead_letter: str | Path, *,
                 max_attempts: int = 10, timeout_s: float = 5.0, queue_max: int = 10_000,
                 first_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        if not secret:
            raise ValueError("webhooks need a secret to sign with")
        self.urls = list(urls)
        self.secret = secret
        self.dead_letter = Path(dead_letter)
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.queue_max = queue_max
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = WebhookStats()
        self._queues: dict[str, deque[Event]] = {u: deque() for u in self.urls}
        self._wake: dict[str, asyncio.Event] = {u: asyncio.Event() for u in self.urls}
        self._idle: dict[str, asyncio.Event] = {u: asyncio.Event() for u in self.urls}
        for e in self._idle.values():
            e.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    # -- the bus side: never blocks ----------------------------------------------------

    def __call__(self, event: Event) -> None:
        for url, queue in self._queues.items():
            if len(queue) >= self.queue_max:
                self._bury(url, event.envelope(), 0, "queue full")
                continue
            queue.append(event)
            self._idle[url].clear()
            self._wake[url].set()

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def counters(self) -> list[tuple[str, str, float]]:
        s = self.stats
        return [
            ("sfu_event_webhook_delivered", "webhook deliveries answered with 2xx", s.delivered),
            ("sfu_event_webhook_retries", "webhook attempts retried (5xx, 408, 429, timeout, "
             "connection error)", s.retries),
            ("sfu_event_webhook_dead_lettered", "webhook deliveries given up and written to "
             "the dead-letter file", s.dead_lettered),
        ]

    def gauges(self) -> list[tuple[str, str, float]]:
        return [("sfu_event_webhook_queued", "webhook deliveries waiting", self.queued)]

    async def drained(self, timeout: float | None = None) -> None:
        """Until every event so far is delivered or dead-lettered."""
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._idle.values())),
                               timeout)

    # -- delivery -------------------------------------------------------------------

    def start(self) -> None:
        if not self._tasks:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._tasks = [asyncio.ensure_future(self._run(u)) for u in self.urls]

    async def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for up to ``timeout``); dead-letter what is left."""
        try:
            await self.drained(timeout)
        except TimeoutError:
            pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for url, queue in self._queues.items():
            while queue:
                self._bury(url, queue.popleft().envelope(), 0, "server stopping")
        if self._http is not None:
            await self._http.close()

    async def _run(self, url: str) -> None:
        queue, wake, idle = self._queues[url], self._wake[url], self._idle[url]
        while True:
            if not queue:
                idle.set()
                wake.clear()
                await wake.wait()
                continue
            event = queue[0]
            await self._deliver(url, event)
            queue.popleft()

    async def _deliver(self, url: str, event: Event) -> None:
        envelope = event.envelope()
        body = json.dumps(envelope, separators=(",", ":"), default=repr).encode()
        backoff = self.first_backoff_s
        error = ""
        assert self._http is not None
        for attempt in range(1, self.max_attempts + 1):
            headers = {"Content-Type": "application/json", "X-SFU-Event": event.type,
                       "X-SFU-Delivery": event.id,
                       "X-SFU-Signature": sign(self.secret, body)}
            try:
                async with self._http.post(url, data=body, headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, error = 0, f"{type(exc).__name__}: {exc}"
            else:
                error = f"HTTP {status}"
            if 200 <= status < 300:
                self.stats.delivered += 1
                return
            if status and status < 500 and status not in RETRY_STATUSES:
                break  # the receiver refuses it: retrying will not help
            if attempt < self.max_attempts:
                self.stats.retries += 1
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)
        self._bury(url, envelope, attempt, error)

    def _bury(self, url: str, envelope: dict[str, Any], attempts: int, error: str) -> None:
        self.stats.dead_lettered += 1
        log.warning("webhook %s: event %s dead-lettered (%s)", url, envelope.get("id"), error)
        try:
            self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
            with open(self.dead_letter, "a") as fh:
                fh.write(json.dumps({"url": url, "event": envelope, "attempts": attempts,
                                     "error": error, "at": time.time()},
                                    separators=(",", ":"), default=repr) + "\n")
        except OSError:
            log.exception("webhook dead-letter file %s not writable", self.dead_letter)
