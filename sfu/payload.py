"""Keyframe detection on RTP payloads, without decoding (VP8: RFC 7741, H.264: RFC 6184).

A layer switch (simulcast up/down, resume after a pause) may only happen on a keyframe, so
the layer selector asks "does this packet start a keyframe?" for packets of the layer it is
waiting for. The answer comes from the payload descriptor and the first bytes of the codec
bitstream; nothing is copied and nothing is allocated. Every function takes the whole
packet and the offset of the RTP payload (from :func:`sfu.rtp_header.payload_bounds`), so
callers never slice. Short or garbage input returns False/None: these functions never raise.
"""

from __future__ import annotations

from collections.abc import Callable

Buffer = bytes | bytearray | memoryview
KeyframeDetector = Callable[[Buffer, int], bool]

# VP8 payload descriptor, first byte: |X|R|N|S|R| PID |
_VP8_X = 0x80
_VP8_S = 0x10
_VP8_PID = 0x07
# extension byte: |I|L|T|K| RSV |
_VP8_I = 0x80
_VP8_L = 0x40
_VP8_T = 0x20
_VP8_K = 0x10
# PictureID first byte: |M| PictureID |  (M = 15-bit PictureID)
_VP8_M = 0x80

# H.264 NAL unit types
_NAL_IDR = 5
_NAL_SPS = 7
_NAL_STAP_A = 24
_NAL_FU_A = 28
_FU_START = 0x80


def vp8_descriptor_end(packet: Buffer, offset: int) -> tuple[int, bool]:
    """(offset of the VP8 bitstream, whether this packet starts a frame: S=1, PID=0) for
    any packet of a frame; (-1, False) if the descriptor is truncated.

    Walks the RFC 7741 descriptor: mandatory byte, optional extension byte (X), then
    PictureID (I; one byte, or two when M is set), TL0PICIDX (L) and TID/Y/KEYIDX (T or K).
    """
    n = len(packet)
    if offset < 0 or offset >= n:
        return -1, False
    b = packet[offset]
    i = offset + 1
    if b & _VP8_X:
        if i >= n:
            return -1, False
        ext = packet[i]
        i += 1
        if ext & _VP8_I:
            if i >= n:
                return -1, False
            i += 2 if packet[i] & _VP8_M else 1
        if ext & _VP8_L:
            i += 1
        if ext & (_VP8_T | _VP8_K):
            i += 1
    if i >= n:
        return -1, False
    return i, bool(b & _VP8_S) and not b & _VP8_PID


def vp8_frame_start(packet: Buffer, offset: int) -> int:
    """Offset of the VP8 bitstream in a packet that starts a frame (S=1, PID=0), else -1."""
    n = len(packet)
    if offset < 0 or offset >= n:
        return -1
    b = packet[offset]
    if not b & _VP8_S or b & _VP8_PID:
        return -1
    i, _ = vp8_descriptor_end(packet, offset)
    return i


def vp8_keyframe(packet: Buffer, offset: int) -> bool:
    """True for the first packet of a VP8 keyframe: S=1, PID=0 and frame tag P bit 0."""
    i = vp8_frame_start(packet, offset)
    return i >= 0 and not packet[i] & 0x01


def vp8_resolution(packet: Buffer, offset: int) -> tuple[int, int] | None:
    """(width, height) from the uncompressed keyframe header of a keyframe start packet.

    Layout after the descriptor: 3-byte frame tag, start code ``9d 01 2a``, then width and
    height as 16-bit little endian with the top 2 bits being the (ignored) scaling mode.
    """
    i = vp8_frame_start(packet, offset)
    if i < 0 or packet[i] & 0x01 or len(packet) < i + 10:
        return None
    if packet[i + 3] != 0x9D or packet[i + 4] != 0x01 or packet[i + 5] != 0x2A:
        return None
    width = (packet[i + 6] | (packet[i + 7] << 8)) & 0x3FFF
    height = (packet[i + 8] | (packet[i + 9] << 8)) & 0x3FFF
    return width, height


def h264_keyframe(packet: Buffer, offset: int) -> bool:
    """True if the payload starts an IDR picture.

    Single NAL unit of type 5 (IDR slice) or 7 (SPS, which encoders send right before an
    IDR); STAP-A aggregating an SPS or IDR; FU-A whose start fragment is an IDR (or SPS).
    """
    n = len(packet)
    if offset < 0 or offset >= n:
        return False
    nal_type = packet[offset] & 0x1F
    if nal_type == _NAL_IDR or nal_type == _NAL_SPS:
        return True
    if nal_type == _NAL_STAP_A:
        # STAP-A header, then repeated (16-bit size, NAL unit)
        i = offset + 1
        while i + 2 < n:
            size = (packet[i] << 8) | packet[i + 1]
            if size == 0:
                return False
            inner = packet[i + 2] & 0x1F
            if inner == _NAL_IDR or inner == _NAL_SPS:
                return True
            i += 2 + size
        return False
    if nal_type == _NAL_FU_A:
        if offset + 1 >= n:
            return False
        fu = packet[offset + 1]
        return bool(fu & _FU_START) and (fu & 0x1F) in (_NAL_IDR, _NAL_SPS)
    return False


_DETECTORS: dict[str, KeyframeDetector] = {"VP8": vp8_keyframe, "H264": h264_keyframe}


def keyframe_detector(codec_name: str) -> KeyframeDetector | None:
    """The detector for a codec (SDP names are case-insensitive); resolve once per track."""
    return _DETECTORS.get(codec_name.upper())


def is_keyframe(codec_name: str, packet: Buffer, offset: int) -> bool:
    """Dispatch on the codec name ("VP8", "H264"); False for any other codec."""
    detector = _DETECTORS.get(codec_name)
    if detector is None:
        detector = _DETECTORS.get(codec_name.upper())
        if detector is None:
            return False
    return detector(packet, offset)
