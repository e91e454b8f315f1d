"""Errors of the classroom tools: each carries the protocol error code the client gets
(docs/protocol.md); none of them ends the session."""

from __future__ import annotations

#: roles that moderate: create polls, lower others' hands, delete others' messages
MODERATORS = ("instructor",)


class ClassroomError(Exception):
    """A refused classroom action; ``code`` is the protocol error code."""

    code = "bad_request"


class NotAllowed(ClassroomError):
    code = "permission_denied"


class RateLimited(ClassroomError):
    code = "rate_limited"


def require_moderator(role: str, what: str, error: type[ClassroomError] = NotAllowed) -> None:
    if role not in MODERATORS:
        raise error(f"only the instructor can {what}")


class RateLimit:
    """At most ``count`` actions per ``window_ms`` per participant (sans-IO: times given)."""

    def __init__(self, count: int, window_ms: float) -> None:
        self.count = count
        self.window_ms = window_ms
        self._recent: dict[str, list[float]] = {}

    def take(self, who: str, now_ms: float, what: str) -> None:
        """Count one action, or raise :class:`RateLimited`."""
        recent = [t for t in self._recent.get(who, ()) if now_ms - t < self.window_ms]
        if len(recent) >= self.count:
            self._recent[who] = recent
            raise RateLimited(f"at most {self.count} {what} per {self.window_ms / 1000:g} s")
        recent.append(now_ms)
        self._recent[who] = recent

    def forget(self, who: str) -> None:
        self._recent.pop(who, None)
