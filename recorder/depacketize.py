"""RTP payloads back into codec frames for the recorder, sans-IO and without decoding.

- Opus (RFC 7587): one packet is one frame.
- VP8 (RFC 7741): a frame starts at a packet with S=1 and partition 0 and ends at the
  packet with the RTP marker bit; the payload descriptor of each packet is skipped. A frame
  with a packet missing (a gap reported by :mod:`recorder.reorder`, or a start or end
  never seen) cannot be decoded, and neither can the frames after it until the next
  keyframe: those are dropped, and :attr:`Vp8Depacketizer.wants_keyframe` asks the caller
  to request one (a PLI through the SFU).

Each depacketizer is fed released packets in sequence order (``packet``, ``gap``) and
returns the frames it completed, each with the number of packets it took; the packets it
could not use are counted in ``packets_dropped``, so packets in == the frames' packets +
dropped + the half frame it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.payload import vp8_descriptor_end
from sfu.rtp_header import RtpHeaderError, payload_bounds

TS_MOD = 1 << 32


@dataclass(slots=True)
class Frame:
    data: bytes
    #: RTP timestamp, unwrapped (monotonic across 32-bit wraps)
    timestamp: int
    keyframe: bool
    #: RTP packets it was assembled from
    packets: int = 1
    #: (width, height) for a VP8 keyframe, else None
    size: tuple[int, int] | None = None


class _Unwrap:
    def __init__(self) -> None:
        self.last = -1

    def __call__(self, ts: int) -> int:
        if self.last < 0:
            self.last = ts
            return ts
        ext = (self.last & ~(TS_MOD - 1)) | ts
        if ext - self.last > TS_MOD // 2:
            ext -= TS_MOD
        elif self.last - ext > TS_MOD // 2:
            ext += TS_MOD
        if ext > self.last:
            self.last = ext
        return ext


class Depacketizer:
    kind = ""

    def __init__(self) -> None:
        self.packets_dropped = 0
        #: packets with no payload (padding a sender uses to probe bandwidth): nothing to
        #: write, and not a loss; counted apart from packets_dropped
        self.packets_empty = 0
        self.wants_keyframe = False
        self._unwrap = _Unwrap()

    def push(self, packet: bytes, gap: bool) -> list[Frame]:
        raise NotImplementedError

    def _payload(self, packet: bytes) -> tuple[int, int] | None:
        """(start, end) of the payload; None (counted) for a packet with none to use."""
        try:
            start, end = payload_bounds(packet)
        except RtpHeaderError:
            self.packets_dropped += 1
            return None
        if start >= end:
            self.packets_empty += 1
            return None
        return start, end

    def flush(self) -> None:
        """The end: whatever is half-assembled is dropped (counted)."""


class OpusDepacketizer(Depacketizer):
    kind = "audio"

    def push(self, packet: bytes, gap: bool) -> list[Frame]:
        bounds = self._payload(packet)
        if bounds is None:
            return []
        start, end = bounds
        ts = self._unwrap(int.from_bytes(packet[4:8], "big"))
        return [Frame(packet[start:end], ts, True)]


class Vp8Depacketizer(Depacketizer):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.wants_keyframe = True  # a recording starts at a keyframe
        self._parts: list[bytes] = []
        self._ts = -1
        self._size: tuple[int, int] | None = None
        self._keyframe = False

    def _drop_partial(self) -> None:
        self.packets_dropped += len(self._parts)
        self._parts = []

    def flush(self) -> None:
        self._drop_partial()

    def push(self, packet: bytes, gap: bool) -> list[Frame]:
        if gap and self._parts:
            self._drop_partial()
            self.wants_keyframe = True
        elif gap:
            self.wants_keyframe = True  # the lost packets may have been a whole frame
        bounds = self._payload(packet)
        if bounds is None:
            return []
        start, end = bounds
        bits, first = vp8_descriptor_end(packet, start)
        if bits < 0 or bits > end:
            self.packets_dropped += 1
            return []
        ts = int.from_bytes(packet[4:8], "big")
        if first:
            if self._parts:  # the previous frame never ended: broken
                self._drop_partial()
                self.wants_keyframe = True
            self._ts = ts
            self._keyframe = bits < end and not packet[bits] & 0x01
            self._size = None
            if self._keyframe and end - bits >= 10 and packet[bits + 3:bits + 6] == b"\x9d\x01\x2a":
                w = int.from_bytes(packet[bits + 6:bits + 8], "little") & 0x3FFF
                h = int.from_bytes(packet[bits + 8:bits + 10], "little") & 0x3FFF
                self._size = (w, h)
        elif not self._parts or ts != self._ts:
            self.packets_dropped += 1  # the middle of a frame whose start was lost
            return []
        self._parts.append(packet[bits:end])
        if not packet[1] & 0x80:
            return []
        parts, self._parts = self._parts, []
        if self.wants_keyframe and not self._keyframe:
            self.packets_dropped += len(parts)
            return []
        self.wants_keyframe = False
        return [Frame(b"".join(parts), self._unwrap(ts), self._keyframe, len(parts),
                      self._size)]


def depacketizer(codec_name: str) -> Depacketizer | None:
    """The depacketizer of a codec (SDP name, any case); None if it cannot be recorded."""
    name = codec_name.upper()
    if name == "OPUS":
        return OpusDepacketizer()
    if name == "VP8":
        return Vp8Depacketizer()
    return None
