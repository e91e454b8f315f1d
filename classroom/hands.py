"""Raised hands of one room, sans-IO: a queue in the order hands went up.

A participant raises and lowers its own hand; the instructor lowers anyone's, or all.
Events through ``emit(type, data)``: ``hand.raised`` and ``hand.lowered`` (with who
lowered it and how long the hand was up, for the engagement report). Raising a raised
hand, or lowering a lowered one, changes nothing and emits nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import RateLimit, require_moderator

#: a participant raises its hand at most this often (a flapping client is refused)
RAISES_PER_MINUTE = 20


class Hands:
    def __init__(self, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self._emit = emit
        #: participant id -> when the hand went up (ms); insertion order is the queue
        self.raised: dict[str, float] = {}
        self._rate = RateLimit(RAISES_PER_MINUTE, 60_000.0)

    def queue(self) -> list[dict[str, Any]]:
        """The raised hands, first up first."""
        return [{"participantId": pid, "raisedAtMs": round(at)}
                for pid, at in self.raised.items()]

    def raise_hand(self, who: str, now_ms: float) -> bool:
        """True if the hand went up (False: it was already up)."""
        if who in self.raised:
            return False
        self._rate.take(who, now_ms, "hand raises")
        self.raised[who] = now_ms
        self._emit("hand.raised", {"participant": who, "position": len(self.raised)})
        return True

    def lower(self, who: str, by: str, role: str, now_ms: float,
              reason: str = "lowered") -> bool:
        """Lower ``who``'s hand (their own, or anyone's for the instructor); True if it was
        up."""
        if who != by:
            require_moderator(role, "lower another participant's hand")
        at = self.raised.pop(who, None)
        if at is None:
            return False
        self._emit("hand.lowered", {"participant": who, "by": by, "reason": reason,
                                    "raisedMs": round(now_ms - at)})
        return True

    def lower_all(self, by: str, role: str, now_ms: float) -> list[str]:
        """The instructor lowers every hand; returns whose."""
        require_moderator(role, "lower every hand")
        lowered = list(self.raised)
        for who in lowered:
            self.lower(who, by, role, now_ms)
        return lowered

    def left(self, who: str, now_ms: float) -> bool:
        """``who`` left the room: their hand goes down (True if it was up)."""
        self._rate.forget(who)
        return self.lower(who, who, "", now_ms, reason="left")
