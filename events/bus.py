"""Event envelope ``{v, id, type, room, ts, seq, data}`` and the in-process bus.

Listeners are called synchronously and must not block; a failing listener is logged and
contained. Outward sinks (file log, NATS JetStream, webhooks) subscribe to this same bus.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

log = logging.getLogger(__name__)
ENVELOPE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    room: str
    data: dict[str, Any]
    seq: int
    ts: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    v: int = ENVELOPE_VERSION

    def envelope(self) -> dict[str, Any]:
        return {"v": self.v, "id": self.id, "type": self.type, "room": self.room,
                "ts": self.ts, "seq": self.seq, "data": self.data}

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb(self.envelope(), use_bin_type=True)
        return packed


class EventBus:
    def __init__(self, history: int = 1000) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)
        self.recent: deque[Event] = deque(maxlen=history)

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, type_: str, room: str, data: dict[str, Any]) -> Event:
        event = Event(type_, room, data, next(self._seq))
        self.recent.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type_)
        return event
