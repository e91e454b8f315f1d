"""Polls of one room, sans-IO: the instructor asks, students answer, results on demand.

Fed the participants' actions and a clock (milliseconds); emits events through a callback
(``emit(type, data)``, the room's bus). No sockets, no timers: :meth:`Polls.tick` closes
timed polls when the caller's clock passes their deadline.

* kinds: ``single`` (one option), ``multiple`` (any non-empty set of options), ``text``
  (free text up to ``MAX_TEXT`` characters);
* optional: ``anonymous`` (no event, result or export ever carries who answered what),
  ``durationMs`` (closes by itself), ``correct`` (option indexes: a comprehension check,
  each answer is marked right or wrong), ``allowChange`` (an answer may be replaced
  until the poll closes);
* only the instructor (role ``instructor``, or a moderator) creates, closes and publishes;
  a student answers each poll once (or changes it, if allowed) while it is open;
* results: live aggregate for the instructor at any time; for students only once the
  instructor published them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import MODERATORS, ClassroomError, require_moderator

KINDS = ("single", "multiple", "text")
MAX_OPTIONS = 20
MAX_OPTION_CHARS = 200
MAX_QUESTION_CHARS = 500
MAX_TEXT = 1000
MAX_OPEN_POLLS = 10
MAX_DURATION_MS = 3_600_000


class PollError(ClassroomError):
    """A refused poll action; ``code`` is the protocol error code (docs/protocol.md)."""

    code = "bad_poll"


class UnknownPoll(PollError):
    code = "unknown_poll"


class PollClosed(PollError):
    code = "poll_closed"


class AlreadyAnswered(PollError):
    code = "already_answered"


class NotAllowed(PollError):
    code = "permission_denied"


@dataclass
class Answer:
    choice: tuple[int, ...]  # option indexes (empty for a text poll)
    text: str
    at_ms: float
    correct: bool | None


@dataclass
class Poll:
    id: str
    kind: str
    question: str
    options: tuple[str, ...]
    anonymous: bool
    allow_change: bool
    correct: frozenset[int] | None
    created_ms: float
    closes_ms: float | None
    created_by: str
    open: bool = True
    published: bool = False
    answers: dict[str, Answer] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What every participant sees of the poll itself (never the correct answer)."""
        return {"pollId": self.id, "kind": self.kind, "question": self.question,
                "options": list(self.options), "anonymous": self.anonymous,
                "allowChange": self.allow_change, "open": self.open,
                "closesAtMs": self.closes_ms, "comprehension": self.correct is not None}


