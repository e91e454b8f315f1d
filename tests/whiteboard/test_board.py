"""The whiteboard core (sans-IO) against pycrdt clients speaking the Yjs wire protocol:
sync and late joiners, permissions, locking and clearing, awareness, snapshots, events, and
every kind of bad frame refused with the board unchanged; plus a property test that random
concurrent edits delivered in random order converge."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from classroom.errors import NotAllowed
from whiteboard import protocol
from whiteboard.board import EVENT_INTERVAL_MS, Board, ReadOnly, UpdateTooLarge
from whiteboard.protocol import AwarenessEntry, ProtocolError


class Client:
    """A Yjs peer: a pycrdt document that talks to the board only through frames."""

    def __init__(self, who: str, role: str = "student") -> None:
        self.who, self.role = who, role
        self.doc: Doc[Any] = Doc()
        self.items = self.doc.get("items", type=Array)

    def sync(self, board: Board, now: float = 0.0) -> None:
        out = board.receive(self.who, self.role,
                            protocol.sync_message(protocol.STEP1, self.doc.get_state()), now)
        step2, step1 = out.reply
        self.apply(step2)
        state = protocol.parse(step1).payload  # the board asks what we have
        board.receive(self.who, self.role, protocol.sync_message(
            protocol.STEP2, self.doc.get_update(state)), now)

    def draw(self, kind: str = "pen", **fields: Any) -> bytes:
        """Add an item; returns the update frame for the board."""
        before = self.doc.get_state()
        self.items.append(Map({"kind": kind, "by": self.who, **fields}))
        return protocol.sync_message(protocol.UPDATE, self.doc.get_update(before))

    def erase(self, index: int) -> bytes:
        before = self.doc.get_state()
        del self.items[index]
        return protocol.sync_message(protocol.UPDATE, self.doc.get_update(before))

    def apply(self, frame: bytes) -> None:
        self.doc.apply_update(protocol.parse(frame).payload)

    def content(self) -> str:
        return canonical(self.items.to_py())


class Events(list[tuple[str, dict[str, Any]]]):
    def __call__(self, type_: str, data: dict[str, Any]) -> None:
        self.append((type_, data))


def canonical(items: list[Any]) -> str:
    """The items in order, each map's keys sorted (maps have no order of their own)."""
    return json.dumps(items, sort_keys=True)


def board_content(board: Board) -> str:
    return canonical(board.doc.get("items", type=Array).to_py())


def test_two_clients_and_a_late_joiner_converge() -> None:
    board = Board("r", Events())
    ann, bob = Client("ann"), Client("bob")
    ann.sync(board)
    bob.sync(board)
    out = board.receive("ann", "student", ann.draw("pen", points=[1, 2, 3, 4]), 0.0)
    assert out.reply == [] and len(out.others) == 1
    bob.apply(out.others[0])
    for frame in board.receive("bob", "student", bob.draw("rect", x=1, w=5), 1.0).others:
        ann.apply(frame)
    assert ann.content() == bob.content() == board_content(board)
    assert len(ann.items) == 2
    carl = Client("carl", "observer")
    carl.sync(board)  # a late joiner (read-only) gets the whole board from its step 1
    assert carl.content() == board_content(board)


def test_observers_and_a_locked_board_are_read_only() -> None:
    ev = Events()
    board = Board("r", ev)
    obs, ann, teacher = Client("obs", "observer"), Client("ann"), Client("t", "instructor")
    with pytest.raises(ReadOnly) as refused:
        board.receive("obs", "observer", obs.draw(), 0.0)
    assert refused.value.code == "permission_denied"
    assert board_content(board) == "[]"
    assert board.receive("obs", "observer", protocol.sync_message(
        protocol.STEP2, obs.doc.get_update()), 0.0).others == []  # dropped, silently
    assert board_content(board) == "[]"
    with pytest.raises(NotAllowed):
        board.lock("ann", "student", True)
    board.lock("t", "instructor", True)
    with pytest.raises(ReadOnly, match="locked"):
        board.receive("ann", "student", ann.draw(), 0.0)
    board.receive("t", "instructor", teacher.draw("text", text="Today: fractions"), 0.0)
    board.lock("t", "instructor", False)
    ann = Client("ann")  # a refused client starts again from the board (its local change
    ann.sync(board)  # was never applied: later updates would depend on it)
    board.receive("ann", "student", ann.draw(), 0.0)
    assert len(board.doc.get("items", type=Array)) == 2
    assert [d for t, d in ev if t == "whiteboard.locked"] == [
        {"participant": "t", "locked": True}, {"participant": "t", "locked": False}]


def test_the_instructor_clears_the_board_for_everyone() -> None:
    board = Board("r", Events())
    ann, bob = Client("ann"), Client("bob")
    for c in (ann, bob):
        c.sync(board)
    for _ in range(3):
        bob.apply(board.receive("ann", "student", ann.draw(), 0.0).others[0])
    with pytest.raises(NotAllowed):
        board.clear("ann", "student")
    frame = board.clear("t", "instructor")
    for c in (ann, bob):
        c.apply(frame)
    assert ann.content() == bob.content() == board_content(board) == "[]"


