"""The transcription pipeline without a server: espeak-ng sentences encoded to Opus as a
browser would send them, through the decoder, the segmenter and the PocketSphinx engine
(its model from its wheel: nothing downloaded). Word error rates are printed and held
under a bound a broken pipeline cannot meet (it gives no text, or text of other words:
WER near 1). Garbage (noise, silence, undecodable and truncated payloads, timestamps that
jump or go back) makes no crash and almost no text."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from benches import speech
from transcription.audio import OpusToPcm
from transcription.engines import EngineConfig, EngineUnavailable, make_engine
from transcription.segmenter import Ended, Segmenter, Started
from transcription.stream import Final, Partial, StreamTranscriber

SCRIPT = ["Good morning everyone.", "Please open your books at page ten.",
          "Today we will read the first chapter together."]
#: measured 0.2-0.45 on the sentences here; a broken pipeline gives 1.0 or more
WER_BOUND = 0.6


#: seconds of each sentence of the script (with its second of silence), set by spoken()
LENGTHS: list[float] = []


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    """The script, each sentence said on its own with a second of silence between them,
    after half a second of silence."""
    parts, rate = [], 0
    LENGTHS.clear()
    for i, sentence in enumerate(SCRIPT):
        path = tmp_path_factory.mktemp("speech") / f"s{i}.wav"
        samples, rate = speech.read_wav(speech.say(sentence, path, tail_s=1.0))
        parts.append(samples)
        LENGTHS.append(len(samples) / rate)
    return np.concatenate([np.zeros(rate // 2, dtype=np.int16), *parts]), rate


def transcribe(packets: list[tuple[int, bytes]]) -> tuple[list[Final | Partial],
                                                           StreamTranscriber]:
    st = StreamTranscriber(make_engine(EngineConfig()))
    out: list[Final | Partial] = []
    for ts, payload in packets:
        out += st.feed(ts & 0xFFFFFFFF, payload)
    out += st.flush()
    return out, st


def test_segmenter_finds_each_sentence_where_it_was_said(spoken: tuple[np.ndarray, int]
                                                         ) -> None:
    samples, rate = spoken
    decoder = OpusToPcm()
    pcm = b"".join(decoder.feed(ts & 0xFFFFFFFF, p)
                   for ts, p in speech.opus_packets(samples, rate))
    assert abs(len(pcm) / 32_000 - len(samples) / rate) < 0.05  # the timeline holds
    seg = Segmenter()
    events = seg.feed(pcm) + seg.flush()
    starts = [e.utterance.start_s for e in events if isinstance(e, Started)]
    ends = [e.utterance for e in events if isinstance(e, Ended) and e.speech]
    assert len(ends) == len(SCRIPT), [(u.start_s, u.end_s) for u in ends]
    # each utterance starts before its sentence's first sound and within the gap before it
    t = 0.5
    for utt, length in zip(ends, LENGTHS, strict=True):
        assert t - 0.3 <= utt.start_s <= t + 0.2, (utt.start_s, t)
        assert utt.end_s < t + length, (utt.end_s, t + length)  # ended in the silence
        t += length
    assert starts == [u.start_s for u in ends]


def test_spoken_script_is_recognised_with_partials_first(spoken: tuple[np.ndarray, int]
                                                         ) -> None:
    samples, rate = spoken
    results, st = transcribe(speech.opus_packets(samples, rate))
    finals = [r for r in results if isinstance(r, Final)]
    text = " ".join(f.text for f in finals)
    wer = speech.word_error_rate(" ".join(SCRIPT), text)
    print(f"recognised: {text!r}; WER {wer:.2f}; real-time factor "
          f"{st.figures.real_time_factor:.3f}")
    assert wer <= WER_BOUND, (wer, text)
    # a partial of an utterance comes before its final
    first_final = results.index(finals[0])
    assert any(isinstance(r, Partial) and r.utterance == finals[0].utterance
               for r in results[:first_final])
    # words on the stream's timeline, in order, inside their utterance
    for f in finals:
        assert f.words and f.start_s <= f.words[0].start_s <= f.words[-1].end_s <= f.end_s
    assert st.figures.words == sum(len(f.words) for f in finals)
    assert 0 < st.figures.real_time_factor < 1


def test_gaps_in_the_packet_stream_are_silence_and_late_packets_are_dropped(
        spoken: tuple[np.ndarray, int]) -> None:
    samples, rate = spoken
    packets = speech.opus_packets(samples, rate)
    dec = OpusToPcm()
    first = dec.feed(packets[0][0] & 0xFFFFFFFF, packets[0][1])
    assert len(first) > 0
    # 10 packets missing (the speech gate's silence): 200 ms of zeros, then the packet
    ts, payload = packets[11]
    out = dec.feed(ts & 0xFFFFFFFF, payload)
    assert out[:200 * 32] == bytes(200 * 32) and len(out) >= 200 * 32 + 600
    assert dec.late == 0
    assert dec.feed(packets[5][0] & 0xFFFFFFFF, packets[5][1]) == b""  # behind: dropped
    assert dec.late == 1
    # a huge jump is capped at a second of silence
    out = dec.feed((ts + 48_000 * 60) & 0xFFFFFFFF, packets[12][1])
    assert 32_000 <= len(out) <= 32_000 + 2000


def test_a_long_silence_the_gate_did_not_forward_keeps_the_streams_time(
        spoken: tuple[np.ndarray, int]) -> None:
    """The speech gate forwards nothing while a student is silent: the packets after a
    minute of silence jump a minute ahead. The PCM holds at most a second of that silence,
    but the lines keep the stream's own time."""
    samples, rate = spoken
    packets = speech.opus_packets(samples, rate)
    minute = 48_000 * 60
    later = [(ts + minute, p) for ts, p in packets]
    results, _ = transcribe(packets + later)
    finals = [r for r in results if isinstance(r, Final)]
    assert len(finals) == 2 * len(SCRIPT), [f.text for f in finals]
    first, again = finals[0], finals[len(SCRIPT)]
    # the same sentence, a minute (of stream time) later
    assert abs((again.start_s - first.start_s) - 60.0) < 0.5, (first.start_s, again.start_s)
    assert all(abs((b.start_s - a.start_s) - 60.0) < 0.5 for a, b in
               zip(finals[:len(SCRIPT)], finals[len(SCRIPT):], strict=True))
    assert again.words[0].start_s >= again.start_s


