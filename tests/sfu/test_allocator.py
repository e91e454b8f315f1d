"""Allocator: priority ladder, hysteresis, backoff, on a fake clock (``now_ms`` passed in)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from sfu.allocator import AUDIO_DEFAULT_BPS, Allocator, TrackDemand

INSTRUCTOR_CAM = [150_000, 500_000, 1_500_000]
STUDENT_CAM = [100_000, 300_000, 900_000]
SCREEN = [200_000, 700_000, 1_800_000]


def video(track_id: str, role: str, bitrates: Sequence[int | None], *, source: str = "camera",
          max_layer: int = 2) -> TrackDemand:
    return TrackDemand(track_id, "video", source, role, list(bitrates), max_layer)


def audio(track_id: str, bitrate: int | None = None) -> TrackDemand:
    return TrackDemand(track_id, "audio", "microphone", "student", [bitrate], 0)


def classroom() -> list[TrackDemand]:
    """What a student subscribes to: the instructor's screen and camera, 3 other students'
    cameras, and 4 microphones (two with a measured bitrate, two not yet known)."""
    return [
        video("s3", "student", STUDENT_CAM),
        video("icam", "instructor", INSTRUCTOR_CAM),
        video("s1", "student", STUDENT_CAM),
        audio("mic-i", 32_000),
        video("screen", "instructor", SCREEN, source="screen"),
        video("s2", "student", STUDENT_CAM),
        audio("mic-1"),
        audio("mic-2", 28_000),
        audio("mic-3"),
    ]


VIDEO_ORDER = ["screen", "icam", "s1", "s2", "s3"]
AUDIO_BPS = 32_000 + 28_000 + 2 * AUDIO_DEFAULT_BPS


def run(alloc: Allocator, demands: list[TrackDemand], estimates: Sequence[tuple[float, int]]
        ) -> list[tuple[float, int, dict[str, int]]]:
    """Feed (now_ms, estimate) pairs; returns (now, estimate, allocation) for each call."""
    out = []
    for now, est in estimates:
        out.append((now, est, alloc.allocate(est, demands, now)))
    return out


def test_shrinking_estimate_ladder_order() -> None:
    alloc = Allocator()
    steps = [(i * 1000.0, est) for i, est in enumerate(range(9_000_000, -1, -25_000))]
    history = run(alloc, classroom(), steps)
    first_below: dict[tuple[str, int], int] = {}  # (track, layer) -> estimate it was lost at
    for _, est, got in history:
        assert all(got[m] == 0 for m in ("mic-i", "mic-1", "mic-2", "mic-3"))  # audio: never
        for track in VIDEO_ORDER:
            for layer in range(3):
                if got[track] < layer:
                    first_below.setdefault((track, layer), est)
        running = [got[t] >= 0 for t in VIDEO_ORDER]
        # strict priority: nobody runs after a paused track of higher priority
        assert running == sorted(running, reverse=True), (est, got)
    assert history[0][2] == {**{t: 2 for t in VIDEO_ORDER}, **{m: 0 for m in
                             ("mic-i", "mic-1", "mic-2", "mic-3")}}
    assert all(history[-1][2][t] == -1 for t in VIDEO_ORDER)
    paused_at = {t: first_below[(t, 0)] for t in VIDEO_ORDER}
    # students pause before the instructor's camera, cameras before the screen share
    assert paused_at["s3"] > paused_at["s2"] > paused_at["s1"] > paused_at["icam"]
    assert paused_at["icam"] > paused_at["screen"]
    # step-downs: every student camera leaves its top layer before the instructor's, and
    # the instructor's camera before the screen share
    top_lost = {t: first_below[(t, 2)] for t in VIDEO_ORDER}
    assert min(top_lost[s] for s in ("s1", "s2", "s3")) > top_lost["icam"] > top_lost["screen"]
    # ...and all step-downs to the lowest layer come before the first pause
    assert min(first_below[(t, 1)] for t in VIDEO_ORDER) > max(paused_at.values())
    # the budget: what is allocated always fits estimate x headroom
    for now, est, got in history:
        cost = {**{d.track_id: d.bitrates for d in classroom()}}
        spent = sum(cost[t][got[t]] or 0 for t in VIDEO_ORDER if got[t] >= 0)
        assert spent + AUDIO_BPS <= est * 0.95 or spent == 0


def test_audio_is_never_paused_and_is_reserved_first() -> None:
    alloc = Allocator()
    got = alloc.allocate(0, classroom(), 0.0)
    assert got == {"mic-i": 0, "mic-1": 0, "mic-2": 0, "mic-3": 0, "s3": -1, "icam": -1,
                   "s1": -1, "s2": -1, "screen": -1}
    assert all(alloc.paused_for_bandwidth(t) for t in VIDEO_ORDER)
    assert not alloc.paused_for_bandwidth("mic-1")
    # the screen's lowest layer needs 200 kbps on top of the audio reserve (with the margin)
    just = int((AUDIO_BPS + 200_000 * 1.25) / 0.95) + 1
    assert Allocator().allocate(just, classroom(), 0.0)["screen"] == 0
    assert Allocator().allocate(just - 1000, classroom(), 0.0)["screen"] == -1


def test_recovery_in_priority_order_with_hysteresis() -> None:
    alloc = Allocator()
    demands = classroom()
    t = 0.0
    run(alloc, demands, [(t, 100_000)])
    # a slow ramp back up, one allocation per 100 ms
    resumed: dict[str, float] = {}
    first_up: dict[str, float] = {}
    allowed_since: dict[str, float] = {}  # when a hysteresis-free allocator would resume it
    last = {track: -1 for track in VIDEO_ORDER}
    for step in range(1, 6000):
        t = step * 100.0
        est = 100_000 + step * 1_500  # 15 kbps per second
        got = alloc.allocate(est, demands, t)
        ideal = Allocator().allocate(est, demands, t)  # a new allocator: no hold
        for track in VIDEO_ORDER:
            if ideal[track] >= 0:
                allowed_since.setdefault(track, t)
            if got[track] > last[track]:
                if last[track] == -1:
                    resumed[track] = t
                else:
                    first_up.setdefault(track, t)
        # a growing estimate only takes a layer from a track to give a higher-priority track
        # a bigger one (greedy upgrades: e.g. the screen's top layer needs a student's room)
        for n, track in enumerate(VIDEO_ORDER):
            if got[track] < last[track]:
                assert got[track] >= 0
                assert any(got[h] > last[h] for h in VIDEO_ORDER[:n]), (t, got, last)
        last = {track: got[track] for track in VIDEO_ORDER}
    assert list(sorted(resumed, key=resumed.__getitem__)) == VIDEO_ORDER
    for track in VIDEO_ORDER:
        # needs the margin (25 % over the bare cost) held for resume_hold_ms = 3 s
        assert 3000 <= resumed[track] - allowed_since[track] <= 3100, track
    assert min(first_up.values()) > max(resumed.values())
    assert last == {"screen": 2, "icam": 2, "s1": 2, "s2": 2, "s3": 2}


def test_no_upgrade_before_the_hold_time() -> None:
    alloc = Allocator()
    demands = [video("cam", "student", INSTRUCTOR_CAM)]
    assert alloc.allocate(10_000_000, demands, 0.0) == {"cam": 2}  # new: no hold
    assert alloc.allocate(300_000, demands, 1000.0) == {"cam": 0}  # down: at once
    assert alloc.allocate(100_000, demands, 2000.0) == {"cam": -1}
    assert alloc.paused_for_bandwidth("cam")
    for t in range(3000, 6000, 100):  # resume needs resume_hold_ms = 3000 ms
        assert alloc.allocate(10_000_000, demands, float(t)) == {"cam": -1}, t
        assert alloc.get_timer() == 6000.0
    # the resume comes back on the lowest layer, then one layer per up_hold_ms (2 s)
    assert alloc.allocate(10_000_000, demands, 6000.0) == {"cam": 0}
    assert not alloc.paused_for_bandwidth("cam")
    steps = {t: alloc.allocate(10_000_000, demands, float(t))["cam"]
             for t in range(6100, 11000, 100)}
    # each step waits the hold, counted from the first tick after the previous step
    assert [t for t in steps if steps[t] != steps.get(t - 100, 0)] == [8100, 10200]
    assert steps[8000] == 0 and steps[8100] == 1 and steps[10200] == 2
    assert alloc.get_timer() is None
    assert alloc.changes == 5


def test_hold_restarts_when_the_upgrade_stops_fitting() -> None:
    alloc = Allocator()
    demands = [video("cam", "student", INSTRUCTOR_CAM)]
    alloc.allocate(10_000_000, demands, 0.0)
    alloc.allocate(600_000, demands, 100.0)  # forced to layer 1
    assert alloc.allocate(3_000_000, demands, 200.0) == {"cam": 1}  # pending from 200
    assert alloc.allocate(1_700_000, demands, 1500.0) == {"cam": 1}  # fits, not with margin
    assert alloc.allocate(3_000_000, demands, 2300.0) == {"cam": 1}  # pending again from 2300
    assert alloc.allocate(3_000_000, demands, 4200.0) == {"cam": 1}
    assert alloc.allocate(3_000_000, demands, 4300.0) == {"cam": 2}


def oscillate(alloc: Allocator, demands: list[TrackDemand], centre: float, seed: int
              ) -> list[dict[str, int]]:
    """10 s at a high estimate (everything at its top layer), then a simulated minute of the
    estimate swinging +-10 % around ``centre`` every 500 ms (plus +-0.5 % noise), with an
    allocation every 100 ms. Returns the allocations of that minute."""
    rng = random.Random(seed)
    for step in range(100):
        alloc.allocate(9_000_000, demands, step * 100.0)
    out = []
    for step in range(600):
        swing = 0.1 if (step // 5) % 2 else -0.1
        est = int(centre * (1 + swing + rng.uniform(-0.005, 0.005)))
        out.append(alloc.allocate(est, demands, 10_000.0 + step * 100.0))
    return out


def no_hysteresis() -> Allocator:
    return Allocator(up_margin=1.0, up_hold_ms=0.0, resume_hold_ms=0.0)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("margin", [1.0, 1.25])
def test_no_flapping_around_a_layer_boundary(layer: int, margin: float) -> None:
    """Around the estimate where ``layer`` starts to fit (or to fit with the up margin):
    at most 2 target changes in the minute (the first dip takes the track down, once)."""
    demands = [video("cam", "student", INSTRUCTOR_CAM), audio("mic", 40_000)]
    boundary = (INSTRUCTOR_CAM[layer] * margin + 40_000) / 0.95
    alloc = Allocator()
    before = alloc.changes
    oscillate(alloc, demands, boundary, seed=layer)
    assert alloc.changes - before <= 2
    if margin == 1.0:  # the same estimate without hysteresis flaps all the time
        control = no_hysteresis()
        oscillate(control, demands, boundary, seed=layer)
        assert control.changes > 50


def test_no_flapping_in_a_classroom() -> None:
    """Swinging +-10 % around every point of a sweep: no track changes more than twice in
    the minute (the first dip may move a track down, and the room it leaves may go to
    another one once: greedy upgrades)."""
    demands = classroom()
    for centre in range(300_000, 7_000_000, 250_000):
        minute = oscillate(Allocator(), demands, centre, seed=centre)
        for track in VIDEO_ORDER:
            layers = [got[track] for got in minute]
            changes = sum(a != b for a, b in zip(layers, layers[1:], strict=False))
            assert changes <= 2, (centre, track, layers)


def test_backoff_doubles_when_forced_down_right_after_going_up() -> None:
    alloc = Allocator(up_hold_ms=1000.0, backoff_max_ms=10_000.0)
    demands = [video("cam", "student", INSTRUCTOR_CAM, max_layer=1)]
    t = 0.0
    assert alloc.allocate(5_000_000, demands, t) == {"cam": 1}
    t = 70_000.0  # a long stable period at the top

    def hold_after_dip() -> float:
        nonlocal t
        t += 100
        assert alloc.allocate(400_000, demands, t) == {"cam": 0}  # a dip: forced down
        down = t
        while alloc.allocate(5_000_000, demands, t + 100) != {"cam": 1}:
            t += 100
        t += 100
        return t - down - 100  # the first call after the dip is 100 ms later

    holds = [hold_after_dip() for _ in range(6)]
    assert holds == [1000.0, 2000.0, 4000.0, 8000.0, 10_000.0, 10_000.0]
    # a forced down long after the last up-switch resets the backoff
    t += 60_000
    alloc.allocate(5_000_000, demands, t)
    assert hold_after_dip() == 1000.0


def test_backoff_not_doubled_by_a_down_long_after_the_up() -> None:
    alloc = Allocator(up_hold_ms=1000.0)
    demands = [video("cam", "student", INSTRUCTOR_CAM, max_layer=1)]
    alloc.allocate(5_000_000, demands, 0.0)
    t = 100_000.0
    for _ in range(4):
        assert alloc.allocate(400_000, demands, t) == {"cam": 0}
        assert alloc.allocate(5_000_000, demands, t + 100) == {"cam": 0}  # hold starts
        assert alloc.allocate(5_000_000, demands, t + 1000) == {"cam": 0}
        assert alloc.allocate(5_000_000, demands, t + 1100) == {"cam": 1}
        t += 1100 + 2500  # next dip 2.5 s after the up: more than 2 x hold -> no doubling


def test_one_doubling_per_up_switch() -> None:
    alloc = Allocator(up_hold_ms=1000.0, resume_hold_ms=1000.0)
    demands = [video("cam", "student", INSTRUCTOR_CAM, max_layer=1)]
    alloc.allocate(5_000_000, demands, 0.0)
    alloc.allocate(400_000, demands, 100_000.0)
    assert alloc.allocate(5_000_000, demands, 100_100.0) == {"cam": 0}
    assert alloc.allocate(5_000_000, demands, 101_100.0) == {"cam": 1}  # hold 1 s
    alloc.allocate(400_000, demands, 101_200.0)  # forced 1 -> 0 right after: doubles
    alloc.allocate(100_000, demands, 101_300.0)  # and 0 -> paused: the same flap
    assert alloc.allocate(5_000_000, demands, 101_400.0) == {"cam": -1}
    assert alloc.get_timer() == 101_400.0 + 2000.0  # doubled once, not twice


def test_max_layer_respected() -> None:
    alloc = Allocator()
    demands = [
        video("a", "student", STUDENT_CAM, max_layer=0),
        video("b", "student", STUDENT_CAM, max_layer=1),
        video("c", "student", STUDENT_CAM, max_layer=-1),
    ]
    assert alloc.allocate(50_000_000, demands, 0.0) == {"a": 0, "b": 1, "c": -1}
    assert not alloc.paused_for_bandwidth("c")  # not wanted is not a bandwidth pause
    # the view grows: no bandwidth hold (it was not held back), only the margin
    demands[0].max_layer = 2
    demands[2].max_layer = 0
    assert alloc.allocate(50_000_000, demands, 100.0) == {"a": 2, "b": 1, "c": 0}
    demands[0].max_layer = 0  # the view shrinks: down at once
    assert alloc.allocate(50_000_000, demands, 200.0) == {"a": 0, "b": 1, "c": 0}


def test_unavailable_layers_are_skipped() -> None:
    alloc = Allocator()
    gap = [video("cam", "student", [150_000, None, 1_500_000])]
    assert alloc.allocate(1_000_000, gap, 0.0) == {"cam": 0}  # layer 1 is not there
    assert alloc.allocate(10_000_000, gap, 1.0) == {"cam": 0}  # held back: needs the hold
    assert alloc.allocate(10_000_000, gap, 2001.0) == {"cam": 2}
    # the top layer stops arriving: down to what is there, not a bandwidth decision
    top_gone = [video("cam", "student", [150_000, 500_000, None])]
    assert alloc.allocate(10_000_000, top_gone, 3000.0) == {"cam": 1}
    # ...and it comes back: not held back by bandwidth, so no hold
    assert alloc.allocate(10_000_000, gap[:0] + [video("cam", "student", INSTRUCTOR_CAM)],
                          3100.0) == {"cam": 2}
    nothing = [video("cam", "student", [None, None, None])]
    assert alloc.allocate(10_000_000, nothing, 4000.0) == {"cam": -1}
    assert not alloc.paused_for_bandwidth("cam")  # nothing arrives: not our decision
    # no layer <= max_layer available: the lowest available one beats a black tile
    above = [video("cam", "student", [None, 500_000, 1_500_000], max_layer=0)]
    assert Allocator().allocate(10_000_000, above, 0.0) == {"cam": 1}


def test_higher_priority_upgrade_preempts_lower_priority_tracks() -> None:
    alloc = Allocator()
    demands = [video("icam", "instructor", INSTRUCTOR_CAM, max_layer=0),
               video("s1", "student", STUDENT_CAM)]
    est = int(1_400_000 / 0.95)  # a budget of 1.4 Mbps, 1.12 Mbps with the margin
    assert alloc.allocate(est, demands, 0.0) == {"icam": 0, "s1": 2}  # 1.05 Mbps
    demands[0].max_layer = 2  # the instructor is pinned big
    # the policy: icam 1 + s1 1 (800 kbps) fits the margin, icam 2 (1.6 Mbps) does not; the
    # instructor was not held back by bandwidth, so no hold, and the student makes room
    assert alloc.allocate(est, demands, 100.0) == {"icam": 1, "s1": 1}
    assert not alloc.paused_for_bandwidth("s1")


def test_deterministic_whatever_the_input_order() -> None:
    demands = classroom()
    reference = [Allocator().allocate(est, demands, 0.0) for est in range(0, 8_000_000, 97_000)]
    for seed in range(5):
        shuffled = demands[:]
        random.Random(seed).shuffle(shuffled)
        again = [Allocator().allocate(est, shuffled, 0.0) for est in range(0, 8_000_000, 97_000)]
        assert again == reference


def test_ties_broken_by_track_id() -> None:
    demands = [video(t, "student", STUDENT_CAM) for t in ("c", "a", "b")]
    got = Allocator().allocate(int((200_000 * 1.25) / 0.95) + 1, demands, 0.0)
    assert got == {"a": 0, "b": 0, "c": -1}


def test_forgotten_tracks_start_fresh() -> None:
    alloc = Allocator()
    cam = [video("cam", "student", INSTRUCTOR_CAM)]
    alloc.allocate(10_000_000, cam, 0.0)
    alloc.allocate(100_000, cam, 100.0)
    assert alloc.paused_for_bandwidth("cam")
    alloc.allocate(10_000_000, [], 200.0)  # unsubscribed
    assert not alloc.paused_for_bandwidth("cam")
    changes = alloc.changes
    assert alloc.allocate(10_000_000, cam, 300.0) == {"cam": 2}  # a new subscription
    assert alloc.changes == changes


def test_allocated_bps_and_validation() -> None:
    alloc = Allocator()
    alloc.allocate(10_000_000, classroom(), 0.0)
    assert alloc.allocated_bps == AUDIO_BPS + 1_800_000 + 1_500_000 + 3 * 900_000
    with pytest.raises(ValueError):
        Allocator(up_margin=0.9)
    with pytest.raises(ValueError):
        Allocator(headroom=1.5)


def test_a_layer_that_stops_arriving_is_replaced_not_paused() -> None:
    """The publisher stopped sending the layer a subscriber had (its own CPU or bandwidth
    limit): the nearest available layer that fits takes over at once; no pause, no hold."""
    alloc = Allocator()
    full = video("cam", "student", [150_000, 300_000, 1_500_000])
    assert alloc.allocate(300_000, [full], 0.0) == {"cam": 0}  # held on the low layer
    assert alloc.allocate(350_000, [full], 500.0) == {"cam": 0}  # 300k fits, not with margin
    low_gone = video("cam", "student", [None, 300_000, 1_500_000])
    assert alloc.allocate(350_000, [low_gone], 1000.0) == {"cam": 1}
    assert not alloc.paused_for_bandwidth("cam")
    back = video("cam", "student", [150_000, None, None])
    assert alloc.allocate(350_000, [back], 1500.0) == {"cam": 0}
    assert not alloc.paused_for_bandwidth("cam")