@pytest.mark.parametrize("frame", [
    b"", b"\x05", b"\x00", b"\x00\x07\x00", b"\x00\x02", b"\x00\x02\x05abc",  # truncated
    b"\x00\x02\x01ab",  # trailing bytes
    b"\x00\x02\xff\xff\xff\xff\xff\xff\x01",  # a length that never ends
    protocol.sync_message(protocol.UPDATE, b"\x01\x02\x03garbage"),  # not an update
    protocol.sync_message(protocol.STEP1, b"\xff\xff"),  # not a state vector
    b"\x01\x01\x01", b"\x03\x00",
    protocol.awareness_message(b"\x01\x05\x01\x03{x}"),  # state not JSON
    protocol.awareness_message(b"\x01\x05\x01\x02[]"),  # state not an object
])
def test_bad_frames_are_refused_and_the_board_is_unchanged(frame: bytes) -> None:
    board = Board("r", Events())
    ann = Client("ann")
    board.receive("ann", "student", ann.draw(), 0.0)
    before = board.snapshot()
    with pytest.raises(ProtocolError) as refused:
        board.receive("ann", "student", frame, 1.0)
    assert refused.value.code == "bad_whiteboard_message"
    assert board.snapshot() == before


def test_an_oversized_update_is_refused() -> None:
    board = Board("r", Events(), max_update_bytes=1000)
    ann = Client("ann")
    with pytest.raises(UpdateTooLarge) as refused:
        board.receive("ann", "student", ann.draw("text", text="x" * 2000), 0.0)
    assert refused.value.code == "whiteboard_update_too_large"
    assert board_content(board) == "[]"


def test_a_snapshot_restores_the_board() -> None:
    board = Board("r", Events())
    ann = Client("ann")
    for i in range(5):
        board.receive("ann", "student", ann.draw("pen", points=[i]), 0.0)
    board.receive("ann", "student", ann.erase(2), 0.0)
    restored = Board("r", Events(), snapshot=board.snapshot())
    assert board_content(restored) == board_content(board) == ann.content()
    late = Client("late")
    late.sync(restored)
    assert late.content() == ann.content()


def test_update_events_are_counted_and_spaced_out() -> None:
    ev = Events()
    board = Board("r", ev)
    ann = Client("ann")
    for i in range(30):  # 20 updates a second for 1.5 s
        board.receive("ann", "student", ann.draw("pen", points=[i]), i * 50.0)
    board.receive("ann", "student", ann.draw(), EVENT_INTERVAL_MS + 10.0)
    board.receive("ann", "student", ann.draw(), EVENT_INTERVAL_MS + 20.0)
    board.left("ann", EVENT_INTERVAL_MS + 30.0)
    updates = [d for t, d in ev if t == "whiteboard.update"]
    assert [d["updates"] for d in updates] == [1, 30, 1]  # first, after 10 s, at leaving
    assert all(d["participant"] == "ann" and d["bytes"] > 0 for d in updates)


def test_awareness_is_relayed_and_owned() -> None:
    board = Board("r", Events())

    def aware(*entries: AwarenessEntry) -> bytes:
        return protocol.awareness_message(protocol.encode_awareness(list(entries)))

    out = board.receive("ann", "student", aware(AwarenessEntry(11, 1, '{"cursor":[1,2]}')), 0)
    assert out.others == [aware(AwarenessEntry(11, 1, '{"cursor":[1,2]}'))]
    # bob cannot move ann's cursor (client 11); his own goes through
    out = board.receive("bob", "student", aware(AwarenessEntry(11, 2, '{"cursor":[9,9]}'),
                                                AwarenessEntry(22, 1, '{"cursor":[0,0]}')), 0)
    assert out.others == [aware(AwarenessEntry(22, 1, '{"cursor":[0,0]}'))]
    query = board.receive("carl", "observer", bytes([protocol.QUERY_AWARENESS]), 0)
    entries = protocol.parse_awareness(protocol.parse(query.reply[0]).payload)
    assert {e.client_id for e in entries} == {11, 22}
    # ann leaves: her cursor is removed for everyone
    gone = board.left("ann", 0)
    assert protocol.parse_awareness(protocol.parse(gone[0]).payload) == [
        AwarenessEntry(11, 2, "null")]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.lists(st.tuples(st.integers(0, 3), st.booleans()),
                                   min_size=1, max_size=25), st.randoms())
def test_random_concurrent_edits_converge(n: int, edits: list[tuple[int, bool]],
                                          rnd: random.Random) -> None:
    """N clients edit concurrently (offline from each other); their updates reach the
    board in a random order, duplicated at times; what the board relays reaches every
    other client: all equal, with no sync afterwards (a relay that dropped an erase, or an
    update that had to wait for another, would show)."""
    board = Board("r", Events())
    clients = [Client(f"c{i}") for i in range(n)]
    pending: list[tuple[str, bytes]] = []
    for who, erase in edits:
        c = clients[who % n]
        if erase and len(c.items):
            pending.append((c.who, c.erase(rnd.randrange(len(c.items)))))
        else:
            pending.append((c.who, c.draw("pen", points=[rnd.random()])))
    rnd.shuffle(pending)
    pending += rnd.sample(pending, k=len(pending) // 3)  # some arrive twice
    for who, frame in pending:
        out = board.receive(who, "student", frame, 0.0)
        for c in clients:
            if c.who != who:
                for relayed in out.others:
                    c.apply(relayed)
    assert all(c.content() == board_content(board) for c in clients)
