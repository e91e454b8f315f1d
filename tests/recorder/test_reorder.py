"""The recorder's reorder buffer: sequence order back across wraps, a gap waited for and
then given up on (counted lost, the next packet flagged), late packets and repeats told
apart, and what is missing listed for NACKs."""

from __future__ import annotations

from recorder.reorder import Released, ReorderBuffer


def seqs(out: list[Released]) -> list[int]:
    return [r.ext_seq & 0xFFFF for r in out]


def test_in_order_across_the_wrap() -> None:
    buf = ReorderBuffer()
    got = []
    for i, seq in enumerate([65534, 65535, 0, 1]):
        got += buf.push(seq, bytes([seq & 0xFF]), i)
    assert seqs(got) == [65534, 65535, 0, 1] and not any(r.gap for r in got)


def test_a_gap_waits_then_fills() -> None:
    buf = ReorderBuffer(max_delay_ms=100)
    assert seqs(buf.push(10, b"a", 0)) == [10]
    assert buf.push(12, b"c", 1) == [] and buf.push(13, b"d", 2) == []
    assert buf.missing() == [11]
    out = buf.push(11, b"b", 50)
    assert seqs(out) == [11, 12, 13] and not any(r.gap for r in out)
    assert buf.lost == 0


def test_a_gap_is_given_up_after_the_wait_and_the_late_packet_counted() -> None:
    buf = ReorderBuffer(max_delay_ms=100)
    buf.push(1, b"a", 0)
    buf.push(3, b"c", 10)
    assert buf.poll(109) == []
    out = buf.poll(110)
    assert seqs(out) == [3] and out[0].gap
    assert buf.lost == 1
    assert buf.push(2, b"b", 120) == [] and buf.late == 1
    assert buf.push(3, b"c", 121) == [] and buf.duplicates == 1  # a repeat, not late


def test_too_many_waiting_gives_up_at_once() -> None:
    buf = ReorderBuffer(max_delay_ms=10_000, max_packets=4)
    buf.push(0, b"", 0)
    out = []
    for seq in range(2, 6):
        out += buf.push(seq, b"", 0)
    assert seqs(out) == [2, 3, 4, 5] and out[0].gap and buf.lost == 1


def test_flush_releases_everything_in_order() -> None:
    buf = ReorderBuffer()
    buf.push(100, b"", 0)
    buf.push(104, b"", 0)
    buf.push(102, b"", 0)
    out = buf.flush()
    assert seqs(out) == [102, 104] and out[0].gap and out[1].gap and buf.lost == 2


def test_nothing_in_nothing_out() -> None:
    buf = ReorderBuffer()
    assert buf.poll(1000) == [] and buf.flush() == [] and buf.missing() == []
