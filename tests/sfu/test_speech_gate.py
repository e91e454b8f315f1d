"""Audio by speech (sfu.speech_gate): the per-packet gate, the room's slots, and the
compiled ingress step doing exactly what the Python path does with a gated microphone,
listeners seeing contiguous sequence numbers across the gaps."""

from __future__ import annotations

import struct

import pytest
from engines import COMPILED, fastpath
from test_fanout import WireTransport
from test_ingress import LEVEL_EXT, SSRC_A, TWCC_EXT, Owner, keyed_transport
from test_track import FakeTransport

from sfu import codecs
from sfu.publisher import PublisherSide
from sfu.speech_gate import (
    ASK,
    FORWARD,
    NO_LEVEL,
    SUPPRESS,
    GateState,
    SpeechSelection,
    configure,
    gate_step,
)
from sfu.track import PublishedTrack, Subscription

LOUD, QUIET = 20, 90  # -dBov


def gate(hold_ms: float = 100.0) -> GateState:
    g = GateState()
    configure(g, threshold_dbov=50, hold_ms=hold_ms)
    return g


def test_a_closed_gate_drops_silence_and_asks_on_the_first_loud_packet() -> None:
    g = gate()
    assert gate_step(g, QUIET, 0.0) == SUPPRESS
    assert gate_step(g, 0x80 | QUIET, 20.0) == SUPPRESS  # the V bit is not the level
    assert gate_step(g, NO_LEVEL, 40.0) == SUPPRESS  # no extension: silent
    assert g.gate_suppressed == 3
    assert gate_step(g, LOUD, 60.0) == ASK
    assert g.gate_suppressed == 3  # an ask is counted by whoever refuses it


def test_an_open_gate_holds_through_pauses_then_closes() -> None:
    g = gate(hold_ms=100.0)
    g.gate_open = 1
    assert gate_step(g, LOUD, 0.0) == FORWARD
    assert gate_step(g, QUIET, 60.0) == FORWARD  # a pause between words
    assert gate_step(g, QUIET, 100.0) == FORWARD
    assert gate_step(g, QUIET, 120.0) == SUPPRESS  # 120 ms without speech: closed
    assert g.gate_open == 0
    assert gate_step(g, LOUD, 140.0) == ASK  # the next word asks again


def selection(slots: int, *pids: str) -> tuple[SpeechSelection, dict[str, GateState]]:
    sel = SpeechSelection(slots, pause_ms=250.0)
    gates = {pid: gate() for pid in pids}
    for pid, g in gates.items():
        sel.add("T" + pid, pid, g)
    return sel, gates


def talk(g: GateState, now_ms: float) -> None:
    g.gate_last_loud_ms = now_ms


def test_free_slots_are_granted_at_once_and_a_full_room_refuses() -> None:
    sel, g = selection(2, "a", "b", "c")
    for pid in "ab":
        talk(g[pid], 0.0)
        assert sel.ask("T" + pid, 0.0)
    talk(g["c"], 10.0)
    assert not sel.ask("Tc", 10.0)  # a and b are speaking, c is not ranked above them
    assert sel.refused == 1
    assert sorted(sel.open_keys()) == ["Ta", "Tb"]
    assert sel.granted == {"free": 2, "pause": 0, "louder": 0}


def test_a_holder_in_a_pause_gives_its_slot_to_a_new_speaker() -> None:
    sel, g = selection(1, "a", "b")
    talk(g["a"], 0.0)
    assert sel.ask("Ta", 0.0)
    talk(g["b"], 100.0)
    assert not sel.ask("Tb", 100.0)  # a spoke 100 ms ago: still its turn
    talk(g["b"], 300.0)
    assert sel.ask("Tb", 300.0)  # a quiet for 300 ms (>= 250): b takes over, no clipped onset
    assert g["a"].gate_open == 0 and g["b"].gate_open == 1
    assert sel.granted["pause"] == 1


def test_the_detector_ranking_decides_between_people_speaking_at_once() -> None:
    sel, g = selection(1, "a", "b", "c")
    talk(g["a"], 0.0)
    assert sel.ask("Ta", 0.0)
    talk(g["b"], 10.0)
    assert not sel.ask("Tb", 10.0, ranked=["a", "b"])  # a is louder
    assert sel.ask("Tb", 10.0, ranked=["b", "a"])  # b is louder: it takes a's slot
    assert g["a"].gate_open == 0 and g["b"].gate_open == 1
    talk(g["c"], 20.0)
    assert not sel.ask("Tc", 20.0, ranked=["b"])  # not ranked at all
    assert sel.granted["louder"] == 1


def test_a_removed_track_frees_its_slot_and_unknown_keys_are_refused() -> None:
    sel, g = selection(1, "a", "b")
    talk(g["a"], 0.0)
    assert sel.ask("Ta", 0.0)
    sel.remove("Ta")
    assert g["a"].gate_open == 0
    talk(g["b"], 1.0)
    assert sel.ask("Tb", 1.0)
    assert not sel.ask("Tzz", 1.0)
    with pytest.raises(ValueError):
        SpeechSelection(0)


