"""Grace window state machine (sfu.presence) on a fake clock."""

from __future__ import annotations

import pytest

from sfu.errors import ResumeRefused
from sfu.presence import ACTIVE, GONE, RECONNECTING, Presence, new_resume_token, token_matches

WINDOW = 20_000.0


def test_loss_opens_a_window_and_a_resume_inside_it_restores_the_participant() -> None:
    p = Presence(WINDOW)
    assert p.state == ACTIVE and p.deadline_ms is None
    assert p.lost(1_000, "signalling")
    assert p.state == RECONNECTING and p.cause == "signalling"
    assert p.deadline_ms == 21_000
    assert not p.lost(2_000, "media")  # already reconnecting: the first outage counts
    assert p.deadline_ms == 21_000
    assert not p.expire(20_999)
    assert p.resume(9_000) == 8_000  # away for 8 s
    assert p.state == ACTIVE and p.deadline_ms is None and p.cause is None
    assert not p.expire(30_000)  # a resumed participant never expires
    assert (p.reconnects, p.resumes) == (1, 1)


def test_the_window_runs_out_and_the_participant_is_gone() -> None:
    p = Presence(WINDOW)
    p.lost(0, "media")
    assert not p.expire(19_999)
    assert p.expire(20_000)
    assert p.state == GONE
    with pytest.raises(ResumeRefused, match="join again"):
        p.resume(20_001)
    assert not p.lost(20_002, "signalling")  # gone stays gone


def test_a_resume_after_the_deadline_is_refused_even_before_the_timer_fires() -> None:
    p = Presence(WINDOW)
    p.lost(0, "signalling")
    with pytest.raises(ResumeRefused, match=r"window \(20 s\) has run out"):
        p.resume(20_000)
    assert p.state == GONE


def test_a_second_outage_gets_a_fresh_window() -> None:
    p = Presence(WINDOW)
    p.lost(0, "signalling")
    p.resume(5_000)
    assert p.lost(50_000, "signalling")
    assert p.deadline_ms == 70_000
    assert p.resume(69_000) == 19_000
    assert (p.reconnects, p.resumes) == (2, 2)


def test_resume_while_still_active_is_harmless() -> None:
    """A client can notice its dead socket before the server does."""
    p = Presence(WINDOW)
    assert p.resume(1_000) == 0.0
    assert p.state == ACTIVE and p.resumes == 0


def test_ended_participants_cannot_resume() -> None:
    p = Presence(WINDOW)
    p.end()
    with pytest.raises(ResumeRefused, match="ended"):
        p.resume(0)


def test_zero_window_means_no_grace() -> None:
    p = Presence(0)
    p.lost(100, "signalling")
    assert p.expire(100)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Presence(-1)
    with pytest.raises(ValueError):
        Presence(WINDOW).lost(0, "cosmic rays")


def test_resume_tokens() -> None:
    a, b = new_resume_token(), new_resume_token()
    assert a != b and len(a) >= 32
    assert token_matches(a, a)
    assert not token_matches(a, b)
    assert not token_matches(a, None)
    assert not token_matches(a, 12345)


def test_a_silent_connection_noticed_late_counts_from_when_it_was_last_heard() -> None:
    p = Presence(WINDOW)
    assert p.lost(7_000, "signalling", since_ms=1_000)
    assert p.deadline_ms == 21_000
    assert p.resume(8_000) == 7_000
    p.lost(30_000, "signalling", since_ms=40_000)  # never in the future
    assert p.deadline_ms == 50_000
