"""Speech segmentation, sans-IO: 16 kHz mono 16-bit PCM in, utterances out.

webrtcvad classifies each 30 ms frame as voiced or not; an utterance starts when
``start_voiced`` of the last ``window`` frames are voiced (the ``preroll`` frames before
the start are kept, so the first syllable is not cut) and ends when ``end_unvoiced`` of the
last ``window_end`` frames are unvoiced, or at ``max_s``. An utterance with less than
``min_voiced_s`` of voiced frames is dropped as noise (a cough, a click, a door) before any
engine sees it: the first guard against phantom text.

Times are seconds of the stream's own timeline: samples fed so far / 16,000 (the caller
feeds silence for the gaps of the packet stream, :mod:`transcription.audio`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import webrtcvad

RATE = 16_000
FRAME_SAMPLES = 480  # 30 ms
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME_S = FRAME_SAMPLES / RATE


@dataclass(frozen=True)
class SegmenterConfig:
    aggressiveness: int = 2
    window: int = 10
    start_voiced: int = 6
    window_end: int = 14
    end_unvoiced: int = 12
    preroll: int = 10
    max_s: float = 20.0
    min_voiced_s: float = 0.3


@dataclass
class Utterance:
    """A stretch of speech: ``start_s`` and ``end_s`` on the stream's timeline, its PCM."""

    start_s: float
    end_s: float = 0.0
    pcm: bytearray = field(default_factory=bytearray)
    voiced_frames: int = 0


@dataclass(frozen=True)
class Started:
    utterance: Utterance


@dataclass(frozen=True)
class Audio:
    """More PCM of the open utterance (what an incremental engine is fed)."""

    utterance: Utterance
    pcm: bytes


@dataclass(frozen=True)
class Ended:
    utterance: Utterance
    #: False: too little voiced audio to be speech, nothing to recognise
    speech: bool


Event = Started | Audio | Ended


class Segmenter:
    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._buffer = bytearray()
        self._frames = 0  # frames classified so far: the timeline
        self._recent: deque[bool] = deque(maxlen=max(config.window, config.window_end))
        self._preroll: deque[bytes] = deque(maxlen=config.preroll)
        self.current: Utterance | None = None

    @property
    def now_s(self) -> float:
        return self._frames * FRAME_S

    def feed(self, pcm: bytes) -> list[Event]:
        """Classify the complete 30 ms frames of ``pcm`` (the rest waits for more)."""
        self._buffer += pcm
        events: list[Event] = []
        usable = len(self._buffer) - len(self._buffer) % FRAME_BYTES
        for i in range(0, usable, FRAME_BYTES):
            self._frame(bytes(self._buffer[i:i + FRAME_BYTES]), events)
        del self._buffer[:usable]
        return events

    def flush(self) -> list[Event]:
        """The stream ended: close the open utterance, if any."""
        if self.current is None:
            return []
        return [self._end()]

    def _frame(self, frame: bytes, events: list[Event]) -> None:
        cfg = self.config
        voiced = self._vad.is_speech(frame, RATE)
        self._frames += 1
        self._recent.append(voiced)
        utt = self.current
        if utt is None:
            self._preroll.append(frame)
            recent = list(self._recent)[-cfg.window:]
            if sum(recent) >= cfg.start_voiced:
                start_s = self.now_s - len(self._preroll) * FRAME_S
                utt = self.current = Utterance(start_s=max(0.0, start_s))
                pcm = b"".join(self._preroll)
                self._preroll.clear()
                utt.pcm += pcm
                utt.voiced_frames = sum(recent)
                events.append(Started(utt))
                events.append(Audio(utt, pcm))
            return
        utt.pcm += frame
        utt.voiced_frames += voiced
        events.append(Audio(utt, frame))
        recent = list(self._recent)[-cfg.window_end:]
        quiet = len(recent) >= cfg.window_end and recent.count(False) >= cfg.end_unvoiced
        if quiet or self.now_s - utt.start_s >= cfg.max_s:
            events.append(self._end())

    def _end(self) -> Ended:
        utt = self.current
        assert utt is not None
        self.current = None
        self._recent.clear()
        utt.end_s = self.now_s
        return Ended(utt, utt.voiced_frames * FRAME_S >= self.config.min_voiced_s)
