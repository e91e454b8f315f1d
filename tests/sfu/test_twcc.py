from __future__ import annotations

import struct

import pytest
from engines import COMPILED, fastpath
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu import rtcp
from sfu.twcc import (
    MAX_FEEDBACK_BYTES,
    MAX_PACKET_STATUS_COUNT,
    MAX_STATUSES_PER_PACKET,
    SendHistory,
    TwccError,
    TwccFeedback,
    TwccRecorder,
    parse_feedback,
)

#: every recorder test runs against both: the compiled one must behave as the Python one
RECORDERS = [TwccRecorder] + ([fastpath.CompiledTwccRecorder] if COMPILED else [])
recorders = pytest.mark.parametrize("make", RECORDERS, ids=lambda c: c.__name__)

QUANTUM_MS = 0.125 + 1e-6  # arrivals are rounded to the nearest 250 us


def parse_all(packets: list[bytes]) -> list[TwccFeedback]:
    """Parse built packets the way the transport does: RTCP walker, then the FCI."""
    out = []
    for pkt in packets:
        assert len(pkt) % 4 == 0 and len(pkt) <= MAX_FEEDBACK_BYTES
        (msg,) = rtcp.parse(pkt)
        assert (msg.pt, msg.fmt, msg.sender_ssrc, msg.media_ssrc) == (205, 15, 0xAA, 0xBB)
        out.append(parse_feedback(msg.fci))
    return out


def feedback_map(packets: list[bytes]) -> list[tuple[int, float | None]]:
    return [p for fb in parse_all(packets) for p in fb.packets]


def build(rec: TwccRecorder) -> list[bytes]:
    return rec.build_feedback(0xAA, 0xBB, 0.0)


# --- known byte strings ---------------------------------------------------------------


def test_parse_chrome_capture() -> None:
    # A feedback packet captured from Chrome, published as a test vector in pion/rtcp and
    # its Rust port webrtc-rs (transport_layer_cc_test "example6"). It has a 2-bit status
    # vector chunk [small x5, not received, large], a run-length chunk "48 x not received"
    # of which only 2 fall inside the status count of 9, and one byte of RTCP padding
    # (P bit set, last byte = 1).
    data = bytes.fromhex(
        "afcd00079b74f61f9371dcbc853c000963f916b3d55200309baa6aaa7b010901"
    )
    (msg,) = rtcp.parse(data)
    fb = parse_feedback(msg.fci)
    assert fb.base_seq == 34108
    assert fb.feedback_count == 179
    assert fb.reference_time_ms == 6551830 * 64
    ref = 6551830 * 64
    # deltas 0x9b 0xaa 0x6a 0xaa 0x7b (x 250 us), then large 0x0109
    expected: list[tuple[int, float | None]] = [
        (34108, ref + 38.75),
        (34109, ref + 38.75 + 42.5),
        (34110, ref + 38.75 + 42.5 + 26.5),
        (34111, ref + 38.75 + 42.5 + 26.5 + 42.5),
        (34112, ref + 38.75 + 42.5 + 26.5 + 42.5 + 30.75),
        (34113, None),
        (34114, ref + 38.75 + 42.5 + 26.5 + 42.5 + 30.75 + 66.25),
        (34115, None),
        (34116, None),
    ]
    assert fb.packets == expected


@recorders
def test_build_matches_known_bytes(make: type[TwccRecorder]) -> None:
    # pion/rtcp's TransportLayerCC marshal vector "example1" (libwebrtc layout): one packet,
    # seq 153, received 37 ms after reference time 4057090 (x 64 ms), feedback count 23,
    # run-length chunk "1 x small delta", delta 0x94, then RTCP padding of one byte.
    expected = bytes.fromhex("afcd0005fa17fa1743032fa0009900013de8021720019401")
    rec = make()
    for i in range(23):  # 23 earlier feedbacks, one packet each
        rec.on_packet(130 + i, 1000.0 + i)
        assert len(rec.build_feedback(1, 2, 0.0)) == 1
    rec.on_packet(153, 4057090 * 64 + 37.0)
    assert rec.build_feedback(4195875351, 1124282272, 0.0) == [expected]


def test_parse_one_bit_vector_and_wrap() -> None:
    # Hand-made from the draft's layout (section 3.1):
    #   base seq 65534, status count 14, reference time -1 (0xffffff = -64 ms), fb count 7,
    #   1-bit status vector 0b1_0_11010000000001 = 0xb401: received, received, lost,
    #   received, 9 x lost, received; small deltas 4, 255, 0, 1 (x 250 us), 2 padding bytes.
    fci = bytes.fromhex("fffe000effffff07" "b401" "04ff0001" "0000")
    fb = parse_feedback(fci)
    assert fb.reference_time_ms == -64.0
    assert fb.feedback_count == 7
    got = dict(fb.packets)
    assert list(got) == [65534, 65535, *range(12)]
    assert got[65534] == -63.0
    assert got[65535] == -63.0 + 63.75
    assert got[0] is None
    assert got[1] == 0.75
    assert all(got[s] is None for s in range(2, 11))
    assert got[11] == 1.0


