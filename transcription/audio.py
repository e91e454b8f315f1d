"""Opus packets of one microphone to 16 kHz mono PCM on the stream's timeline.

Fed RTP timestamps (48 kHz) and payloads in arrival order. A forward jump of the timestamp
(packets lost, or silent packets the speech gate did not forward) becomes that much
silence, at most ``MAX_GAP_S`` (a long pause needs no more to end an utterance, and
:meth:`OpusToPcm.stream_time` maps PCM times back across what was left out); a packet
at or behind the last timestamp (a duplicate, a late one) is dropped: speech recognition
needs a timeline, not every packet. An undecodable payload counts as ``undecodable`` and
becomes silence of one packet. Decoding happens here, in a transcription worker process,
never on the forwarding path.
"""

from __future__ import annotations

import av
import numpy as np

RTP_RATE = 48_000
OUT_RATE = 16_000
PACKET_TS = 960  # 20 ms at 48 kHz: what a missing packet is worth
MAX_GAP_S = 1.0


class OpusToPcm:
    def __init__(self) -> None:
        self._decoder = av.CodecContext.create("opus", "r")
        self._decoder.sample_rate = RTP_RATE
        self._decoder.layout = "mono"
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=OUT_RATE)
        self._next_ts: int | None = None
        self.undecodable = 0
        self.late = 0
        self.silence_s = 0.0
        self._out_samples = 0  # 16 kHz samples handed out: the PCM timeline
        #: (PCM time, seconds left out of the PCM by then): the long gaps shortened to
        #: MAX_GAP_S, so that PCM times map back to the stream's own time
        self._skips: list[tuple[float, float]] = []

    def feed(self, rtp_ts: int, payload: bytes) -> bytes:
        out = bytearray()
        if self._next_ts is not None:
            ahead = (rtp_ts - self._next_ts) & 0xFFFFFFFF
            if ahead >= 0x80000000:  # behind what was already played out
                self.late += 1
                return b""
            if ahead:
                gap = min(ahead, int(MAX_GAP_S * RTP_RATE))
                out += _silence(gap)
                self.silence_s += gap / RTP_RATE
                if ahead > gap:
                    skipped = (self._skips[-1][1] if self._skips else 0.0) + \
                        (ahead - gap) / RTP_RATE
                    at = (self._out_samples + len(out) // 2) / OUT_RATE
                    self._skips.append((at, skipped))
        decoded = self._decode(payload)
        if decoded is None:
            self.undecodable += 1
            pcm, samples = _silence(PACKET_TS), PACKET_TS
        else:
            pcm, samples = decoded
        out += pcm
        self._next_ts = (rtp_ts + samples) & 0xFFFFFFFF
        self._out_samples += len(out) // 2
        return bytes(out)

    def stream_time(self, pcm_s: float) -> float:
        """The stream's own time (RTP time since its first packet) of a PCM time: PCM
        times after a shortened gap are later by what was left out."""
        skipped = 0.0
        for at, total in self._skips:
            if at > pcm_s:
                break
            skipped = total
        return pcm_s + skipped

    def _decode(self, payload: bytes) -> tuple[bytes, int] | None:
        """The packet's PCM at 16 kHz and how many 48 kHz samples it held (the resampler
        keeps a few samples back, so the first differs from the second / 3)."""
        if not payload:
            return None
        try:
            frames = self._decoder.decode(av.Packet(payload))
        except (av.error.FFmpegError, ValueError):
            return None
        out = bytearray()
        samples = 0
        for frame in frames:
            samples += frame.samples
            for res in self._resampler.resample(frame):
                out += res.to_ndarray().astype(np.int16).tobytes()
        return (bytes(out), samples) if samples else None


def _silence(rtp_samples: int) -> bytes:
    return bytes(rtp_samples // (RTP_RATE // OUT_RATE) * 2)
