"""Structured events: envelope, in-process bus, the file event log (``events.filelog``,
read with ``python -m events``); NATS JetStream and webhook sinks come with issue #6."""

from .bus import Event, EventBus

__all__ = ["Event", "EventBus"]
