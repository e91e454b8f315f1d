"""LayerSelector: switches only on keyframes of the target; output stays continuous.

The end-to-end test at the bottom strings a fake simulcast publisher (three layers with their
own SSRC, sequence and timestamp bases, VP8 payload descriptors) through ingress sequence
tracking, ``sfu.payload`` keyframe detection, the selector and ``RtpForwarder``, the way
``PublishedTrack.on_rtp`` does, on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from sfu.forwarder import RtpForwarder
from sfu.layers import LayerSelector
from sfu.payload import is_keyframe
from sfu.sequence import SequenceTracker


def started(layer: int) -> LayerSelector:
    sel = LayerSelector()
    assert sel.set_target(layer)
    assert sel.accept(layer, True)
    return sel


def test_nothing_forwarded_before_the_first_keyframe_of_the_target() -> None:
    sel = LayerSelector()
    assert (sel.current, sel.target, sel.waiting) == (-1, -1, False)
    assert not sel.accept(0, True)  # no target yet: nothing at all
    assert sel.set_target(1)  # caller must request a keyframe of layer 1
    assert sel.waiting
    assert not sel.accept(1, False)
    assert not sel.accept(0, True)  # a keyframe of another layer does not start it
    assert not sel.accept(2, True)
    assert sel.accept(1, True)
    assert (sel.current, sel.target, sel.waiting) == (1, 1, False)
    assert sel.accept(1, False)  # the rest of the layer flows
    assert sel.switches == 0  # a start is not a switch


def test_up_switch_only_on_a_keyframe_of_the_target() -> None:
    sel = started(0)
    assert sel.set_target(2)
    for _ in range(5):  # the current layer keeps flowing while waiting
        assert sel.accept(0, False)
        assert not sel.accept(2, False)
        assert not sel.accept(1, True)
    assert sel.current == 0
    assert sel.accept(2, True)
    assert (sel.current, sel.switches, sel.waiting) == (2, 1, False)
    assert not sel.accept(0, False)  # the old layer is dropped from now on
    assert sel.accept(2, False)


def test_down_switch_only_on_a_keyframe_of_the_target() -> None:
    sel = started(2)
    assert sel.set_target(0)
    assert sel.accept(2, False)
    assert not sel.accept(0, False)
    assert sel.accept(2, False)
    assert sel.accept(0, True)
    assert (sel.current, sel.switches) == (0, 1)
    assert not sel.accept(2, True)  # a keyframe of a non-target layer changes nothing


def test_a_step_down_at_once_stops_the_current_layer_until_the_target_keyframe() -> None:
    sel = started(2)
    assert sel.set_target(0, at_once=True)
    assert sel.current == -1 and sel.waiting
    assert not sel.accept(2, False)  # the layer the link cannot carry stops now
    assert not sel.accept(2, True)
    assert not sel.accept(0, False)
    assert sel.accept(0, True)
    assert (sel.current, sel.switches) == (0, 1)  # still counted as a switch
    assert sel.set_target(1, at_once=True)  # at_once never applies to a raise...
    assert sel.current == 0 and sel.accept(0, False)  # ...the current layer keeps flowing


def test_pause_is_immediate_and_resume_needs_a_keyframe() -> None:
    sel = started(1)
    assert not sel.set_target(-1)  # nothing to request
    assert (sel.current, sel.target, sel.waiting) == (-1, -1, False)
    assert not sel.accept(1, False)
    assert not sel.accept(1, True)  # paused: even keyframes are dropped
    assert sel.set_target(1)  # resume: needs a keyframe
    assert not sel.accept(1, False)
    assert sel.accept(1, True)
    assert sel.switches == 0  # a resume is not a switch


def test_changing_target_while_waiting() -> None:
    sel = started(0)
    assert sel.set_target(2)
    assert sel.set_target(1)  # a new target: a keyframe of layer 1 is now needed
    assert not sel.accept(2, True)  # the abandoned target no longer completes a switch
    assert sel.accept(0, False)
    assert sel.accept(1, True)
    assert (sel.current, sel.switches) == (1, 1)


def test_set_target_to_current_needs_no_keyframe_and_cancels_a_pending_switch() -> None:
    sel = started(1)
    assert not sel.set_target(1)
    assert sel.set_target(2)
    assert not sel.set_target(2)  # same pending target: already requested
    assert not sel.set_target(1)  # back to the current layer: cancel
    assert not sel.waiting
    assert not sel.accept(2, True)
    assert sel.accept(1, False)
    assert sel.switches == 0


def test_layer_gone_stops_forwarding_until_the_target_keyframe() -> None:
    sel = started(2)
    sel.layer_gone(1)  # not current: no effect
    assert sel.current == 2
    sel.layer_gone(2)
    assert (sel.current, sel.target, sel.waiting) == (-1, 2, True)
    assert not sel.accept(2, False)
    assert sel.set_target(1)  # the allocator moves to a layer that still arrives
    assert not sel.accept(1, False)
    assert sel.accept(1, True)
    assert sel.switches == 1  # 2 -> 1 with a gap: still a switch, not a resume


def test_layer_gone_and_back_on_the_same_layer_is_not_a_switch() -> None:
    sel = started(0)
    sel.layer_gone(0)
    assert sel.accept(0, True)
    assert (sel.current, sel.switches) == (0, 0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("target"), st.integers(-1, 2), st.booleans()),
        st.tuples(st.just("packet"), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("gone"), st.integers(0, 2), st.booleans()),
    ),
    max_size=60,
)


@given(ops)
def test_a_layer_starts_being_forwarded_only_on_its_keyframe(script: list[tuple[str, int, bool]]
                                                             ) -> None:
    sel = LayerSelector()
    flowing = -1  # the layer the subscriber's decoder is on; -1 after a pause or a gap
    for op, layer, key in script:
        if op == "target":
            expected = layer >= 0 and layer != sel.target and layer != sel.current
            assert sel.set_target(layer) is expected
            if layer < 0:
                flowing = -1
                assert sel.current == -1
        elif op == "gone":
            sel.layer_gone(layer)
            if flowing == layer:
                flowing = -1
        else:
            keyframe = key and sel.waiting and layer == sel.target  # callers' contract
            forwarded = sel.accept(layer, keyframe)
            if forwarded and layer != flowing:
                assert keyframe, "a new layer must start on a keyframe"
            if forwarded:
                flowing = layer
                assert sel.current == layer
        assert sel.current in (-1, sel.target) or sel.waiting
        assert sel.switches >= 0


# -- end to end: selector + forwarder across layer switches -----------------------------

VIDEO = 90000
FRAME_MS = 1000 / 30
FRAME_TICKS = 3000  # 90 kHz / 30 fps


@dataclass
class FakeLayer:
    """One simulcast encoding with its own SSRC and random-looking seq/ts bases."""

    index: int
    ssrc: int
    seq: int
    ts_base: int
    packets_per_frame: int
    keyframe_due: bool = True  # the encoder starts with a keyframe
    tracker: SequenceTracker = field(default_factory=lambda: SequenceTracker(VIDEO))

    def frame(self, k: int) -> list[tuple[bytes, int, int]]:
        """Packets (payload, seq, ts) of frame ``k``: VP8 descriptor + frame tag."""
        key = self.keyframe_due or k % 90 == 0  # periodic keyframes every 3 s too
        self.keyframe_due = False
        ts = (self.ts_base + FRAME_TICKS * k) & 0xFFFFFFFF
        out = []
        for n in range(self.packets_per_frame):
            first = 0x90 if n == 0 else 0x80  # X, S on the first packet
            desc = bytes([first, 0x80, k & 0x7F])  # I, 7-bit PictureID
            tag = bytes([0x00 if key else 0x01, 0, 0]) if n == 0 else b"\x55\x55\x55"
            header = b"\x80\x60" + bytes(10)  # 12-byte RTP header (fields unused here)
            out.append((header + desc + tag, self.seq & 0xFFFF, ts))
            self.seq += 1
        return out


def test_output_is_continuous_across_layer_switches_pause_and_resume() -> None:
    layers = [
        FakeLayer(0, 0x1111, seq=100, ts_base=1_000, packets_per_frame=1),
        FakeLayer(1, 0x2222, seq=40_000, ts_base=0xFFFF_0000, packets_per_frame=3),  # ts wraps
        FakeLayer(2, 0x3333, seq=65_500, ts_base=777_777_777, packets_per_frame=6),  # seq wraps
    ]
    sel = LayerSelector()
    fwd = RtpForwarder(out_ssrc=0xABCD, clock_rate=VIDEO, first_seq=65_530, first_ts=500)
    # (frame number, target): up, down, pause, resume, up two steps, down
    schedule = {0: 0, 30: 2, 60: 1, 90: -1, 105: 0, 150: 2, 200: 1, 240: 0}
    pending: dict[int, int] = {}  # layer -> frame at which its requested keyframe comes out
    forwarded: list[tuple[float, int, int, int]] = []  # (now, layer, out seq, out ts)
    frames_per_layer: dict[int, set[int]] = {}
    first_of_segment: list[tuple[int, bool]] = []
    for k in range(270):
        now = k * FRAME_MS
        if k in schedule and sel.set_target(schedule[k]):
            pending[schedule[k]] = k + 3  # the keyframe arrives ~100 ms after the PLI
        for index, when in list(pending.items()):
            if k == when:
                layers[index].keyframe_due = True
                del pending[index]
        for layer in layers:
            for payload, seq, ts in layer.frame(k):
                ext = layer.tracker.update(seq, ts, now)
                assert ext >= 0
                waiting_for_it = sel.waiting and layer.index == sel.target
                keyframe = waiting_for_it and is_keyframe("VP8", payload, 12)
                before = sel.current
                if not sel.accept(layer.index, keyframe):
                    continue
                if sel.current != before:
                    fwd.resync()
                    first_of_segment.append((layer.index, keyframe))
                out = fwd.on_packet(layer.ssrc, ext, ts, now)
                assert out is not None
                forwarded.append((now, layer.index, out[0], out[1]))
                frames_per_layer.setdefault(layer.index, set()).add(k)

    # every segment starts on a keyframe; four switches between layers, start+resume excluded
    assert all(key for _, key in first_of_segment)
    assert [layer for layer, _ in first_of_segment] == [0, 2, 1, 0, 2, 1, 0]
    assert sel.switches == 5
    # sequence numbers contiguous, wrapping at 65535
    seqs = [s for _, _, s, _ in forwarded]
    assert seqs[0] == 65_530
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert 65_535 in seqs and 0 in seqs
    # timestamps: unwrap, then monotonic and tracking the wall clock (within a tick per resync)
    unwrapped = [forwarded[0][3]]
    for _, _, _, ts in forwarded[1:]:
        unwrapped.append(unwrapped[-1] + ((ts - unwrapped[-1]) & 0xFFFFFFFF))
    assert all(b >= a for a, b in zip(unwrapped, unwrapped[1:], strict=False))
    t0 = forwarded[0][0]
    for (now, _, _, _), ts in zip(forwarded, unwrapped, strict=True):
        assert abs((ts - unwrapped[0]) - (now - t0) * VIDEO / 1000) <= len(first_of_segment)
    # while waiting for a keyframe the previous layer kept flowing: no frame was skipped
    # outside the pause (frames 90..107: paused at 90, resume keyframe at 108)
    shown = set().union(*frames_per_layer.values())
    assert shown == set(range(0, 270)) - set(range(90, 108))
    assert 30 < min(frames_per_layer[2]) <= 34  # up-switch waited for the keyframe
    assert fwd.switches == len(first_of_segment) - 1
