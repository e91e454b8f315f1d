"""Whether a participant is here, reconnecting inside its grace window, or gone (sans-IO).

A participant whose signalling connection (or media) is lost is not removed at once: it
enters ``reconnecting`` and keeps its tracks and subscriptions for ``window_ms``. A resume
inside the window (the client reconnects with its resume token) makes it ``active`` again;
the window running out makes it ``gone`` (the room then removes it with reason
``timeout``). Time is passed in; the room's adapter arms a timer at ``deadline_ms``.

    presence.lost(now, "signalling")   -> True: tell the room "reconnecting", arm the timer
    presence.resume(now)               -> outage in ms, or ResumeRefused (window over)
    presence.expire(now)               -> True: the window ran out, remove the participant
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final, Literal

from .errors import ResumeRefused

State = Literal["active", "reconnecting", "gone"]
ACTIVE: Final = "active"
RECONNECTING: Final = "reconnecting"
GONE: Final = "gone"

#: why a participant went reconnecting
CAUSES = ("signalling", "media")


def new_resume_token() -> str:
    return secrets.token_urlsafe(24)


def token_matches(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


class Presence:
    """One participant's presence state machine."""

    __slots__ = ("window_ms", "state", "since_ms", "cause", "reconnects", "resumes")

    def __init__(self, window_ms: float) -> None:
        if window_ms < 0:
            raise ValueError("the grace window cannot be negative")
        self.window_ms = window_ms
        self.state: State = ACTIVE
        #: when the current outage started (None while active)
        self.since_ms: float | None = None
        self.cause: str | None = None
        self.reconnects = 0
        self.resumes = 0

    @property
    def deadline_ms(self) -> float | None:
        """When the grace window of the current outage runs out."""
        if self.state != RECONNECTING or self.since_ms is None:
            return None
        return self.since_ms + self.window_ms

    def lost(self, now_ms: float, cause: str, since_ms: float | None = None) -> bool:
        """The connection is gone; True if this starts an outage (not already in one).
        ``since_ms``: when it was last known alive, if earlier than ``now_ms`` (a silent
        connection is noticed late): the window counts from then."""
        if cause not in CAUSES:
            raise ValueError(f"cause must be one of {CAUSES}")
        if self.state != ACTIVE:
            return False
        self.state = RECONNECTING
        self.since_ms = now_ms if since_ms is None else min(since_ms, now_ms)
        self.cause = cause
        self.reconnects += 1
        return True

    def resume(self, now_ms: float) -> float:
        """The participant is back; returns how long it was away (0 if it never was seen
        gone: a client may notice a dead socket before the server does).

        Raises ResumeRefused once the window has run out, even if the timer that removes the
        participant has not fired yet.
        """
        if self.state == GONE:
            raise ResumeRefused("the session has ended; join again")
        if self.state == ACTIVE:
            return 0.0
        deadline = self.deadline_ms
        assert deadline is not None and self.since_ms is not None
        if now_ms >= deadline:
            self.state = GONE
            raise ResumeRefused(
                f"the reconnection window ({self.window_ms / 1000:g} s) has run out; join again")
        outage = now_ms - self.since_ms
        self.state = ACTIVE
        self.since_ms = None
        self.cause = None
        self.resumes += 1
        return outage

    def expire(self, now_ms: float) -> bool:
        """True when the window has run out (the participant must now be removed)."""
        deadline = self.deadline_ms
        if deadline is None or now_ms < deadline:
            return False
        self.state = GONE
        return True

    def end(self) -> None:
        """Left for good (leave, removal, replacement): no resume any more."""
        self.state = GONE
