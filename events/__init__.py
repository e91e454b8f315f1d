"""Structured events: envelope, in-process bus (sinks come with issue #6)."""

from .bus import Event, EventBus

__all__ = ["Event", "EventBus"]
