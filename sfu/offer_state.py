"""The subscriber connection's negotiation as an explicit state machine (sans-IO).

The server is the only offerer on the subscriber connection. Its offers go through:

    IDLE --change--> GATHERING --offer_sent--> OFFERED --answer_ok--> IDLE
                     GATHERING --gather_failed--> IDLE
                                 OFFERED --answer_bad--> IDLE (offered again while retries
                                                         are left)
    any state --reset--> IDLE (a new transport: an offer on the old one is void)

A change while an offer is being prepared is in that offer (the slots are read after
gathering); a change while one is outstanding is remembered (``pending_change``) and
offered again after the answer. Each offer that starts gathering gets a generation
number; a reset moves it on, so a gathering started for a replaced transport knows it is
void. :class:`OfferState` returns what to do (:class:`Action`); the subscriber side acts.
"""

from __future__ import annotations

import enum

from .errors import InvalidState

#: subscriber offers re-sent after unusable answers before giving up
MAX_ANSWER_RETRIES = 2


class State(enum.Enum):
    IDLE = "idle"  # nothing outstanding (stable)
    GATHERING = "gathering"  # an offer is being prepared (ICE candidates gathered)
    OFFERED = "offered"  # an offer was sent; its answer is awaited


class Event(enum.Enum):
    CHANGE = "change"  # what the connection carries changed: an offer is needed
    OFFER_SENT = "offer_sent"
    GATHER_FAILED = "gather_failed"
    ANSWER_OK = "answer_ok"
    ANSWER_BAD = "answer_bad"
    RESET = "reset"


class Action(enum.Enum):
    NONE = "none"
    START_OFFER = "start_offer"  # start preparing an offer (gather, then offer_sent)


#: (state, event) -> next state; anything else is an invalid transition
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.IDLE, Event.CHANGE): State.GATHERING,
    (State.GATHERING, Event.CHANGE): State.GATHERING,
    (State.OFFERED, Event.CHANGE): State.OFFERED,
    (State.GATHERING, Event.OFFER_SENT): State.OFFERED,
    (State.GATHERING, Event.GATHER_FAILED): State.IDLE,
    (State.OFFERED, Event.ANSWER_OK): State.IDLE,
    (State.OFFERED, Event.ANSWER_BAD): State.IDLE,
    (State.IDLE, Event.RESET): State.IDLE,
    (State.GATHERING, Event.RESET): State.IDLE,
    (State.OFFERED, Event.RESET): State.IDLE,
}


class OfferState:
    def __init__(self) -> None:
        self.state = State.IDLE
        #: a change arrived while an offer was outstanding: offer again after its answer
        self.pending_change = False
        #: of the offer being prepared or outstanding (moves on at each start and reset)
        self.generation = 0
        #: unusable answers in a row
        self.failed_answers = 0

    def _move(self, event: Event) -> State:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidState(f"subscriber negotiation: {event.value} while "
                               f"{self.state.value}") from None
        return self.state

    def change(self) -> Action:
        """What the connection carries changed."""
        before = self.state
        self._move(Event.CHANGE)
        if before is State.IDLE:
            self.generation += 1
            return Action.START_OFFER
        if before is State.OFFERED:
            self.pending_change = True
        return Action.NONE

    def offer_sent(self, generation: int) -> bool:
        """The offer of ``generation`` is ready to send; False if it is void (reset since)
        and must not be sent."""
        if generation != self.generation or self.state is not State.GATHERING:
            return False
        self._move(Event.OFFER_SENT)
        self.pending_change = False  # what changed while gathering is in this offer
        return True

    def gather_failed(self, generation: int) -> None:
        if generation == self.generation and self.state is State.GATHERING:
            self._move(Event.GATHER_FAILED)

    def expect_answer(self) -> None:
        """An answer arrived: valid only while an offer is outstanding."""
        if self.state is not State.OFFERED:
            raise InvalidState("no subscriber offer is outstanding")

    def answer_ok(self) -> Action:
        self._move(Event.ANSWER_OK)
        self.failed_answers = 0
        if self.pending_change:
            self.pending_change = False
            return self.change()
        return Action.NONE

    def answer_bad(self) -> Action:
        """An unusable answer: offered again a couple of times (a client that keeps
        failing would otherwise loop forever)."""
        self._move(Event.ANSWER_BAD)
        self.failed_answers += 1
        self.pending_change = False
        if self.failed_answers <= MAX_ANSWER_RETRIES:
            return self.change()
        return Action.NONE

    def reset(self) -> None:
        """A new transport: whatever was being offered is void."""
        self._move(Event.RESET)
        self.generation += 1
        self.pending_change = False
