"""Event envelope ``{v, sv, id, type, room, ts, seq, data}`` and the in-process bus.

``v`` is the envelope's version, ``sv`` the version of the type's schema
(:mod:`events.schemas`), against which every event's ``data`` is checked: a mismatch raises
in strict mode (tests) and is logged otherwise (the event still goes out).

Listeners are called synchronously and must not block; a failing listener is logged and
contained. Outward sinks (file log, NATS JetStream, webhooks) subscribe to this same bus.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from . import schemas

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
    sv: int = 1

    def envelope(self) -> dict[str, Any]:
        return {"v": self.v, "sv": self.sv, "id": self.id, "type": self.type,
                "room": self.room, "ts": self.ts, "seq": self.seq, "data": self.data}

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb(self.envelope(), use_bin_type=True)
        return packed


class EventBus:
    def __init__(self, history: int = 1000, *, strict: bool | None = None) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)
        self.recent: deque[Event] = deque(maxlen=history)
        #: raise on an event that does not match its schema (tests), instead of logging;
        #: default: the SFU_EVENTS_STRICT environment variable ("1")
        self.strict = os.environ.get("SFU_EVENTS_STRICT") == "1" if strict is None else strict
        self.schema_errors = 0

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, type_: str, room: str, data: dict[str, Any]) -> Event:
        try:
            schemas.validate(type_, data)
        except schemas.SchemaError:
            self.schema_errors += 1
            if self.strict:
                raise
            log.exception("event does not match its schema (sent anyway)")
        event = Event(type_, room, data, next(self._seq), sv=schemas.version(type_))
        self.recent.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type_)
        return event