class Polls:
    def __init__(self, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self._emit = emit
        self.polls: dict[str, Poll] = {}
        self._ids = itertools.count(1)

    # -- instructor actions -----------------------------------------------------------

    def create(self, by: str, role: str, spec: dict[str, Any], now_ms: float) -> Poll:
        _moderator(role, "create a poll")
        if sum(p.open for p in self.polls.values()) >= MAX_OPEN_POLLS:
            raise PollError(f"at most {MAX_OPEN_POLLS} polls open at once")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise PollError(f"kind must be one of {', '.join(KINDS)}")
        question = _text(spec.get("question"), "question", MAX_QUESTION_CHARS)
        raw_options = spec.get("options", [])
        if kind == "text":
            if raw_options:
                raise PollError("a text poll has no options")
            options: tuple[str, ...] = ()
        else:
            if not isinstance(raw_options, list) or not 2 <= len(raw_options) <= MAX_OPTIONS:
                raise PollError(f"options must be a list of 2 to {MAX_OPTIONS} strings")
            options = tuple(_text(o, "option", MAX_OPTION_CHARS) for o in raw_options)
        correct = spec.get("correct")
        correct_set: set[int] = set()
        if correct is not None:
            if kind == "text":
                raise PollError("a text poll has no correct option")
            correct_set = _choice(correct, len(options), "correct")
            if kind == "single" and len(correct_set) != 1:
                raise PollError("a single-choice poll has exactly one correct option")
        duration = spec.get("durationMs")
        if duration is not None and (isinstance(duration, bool) or not isinstance(
                duration, int) or not 1000 <= duration <= MAX_DURATION_MS):
            raise PollError(f"durationMs must be 1000..{MAX_DURATION_MS}")
        anonymous, allow_change = spec.get("anonymous", False), spec.get("allowChange", False)
        if not isinstance(anonymous, bool) or not isinstance(allow_change, bool):
            raise PollError("anonymous and allowChange must be booleans")
        poll = Poll(id=f"PL{next(self._ids)}", kind=kind, question=question, options=options,
                    anonymous=anonymous, allow_change=allow_change,
                    correct=frozenset(correct_set) if correct is not None else None,
                    created_ms=now_ms,
                    closes_ms=now_ms + duration if duration is not None else None,
                    created_by=by)
        self.polls[poll.id] = poll
        self._emit("poll.created", {"participant": by, **poll.describe()})
        return poll

    def close(self, by: str, role: str, poll_id: str, now_ms: float) -> Poll:
        _moderator(role, "close a poll")
        poll = self._get(poll_id)
        if not poll.open:
            raise PollClosed(f"poll {poll_id} is already closed")
        self._close(poll, "instructor")
        return poll

    def publish(self, by: str, role: str, poll_id: str) -> dict[str, Any]:
        """Make the results visible to everyone; returns them (what to send to the room)."""
        _moderator(role, "publish poll results")
        poll = self._get(poll_id)
        poll.published = True
        self._emit("poll.results_published", {"pollId": poll.id})
        return self.results(poll_id, role, for_everyone=True)

    # -- student actions --------------------------------------------------------------

    def answer(self, by: str, poll_id: str, value: Any, now_ms: float) -> Answer:
        poll = self._get(poll_id)
        self.tick(now_ms)
        if not poll.open:
            raise PollClosed(f"poll {poll_id} is closed")
        previous = poll.answers.get(by)
        if previous is not None and not poll.allow_change:
            raise AlreadyAnswered(f"poll {poll_id} was already answered")
        if poll.kind == "text":
            answer = Answer((), _text(value, "answer", MAX_TEXT), now_ms, None)
        else:
            choice = _choice(value, len(poll.options), "answer")
            if poll.kind == "single" and len(choice) != 1:
                raise PollError("a single-choice poll takes exactly one option")
            correct = None if poll.correct is None else set(choice) == poll.correct
            answer = Answer(tuple(sorted(choice)), "", now_ms, correct)
        poll.answers[by] = answer
        data: dict[str, Any] = {"pollId": poll.id, "changed": previous is not None,
                                "latencyMs": round(now_ms - poll.created_ms)}
        if not poll.anonymous:  # an anonymous poll's events never say who answered what
            data["participant"] = by
            if answer.correct is not None:
                data["correct"] = answer.correct
        self._emit("poll.answered", data)
        return answer

    # -- time and results -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of the open timed polls (None: none)."""
        return min((p.closes_ms for p in self.polls.values()
                    if p.open and p.closes_ms is not None), default=None)

    def tick(self, now_ms: float) -> list[Poll]:
        """Close the timed polls whose deadline passed; returns them."""
        due = [p for p in self.polls.values()
               if p.open and p.closes_ms is not None and now_ms >= p.closes_ms]
        for poll in due:
            self._close(poll, "timer")
        return due

    def results(self, poll_id: str, role: str, *, for_everyone: bool = False
                ) -> dict[str, Any]:
        """The aggregate (counts per option, text answers, correct rate); who answered
        what only for the instructor of a named poll. Students see nothing before the
        instructor published the results."""
        poll = self._get(poll_id)
        moderator = role in MODERATORS and not for_everyone
        if not moderator and not poll.published:
            raise NotAllowed("the results of this poll are not published")
        answers = list(poll.answers.values())
        out: dict[str, Any] = {"pollId": poll.id, "open": poll.open,
                               "responses": len(answers)}
        if poll.kind == "text":
            out["texts"] = sorted(a.text for a in answers)  # sorted: no order to trace back
        else:
            counts = [0] * len(poll.options)
            for a in answers:
                for i in a.choice:
                    counts[i] += 1
            out["counts"] = counts
        if poll.correct is not None:
            out["correctRate"] = (sum(bool(a.correct) for a in answers) / len(answers)
                                  if answers else None)
            if not poll.open or moderator:
                out["correct"] = sorted(poll.correct)
        if moderator and not poll.anonymous:
            out["byParticipant"] = {pid: {"choice": list(a.choice), "text": a.text,
                                          "correct": a.correct}
                                    for pid, a in poll.answers.items()}
        return out

    def _close(self, poll: Poll, reason: str) -> None:
        poll.open = False
        self._emit("poll.closed", {"pollId": poll.id, "reason": reason,
                                   "responses": len(poll.answers)})

    def _get(self, poll_id: Any) -> Poll:
        poll = self.polls.get(poll_id) if isinstance(poll_id, str) else None
        if poll is None:
            raise UnknownPoll(f"no poll {str(poll_id)[:40]!r}")
        return poll


def _moderator(role: str, what: str) -> None:
    require_moderator(role, what, NotAllowed)


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise PollError(f"{what} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _choice(value: Any, n_options: int, what: str) -> set[int]:
    if (not isinstance(value, list) or not value
            or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_options
                   for i in value) or len(set(value)) != len(value)):
        raise PollError(f"{what} must be a non-empty list of distinct option indexes "
                        f"0..{n_options - 1}")
    return set(value)
