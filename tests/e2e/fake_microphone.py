"""Spoken fake microphones for the browser tests: espeak-ng sentences laid out in a 48 kHz
WAV that Chromium plays as its microphone (``--use-file-for-fake-audio-capture``; it loops
the file), and the page script that samples what the microphone captured."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from benches import speech

RATE = 48_000

#: samples the page's own microphone every 100 ms into window.__audio: {t, e (total audio
#: energy), d (total samples duration), sent (audio packets sent)}; stop with STOP_SAMPLER
SPEAKER_SAMPLER = """
() => {
  window.__audio = [];
  window.__sampler = setInterval(async () => {
    const pc = window.sfu.publisherPc;
    if (!pc) return;
    const report = await pc.getStats();
    let src = null, out = null;
    report.forEach((r) => {
      if (r.type === "media-source" && r.kind === "audio") src = r;
      if (r.type === "outbound-rtp" && r.kind === "audio") out = r;
    });
    if (src) window.__audio.push({t: Date.now(), e: src.totalAudioEnergy || 0,
      d: src.totalSamplesDuration || 0, sent: out ? out.packetsSent : 0});
  }, 100);
}
"""
STOP_SAMPLER = "() => { clearInterval(window.__sampler); return window.__audio; }"


def microphone_file(directory: Path, name: str, sentences: list[str], *, lead_s: float,
                    total_s: float, gap_s: float = 1.5, words_per_minute: int = 140
                    ) -> tuple[Path, list[tuple[float, float]]]:
    """``directory/name.wav``: ``lead_s`` of silence, the sentences with ``gap_s`` between
    them (each at half of full scale), silence up to ``total_s``; and each sentence's
    (start, end) seconds in the file."""
    out = np.zeros(int(total_s * RATE), dtype=np.float64)
    at, spans = lead_s, []
    for i, text in enumerate(sentences):
        samples, rate = speech.read_wav(speech.say(text, directory / f"{name}-{i}.wav",
                                                   words_per_minute=words_per_minute))
        voice = np.interp(np.arange(0, len(samples) * RATE / rate) * rate / RATE,
                          np.arange(len(samples)), samples.astype(np.float64))
        voice *= 0.5 * 32767 / max(1.0, np.abs(voice).max())
        start = int(at * RATE)
        assert start + len(voice) < len(out), f"{name}'s sentences are longer than the file"
        out[start:start + len(voice)] = voice
        spans.append((at, at + len(voice) / RATE))
        at += len(voice) / RATE + gap_s
    path = directory / f"{name}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(out.astype("<i2").tobytes())
    return path, spans
