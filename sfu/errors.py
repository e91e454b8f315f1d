"""Exception tree of the media path. Each carries the protocol error code it maps to."""

from __future__ import annotations


class SfuError(Exception):
    code = "internal_error"


class PermissionDenied(SfuError):
    code = "permission_denied"


class InvalidState(SfuError):
    code = "invalid_state"


class UnknownTrack(SfuError):
    code = "unknown_track"


class TooManyTracks(SfuError):
    code = "too_many_tracks"


class RoomFull(SfuError):
    code = "room_full"


class RoomClosed(SfuError):
    code = "room_closed"


class RoomNotFound(SfuError):
    code = "room_not_found"


class ResumeRefused(SfuError):
    """A resume that cannot be honoured: window over, unknown participant, wrong token."""

    code = "resume_failed"
