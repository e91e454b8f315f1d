"""A classroom's state as bytes, and back, sans-IO (docs/cluster.md, "Room state"): what
another node needs to take a live room over. The room's settings, the chat history, the
raised hands, the polls with their answers and the running recording (which the next
node continues); the whiteboard has its own (its Yjs document,
whiteboard.board.Board.snapshot).

``export`` is cheap enough to run every half second per room (a few KiB of JSON); the
cluster writes it only when it changed. ``restore`` fills a freshly made classroom and
tolerates what a newer or older node wrote (unknown fields are ignored, missing ones
default), never raising on a malformed entry: a take-over with part of the state beats
none.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from .chat import ChatMessage
from .polls import Answer, Poll

if TYPE_CHECKING:
    from .room import Classroom

log = logging.getLogger(__name__)
VERSION = 1


def settings(room: Classroom) -> dict[str, Any]:
    """What the room was created with (the new node creates it the same way)."""
    media = room.media
    return {"maxParticipants": media.max_participants,
            "reconnectWindowS": media.reconnect_window_s,
            "audioSpeakers": media.speech_policy.slots,
            "recordingPolicy": room.recording_policy,
            "transcriptionPolicy": room.transcription_policy}


def export(room: Classroom) -> bytes:
    chat, polls = room.chat, room.polls
    return json.dumps({
        "v": VERSION,
        "settings": settings(room),
        "chat": [[m.id, m.sender, m.text, m.at_ms, m.name] for m in chat.history],
        "hands": [[pid, at] for pid, at in room.hands.raised.items()],
        "polls": [_poll(p) for p in polls.polls.values()],
        "recording": {"recordingId": room.recording.id,
                      "startedAt": getattr(room.recording, "started_at", None)}
        if room.recording is not None else None,
    }, separators=(",", ":")).encode()


def _poll(p: Poll) -> dict[str, Any]:
    return {"id": p.id, "kind": p.kind, "question": p.question, "options": list(p.options),
            "anonymous": p.anonymous, "allowChange": p.allow_change,
            "correct": sorted(p.correct) if p.correct is not None else None,
            "createdMs": p.created_ms, "closesMs": p.closes_ms, "createdBy": p.created_by,
            "open": p.open, "published": p.published,
            "answers": {who: [list(a.choice), a.text, a.at_ms, a.correct]
                        for who, a in p.answers.items()}}


def read_settings(data: bytes) -> dict[str, Any]:
    """The settings of an exported state ({} if unreadable)."""
    return _section(data, "settings")


def read_recording(data: bytes) -> dict[str, Any]:
    """The recording that was running when the state was exported ({} if none)."""
    return _section(data, "recording")


def _section(data: bytes, name: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except ValueError:
        return {}
    got = raw.get(name) if isinstance(raw, dict) else None
    return got if isinstance(got, dict) else {}


def restore(room: Classroom, data: bytes) -> dict[str, int]:
    """Fill ``room`` (just created, empty) from ``data``; how many of each were restored."""
    try:
        raw = json.loads(data)
    except ValueError:
        log.warning("room %s: unreadable replicated state; starting empty", room.id)
        return {}
    if not isinstance(raw, dict):
        return {}
    counts = {"chat": 0, "hands": 0, "polls": 0}
    chat = room.chat
    for entry in raw.get("chat", []):
        try:
            mid, sender, text, at_ms, name = entry
            chat.history.append(ChatMessage(str(mid), str(sender), str(text), float(at_ms),
                                            str(name)))
            counts["chat"] += 1
        except (TypeError, ValueError):
            continue
    chat._ids = itertools.count(_next_number(m.id for m in chat.history))
    for entry in raw.get("hands", []):
        try:
            pid, at = entry
            room.hands.raised[str(pid)] = float(at)
            counts["hands"] += 1
        except (TypeError, ValueError):
            continue
    polls = room.polls
    for entry in raw.get("polls", []):
        try:
            poll = Poll(
                id=str(entry["id"]), kind=str(entry["kind"]), question=str(entry["question"]),
                options=tuple(str(o) for o in entry["options"]),
                anonymous=bool(entry["anonymous"]), allow_change=bool(entry["allowChange"]),
                correct=frozenset(int(i) for i in entry["correct"])
                if entry.get("correct") is not None else None,
                created_ms=float(entry["createdMs"]),
                closes_ms=float(entry["closesMs"]) if entry.get("closesMs") is not None
                else None,
                created_by=str(entry["createdBy"]), open=bool(entry["open"]),
                published=bool(entry["published"]),
                answers={str(who): Answer(tuple(int(i) for i in a[0]), str(a[1]), float(a[2]),
                                          None if a[3] is None else bool(a[3]))
                         for who, a in dict(entry.get("answers", {})).items()})
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("room %s: a replicated poll was unreadable (%s)", room.id, exc)
            continue
        polls.polls[poll.id] = poll
        counts["polls"] += 1
    polls._ids = itertools.count(_next_number(polls.polls))
    return counts


def _next_number(ids: Any) -> int:
    """The counter value after the largest of ids like ``CM12`` / ``PL3``."""
    numbers = [int(i[2:]) for i in ids if str(i)[2:].isdigit()]
    return max(numbers, default=0) + 1
