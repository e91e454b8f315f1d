"""Valid events (they match events.schemas) for the sink tests: the n-th of a few kinds."""

from __future__ import annotations

from typing import Any


def joined(n: int) -> tuple[str, dict[str, Any]]:
    return "participant.joined", {"participant": f"p{n}", "identity": f"user{n}-é",
                                  "role": "student"}


def muted(n: int) -> tuple[str, dict[str, Any]]:
    return "track.muted", {"participant": f"p{n}", "id": f"TR{n}", "muted": bool(n % 2)}


def sample(n: int) -> tuple[str, dict[str, Any]]:
    return joined(n) if n % 2 else muted(n)


def emit(bus: Any, n: int, room: str = "r", kind: str = "") -> Any:
    """Emit the n-th sample event (``kind``: "joined", "muted", or alternating) in ``room``."""
    type_, data = {"joined": joined, "muted": muted}.get(kind, sample)(n)
    return bus.emit(type_, room, data)
