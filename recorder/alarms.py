"""Recording alarms: what must reach an operator within seconds, by three roads at once.

Each alarm is a ``recording.alarm`` event (reason, detail, where), a count in
``sfu_recording_alarms_total{reason}``, and an entry of the operations exception queue:
kept in memory for ``GET /api/alarms`` and appended to a JSON-lines file. The condition's
end (a sink back and back-filled, a track flowing again, space freed) is a
``recording.alarm_cleared`` event.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any

from events import EventBus

log = logging.getLogger(__name__)

REASONS = ("sink_error", "track_stalled", "disk_low", "recorder_error", "recorder_crashed",
           "verification_failed")


class Alarms:
    def __init__(self, bus: EventBus, path: str | None) -> None:
        self.bus = bus
        self.path = Path(path) if path else None
        self.counts = dict.fromkeys(REASONS, 0)
        self.recent: deque[dict[str, Any]] = deque(maxlen=1000)

    def raise_alarm(self, room: str, reason: str, detail: str, **where: str) -> dict[str, Any]:
        assert reason in REASONS, reason
        entry = {"id": "AL_" + secrets.token_hex(6), "ts": time.time(), "room": room,
                 "reason": reason, "detail": detail, **where}
        self.counts[reason] += 1
        self.recent.append(entry)
        log.error("recording alarm in %s: %s: %s %s", room, reason, detail, where)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as fh:
                    fh.write(json.dumps(entry) + "\n")
            except OSError:  # (the disk may be what is failing: the event still goes out)
                log.exception("could not append to the exception queue %s", self.path)
        self.bus.emit("recording.alarm", room, {"reason": reason, "detail": detail, **where})
        return entry

    def clear(self, room: str, reason: str, detail: str, **where: str) -> None:
        log.warning("recording alarm cleared in %s: %s: %s %s", room, reason, detail, where)
        self.bus.emit("recording.alarm_cleared", room,
                      {"reason": reason, "detail": detail, **where})
