"""Active speaker detection on a fake clock: 20 ms audio packets with scripted levels.

Levels are RFC 6464 bytes: 0..127 = -dBov (0 loudest, 127 silence), 0x80 = V flag.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.speaker import ActiveSpeakerDetector

SILENCE = 127
PACKET_MS = 20
Script = Callable[[int], int | None]  # time -> level byte, None = no packet


def speech(start: int, end: int, level: int = 25, word: int = 300, pause: int = 150
           ) -> Script:
    """Words of ``word`` ms separated by ``pause`` ms between start and end; silence else."""
    def at(t: int) -> int | None:
        if start <= t < end and (t - start) % (word + pause) < word:
            return level | 0x80
        return SILENCE
    return at


def silent(t: int) -> int | None:
    return SILENCE


def combine(*parts: Script) -> Script:
    """The loudest of several scripts at each instant."""
    def at(t: int) -> int | None:
        levels = [lv & 0x7F for p in parts if (lv := p(t)) is not None]
        return min(levels) if levels else None
    return at


def simulate(det: ActiveSpeakerDetector, scripts: dict[str, Script], start: int, end: int,
             tick_ms: int = 100) -> list[tuple[int, list[str]]]:
    """Packets every 20 ms per participant, a tick every ``tick_ms``; the returned lists."""
    events: list[tuple[int, list[str]]] = []
    for t in range(start, end, PACKET_MS):
        for pid, script in scripts.items():
            level = script(t)
            if level is not None:
                det.on_level(pid, level, float(t))
        if t % tick_ms == 0:
            got = det.tick(float(t))
            if got is not None:
                assert all(0.0 <= score <= 1.0 for _, score in got)
                events.append((t, [pid for pid, _ in got]))
    return events


def loud_span(script: Script, start: int, end: int) -> float:
    """First loud packet's start to last loud packet: what talk time should be."""
    loud = [t for t in range(start, end, PACKET_MS) if (script(t) or SILENCE) & 0x7F < 50]
    return loud[-1] - loud[0] + PACKET_MS if loud else 0.0


def test_one_speaker() -> None:
    det = ActiveSpeakerDetector()
    events = simulate(det, {"a": speech(1000, 4000), "b": silent}, 0, 6000)
    assert [ids for _, ids in events] == [["a"], []]
    started, stopped = events[0][0], events[1][0]
    assert 1200 <= started <= 1700  # 200 ms of speech, then the next evaluation
    assert 4000 < stopped <= 5500  # about a window of silence ends it
    assert det.speakers == []


def test_switching_speakers() -> None:
    det = ActiveSpeakerDetector()
    events = simulate(det, {"a": speech(0, 3000), "b": speech(3000, 6000), "c": silent},
                      0, 8000)
    lists = [ids for _, ids in events]
    assert lists[0] == ["a"]
    assert ["b"] in lists
    assert lists[-1] == []
    # a leaves the list within ~1.5 s after its last word, b enters within 0.7 s
    b_in = min(t for t, ids in events if "b" in ids)
    a_out = min(t for t, ids in events if t > 3000 and "a" not in ids)
    assert 3000 < b_in <= 3700
    assert a_out <= 4500
    assert all(len(ids) <= 2 for ids in lists)


def test_silence_gives_an_empty_list_event_once() -> None:
    det = ActiveSpeakerDetector()
    events = simulate(det, {"a": speech(0, 1000)}, 0, 10_000)
    assert [ids for _, ids in events] == [["a"], []]
    assert det.tick(20_000.0) is None  # nothing changed: no repeat of []


def test_no_packets_at_all_also_ends_speech() -> None:
    det = ActiveSpeakerDetector()
    talking = speech(0, 1500)
    events = simulate(det, {"a": lambda t: talking(t) if t < 1500 else None}, 0, 4000)
    assert [ids for _, ids in events] == [["a"], []]  # muted: packets stop, window empties


def test_rate_limited_to_one_list_per_interval() -> None:
    det = ActiveSpeakerDetector(interval_ms=400.0)
    # three people taking turns quickly, ticked every 20 ms
    scripts = {"a": combine(speech(0, 500), speech(1800, 2300)),
               "b": combine(speech(600, 1100), speech(2400, 2900)),
               "c": combine(speech(1200, 1700), speech(3000, 3500))}
    events = simulate(det, scripts, 0, 6000, tick_ms=20)
    assert len(events) >= 4
    times = [t for t, _ in events]
    assert all(b - a >= 400 for a, b in zip(times, times[1:], strict=False))
    assert det.get_timer() is not None


def test_speaking_time_matches_a_scripted_class() -> None:
    det = ActiveSpeakerDetector()
    a = combine(speech(1_000, 9_000), speech(20_000, 26_000, level=35),
                speech(40_000, 41_000))
    b = combine(speech(10_000, 14_000, level=40, word=250, pause=250),
                speech(30_000, 45_000, level=20))
    c = combine(speech(15_000, 15_100))  # a cough: not speech
    simulate(det, {"a": a, "b": b, "c": c}, 0, 50_000)
    expected_a = loud_span(a, 0, 9_500) + loud_span(a, 19_500, 27_000) + loud_span(
        a, 39_500, 42_000)
    expected_b = loud_span(b, 0, 15_000) + loud_span(b, 29_000, 46_000)
    assert expected_a == pytest.approx(15_000, rel=0.1)
    assert det.speaking_ms("a") == pytest.approx(expected_a, rel=0.1)
    assert det.speaking_ms("b") == pytest.approx(expected_b, rel=0.1)
    assert det.speaking_ms("c") == 0.0
    assert det.speaking_ms("nobody") == 0.0


