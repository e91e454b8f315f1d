"""When each lesson's room is made and closed, and when its reminders go (sans-IO).

The planner holds the lessons near enough to act on (put in by the bridge from the
database and from every booking change) and answers, for a time ``now``, what is due:
:class:`Provision` (``provision_lead_s`` before the start), :class:`Remind` (at each
reminder offset before the start; when several are due at once, as after downtime, only
the nearest is sent and the others are skipped), :class:`Close` (``close_after_s`` after the
end). Each action is given once; the database keeps them once across restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Provision:
    lesson_id: str


@dataclass(frozen=True, slots=True)
class Remind:
    lesson_id: str
    offset_s: float
    #: earlier offsets that were missed (now past) and are not sent
    skipped: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Close:
    lesson_id: str


Action = Provision | Remind | Close


@dataclass
class _Planned:
    lesson_id: str
    start_ts: float
    end_ts: float
    provisioned: bool = False
    closed: bool = False
    reminders_done: set[float] = field(default_factory=set)


class Planner:
    def __init__(self, lead_s: float, close_after_s: float,
                 reminder_offsets_s: Iterable[float] = ()) -> None:
        self.lead_s = lead_s
        self.close_after_s = close_after_s
        self.offsets = sorted({o for o in reminder_offsets_s if o > 0}, reverse=True)
        self._lessons: dict[str, _Planned] = {}

    def __len__(self) -> int:
        return len(self._lessons)

    def __contains__(self, lesson_id: object) -> bool:
        return lesson_id in self._lessons

    def put(self, lesson_id: str, start_ts: float, end_ts: float, *,
            reminders_done: Iterable[float] = (), provisioned: bool | None = None) -> None:
        """A lesson to plan, or new times for one (a reschedule: reminders are due again
        for the new time unless ``reminders_done`` says otherwise)."""
        old = self._lessons.get(lesson_id)
        planned = _Planned(lesson_id, start_ts, end_ts, reminders_done=set(reminders_done))
        if old is not None:
            planned.provisioned = old.provisioned
            planned.closed = old.closed
            if (old.start_ts, old.end_ts) == (start_ts, end_ts):
                planned.reminders_done |= old.reminders_done
        if provisioned is not None:
            planned.provisioned = provisioned
        self._lessons[lesson_id] = planned

    def remove(self, lesson_id: str) -> None:
        self._lessons.pop(lesson_id, None)

    def close_at(self, lesson_id: str) -> float | None:
        p = self._lessons.get(lesson_id)
        return p.end_ts + self.close_after_s if p is not None else None

    def due(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for p in list(self._lessons.values()):
            close_at = p.end_ts + self.close_after_s
            if not p.provisioned and p.start_ts - self.lead_s <= now < close_at:
                p.provisioned = True
                actions.append(Provision(p.lesson_id))
            if now < p.start_ts:
                due = [o for o in self.offsets
                       if o not in p.reminders_done and p.start_ts - o <= now]
                if due:
                    nearest = min(due)
                    p.reminders_done.update(due)
                    actions.append(Remind(p.lesson_id, nearest,
                                          tuple(o for o in due if o != nearest)))
            else:  # started: a reminder not sent by now is of no use
                p.reminders_done.update(self.offsets)
            if not p.closed and now >= close_at:
                p.closed = True
                actions.append(Close(p.lesson_id))
                del self._lessons[p.lesson_id]
        return actions

    def get_timer(self) -> float | None:
        """The next time :meth:`due` has something to give (None: nothing planned)."""
        best: float | None = None
        for p in self._lessons.values():
            times = [p.end_ts + self.close_after_s]
            if not p.provisioned:
                times.append(p.start_ts - self.lead_s)
            times.extend(p.start_ts - o for o in self.offsets if o not in p.reminders_done)
            t = min(times)
            if best is None or t < best:
                best = t
        return best
