"""Session reports: one :class:`~classroom.engagement.Engagement` per room, fed from the
event bus, reported when the room closes.

:class:`SessionReporter` listens to every event; a room's session starts at
``room.created`` and ends at ``room.closed``. At the end it emits ``session.report`` (the
whole report) and one ``session.flag`` per exception flag, and writes the report to
``<reports_dir>/<room>-<start>.json`` (written to a temporary name and renamed, so a file
is either complete or absent). Events about a room the reporter never saw created (it
started later) begin a session at the first of them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from events import Event, EventBus

from .engagement import Engagement, Thresholds
from .files import room_file_name, write_atomic

log = logging.getLogger(__name__)
#: the reporter's own events, never fed back into a session
OWN = ("session.report", "session.flag")


class SessionReporter:
    def __init__(self, bus: EventBus, reports_dir: str | Path | None,
                 thresholds: Thresholds | None = None) -> None:
        self.bus = bus
        self.dir = Path(reports_dir) if reports_dir else None
        self.thresholds = thresholds or Thresholds()
        self.sessions: dict[str, Engagement] = {}
        self.written = 0
        self.write_errors = 0
        self._unsubscribe = bus.subscribe(self.on_event)

    def close(self) -> None:
        self._unsubscribe()

    def on_event(self, event: Event) -> None:
        if event.type in OWN:
            return
        now_ms = event.ts * 1000.0
        session = self.sessions.get(event.room)
        if session is None:
            session = self.sessions[event.room] = Engagement(event.room, now_ms,
                                                             self.thresholds)
        if event.type == "room.closed":
            del self.sessions[event.room]
            if event.data.get("reason") == "moved":
                return  # the session goes on on the room's next node, which reports it
            self.finish(session, now_ms)
        else:
            session.on_event(event.type, event.data, now_ms)

    def snapshot(self, room: str) -> bytes | None:
        """The room's session so far, for another node to go on with (cluster replica)."""
        session = self.sessions.get(room)
        if session is None:
            return None
        return json.dumps(session.snapshot(), separators=(",", ":")).encode()

    def adopt(self, room: str, data: bytes) -> bool:
        """Go on with a session another node captured (the room moved here); False if the
        data is not a session (the session then starts here)."""
        try:
            session = Engagement.restore(json.loads(data), self.thresholds)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("room %s: the replicated session is unreadable (%s)", room, exc)
            return False
        current = self.sessions.get(room)
        if current is not None and current.start_ms < session.start_ms:
            return False  # (never replace an older session with a younger one)
        self.sessions[room] = session
        return True

    def report(self, room: str, now_ms: float) -> dict[str, Any] | None:
        """The report of a room's session so far (None: no session)."""
        session = self.sessions.get(room)
        return session.report(now_ms) if session is not None else None

    def finish(self, session: Engagement, end_ms: float) -> dict[str, Any]:
        report = session.report(end_ms)
        path = self._write(report)
        self.bus.emit("session.report", session.room,
                      {**report, "file": str(path)} if path is not None else dict(report))
        for flag in report["flags"]:
            self.bus.emit("session.flag", session.room, dict(flag))
        return report

    def _write(self, report: dict[str, Any]) -> Path | None:
        if self.dir is None:
            return None
        path = self.dir / f"{room_file_name(report['room'])}-{report['startMs']}.json"
        try:
            write_atomic(path, json.dumps(report, indent=1).encode())
        except OSError:
            self.write_errors += 1
            log.exception("could not write the session report of %s", report["room"])
            return None
        self.written += 1
        return path
