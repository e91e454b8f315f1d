"""The server's classrooms: one :class:`~classroom.room.Classroom` per media room of the
:class:`sfu.room.RoomRegistry`, made with it and dropped when it closes.

Rooms are created and looked up here, never directly in the media registry, so that every
media room has its classroom; the media registry still decides membership (auto-created
rooms, capacity) and drops an auto-created room when its last participant leaves.
"""

from __future__ import annotations

from collections.abc import Callable

from events import EventBus
from sfu.room import Room, RoomRegistry

from .room import RECORDING_POLICIES, TRANSCRIPTION_POLICIES, Classroom, Recorder, Transcriber


class Classrooms:
    def __init__(self, media: RoomRegistry, bus: EventBus, *,
                 recording_policy: str = "on_request", recorder: Recorder | None = None,
                 transcription_policy: str = "off", transcriber: Transcriber | None = None
                 ) -> None:
        if recording_policy not in RECORDING_POLICIES:
            raise ValueError(f"recording policy must be one of {', '.join(RECORDING_POLICIES)}")
        if transcription_policy not in TRANSCRIPTION_POLICIES:
            raise ValueError("transcription policy must be one of "
                             f"{', '.join(TRANSCRIPTION_POLICIES)}")
        self.media = media
        self.bus = bus
        self.recording_policy = recording_policy
        #: given to every classroom (recorder.service.Recordings; None: nothing recorded)
        self.recorder = recorder
        #: the default for rooms the API does not set, and what transcribes (None: nothing)
        self.transcription_policy = transcription_policy
        self.transcriber = transcriber
        self.rooms: dict[str, Classroom] = {}
        #: called with a room's name when it has closed (the cluster releases it)
        self.on_room_closed: list[Callable[[str], None]] = []

    def get(self, room_id: str) -> Classroom | None:
        return self.rooms.get(room_id)

    def create(self, room_id: str, max_participants: int | None = None,
               reconnect_window_s: float | None = None, recording_policy: str | None = None,
               audio_speakers: int | None = None, transcription_policy: str | None = None
               ) -> Classroom:
        """The classroom of that name (an existing one is returned as it is)."""
        existing = self.rooms.get(room_id)
        if existing is not None:
            return existing
        return self._wrap(self.media.create(room_id, max_participants,
                                            reconnect_window_s=reconnect_window_s,
                                            audio_speakers=audio_speakers),
                          recording_policy, transcription_policy)

    def get_for_join(self, room_id: str) -> Classroom:
        """The classroom a join goes to; created if the server auto-creates rooms, else
        RoomNotFound (sfu.errors)."""
        existing = self.rooms.get(room_id)
        if existing is not None:
            return existing
        return self._wrap(self.media.get_for_join(room_id), None)

    def _wrap(self, media_room: Room, recording_policy: str | None,
              transcription_policy: str | None = None) -> Classroom:
        room = Classroom(media_room, self.bus,
                         recording_policy=recording_policy or self.recording_policy,
                         recorder=self.recorder,
                         transcription_policy=transcription_policy or self.transcription_policy,
                         transcriber=self.transcriber)
        room.on_closed = self._closed
        self.rooms[room.id] = room
        if room.recording_policy == "always" and self.recorder is not None:
            self.recorder.start(room)
        return room

    def _closed(self, room: Classroom) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            for listener in self.on_room_closed:
                listener(room.id)

    async def close(self, room_id: str, reason: str = "room_closed") -> bool:
        if room_id not in self.rooms and room_id not in self.media.rooms:
            return False
        return await self.media.close(room_id, reason)

    async def left(self, room: Classroom) -> None:
        """Drop an auto-created room once its last participant is gone."""
        await self.media.left(room.media)
