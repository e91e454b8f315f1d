"""Chat and reactions of one room, sans-IO.

Chat: everyone in the room may write (text of at most ``MAX_CHARS`` characters, rate
limited); the author deletes its own messages and the instructor deletes anyone's; the last
``HISTORY`` messages are kept for participants who join later. Events carry who wrote and
how long the message was, never its text (a room's chat stays in the room; the session
report counts messages).

Reactions: a short list of named reactions (``REACTIONS``), broadcast and counted, never
stored; rate limited.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ClassroomError, RateLimit, require_moderator

MAX_CHARS = 2000
HISTORY = 200
MESSAGES_PER_10S = 10
REACTIONS = ("thumbs_up", "clap", "laugh", "surprised", "heart", "party", "question",
             "slower", "faster")
REACTIONS_PER_10S = 10


class UnknownMessage(ClassroomError):
    code = "unknown_message"


class BadMessage(ClassroomError):
    code = "bad_chat"


@dataclass
class ChatMessage:
    id: str
    sender: str
    text: str
    at_ms: float
    name: str = ""  # the sender's display name (shown after they left, too)

    def describe(self) -> dict[str, Any]:
        return {"messageId": self.id, "from": self.sender, "name": self.name,
                "text": self.text, "atMs": round(self.at_ms)}


class Chat:
    def __init__(self, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self._emit = emit
        self.history: deque[ChatMessage] = deque(maxlen=HISTORY)
        self._ids = itertools.count(1)
        self._messages = RateLimit(MESSAGES_PER_10S, 10_000.0)
        self._reactions = RateLimit(REACTIONS_PER_10S, 10_000.0)

    def send(self, sender: str, text: Any, now_ms: float, name: str = "") -> ChatMessage:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
            raise BadMessage(f"text must be a non-empty string of at most {MAX_CHARS} "
                             "characters")
        self._messages.take(sender, now_ms, "chat messages")
        msg = ChatMessage(f"CM{next(self._ids)}", sender, text.strip(), now_ms, name)
        self.history.append(msg)
        self._emit("chat.message", {"participant": sender, "messageId": msg.id,
                                    "chars": len(msg.text)})
        return msg

    def delete(self, message_id: Any, by: str, role: str) -> ChatMessage:
        msg = next((m for m in self.history if m.id == message_id), None)
        if msg is None:
            raise UnknownMessage(f"no message {str(message_id)[:40]!r}")
        if msg.sender != by:
            require_moderator(role, "delete another participant's message")
        self.history.remove(msg)
        self._emit("chat.deleted", {"messageId": msg.id, "author": msg.sender, "by": by})
        return msg

    def react(self, sender: str, reaction: Any, now_ms: float) -> str:
        if reaction not in REACTIONS:
            raise BadMessage(f"reaction must be one of {', '.join(REACTIONS)}")
        self._reactions.take(sender, now_ms, "reactions")
        self._emit("reaction.sent", {"participant": sender, "reaction": reaction})
        return str(reaction)

    def recent(self) -> list[dict[str, Any]]:
        return [m.describe() for m in self.history]

    def left(self, who: str) -> None:
        self._messages.forget(who)
        self._reactions.forget(who)