# -- the gated track: compiled ingress step and Python path -------------------------------


def audio_packet(seq: int, twcc: int, level: int | None) -> bytes:
    exts = bytes([(TWCC_EXT << 4) | 1]) + struct.pack("!H", twcc)
    if level is not None:
        exts += bytes([LEVEL_EXT << 4, 0x80 | level])
    exts += bytes(-len(exts) % 4)
    payload = struct.pack("!HI", seq & 0xFFFF, SSRC_A) * 8
    return (struct.pack("!BBHII", 0x90, 100, seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF, SSRC_A)
            + struct.pack("!HH", 0xBEDE, len(exts) // 4) + exts + payload)


def gated_track(down: object, refuse_every: int) -> tuple[PublishedTrack, Subscription]:
    track = PublishedTrack(
        track_id="TR", participant_id="PA", kind="audio", source="microphone", mid="0",
        codec=codecs.OPUS, publisher_pt=100,
        ext_map={TWCC_EXT: codecs.TWCC_ID, LEVEL_EXT: codecs.AUDIO_LEVEL_ID},
        ssrc=SSRC_A, rtx_ssrc=None, upstream=FakeTransport(),  # type: ignore[arg-type]
        receiver_ssrc=1, keyframe_interval_ms=0, twcc=None,
        on_audio_level=lambda pid, level, now: None)
    asks = [0]

    def ask(t: PublishedTrack, now_ms: float) -> bool:
        asks[0] += 1
        return asks[0] % refuse_every != 0

    assert track.has_audio_level
    track.gate_by_speech(ask, threshold_dbov=50, hold_ms=0.0)
    sub = Subscription(track, down, out_ssrc=0xAAAA, rtx_ssrc=None, rtx_pt=None,  # type: ignore[arg-type]
                       first_seq=65530, first_ts=0)
    track.add_subscription(sub)
    sub.accepted = sub.active = True
    return track, sub


def levels() -> list[int | None]:
    """Talk spurts and silences; a packet without a level; a refused ask (every third)."""
    out: list[int | None] = []
    for spurt in range(12):
        out += [LOUD] * (3 + spurt % 4) + [QUIET] * (5 + spurt % 3)
    out[40] = None
    return out


@pytest.mark.skipif(not COMPILED, reason="SFU_FASTPATH=0")
def test_the_compiled_gate_matches_the_python_path_and_listeners_see_no_loss() -> None:
    wire = WireTransport()
    try:
        c_track, c_sub = gated_track(wire, refuse_every=3)
        py_down = FakeTransport()
        py_track, py_sub = gated_track(py_down, refuse_every=3)
        py_sub.dest = None
        c_owner, py_owner = Owner(c_track), Owner(py_track)
        transport, tx = keyed_transport(c_owner)
        c_track.upstream.invalidate_ingress = transport.invalidate_ingress  # type: ignore[method-assign]
        handled_before = fastpath.ingress_handled()
        script = levels()
        for i, level in enumerate(script):
            clear = audio_packet(65500 + i, 100 + i, level)  # the publisher's numbers wrap
            transport._datagram_received(tx.protect(clear), 1)
            assert transport._rx_fast is not None
            PublisherSide.on_rtp(py_owner, clear, float(transport._rx_fast.ptr.now_ms))  # type: ignore[arg-type]
        expected = py_down.rtp
        got = wire.received(len(expected))
        assert [p[1:] for p in got] == [p[1:] for p in expected]
        suppressed = int(py_track.gate.gate_suppressed)
        assert int(c_track.gate.gate_suppressed) == suppressed > 0
        assert len(expected) + suppressed == len(script)
        assert c_track.gate_opens == py_track.gate_opens > 5
        assert c_track.gate_refusals == py_track.gate_refusals > 0
        # what the listener sees: one number after the other (across 16-bit wrap), the
        # timestamps moving forward by at least a packet's worth at each gap
        seqs = [struct.unpack("!H", p[2:4])[0] for p in got]
        assert seqs == [(65530 + k) & 0xFFFF for k in range(len(seqs))]
        stamps = [struct.unpack("!I", p[4:8])[0] for p in got]
        assert all(0 < (b - a) & 0xFFFFFFFF < 1 << 31 for a, b in zip(stamps, stamps[1:]))
        # the silent packets are cached all the same (the next hop may NACK them)
        assert c_track.stats.packets_in == len(script)
        # the compiled step handled the steady ones; a gate's opening is Python's
        assert fastpath.ingress_handled() - handled_before >= len(script) - 2
    finally:
        wire.close()


def test_muting_frees_the_slot() -> None:
    down = FakeTransport()
    track, _ = gated_track(down, refuse_every=1000)
    owner = Owner(track)
    PublisherSide.on_rtp(owner, audio_packet(1, 1, LOUD), 0.0)  # type: ignore[arg-type]
    assert track.gate.gate_open == 1
    track.set_muted(True, 10.0)
    assert track.gate.gate_open == 0