def test_parse_run_length_large_and_negative_deltas() -> None:
    # run-length chunk 0b0_10_0000000000011: 3 x "large or negative delta"; deltas as int16:
    # +256 (64 ms), -16 (-4 ms), +32767 (8191.75 ms); reference time 2 x 64 ms.
    fci = bytes.fromhex("000a0003000002ff" "4003" "0100fff07fff")
    fb = parse_feedback(fci)
    assert fb.packets == [(10, 192.0), (11, 188.0), (12, 192.0 - 4.0 + 8191.75)]


def test_parse_empty_feedback() -> None:
    # webrtc-rs vector: all-zero FCI, status count 0
    assert parse_feedback(bytes(12)).packets == []


@pytest.mark.parametrize(
    "fci",
    [
        b"",
        bytes(7),  # shorter than the fixed fields
        bytes.fromhex("000a000300000200"),  # no chunks at all
        bytes.fromhex("000a000300000200" "40"),  # half a chunk
        bytes.fromhex("000a000300000200" "4003" "0100fff0"),  # third delta missing
        bytes.fromhex("000a000300000200" "2003" "0101"),  # third small delta missing
        bytes.fromhex("000a000300000200" "6003" "000000"),  # reserved symbol in a run
        bytes.fromhex("000a000300000200" "f000" "000000"),  # reserved symbol in a vector
        struct.pack("!HHI", 0, MAX_PACKET_STATUS_COUNT + 1, 0) + b"\x1f\xff" * 8,
    ],
)
def test_parse_rejects_malformed(fci: bytes) -> None:
    with pytest.raises(TwccError):
        parse_feedback(fci)


def test_reserved_symbol_beyond_status_count_is_ignored() -> None:
    # 2-bit vector whose unused trailing symbols are 0b11 (outside the status count)
    fci = bytes.fromhex("0001000100000000" "d7ff" "05" "00")
    assert parse_feedback(fci).packets == [(1, 1.25)]


# --- recorder round trips -------------------------------------------------------------


@recorders
def test_roundtrip_with_loss(make: type[TwccRecorder]) -> None:
    rec = make()
    arrivals = {100: 10.0, 101: 12.3, 104: 15.0, 105: 15.1, 110: 40.0}
    for seq, sent in arrivals.items():
        rec.on_packet(seq, sent)
    packets = build(rec)
    assert len(packets) == 1
    got = feedback_map(packets)
    assert [s for s, _ in got] == list(range(100, 111))
    for seq, t in got:
        if seq in arrivals:
            assert t is not None and abs(t - arrivals[seq]) <= QUANTUM_MS
        else:
            assert t is None
    assert build(rec) == []  # nothing new


@recorders
def test_next_feedback_reports_gap_since_last_one_as_lost(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(1, 0.0)
    build(rec)
    rec.on_packet(4, 30.0)
    (fb,) = parse_all(build(rec))
    assert fb.base_seq == 2
    assert fb.packets == [(2, None), (3, None), (4, 30.0)]


@recorders
def test_roundtrip_across_sequence_wrap(make: type[TwccRecorder]) -> None:
    rec = make()
    seqs = [65530, 65531, 65533, 65535, 0, 1, 3]
    for i, seq in enumerate(seqs):
        rec.on_packet(seq, 100.0 + 2.5 * i)
    got = dict(feedback_map(build(rec)))
    assert list(got) == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3]
    assert got[65532] is None and got[65534] is None and got[2] is None
    assert got[0] == 110.0 and got[3] == 115.0


