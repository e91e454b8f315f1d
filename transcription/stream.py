"""One microphone's transcription: Opus packets in, partial and final texts out.

:class:`StreamTranscriber` chains :class:`~transcription.audio.OpusToPcm`, the
:class:`~transcription.segmenter.Segmenter` and an engine (:mod:`transcription.engines`).
It is fed packets and returns results; it keeps its own figures (audio seconds, engine CPU
seconds: the real-time factor; words). It runs inside a transcription worker process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .audio import OpusToPcm
from .engines import Engine, Word
from .segmenter import Audio, Ended, Segmenter, SegmenterConfig, Started

#: at most this many words of an utterance shorter than PHANTOM_S: what a recogniser makes of
#: a short noise (a cough, a chair, a click) is text nobody said
PHANTOM_S = 0.6
PHANTOM_WORDS = 2


@dataclass(frozen=True)
class Partial:
    utterance: int
    start_s: float
    text: str


@dataclass(frozen=True)
class Final:
    utterance: int
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...]


Result = Partial | Final


@dataclass
class StreamFigures:
    audio_s: float = 0.0
    engine_cpu_s: float = 0.0
    utterances: int = 0
    words: int = 0
    dropped_noise: int = 0
    undecodable: int = 0
    late: int = 0
    failures: int = 0
    last_error: str = ""

    @property
    def real_time_factor(self) -> float:
        return self.engine_cpu_s / self.audio_s if self.audio_s else 0.0


class StreamTranscriber:
    def __init__(self, engine: Engine, segmenter: SegmenterConfig = SegmenterConfig()) -> None:
        self.engine = engine
        self.audio = OpusToPcm()
        self.segmenter = Segmenter(segmenter)
        self.figures = StreamFigures()
        self._utterance = 0
        self._engine_open = False

    def feed(self, rtp_ts: int, payload: bytes) -> list[Result]:
        pcm = self.audio.feed(rtp_ts, payload)
        self.figures.audio_s += len(pcm) / 32_000
        self.figures.undecodable = self.audio.undecodable
        self.figures.late = self.audio.late
        return self._segment(self.segmenter.feed(pcm)) if pcm else []

    def flush(self) -> list[Result]:
        return self._segment(self.segmenter.flush())

    def _segment(self, events: list[Started | Audio | Ended]) -> list[Result]:
        out: list[Result] = []
        for ev in events:
            t0 = time.process_time()
            try:
                if isinstance(ev, Started):
                    self._utterance += 1
                    self.engine.begin()
                    self._engine_open = True
                elif isinstance(ev, Audio) and self._engine_open:
                    text = self.engine.feed(ev.pcm)
                    if text:
                        out.append(Partial(self._utterance,
                                           round(self.audio.stream_time(ev.utterance.start_s),
                                                 3), text))
                elif isinstance(ev, Ended) and self._engine_open:
                    self._engine_open = False
                    final = self._final(ev)
                    if final is not None:
                        out.append(final)
            except Exception as exc:  # an engine error costs this utterance, not the stream
                self._engine_open = False
                self.figures.failures += 1
                self.figures.last_error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                self.figures.engine_cpu_s += time.process_time() - t0
        return out

    def _final(self, ev: Ended) -> Final | None:
        utt = ev.utterance
        rec = self.engine.end()
        duration = utt.end_s - utt.start_s
        if (not ev.speech or not rec.text
                or (duration < PHANTOM_S and len(rec.words) > PHANTOM_WORDS)):
            self.figures.dropped_noise += 1
            return None
        self.figures.utterances += 1
        self.figures.words += len(rec.words)
        # on the stream's own time (the PCM timeline shortens long gaps: transcription.audio)
        at = self.audio.stream_time
        words = tuple(Word(w.text, round(at(utt.start_s + w.start_s), 3),
                           round(at(utt.start_s + w.end_s), 3)) for w in rec.words)
        return Final(self._utterance, round(at(utt.start_s), 3), round(at(utt.end_s), 3),
                     rec.text, words)
