"""The lessons' summary drafts: made when a transcribed room's transcript is complete,
edited and approved by the instructor, kept as JSON beside the transcript.

``<transcription.dir>/<room>/<UTC start>-summary.json`` is rewritten (atomically) at every
change, so a restart loses nothing: the latest file of a room is read back when it is
asked for. Events: ``summary.drafted``, ``summary.edited``, ``summary.approved`` (with the
summary: the scheduler bridge keeps it in the lesson's session record, shows it in the
next lesson's brief and emails it to the students' guardians).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from classroom.files import room_file_name, write_atomic
from events import EventBus
from events.bus import Event

from . import summary as summary_mod
from .service import RoomTranscription

log = logging.getLogger(__name__)

#: the booked students of a room's lesson, [{identity, name}] (None: not a booked lesson)
Roster = Callable[[str], Awaitable[list[dict[str, str]] | None]]


class NoSummary(Exception):
    code = "no_summary"


class Summaries:
    def __init__(self, bus: EventBus, directory: str, *, roster: Roster | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.bus = bus
        self.directory = directory
        self.roster = roster
        self.clock = clock
        self._reports: dict[str, dict[str, Any]] = {}
        self._current: dict[str, tuple[Path | None, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == "session.report":
            self._reports[event.room] = dict(event.data)
            while len(self._reports) > 1000:
                self._reports.pop(next(iter(self._reports)))

    # -- the draft -----------------------------------------------------------------------

    async def draft(self, rt: RoomTranscription) -> dict[str, Any]:
        """The draft of a finished room transcription (called once its transcript is
        complete)."""
        room = rt.room
        polls = []
        for poll in list(room.polls.polls.values()):
            results = room.polls.results(poll.id, "instructor")
            results.pop("byParticipant", None)
            polls.append({**poll.describe(), "results": results})
        roster = await self.roster(room.id) if self.roster is not None else None
        draft = summary_mod.build_draft(
            room.id, rt.transcript.lines, report=self._reports.pop(room.id, None),
            chat=room.chat.recent(), polls=polls, roster=roster, now=self.clock(),
            names=rt.names)
        draft["startedAt"] = rt.started_at
        path = None
        if self.directory:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(rt.started_at))
            path = Path(self.directory) / room_file_name(room.id) / f"{stamp}-summary.json"
        async with self._lock:
            await self._save(room.id, path, draft)
        self.bus.emit("summary.drafted", room.id, {
            "keyPoints": len(draft["keyPoints"]), "questions": len(draft["questions"]),
            "polls": len(draft["polls"]), "file": str(path) if path else ""})
        return draft

    # -- the instructor's side -----------------------------------------------------------

    async def get(self, room: str) -> dict[str, Any]:
        return (await self._load(room))[1]

    async def edit(self, room: str, changes: Any, by: str) -> dict[str, Any]:
        async with self._lock:
            path, current = await self._load(room)
            updated = summary_mod.edit(current, changes, self.clock())
            await self._save(room, path, updated)
        self.bus.emit("summary.edited", room, {"revision": updated["revision"], "by": by})
        return updated

    async def approve(self, room: str, by: str) -> dict[str, Any]:
        async with self._lock:
            path, current = await self._load(room)
            approved = summary_mod.approve(current, by, self.clock())
            await self._save(room, path, approved)
        self.bus.emit("summary.approved", room, {
            "revision": approved["revision"], "by": by, "summary": {
                **{k: approved[k] for k in ("keyPoints", "questions", "polls", "attendance",
                                            "notes", "approvedAt")},
                "text": summary_mod.as_text(approved)}})
        return approved

    # -- storage -------------------------------------------------------------------------

    async def _load(self, room: str) -> tuple[Path | None, dict[str, Any]]:
        found = self._current.get(room)
        if found is not None:
            return found
        if self.directory:
            folder = Path(self.directory) / room_file_name(room)
            files = sorted(await asyncio.to_thread(lambda: list(folder.glob("*-summary.json"))))
            if files:
                data = json.loads(await asyncio.to_thread(files[-1].read_bytes))
                self._current[room] = (files[-1], data)
                return files[-1], data
        raise NoSummary(f"no summary for room {room[:60]!r} (it is made when a transcribed "
                        "room closes)")

    async def _save(self, room: str, path: Path | None, data: dict[str, Any]) -> None:
        if path is not None:
            await asyncio.to_thread(write_atomic, path, json.dumps(data, indent=2).encode())
        self._current[room] = (path, data)
        while len(self._current) > 1000:
            self._current.pop(next(iter(self._current)))
