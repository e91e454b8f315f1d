"""The exception queue's vocabulary (sans-IO): what can be raised, and the states an
exception goes through: open → acknowledged → resolved (or open → resolved), each with who
and a note (docs/scheduling.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import BadTransition

KINDS = (
    "instructor_no_show",    # the instructor had not joined by start + instructor_grace_s
    "student_no_show",       # a booked student never joined a lesson that took place
    "late_join",             # a booked participant's first join came after start + late_join_s
    "early_end",             # the room was empty at the booked end, and since early_end_s before
    "lesson_never_started",  # nobody booked joined before the lesson's room closed
    "recording_not_running",  # policy "always", and no recording running at the check
    "recording_failed",      # the recording ended failed (recording.failed)
    "recording_alarm",       # a recorder alarm (sink error, stalled track, disk low, ...)
    "student_flagged",       # the session report flagged a booked student
)


class ExceptionState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


TRANSITIONS: frozenset[tuple[ExceptionState, ExceptionState]] = frozenset({
    (ExceptionState.OPEN, ExceptionState.ACKNOWLEDGED),
    (ExceptionState.OPEN, ExceptionState.RESOLVED),
    (ExceptionState.ACKNOWLEDGED, ExceptionState.RESOLVED),
})


def transition(current: str, to: ExceptionState) -> ExceptionState:
    if (ExceptionState(current), to) not in TRANSITIONS:
        raise BadTransition(f"an {current} exception cannot become {to.value}")
    return to


@dataclass(frozen=True, slots=True)
class Raised:
    """An exception to put in the queue: raised once per :attr:`dedup_key`."""

    kind: str
    room: str
    lesson_id: str | None
    person: str
    ts: float
    evidence: dict[str, Any] = field(default_factory=dict)
    #: what makes two exceptions of one kind and person different (an alarm's reason and
    #: sink, a flag's name)
    detail: str = ""

    @property
    def dedup_key(self) -> str:
        return f"{self.lesson_id or self.room}|{self.kind}|{self.person}|{self.detail}"[:400]
