"""Every event type, declared: its schema version and the fields of its ``data``.

The envelope carries the type's schema version as ``sv``; a change that removes or retypes
a field, or changes its meaning, bumps it (adding an optional field does not). The table in
``docs/events.md`` lists the same types (a test keeps them in step), and
:func:`validate` checks an event's ``data`` against its schema: the bus does it for every
event, raising in strict mode (tests) and logging otherwise (never losing the event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Kind = type | tuple[type, ...]


class SchemaError(ValueError):
    """An event that does not match its declared schema (or has none)."""


@dataclass(frozen=True)
class Schema:
    type: str
    version: int
    required: dict[str, Kind]
    optional: dict[str, Kind] = field(default_factory=dict)


_PARTICIPANT = {"participant": str, "identity": str}
_TRACK = {"participant": str, "id": str}
_RECORDING_END = {"recording": str, "reason": str, "locations": list, "durationMs": int,
                  "tracks": int, "bytes": int}
_ALARM_WHERE = {"recording": str, "sink": str, "track": str, "participant": str,
                "location": str}
_LESSON: dict[str, Kind] = {"lessonId": str, "revision": int}
_EXCEPTION: dict[str, Kind] = {"exception": str, "kind": str,
                               "lessonId": (str, type(None)), "person": str}
_NOTIFICATION: dict[str, Kind] = {"notification": int, "kind": str, "channel": str,
                                  "recipient": str, "lessonId": (str, type(None))}
_SUBSCRIPTION = {"participant": str, "track": str, "reason": str, "estimateBps": int}

SCHEMAS: dict[str, Schema] = {s.type: s for s in (
    Schema("room.created", 1, {"maxParticipants": int}),
    Schema("room.closed", 1, {"reason": str}),
    Schema("room.placed", 1, {"node": str, "region": str, "movedBecause": str}),
    Schema("room.moved", 1, {"to": str, "participants": int}),
    Schema("relay.started", 1, {"edge": str}),
    Schema("relay.ended", 1, {"edge": str, "reason": str, "tracks": int}),
    Schema("room.taken_over", 1, {"chat": int, "polls": int, "hands": int, "board": bool,
                                  "session": bool}),
    Schema("room.speakers", 1, {"speakers": list}),
    Schema("participant.joined", 1, {**_PARTICIPANT, "role": str}),
    Schema("participant.left", 1, {**_PARTICIPANT, "reason": str, "speakingMs": int}),
    Schema("participant.reconnecting", 1, {**_PARTICIPANT, "cause": str, "windowMs": int}),
    Schema("participant.resumed", 1, {**_PARTICIPANT, "outageMs": int}),
    Schema("participant.transport_failed", 1, {"participant": str, "transport": str}),
    Schema("track.published", 1, {**_TRACK, "participantId": str, "kind": str,
                                   "source": str, "muted": bool}, {"layers": list}),
    Schema("track.unpublished", 1, dict(_TRACK)),
    Schema("track.muted", 1, {**_TRACK, "muted": bool}),
    Schema("track.layers", 1, {**_TRACK, "active": list}),
    Schema("subscription.paused", 1, dict(_SUBSCRIPTION)),
    Schema("subscription.resumed", 1, dict(_SUBSCRIPTION)),
    Schema("poll.created", 1, {"participant": str, "pollId": str, "kind": str,
                               "question": str, "options": list, "anonymous": bool,
                               "allowChange": bool, "open": bool,
                               "closesAtMs": (int, float, type(None)),
                               "comprehension": bool}),
    Schema("poll.answered", 1, {"pollId": str, "changed": bool, "latencyMs": int},
           {"participant": str, "correct": bool}),
    Schema("poll.closed", 1, {"pollId": str, "reason": str, "responses": int}),
    Schema("poll.results_published", 1, {"pollId": str}),
    Schema("hand.raised", 1, {"participant": str, "position": int}),
    Schema("hand.lowered", 1, {"participant": str, "by": str, "reason": str,
                               "raisedMs": int}),
    Schema("chat.message", 1, {"participant": str, "messageId": str, "chars": int}),
    Schema("chat.deleted", 1, {"messageId": str, "author": str, "by": str}),
    Schema("reaction.sent", 1, {"participant": str, "reaction": str}),
    Schema("whiteboard.update", 1, {"participant": str, "updates": int, "bytes": int}),
    Schema("whiteboard.cleared", 1, {"participant": str}),
    Schema("whiteboard.locked", 1, {"participant": str, "locked": bool}),
    Schema("session.report", 1, {"room": str, "startMs": int, "endMs": int,
                                 "durationMs": int, "polls": int, "participants": list,
                                 "flags": list}, {"file": str}),
    Schema("session.flag", 1, {"identity": str, "flag": str, "detail": str}),
    Schema("recording.started", 1, {"recording": str, "locations": list}),
    Schema("recording.track_started", 1, {"recording": str, "participant": str,
                                          "track": str, "kind": str, "file": str}),
    Schema("recording.track_stopped", 1, {"recording": str, "track": str, "durationMs": int,
                                          "packetsIn": int, "packetsWritten": int,
                                          "dropped": dict}),
    Schema("recording.completed", 1, dict(_RECORDING_END)),
    Schema("recording.failed", 1, {**_RECORDING_END, "problems": list}),
    Schema("transcript.started", 1, {"participant": str, "track": str, "stream": str,
                                     "engine": str}),
    Schema("transcript.line", 1, {"participant": str, "track": str, "startMs": int,
                                  "endMs": int, "words": int}),
    Schema("transcript.failed", 1, {"participant": str, "track": str, "detail": str}),
    Schema("transcript.completed", 1, {"lines": int, "speakers": int, "files": list}),
    Schema("summary.drafted", 1, {"keyPoints": int, "questions": int, "polls": int,
                                  "file": str}),
    Schema("summary.edited", 1, {"revision": int, "by": str}),
    Schema("summary.approved", 1, {"revision": int, "by": str, "summary": dict}),
    Schema("recording.alarm", 1, {"reason": str, "detail": str}, dict(_ALARM_WHERE)),
    Schema("recording.alarm_cleared", 1, {"reason": str, "detail": str}, dict(_ALARM_WHERE)),
    # the scheduler bridge (docs/scheduling.md); the room is the lesson's room (its id)
    Schema("lesson.booked", 1, {**_LESSON, "title": str, "start": str, "end": str,
                                "instructor": str, "students": int}),
    Schema("lesson.updated", 1, {**_LESSON, "fields": list}),
    Schema("lesson.rescheduled", 1, {**_LESSON, "start": str, "end": str,
                                     "previousStart": str, "previousEnd": str}),
    Schema("lesson.instructor_substituted", 1, {**_LESSON, "instructor": str,
                                                "previous": str}),
    Schema("lesson.cancelled", 1, {**_LESSON, "reason": str}),
    Schema("lesson.provisioned", 1, {**_LESSON, "recordingPolicy": str,
                                     "maxParticipants": int, "reconnectWindowS": (int, float)}),
    Schema("lesson.started", 1, {**_LESSON, "by": str}),
    Schema("lesson.ended", 1, {**_LESSON, "status": str, "reason": str}),
    Schema("lesson.reminder", 1, {**_LESSON, "offsetS": int, "start": str, "title": str,
                                  "people": list}),
    Schema("exception.raised", 1, {**_EXCEPTION, "evidence": dict}),
    Schema("exception.acknowledged", 1, {**_EXCEPTION, "by": str, "note": str}),
    Schema("exception.resolved", 1, {**_EXCEPTION, "by": str, "note": str}),
    Schema("notification.sent", 1, dict(_NOTIFICATION)),
    Schema("notification.failed", 1, {**_NOTIFICATION, "error": str, "attempts": int,
                                      "final": bool}),
)}


def version(type_: str) -> int:
    """The schema version of ``type_`` (0 for an undeclared type)."""
    s = SCHEMAS.get(type_)
    return s.version if s is not None else 0


def validate(type_: str, data: dict[str, Any]) -> None:
    """Raise :class:`SchemaError` unless ``data`` matches the schema of ``type_``."""
    schema = SCHEMAS.get(type_)
    if schema is None:
        raise SchemaError(f"event type {type_!r} is not declared in events.schemas")
    for name, kind in schema.required.items():
        if name not in data:
            raise SchemaError(f"{type_}: field {name!r} is missing")
        _check(type_, name, data[name], kind)
    for name, value in data.items():
        if name in schema.required:
            continue
        kind_or_none = schema.optional.get(name)
        if kind_or_none is None:
            raise SchemaError(f"{type_}: field {name!r} is not in its schema")
        _check(type_, name, value, kind_or_none)


def _check(type_: str, name: str, value: Any, kind: Kind) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # bool is an int in Python
        raise SchemaError(f"{type_}: field {name!r} must be {kind}, not a boolean")
    if not isinstance(value, kinds):
        raise SchemaError(f"{type_}: field {name!r} must be {kind}, not "
                          f"{type(value).__name__}")
