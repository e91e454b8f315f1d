"""One track's recording as a WebM file, muxed by libavformat (PyAV) without transcoding.

The frames come from :mod:`recorder.depacketize` as they were encoded in the browser (VP8
or Opus) and go into a single-stream WebM. The muxer writes to an append-only writer (it
is told the output cannot seek): no index is written back at the end, so every byte, once
written, is final, which is what lets the bytes go to two sinks as they come (and to S3 in
chunks). Clusters close at least every ``cluster_ms`` (1 s) and are handed to the writer
at once (``flush_packets``), so a process killed with SIGKILL leaves a file playable up to
its last whole cluster (docs/recording.md; shared/REFERENCE.md has the measurements).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av

from .depacketize import Frame

CLOCK = {"audio": 48000, "video": 90000}
#: OpusHead (RFC 7845 §5.1): version 1, 2 channels, no pre-skip (RTP does not carry the
#: encoder's), 48 kHz, 0 dB, mapping family 0
OPUS_HEAD = b"OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00"
CODEC = {"VP8": "vp8", "OPUS": "opus"}


class AppendOnly(io.RawIOBase):
    """A binary writer the muxer sees as non-seekable; each write goes to ``sink``."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        super().__init__()
        self._sink = sink

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._sink(data)
        return len(data)


class TrackFile:
    def __init__(self, sink: Callable[[bytes], None], kind: str, codec: str, *,
                 cluster_ms: int = 1000) -> None:
        if codec.upper() not in CODEC:
            raise ValueError(f"cannot record {codec}")
        self.kind = kind
        self.codec = CODEC[codec.upper()]
        self.cluster_ms = cluster_ms
        self.out = AppendOnly(sink)
        self.time_base = Fraction(1, CLOCK[kind])
        self._container: Any = None
        self._stream: Any = None
        self.first_ts: int | None = None
        self.last_pts = -1
        self.frames = 0
        self.closed = False

    @property
    def duration_s(self) -> float:
        return max(self.last_pts, 0) / CLOCK[self.kind]

    def _open(self, frame: Frame) -> bool:
        if self.kind == "video" and frame.size is None:
            return False  # the muxer needs the picture size: wait for a keyframe with it
        self._container = av.open(self.out, "w", format="webm", options={
            "flush_packets": "1", "cluster_time_limit": str(self.cluster_ms),
            "cluster_size_limit": str(1 << 20)})
        if self.kind == "video":
            assert frame.size is not None
            stream = self._container.add_stream(self.codec, rate=30)
            stream.width, stream.height = frame.size
        else:
            stream = self._container.add_stream(self.codec, rate=CLOCK["audio"])
            stream.codec_context.extradata = OPUS_HEAD
        stream.time_base = self.time_base
        self._stream = stream
        self.first_ts = frame.timestamp
        return True

    def write(self, frame: Frame) -> bool:
        """Mux one frame; False if it cannot start the file (a video frame before the first
        keyframe with its size)."""
        if self.closed:
            raise ValueError("the track file is closed")
        if self._container is None and not self._open(frame):
            return False
        assert self.first_ts is not None
        pts = max(frame.timestamp - self.first_ts, self.last_pts)
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.time_base = self.time_base
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.keyframe
        self._container.mux(packet)
        self.last_pts = pts
        self.frames += 1
        return True

    def close(self) -> None:
        """Write what the muxer holds (the last cluster) and end the file."""
        if self.closed:
            return
        self.closed = True
        if self._container is not None:
            self._container.close()