@recorders
def test_reordered_before_feedback_gives_negative_delta(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(10, 50.0)
    rec.on_packet(12, 51.0)
    rec.on_packet(11, 49.5)  # late, and its arrival precedes its predecessor's
    rec.on_packet(9, 52.0)  # before the first feedback: the window widens backwards
    (fb,) = parse_all(build(rec))
    assert fb.packets == [(9, 52.0), (10, 50.0), (11, 49.5), (12, 51.0)]


@recorders
def test_reordered_after_feedback_is_ignored(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(10, 0.0)
    rec.on_packet(12, 1.0)
    build(rec)
    rec.on_packet(11, 2.0)  # already reported lost
    assert build(rec) == []
    assert rec.late == 1
    rec.on_packet(13, 3.0)
    assert feedback_map(build(rec)) == [(13, 3.0)]


@recorders
def test_duplicates_keep_first_arrival(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(5, 1.0)
    rec.on_packet(6, 2.0)
    rec.on_packet(5, 9.0)
    assert feedback_map(build(rec)) == [(5, 1.0), (6, 2.0)]
    assert rec.duplicates == 1


@recorders
def test_large_gaps_use_two_byte_deltas(make: type[TwccRecorder]) -> None:
    rec = make()
    times = [0.0, 63.75, 64.0 + 63.75, 1000.0, 8000.0]
    for i, t in enumerate(times):
        rec.on_packet(i, t)
    packets = build(rec)
    assert len(packets) == 1
    assert [t for _, t in feedback_map(packets)] == times


@recorders
def test_delta_beyond_16_bits_splits_packet(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(1, 0.0)
    rec.on_packet(2, 20_000.0)  # 80000 ticks: no int16 fits
    rec.on_packet(3, 20_001.0)
    rec.on_packet(4, 10_000.0)  # -10 s: too negative as well
    packets = build(rec)
    assert len(packets) == 3
    fbs = parse_all(packets)
    assert [fb.feedback_count for fb in fbs] == [0, 1, 2]
    assert [fb.base_seq for fb in fbs] == [1, 2, 4]
    assert [p for fb in fbs for p in fb.packets] == [
        (1, 0.0), (2, 20_000.0), (3, 20_001.0), (4, 10_000.0),
    ]


@recorders
def test_many_statuses_split_into_bounded_packets(make: type[TwccRecorder]) -> None:
    rec = make()
    n = 5000
    for i in range(n):
        if i % 3:  # a third lost, the rest 1 ms apart: a mix of vectors and deltas
            rec.on_packet((60000 + i) & 0xFFFF, float(i))
    packets = build(rec)
    assert len(packets) >= 5
    fbs = parse_all(packets)
    assert all(len(fb.packets) <= MAX_STATUSES_PER_PACKET for fb in fbs)
    got = [p for fb in fbs for p in fb.packets]
    first = 60001
    assert [s for s, _ in got] == [(first + k) & 0xFFFF for k in range(n - 1)]
    for k, (_, t) in enumerate(got):
        i = k + 1
        assert t == (float(i) if i % 3 else None)


@recorders
def test_long_loss_run_uses_run_length_chunks(make: type[TwccRecorder]) -> None:
    rec = make()
    rec.on_packet(0, 0.0)
    rec.on_packet(900, 5.0)
    (pkt,) = build(rec)
    # header 20 + chunks (1 received, 899 lost, 1 received) + 2 small deltas, padded
    assert len(pkt) <= 32
    got = feedback_map([pkt])
    assert len(got) == 901 and sum(t is not None for _, t in got) == 2


@recorders
def test_feedback_count_wraps(make: type[TwccRecorder]) -> None:
    rec = make()
    counts = []
    for i in range(300):
        rec.on_packet(i, float(i))
        counts.append(parse_all(build(rec))[0].feedback_count)
    assert counts == [i & 0xFF for i in range(300)]


@recorders
def test_memory_bounded_without_feedback(make: type[TwccRecorder]) -> None:
    rec = make(size=1024)
    for i in range(100_000):
        rec.on_packet(i & 0xFFFF, float(i))
    assert rec.forgotten == 100_000 - 1024
    packets = build(rec)
    got = feedback_map(packets)
    assert len(got) == 1024
    assert got[-1] == (99_999 & 0xFFFF, 99_999.0)


@recorders
def test_reference_time_wraps_but_differences_survive(make: type[TwccRecorder]) -> None:
    rec = make()
    base = (1 << 23) * 64.0 - 10.0  # the 24-bit signed reference time flips sign here
    rec.on_packet(1, base)
    rec.on_packet(2, base + 30.0)
    first = feedback_map(build(rec))
    rec.on_packet(3, base + 100.0)
    second = feedback_map(build(rec))
    t1, t2, t3 = (t for _, t in first + second)
    assert t1 is not None and t2 is not None and t3 is not None
    assert t2 - t1 == 30.0
    assert t3 - t1 == 100.0 - (1 << 24) * 64.0  # one wrap; the estimator unwraps it


# --- send history -----------------------------------------------------------------------


def test_send_history_lookup() -> None:
    h = SendHistory(size=16)
    assert h.lookup(0) is None
    for seq in range(65530, 65536 + 10):
        h.record(seq & 0xFFFF, 1000 + seq, seq * 10.0)
    assert h.lookup(3) == (65539 * 10.0, 1000 + 65539)
    assert h.lookup(65535) == (65535 * 10.0, 1000 + 65535)
    assert h.lookup(11) is None  # not sent yet
    assert h.lookup(65529) is None  # never sent


def test_send_history_forgets_after_size_and_after_wrap() -> None:
    h = SendHistory(size=16)
    for seq in range(40):
        h.record(seq, 100, float(seq))
    assert h.lookup(23) is None  # overwritten by 39
    assert h.lookup(24) == (24.0, 100)
    h2 = SendHistory(size=16)
    h2.record(5, 100, 0.0)
    for seq in range(6, 6 + 65536 - 20):
        h2.record(seq & 0xFFFF, 1, 1.0)
    # seq 5 is 65516 packets old; its slot was rewritten by a different seq
    assert h2.lookup(5) is None


@recorders
def test_send_history_rejects_bad_size(make: type[TwccRecorder]) -> None:
    with pytest.raises(ValueError):
        SendHistory(size=1000)
    with pytest.raises(ValueError):
        make(size=3)


# --- property tests ---------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.integers(-30, 40),  # sequence step (negative: reordering)
        st.integers(-60_000, 12_000_000),  # arrival step in microseconds
        st.booleans(),  # build feedback after this packet
        st.booleans(),  # deliver this packet twice
    ),
    min_size=1,
    max_size=150,
)


@recorders
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 65535), events)
def test_random_arrivals_roundtrip(
    make: type[TwccRecorder], start: int, evs: list[tuple[int, int, bool, bool]]
) -> None:
    """A model of the recorder: every packet not yet covered by a feedback is reported
    with its first arrival; the gaps up to the highest one as lost."""
    rec = make()
    ext, arrival_us = start + (1 << 16), 0
    recorded: dict[int, float] = {}
    reported_upto: int | None = None

    def check_build() -> None:
        nonlocal reported_upto, recorded
        got = feedback_map(build(rec))
        if not recorded:
            assert got == []
            return
        lo = min(recorded) if reported_upto is None else reported_upto + 1
        hi = max(recorded)
        assert [s for s, _ in got] == [e & 0xFFFF for e in range(lo, hi + 1)]
        for (_, t), e in zip(got, range(lo, hi + 1), strict=True):
            if e in recorded:
                assert t is not None and abs(t - recorded[e]) <= QUANTUM_MS
            else:
                assert t is None
        reported_upto, recorded = hi, {}

    for seq_step, arrival_step, do_build, dup in evs:
        ext += seq_step
        arrival_us += arrival_step
        t = arrival_us / 1000.0
        for _ in range(2 if dup else 1):
            rec.on_packet(ext & 0xFFFF, t)
            if reported_upto is None or ext > reported_upto:
                recorded.setdefault(ext, t)
        if do_build:
            check_build()
    check_build()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_raises_only_twcc_error(data: bytes) -> None:
    try:
        fb = parse_feedback(data)
    except TwccError:
        return
    assert len(fb.packets) <= MAX_PACKET_STATUS_COUNT


