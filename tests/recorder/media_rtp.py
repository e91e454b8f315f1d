"""Real VP8 and Opus media as RTP packets for the recorder tests: the bench's pre-encoded
180p VP8 (one keyframe per 4 s loop) and Opus (benches/media.py), packetized as a browser
would (RFC 7741 descriptor, marker on a frame's last packet)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from benches import media

VIDEO_TS_PER_FRAME = 90000 // media.FPS
AUDIO_TS_PER_FRAME = media.AUDIO_FRAME


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, pt: int = 96,
        ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


class VideoSource:
    """VP8 frames as packets; :meth:`keyframe` makes the next frame a keyframe (the loop
    restarts at its first frame, as a publisher answers a PLI)."""

    def __init__(self, seq: int = 0, ts: int = 0, layer: str = "180p") -> None:
        self.frames = media.load(layer).video
        self.seq, self.ts = seq, ts
        self.index = 0
        self.sent_frames = 0

    def keyframe(self) -> None:
        self.index = 0

    def frame(self) -> list[bytes]:
        payloads = self.frames[self.index % len(self.frames)]
        self.index += 1
        self.sent_frames += 1
        out = []
        for i, p in enumerate(payloads):
            out.append(rtp(self.seq, self.ts, p, marker=i == len(payloads) - 1))
            self.seq += 1
        self.ts += VIDEO_TS_PER_FRAME
        return out

    def packets(self, frames: int) -> Iterator[bytes]:
        for _ in range(frames):
            yield from self.frame()


class AudioSource:
    def __init__(self, seq: int = 0, ts: int = 0) -> None:
        self.frames = media.load("180p").audio
        self.seq, self.ts = seq, ts
        self.index = 0

    def packets(self, frames: int) -> Iterator[bytes]:
        for _ in range(frames):
            yield rtp(self.seq, self.ts, self.frames[self.index % len(self.frames)], pt=111)
            self.index += 1
            self.seq += 1
            self.ts += AUDIO_TS_PER_FRAME