def test_speaking_time_counts_the_utterance_in_progress() -> None:
    det = ActiveSpeakerDetector()
    simulate(det, {"a": speech(0, 10_000, word=400, pause=100)}, 0, 5_000)
    assert det.speaking_ms("a") == pytest.approx(5_000, rel=0.1)


def test_noise_spike_and_cough_are_ignored() -> None:
    det = ActiveSpeakerDetector()
    spike = {"a": lambda t: 0 if t == 1000 else SILENCE,  # one full-scale packet
             "b": speech(2000, 2140, level=5, word=140)}  # a 140 ms cough
    assert simulate(det, spike, 0, 5000) == []
    assert det.speaking_ms("a") == det.speaking_ms("b") == 0.0


def test_short_pauses_between_words_do_not_end_speech() -> None:
    det = ActiveSpeakerDetector()
    events = simulate(det, {"a": speech(0, 10_000, word=350, pause=600)}, 0, 10_000)
    assert [ids for _, ids in events] == [["a"]]


def test_quiet_voice_under_the_threshold_is_not_a_speaker() -> None:
    det = ActiveSpeakerDetector(threshold_dbov=50)
    assert simulate(det, {"a": speech(0, 5000, level=60)}, 0, 5000) == []


def test_loudest_first_and_at_most_max_speakers() -> None:
    det = ActiveSpeakerDetector(max_speakers=3)
    levels = {"quiet": 45, "loud": 5, "mid": 25, "soft": 40, "murmur": 48}
    scripts = {p: speech(0, 5000, level=lv, word=1000, pause=0) for p, lv in levels.items()}
    events = simulate(det, scripts, 0, 3000)
    assert events[-1][1] == ["loud", "mid", "soft"]
    scores = [s for _, s in det.speakers]
    assert scores == sorted(scores, reverse=True)
    assert 0.0 < scores[-1] < scores[0] <= 1.0


def test_order_is_sticky_between_similar_voices() -> None:
    det = ActiveSpeakerDetector()
    # two people talking at nearly the same level, levels alternating by 1 dB each second
    scripts = {"a": lambda t: 30 - (t // 1000) % 2, "b": lambda t: 29 + (t // 1000) % 2}
    events = simulate(det, scripts, 0, 20_000)
    assert len(events) == 1  # found once, never reordered


def test_a_much_louder_newcomer_takes_the_first_place() -> None:
    det = ActiveSpeakerDetector()
    events = simulate(det, {"a": speech(0, 10_000, level=45, word=1000, pause=0),
                            "b": speech(4000, 10_000, level=5, word=1000, pause=0)}, 0, 8000)
    assert [ids for _, ids in events] == [["a"], ["b", "a"]]  # b is listed first at once


def test_remove_drops_a_listed_speaker() -> None:
    det = ActiveSpeakerDetector()
    simulate(det, {"a": speech(0, 5000), "b": speech(0, 5000, level=10)}, 0, 2000)
    assert [pid for pid, _ in det.speakers] == ["b", "a"]
    det.remove("b")
    det.remove("never-seen")
    got = det.tick(2400.0)
    assert got is not None and [pid for pid, _ in got] == ["a"]
    assert det.speaking_ms("b") == 0.0


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        ActiveSpeakerDetector(min_speaking_ms=2000.0, window_ms=1000.0)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 255),
                          st.floats(-50, 400, allow_nan=False)), max_size=300))
def test_arbitrary_input_never_breaks_it(packets: list[tuple[str, int, float]]) -> None:
    det = ActiveSpeakerDetector(max_speakers=2)
    now = 0.0
    returned: list[float] = []
    for pid, level, step in packets:
        now += step  # time may even go backwards a little (reordering, clock steps)
        det.on_level(pid, level, now)
        got = det.tick(now)
        if got is not None:
            returned.append(now)
            assert len(got) <= 2
            assert len({p for p, _ in got}) == len(got)
            assert all(0.0 <= s <= 1.0 for _, s in got)
        assert det.speaking_ms(pid) >= 0.0
    assert all(b - a >= 400 for a, b in zip(returned, returned[1:], strict=False))


def test_speaking_time_with_network_jitter() -> None:
    """Arrival times jittered by up to 60 ms (reordering and bursts): still within 10 %."""
    rng = random.Random(7)
    script = combine(speech(500, 6_500), speech(9_000, 12_000, level=30, word=200, pause=200))
    # processed in arrival order: 60 ms of jitter on a 20 ms packet spacing reorders them
    arrivals = sorted((t + rng.uniform(0, 60), script(t) or SILENCE)
                      for t in range(0, 15_000, PACKET_MS))
    det = ActiveSpeakerDetector()
    for now, level in arrivals:
        det.on_level("a", level, now)
        det.tick(now)
    expected = loud_span(script, 0, 7_000) + loud_span(script, 8_000, 13_000)
    assert det.speaking_ms("a") == pytest.approx(expected, rel=0.1)
