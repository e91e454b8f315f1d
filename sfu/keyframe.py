"""Keyframe request throttle: at most one PLI/FIR towards a publisher per interval per track."""

from __future__ import annotations

DEFAULT_INTERVAL_MS = 500.0


class KeyframeThrottle:
    __slots__ = ("interval_ms", "_last_ms", "requested", "suppressed")

    def __init__(self, interval_ms: float = DEFAULT_INTERVAL_MS) -> None:
        self.interval_ms = interval_ms
        self._last_ms: float | None = None
        self.requested = 0
        self.suppressed = 0

    def should_send(self, now_ms: float) -> bool:
        """Called for every keyframe request from a subscriber; True when one goes upstream."""
        if self._last_ms is not None and now_ms - self._last_ms < self.interval_ms:
            self.suppressed += 1
            return False
        self._last_ms = now_ms
        self.requested += 1
        return True