def test_garbage_makes_no_crash_and_almost_no_text() -> None:
    rng = random.Random(7)
    rate = 48_000
    noise = (np.random.default_rng(7).normal(0, 3000, rate * 6)).astype(np.int16)
    clipped = np.clip(noise.astype(np.int32) * 20, -32768, 32767).astype(np.int16)
    silence = np.zeros(rate * 4, dtype=np.int16)
    packets = speech.opus_packets(np.concatenate([silence, noise, clipped, silence]), rate)
    # and payloads no decoder understands, empty ones, truncated ones, timestamps going back
    mangled: list[tuple[int, bytes]] = []
    for ts, payload in packets:
        roll = rng.random()
        if roll < 0.05:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        elif roll < 0.08:
            payload = payload[: rng.randrange(0, max(1, len(payload)))]
        elif roll < 0.1:
            ts -= 960 * rng.randrange(1, 50)
        mangled.append((ts, payload))
    results, st = transcribe(mangled)
    words = sum(len(r.words) for r in results if isinstance(r, Final))
    print(f"garbage: {len(mangled)} packets ({len(mangled) * 0.02:.0f} s), {words} words "
          f"recognised, {st.figures.undecodable} undecodable, {st.figures.late} late, "
          f"{st.figures.dropped_noise} noise utterances dropped")
    assert st.figures.failures == 0, st.figures.last_error
    assert st.figures.undecodable > 0 and st.figures.late > 0
    # phantom text: at most a few words for 20 s of noise
    assert words <= 8, [r for r in results if isinstance(r, Final)]


def test_whisper_without_a_model_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="model_dir"):
        make_engine(EngineConfig(engine="whisper"))
    with pytest.raises(EngineUnavailable, match="model.bin"):
        make_engine(EngineConfig(engine="whisper", model_dir=str(tmp_path)))
    with pytest.raises(EngineUnavailable, match="unknown transcription engine"):
        make_engine(EngineConfig(engine="cloud"))
