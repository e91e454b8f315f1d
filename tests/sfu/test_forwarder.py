"""Sans-IO tests for ingress sequence tracking + per-subscription rewriting.

The forwarding path is ``SequenceTracker.update`` (once per received packet) followed by
``RtpForwarder.on_packet`` (once per subscriber); ``Path`` below strings them together the
way ``sfu.track.PublishedTrack.on_rtp`` does.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfu.forwarder import RtpForwarder
from sfu.retransmit import RetransmitCache
from sfu.sequence import SequenceTracker

VIDEO = 90000


class Path:
    """Publisher source(s) -> ingress trackers -> one subscriber's forwarder."""

    def __init__(self, first_seq: int = 1000, first_ts: int = 5000) -> None:
        self.trackers: dict[int, SequenceTracker] = {}
        self.cache: dict[int, RetransmitCache] = {}
        self.fwd = RtpForwarder(out_ssrc=0xABCD, clock_rate=VIDEO, first_seq=first_seq,
                                first_ts=first_ts)

    def send(self, ssrc: int, seq: int, ts: int, now_ms: float) -> tuple[int, int] | None:
        tracker = self.trackers.setdefault(ssrc, SequenceTracker(VIDEO))
        ext = tracker.update(seq, ts, now_ms)
        if ext < 0:
            return None
        self.cache.setdefault(ssrc, RetransmitCache()).put(ext, f"{ssrc}:{seq}".encode())
        return self.fwd.on_packet(ssrc, ext, ts, now_ms)

    def nack(self, out_seq: int) -> bytes | None:
        found = self.fwd.lookup(out_seq)
        if found is None:
            return None
        return self.cache[found[0]].get(found[1])


def test_first_packet_lands_on_chosen_start_values() -> None:
    p = Path(first_seq=777, first_ts=123456)
    assert p.send(1, 40000, 9_000_000, 0) == (777, 123456)
    assert p.send(1, 40001, 9_003_000, 33) == (778, 126456)


def test_sequence_wraps_at_65535_on_input() -> None:
    p = Path(first_seq=10)
    out = [p.send(1, s & 0xFFFF, 3000 * i, i * 33) for i, s in enumerate(range(65533, 65540))]
    assert [o[0] for o in out if o] == [10, 11, 12, 13, 14, 15, 16]


def test_sequence_wraps_at_65535_on_output() -> None:
    p = Path(first_seq=65534)
    out = [p.send(1, 100 + i, 3000 * i, i * 33) for i in range(4)]
    assert [o[0] for o in out if o] == [65534, 65535, 0, 1]


def test_timestamp_wraps_at_2_32() -> None:
    p = Path(first_ts=0xFFFFFFFF - 2999)
    a = p.send(1, 1, 0xFFFFF000, 0)
    b = p.send(1, 2, (0xFFFFF000 + 3000) & 0xFFFFFFFF, 33)
    c = p.send(1, 3, (0xFFFFF000 + 6000) & 0xFFFFFFFF, 66)
    assert a and b and c
    assert a[1] == 0xFFFFFFFF - 2999
    assert b[1] == 0  # wrapped
    assert c[1] == 3000


def test_ssrc_change_keeps_output_continuous() -> None:
    p = Path(first_seq=500, first_ts=1000)
    for i in range(5):
        p.send(1, 20000 + i, 777_000 + 3000 * i, i * 33.3)
    last_seq, last_ts = p.send(1, 20005, 777_000 + 15000, 166.6) or (0, 0)
    # publisher reconnects: new SSRC, new random seq/ts bases, 100 ms later
    first_new = p.send(2, 3, 42, 266.6)
    assert first_new is not None
    assert first_new[0] == (last_seq + 1) & 0xFFFF
    # timestamp advanced by the wall-clock gap (100 ms at 90 kHz), not jumped to 42
    assert first_new[1] == (last_ts + 9000) & 0xFFFFFFFF
    nxt = p.send(2, 4, 42 + 3000, 300)
    assert nxt == ((first_new[0] + 1) & 0xFFFF, (first_new[1] + 3000) & 0xFFFFFFFF)
    assert p.fwd.switches == 1


def test_late_packets_of_the_old_ssrc_are_dropped_after_a_switch() -> None:
    p = Path()
    for i in range(3):
        p.send(1, i, 3000 * i, i)
    p.send(2, 100, 0, 10)
    assert p.send(1, 3, 9000, 11) is not None  # a switch back is a new segment
    assert p.fwd.switches == 2


def test_out_of_order_packets_keep_their_relative_sequence() -> None:
    p = Path(first_seq=100)
    order = [0, 1, 3, 2, 4, 6, 5]
    out = {s: p.send(1, 5000 + s, 3000 * s, s) for s in order}
    assert {s: o[0] for s, o in out.items() if o} == {s: 100 + s for s in order}


