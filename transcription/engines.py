"""Speech recognition engines behind one small interface, all on premise.

- ``pocketsphinx`` (the default): PocketSphinx 5, whose wheel ships its US English model
  (acoustic model, language model, dictionary), so it works on a fresh machine with
  nothing downloaded. Incremental: partial hypotheses while the speaker talks.
- ``whisper``: faster-whisper (CTranslate2) with a model directory the operator provides
  (``transcription.model_dir``, a converted Whisper model such as ``whisper-small``); the
  optional dependency ``classroom-sfu[whisper]``. Better text, no partials: it recognises
  each utterance when it ends. Nothing is ever fetched from a model hub.

An engine instance serves one audio stream, one utterance at a time: :meth:`begin`,
:meth:`feed` (16 kHz mono 16-bit PCM; returns a partial text when there is a new one),
:meth:`end` (the final text and its words, times relative to the utterance's start).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

RATE = 16_000
#: how much audio between two partial hypotheses (each costs a search of the lattice)
PARTIAL_EVERY_BYTES = RATE * 2 * 4 // 10  # 400 ms
#: seconds of a stream's speech the PocketSphinx engine decodes twice (see its end())
WARM_S = 6.0
ENGINES = ("pocketsphinx", "whisper")


class EngineUnavailable(Exception):
    """The engine cannot run here (a missing package or model); the text says what to do."""


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float


@dataclass
class Recognition:
    text: str
    words: list[Word] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def begin(self) -> None: ...

    def feed(self, pcm: bytes) -> str | None: ...

    def end(self) -> Recognition: ...


@dataclass(frozen=True)
class EngineConfig:
    engine: str = "pocketsphinx"
    model_dir: str = ""
    language: str = "en"


_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+.*\+)$")
_ALTERNATE = re.compile(r"\(\d+\)$")


class PocketSphinxEngine:
    name = "pocketsphinx"

    def __init__(self, config: EngineConfig) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineUnavailable("pocketsphinx is not installed") from exc
        kwargs: dict[str, Any] = {"samprate": RATE}
        if config.model_dir:  # another language's model: hmm/, lm.bin, dict
            root = Path(config.model_dir)
            if not root.is_dir():
                raise EngineUnavailable(f"pocketsphinx model_dir {root} is not a directory")
            kwargs.update(hmm=str(root / "hmm"), lm=str(root / "lm.bin"),
                          dict=str(root / "dict"))
        self._decoder = Decoder(**kwargs)
        self._since_partial = 0
        self._partial = ""
        self._warm_s = 0.0  # speech decoded in batch so far (see end())
        self._pcm = bytearray()

    def begin(self) -> None:
        self._decoder.start_utt()
        self._since_partial = 0
        self._partial = ""
        self._pcm.clear()

    def feed(self, pcm: bytes) -> str | None:
        self._decoder.process_raw(pcm, False, False)
        if self._warm_s < WARM_S:
            self._pcm += pcm
        self._since_partial += len(pcm)
        if self._since_partial < PARTIAL_EVERY_BYTES:
            return None
        self._since_partial = 0
        hyp = self._decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text or text == self._partial:
            return None
        self._partial = text
        return text

    def end(self) -> Recognition:
        self._decoder.end_utt()
        if self._warm_s < WARM_S and self._pcm:
            # Live decoding normalises the cepstrum with a running mean that starts from
            # the model's prior: until it has seen a few seconds of this microphone, its
            # text is poor (WER 1.05 against 0.45 warm, on test speech). So the first
            # seconds of a stream are decoded again as whole utterances, which normalise
            # with their own mean and leave it for the live decoding that follows.
            self._decoder.start_utt()
            self._decoder.process_raw(bytes(self._pcm), False, True)
            self._decoder.end_utt()
            self._warm_s += len(self._pcm) / (RATE * 2)
            self._pcm.clear()
        words = []
        for seg in self._decoder.seg():
            if _FILLER.match(seg.word):
                continue
            words.append(Word(_ALTERNATE.sub("", seg.word), seg.start_frame / 100.0,
                              (seg.end_frame + 1) / 100.0))
        return Recognition(" ".join(w.text for w in words), words)


class WhisperEngine:
    name = "whisper"

    def __init__(self, config: EngineConfig) -> None:
        if not config.model_dir:
            raise EngineUnavailable("the whisper engine needs transcription.model_dir: a "
                                    "CTranslate2 Whisper model directory (model.bin, "
                                    "config.json, tokenizer.json)")
        root = Path(config.model_dir)
        if not (root / "model.bin").is_file():
            raise EngineUnavailable(f"{root} holds no CTranslate2 model (model.bin missing)")
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineUnavailable("faster-whisper is not installed: pip install "
                                    "'classroom-sfu[whisper]'") from exc
        try:
            self._model = WhisperModel(str(root), device="cpu", compute_type="int8",
                                       cpu_threads=1, local_files_only=True)
        except Exception as exc:
            raise EngineUnavailable(f"the Whisper model in {root} did not load: {exc}") from exc
        self._language = config.language or None
        self._pcm = bytearray()

    def begin(self) -> None:
        self._pcm.clear()

    def feed(self, pcm: bytes) -> str | None:
        self._pcm += pcm
        return None

    def end(self) -> Recognition:
        import numpy as np

        audio = np.frombuffer(bytes(self._pcm), dtype=np.int16).astype(np.float32) / 32768.0
        segments, _info = self._model.transcribe(
            audio, language=self._language, beam_size=1, word_timestamps=True,
            vad_filter=False, condition_on_previous_text=False)
        words = [Word(w.word.strip(), float(w.start), float(w.end))
                 for s in segments for w in (s.words or ()) if w.word.strip()]
        return Recognition(" ".join(w.text for w in words), words)


def make_engine(config: EngineConfig) -> Engine:
    if config.engine == "pocketsphinx":
        return PocketSphinxEngine(config)
    if config.engine == "whisper":
        return WhisperEngine(config)
    raise EngineUnavailable(f"unknown transcription engine {config.engine!r}; "
                            f"have {', '.join(ENGINES)}")
