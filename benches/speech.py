"""Spoken test audio: sentences said by Debian's espeak-ng, as WAV (a browser's fake
microphone) or as the Opus RTP payloads a browser would send (the transcription tests and
bench, without a browser)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np

RTP_RATE = 48_000
PACKET_SAMPLES = 960  # 20 ms


def say(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 140,
        lead_s: float = 0.0, tail_s: float = 0.0) -> Path:
    """``text`` spoken into a 16-bit mono WAV at ``path`` (espeak-ng's 22,050 Hz), with
    ``lead_s`` and ``tail_s`` of silence around it."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FileNotFoundError("espeak-ng is missing (apt install espeak-ng)")
    subprocess.run([binary, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True)
    if lead_s or tail_s:
        with wave.open(str(path)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        write_wav(path, bytes(int(lead_s * rate) * 2) + pcm + bytes(int(tail_s * rate) * 2),
                  rate)
    return path


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def opus_packets(samples: np.ndarray, rate: int, *, bitrate: int = 32_000
                 ) -> list[tuple[int, bytes]]:
    """16-bit mono ``samples`` at ``rate`` as (RTP timestamp, Opus payload) every 20 ms,
    as a browser sends them (timestamps from 0)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RTP_RATE  # type: ignore[attr-defined]
    enc.layout = "mono"  # type: ignore[attr-defined]
    enc.format = "s16"  # type: ignore[attr-defined]
    enc.bit_rate = bitrate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RTP_RATE)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    pcm = b"".join(f.to_ndarray().astype(np.int16).tobytes()
                   for f in [*resampler.resample(frame), *resampler.resample(None)])
    whole = np.frombuffer(pcm, dtype=np.int16)
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(whole) - PACKET_SAMPLES + 1, PACKET_SAMPLES):
        chunk = av.AudioFrame.from_ndarray(whole[i:i + PACKET_SAMPLES].reshape(1, -1),
                                           format="s16", layout="mono")
        chunk.sample_rate = RTP_RATE
        chunk.pts = i
        out += [(int(p.pts or i), bytes(p)) for p in enc.encode(chunk)]
    out += [(int(p.pts or 0), bytes(p)) for p in enc.encode(None)]
    return out


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference's length (case and punctuation
    ignored)."""
    ref, hyp = _words(reference), _words(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c in " '" else " " for c in text.lower()).split()
