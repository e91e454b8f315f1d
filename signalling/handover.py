"""Rooms that change node (docs/cluster.md, "Room state, drain and take-over"): a drain
moves every room of this node to another, with its state written and its participants
told where to resume; a node that gets a room whose replica another node left (a drain
or a crash) takes it over with that state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from classroom import replica
from classroom.room import Classroom
from cluster.placement import PlacementError
from cluster.registry import ClusterRegistry
from cluster.rooms import ClusterRooms
from cluster.state import StateStore, StateWriter

if TYPE_CHECKING:
    from .app import ServerState

log = logging.getLogger(__name__)


class Drain:
    """This node's drain: whether it runs, the rooms it moved, the work it left running."""

    def __init__(self) -> None:
        self.active = False
        self.moved: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()


def _int(value: object, low: int = 1) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= low \
        else None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(
        value, bool) and value >= 0 else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class Handover:
    """This node's side of rooms changing node."""

    def __init__(self, state: ServerState, registry: ClusterRegistry, rooms: ClusterRooms,
                 store: StateStore, writer: StateWriter, drain: Drain) -> None:
        self.state = state
        self.registry = registry
        self.rooms = rooms
        self.store = store
        self.writer = writer
        self.drain = drain

    def closed(self, room: str) -> None:
        """A room closed here: release it and forget its replica, unless it moved on."""
        if room in self.drain.moved:  # gone on elsewhere: its replica is the next node's now
            self.writer.moved(room)
            return
        self.rooms.release(room)
        task = asyncio.ensure_future(self.writer.forget(room))
        self.drain.tasks.add(task)
        task.add_done_callback(self.drain.tasks.discard)

    async def take_over(self, room: str) -> Classroom | None:
        """The room's classroom made from its replicated state, if there is one."""
        if not self.registry.connected:
            return None
        try:
            stamped = await self.store.get_stamped(room, "classroom")
            board = await self.store.get(room, "board")
            session = await self.store.get(room, "engagement")
        except Exception as exc:
            log.warning("cluster: reading the state of room %r failed: %s", room, exc)
            return None
        at, data = stamped if stamped is not None else (0.0, None)
        existing = self.state.classrooms.get(room)
        if existing is not None or (data is None and board is None):
            return existing  # (opened meanwhile by another join)
        got = replica.read_settings(data) if data is not None else {}
        classroom = self.state.classrooms.create(
            room, _int(got.get("maxParticipants")),
            reconnect_window_s=_num(got.get("reconnectWindowS")),
            recording_policy=_str(got.get("recordingPolicy")),
            audio_speakers=_int(got.get("audioSpeakers"), 0),
            transcription_policy=_str(got.get("transcriptionPolicy")))
        restored = replica.restore(classroom, data) if data is not None else {}
        boards = self.state.boards
        merged = board is not None and boards is not None and boards.merge(room, board)
        adopted = session is not None and self.state.reporter is not None and \
            self.state.reporter.adopt(room, session)
        was_recording = replica.read_recording(data) if data is not None else {}
        recorder = self.state.classrooms.recorder
        if was_recording and recorder is not None and classroom.recording_policy != "off":
            # the lesson's recording goes on here; its manifest marks the gap
            continues = {**was_recording, "until": at}
            if classroom.recording is None:
                recorder.start(classroom, continues=continues)
            else:  # (policy always: it started with the room)
                classroom.recording.continues = continues
        self.rooms.taken_over += 1
        self.state.bus.emit("room.taken_over", room, {
            "chat": restored.get("chat", 0), "polls": restored.get("polls", 0),
            "hands": restored.get("hands", 0), "board": bool(merged),
            "session": bool(adopted)})
        log.info("cluster: room %r taken over here (%s, board %s, session %s)", room,
                 restored, merged, adopted)
        return classroom

    async def drain_node(self) -> dict[str, Any]:
        """Stop taking rooms, then move each room to another node: its state written, its
        participants told where to resume, its recording finished; what moved where."""
        self.drain.active = True
        try:
            await self.registry.announce_now()  # no new placements here from now on
        except Exception as exc:
            log.warning("cluster: announcing the drain failed: %s", exc)
        moved, stayed = [], []
        for room in list(self.state.classrooms.rooms):
            classroom = self.state.classrooms.get(room)
            if classroom is None:
                continue
            try:
                await self.writer.flush(room)
                placed = await self.registry.place(room)
                url = self.registry.url_of(placed.node)
                if placed.node == self.registry.node_id or not url:
                    raise PlacementError("no other node takes it")
            except Exception as exc:
                log.warning("cluster: room %r cannot move (%s); it stays until the end",
                            room, exc)
                stayed.append({"room": room, "reason": str(exc)})
                continue
            self.drain.moved.add(room)
            people = list(classroom.media.participants.values())
            for p in people:
                p.hand_off({"type": "redirect", "url": url, "node": placed.node,
                            "reason": "room_moved"})
            await self.state.classrooms.close(room, "moved")
            self.rooms.moved_out += 1
            self.state.bus.emit("room.moved", room,
                                {"to": placed.node, "participants": len(people)})
            moved.append({"room": room, "node": placed.node, "participants": len(people)})
        return {"node": self.registry.node_id, "moved": moved, "stayed": stayed}