def _valid_fci() -> bytes:
    rec = TwccRecorder()
    for i, t in enumerate([0.0, 1.0, 70.0, 69.0, 500.0, 501.0]):
        if i != 2:
            rec.on_packet(i * 3, t)
    return build(rec)[0][12:]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 200),
)
def test_mutated_feedback_raises_only_twcc_error(
    flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_valid_fci())
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        fb = parse_feedback(bytes(data[: len(data) - cut % len(data)]))
    except TwccError:
        return
    assert len(fb.packets) == (data[2] << 8 | data[3])


@recorders
def test_recorder_work_is_bounded_when_sequence_numbers_jump(
    make: type[TwccRecorder]
) -> None:
    """A publisher jumping its transport-wide sequence number by thousands on every packet
    must not make each packet walk (and the next feedback report) the whole window: a jump
    restarts the record, so the window stays one packet wide (it used to cost ~2 ms per
    packet)."""
    rec = make()
    seq = 0
    for i in range(200):
        seq = (seq + 16000) & 0xFFFF
        rec.on_packet(seq, float(i))
        assert rec._max_ext - rec._next_ext == 0
    feedback = rec.build_feedback(1, 2, 0.0)
    assert len(feedback) == 1
    parsed = parse_feedback(feedback[0][12:])
    assert [s for s, _ in parsed.packets] == [seq]


def test_feedback_claiming_more_packets_than_were_sent_is_not_parsed() -> None:
    from sfu.subscriber import _twcc_plausible

    fci = struct.pack("!HHI", 100, 8192, 0) + bytes([0x20, 0x00])  # run of 8192 'received'
    assert not _twcc_plausible(fci, 150)  # only 51 packets sent since 100
    assert _twcc_plausible(struct.pack("!HHI", 100, 51, 0), 150)
    assert _twcc_plausible(struct.pack("!HHI", 65530, 10, 0), 3)  # across the wrap
    assert not _twcc_plausible(b"\x00\x01", 10)