def test_duplicates_are_dropped_once_seen_even_if_late() -> None:
    p = Path()
    assert p.send(1, 10, 0, 0) is not None
    assert p.send(1, 11, 3000, 1) is not None
    assert p.send(1, 11, 3000, 2) is None  # immediate duplicate
    assert p.send(1, 13, 9000, 3) is not None
    assert p.send(1, 12, 6000, 4) is not None  # late but new
    assert p.send(1, 12, 6000, 5) is None  # late duplicate
    assert p.send(1, 10, 0, 6) is None  # old duplicate
    assert p.trackers[1].duplicates == 3


def test_packets_older_than_the_reorder_window_are_dropped() -> None:
    p = Path()
    for s in range(0, 1000):
        p.send(1, s, 0, s)
    assert p.send(1, 100, 0, 2000) is None
    assert p.trackers[1].late == 1


def test_loss_is_reported_for_nack() -> None:
    t = SequenceTracker(VIDEO)
    t.update(65530, 0, 0)
    t.update(65533, 0, 1)
    assert list(t.missing) == [65531, 65532]
    t.update(2, 0, 2)  # wraps: 65534, 65535, 0, 1 missing
    assert [e & 0xFFFF for e in t.missing] == [65534, 65535, 0, 1]
    t.update(3, 0, 3)
    assert list(t.missing) == []
    assert t.lost == 6


def test_nack_lookup_after_wrap_finds_the_source_packet() -> None:
    p = Path(first_seq=65500)
    for i in range(100):  # output wraps at i=36
        p.send(1, 30000 + i, 3000 * i, i)
    assert p.nack((65500 + 40) & 0xFFFF) == b"1:30040"
    assert p.nack(65510) == b"1:30010"
    assert p.nack((65500 + 99) & 0xFFFF) == b"1:30099"
    assert p.nack((65500 + 100) & 0xFFFF) is None  # not sent yet


def test_nack_lookup_across_ssrc_change_and_input_wrap() -> None:
    p = Path(first_seq=0)
    for i in range(10):
        p.send(1, 65530 + i & 0xFFFF, 3000 * i, i)  # input wraps
    for i in range(10):
        p.send(2, 100 + i, 3000 * i, 100 + i)
    assert p.nack(7) == b"1:1"  # 65530+7 wrapped to 1
    assert p.nack(12) == b"2:102"


def test_nack_lookup_misses_when_evicted_from_cache() -> None:
    p = Path(first_seq=0)
    for i in range(3000):
        p.send(1, i, 3000 * i, i)
    assert p.nack(10) is None
    assert p.nack(2999) == b"1:2999"


def test_resync_after_pause_leaves_no_gap() -> None:
    p = Path(first_seq=0, first_ts=0)
    for i in range(5):
        p.send(1, i, 3000 * i, 33 * i)
    p.fwd.resync()  # e.g. track muted for a while: packets 5..99 not forwarded
    for i in range(5, 100):
        p.trackers[1].update(i, 3000 * i, 33 * i)
    out = p.send(1, 100, 300000, 3300)
    assert out is not None and out[0] == 5
    assert out[1] == 12000 + (3300 - 132) * 90


@given(st.lists(st.integers(min_value=0, max_value=0xFFFF), min_size=1, max_size=300),
       st.integers(min_value=0, max_value=0xFFFF), st.integers(min_value=0, max_value=0xFFFF))
def test_in_order_stream_maps_to_contiguous_output(_noise: list[int], start: int,
                                                    out_start: int) -> None:
    p = Path(first_seq=out_start)
    n = len(_noise)
    outs = [p.send(7, (start + i) & 0xFFFF, (i * 3000) & 0xFFFFFFFF, i) for i in range(n)]
    assert [o[0] for o in outs if o] == [(out_start + i) & 0xFFFF for i in range(n)]


@given(st.permutations(list(range(40))), st.integers(min_value=0, max_value=0xFFFF))
def test_any_reordering_within_window_forwards_each_packet_once(order: list[int],
                                                                 start: int) -> None:
    p = Path(first_seq=0)
    p.send(1, start, 0, 0)
    got = []
    for k in order + order[:5]:  # with some duplicates
        out = p.send(1, (start + 1 + k) & 0xFFFF, 0, 1)
        if out:
            got.append(out[0])
    assert sorted(got) == list(range(1, 41))


def test_source_restarting_its_numbering_resyncs_after_two_packets() -> None:
    t = SequenceTracker(VIDEO)
    for s in range(100, 110):
        t.update(s, 0, s)
    # the sender jumps to a far-away sequence space (not a wrap, not reordering)
    assert t.update(40000, 0, 200) == -1  # first: could be a stray, dropped
    ext = t.update(40001, 0, 201)  # second in a row: accepted, numbering continues
    assert ext > 109 and t.restarts == 1
    assert t.update(40002, 0, 202) == ext + 1
    assert t.lost < 5
