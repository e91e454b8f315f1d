"""The subscriber negotiation's state machine: its table, and what any sequence of inputs
can and cannot make it do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.errors import InvalidState
from sfu.offer_state import (
    MAX_ANSWER_RETRIES,
    TRANSITIONS,
    Action,
    Event,
    OfferState,
    State,
)


def test_every_pair_outside_the_table_is_refused() -> None:
    for state in State:
        for event in Event:
            machine = OfferState()
            machine.state = state
            if (state, event) in TRANSITIONS:
                assert machine._move(event) is TRANSITIONS[(state, event)]
            else:
                with pytest.raises(InvalidState):
                    machine._move(event)
                assert machine.state is state  # a refused input changes nothing


def test_one_offer_at_a_time_and_changes_while_offered_are_offered_next() -> None:
    m = OfferState()
    assert m.change() is Action.START_OFFER
    first = m.generation
    assert m.change() is Action.NONE  # while gathering: in the same offer
    assert m.offer_sent(first)
    assert m.change() is Action.NONE and m.pending_change  # outstanding: next offer
    assert not m.offer_sent(first)  # sent once
    assert m.answer_ok() is Action.START_OFFER and m.state is State.GATHERING
    assert m.generation == first + 1
    assert m.offer_sent(m.generation)
    assert m.answer_ok() is Action.NONE and m.state is State.IDLE


def test_an_answer_without_an_outstanding_offer_is_refused() -> None:
    m = OfferState()
    with pytest.raises(InvalidState, match="no subscriber offer is outstanding"):
        m.expect_answer()
    m.change()
    with pytest.raises(InvalidState):
        m.expect_answer()  # still gathering: nothing was sent


def test_unusable_answers_are_retried_a_bounded_number_of_times() -> None:
    m = OfferState()
    m.change()
    offers = 1
    while True:
        assert m.offer_sent(m.generation)
        if m.answer_bad() is not Action.START_OFFER:
            break
        offers += 1
    assert offers == 1 + MAX_ANSWER_RETRIES and m.state is State.IDLE
    assert m.change() is Action.START_OFFER  # a later change offers again
    assert m.offer_sent(m.generation) and m.answer_ok() is Action.NONE
    assert m.failed_answers == 0


def test_a_reset_voids_the_offer_being_prepared() -> None:
    m = OfferState()
    m.change()
    stale = m.generation
    m.reset()  # a new transport while gathering
    assert m.change() is Action.START_OFFER
    assert not m.offer_sent(stale)  # the old gathering must not send
    m.gather_failed(stale)  # nor end the new one
    assert m.state is State.GATHERING and m.offer_sent(m.generation)


INPUTS = st.lists(st.sampled_from(
    ["change", "sent", "sent_stale", "failed", "answer_ok", "answer_bad", "reset"]),
    max_size=60)


@given(INPUTS)
def test_any_sequence_keeps_the_machine_consistent(inputs: list[str]) -> None:
    """Whatever happens: only an IDLE machine starts an offer, a started offer moves the
    generation on, an offer is sent at most once per generation, and a refused input
    leaves the state as it was."""
    m = OfferState()
    sent: set[int] = set()
    previous_generation = m.generation
    for name in inputs:
        before = m.state
        try:
            if name == "change":
                action = m.change()
                assert (action is Action.START_OFFER) == (before is State.IDLE)
            elif name in ("sent", "sent_stale"):
                gen = m.generation - (name == "sent_stale")
                ok = m.offer_sent(gen)
                assert ok == (before is State.GATHERING and name == "sent")
                if ok:
                    assert gen not in sent
                    sent.add(gen)
            elif name == "failed":
                m.gather_failed(m.generation)
            elif name == "answer_ok":
                m.expect_answer()
                m.answer_ok()
            elif name == "answer_bad":
                m.expect_answer()
                m.answer_bad()
            else:
                m.reset()
        except InvalidState:
            assert m.state is before
        assert m.generation >= previous_generation
        previous_generation = m.generation
        assert m.state in State
        if m.state is State.IDLE:
            assert not m.pending_change
