"""Raised hands, chat and reactions (sans-IO, fake clock): the queue order, who may lower
or delete what, the limits, and events that say who did what but never carry chat text."""

from __future__ import annotations

from typing import Any

import pytest

from classroom import chat as chat_mod
from classroom.chat import BadMessage, Chat, UnknownMessage
from classroom.errors import NotAllowed, RateLimited
from classroom.hands import RAISES_PER_MINUTE, Hands


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type_: str, data: dict[str, Any]) -> None:
        self.seen.append((type_, data))

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [d for t, d in self.seen if t == type_]


def test_hands_queue_in_the_order_they_went_up() -> None:
    ev = Events()
    hands = Hands(ev)
    assert hands.raise_hand("ann", 1000.0)
    assert hands.raise_hand("bob", 2000.0)
    assert not hands.raise_hand("ann", 3000.0)  # already up: no change, no event
    assert [h["participantId"] for h in hands.queue()] == ["ann", "bob"]
    assert ev.of("hand.raised") == [{"participant": "ann", "position": 1},
                                    {"participant": "bob", "position": 2}]
    assert hands.lower("ann", "ann", "student", 4000.0)  # her own
    assert not hands.lower("ann", "ann", "student", 4500.0)
    assert hands.raise_hand("ann", 5000.0)  # back up: at the end of the queue
    assert [h["participantId"] for h in hands.queue()] == ["bob", "ann"]
    assert ev.of("hand.lowered")[0] == {"participant": "ann", "by": "ann",
                                        "reason": "lowered", "raisedMs": 3000}


def test_only_the_instructor_lowers_other_hands() -> None:
    ev = Events()
    hands = Hands(ev)
    hands.raise_hand("ann", 0.0)
    hands.raise_hand("bob", 0.0)
    with pytest.raises(NotAllowed) as refused:
        hands.lower("ann", "bob", "student", 10.0)
    assert refused.value.code == "permission_denied"
    with pytest.raises(NotAllowed):
        hands.lower_all("bob", "student", 10.0)
    assert len(hands.raised) == 2 and not ev.of("hand.lowered")
    assert hands.lower("ann", "teacher", "instructor", 60_000.0)
    assert ev.of("hand.lowered")[-1] == {"participant": "ann", "by": "teacher",
                                         "reason": "lowered", "raisedMs": 60_000}
    hands.raise_hand("cat", 61_000.0)
    assert hands.lower_all("teacher", "instructor", 62_000.0) == ["bob", "cat"]
    assert hands.queue() == []
    hands.raise_hand("dan", 63_000.0)
    assert hands.left("dan", 64_000.0)  # leaving lowers the hand
    assert ev.of("hand.lowered")[-1]["reason"] == "left"


def test_a_flapping_hand_is_rate_limited() -> None:
    hands = Hands(Events())
    for i in range(RAISES_PER_MINUTE):
        hands.raise_hand("ann", float(i))
        hands.lower("ann", "ann", "student", float(i))
    with pytest.raises(RateLimited) as refused:
        hands.raise_hand("ann", 100.0)
    assert refused.value.code == "rate_limited" and not hands.raised
    assert hands.raise_hand("ann", 60_001.0)  # a minute later it goes up again


def test_chat_history_deletion_and_permissions() -> None:
    ev = Events()
    chat = Chat(ev)
    first = chat.send("ann", "  hello?  ", 1000.0)
    second = chat.send("bob", "hi", 2000.0)
    assert first.text == "hello?"
    assert [m["messageId"] for m in chat.recent()] == [first.id, second.id]
    assert ev.of("chat.message") == [
        {"participant": "ann", "messageId": first.id, "chars": 6},
        {"participant": "bob", "messageId": second.id, "chars": 2}]
    assert all("text" not in d for _, d in ev.seen)  # the text never leaves the room
    with pytest.raises(NotAllowed):
        chat.delete(first.id, "bob", "student")  # not his
    chat.delete(first.id, "teacher", "instructor")
    chat.delete(second.id, "bob", "student")  # his own
    assert chat.recent() == []
    assert ev.of("chat.deleted") == [
        {"messageId": first.id, "author": "ann", "by": "teacher"},
        {"messageId": second.id, "author": "bob", "by": "bob"}]
    with pytest.raises(UnknownMessage) as missing:
        chat.delete(first.id, "teacher", "instructor")
    assert missing.value.code == "unknown_message"


@pytest.mark.parametrize("text", ["", "   ", None, 42, "x" * (chat_mod.MAX_CHARS + 1)])
def test_bad_chat_text_is_refused_and_nothing_is_kept(text: object) -> None:
    ev = Events()
    chat = Chat(ev)
    with pytest.raises(BadMessage) as refused:
        chat.send("ann", text, 0.0)
    assert refused.value.code == "bad_chat"
    assert chat.recent() == [] and ev.seen == []


def test_chat_keeps_the_last_messages_and_limits_the_rate() -> None:
    chat = Chat(Events())
    now = 0.0
    for i in range(chat_mod.HISTORY + 5):
        now += 1001.0  # under 10 messages per 10 s
        chat.send("ann", f"m{i}", now)
    recent = chat.recent()
    assert len(recent) == chat_mod.HISTORY and recent[-1]["text"] == f"m{chat_mod.HISTORY + 4}"
    for _ in range(chat_mod.MESSAGES_PER_10S):
        chat.send("bob", "spam", now)
    with pytest.raises(RateLimited):
        chat.send("bob", "spam", now + 5000)
    chat.send("cat", "still fine", now)  # one participant's limit is not another's


def test_reactions_are_named_counted_and_limited() -> None:
    ev = Events()
    chat = Chat(ev)
    assert chat.react("ann", "clap", 0.0) == "clap"
    for bad in ("<script>", "", None, "CLAP"):
        with pytest.raises(BadMessage):
            chat.react("ann", bad, 0.0)
    for _ in range(chat_mod.REACTIONS_PER_10S - 1):
        chat.react("ann", "heart", 1.0)
    with pytest.raises(RateLimited):
        chat.react("ann", "heart", 2.0)
    assert len(ev.of("reaction.sent")) == chat_mod.REACTIONS_PER_10S
    assert chat.recent() == []  # reactions are not stored
