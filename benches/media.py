"""Pre-encoded bench media: VP8 in three simulcast-like layers and Opus, encoded once.

The first use of a layer encodes a few seconds of a moving synthetic pattern with PyAV and
caches the frames under ``benches/cache/`` (gitignored); nothing is encoded during a run.
Each VP8 frame is packetized per RFC 7741 once, at load time.
"""

from __future__ import annotations

import fractions
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_DIR = Path(__file__).resolve().parent / "cache"
MEDIA_SECONDS = 4
FPS = 30
AUDIO_RATE, AUDIO_FRAME = 48000, 960  # 20 ms
MAX_PAYLOAD = 1100  # VP8 RTP payload, descriptor included
MEDIA_VERSION = 2
MAGIC = b"BENCHMEDIA2\n"


@dataclass(frozen=True)
class Layer:
    name: str
    width: int
    height: int
    bitrate: int


#: the three layers a browser would send in simulcast (scaleResolutionDownBy 4, 2, 1)
LAYERS = {
    "180p": Layer("180p", 320, 180, 150_000),
    "360p": Layer("360p", 640, 360, 500_000),
    "720p": Layer("720p", 1280, 720, 1_500_000),
}


@dataclass
class Media:
    #: per video frame, its RTP payloads (VP8 payload descriptor included)
    video: list[list[bytes]]
    audio: list[bytes]
    meta: dict[str, Any]


def vp8_payloads(frame: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RFC 7741 packetization: 1-byte descriptor (X=R=N=0, PID=0), S=1 on the first packet.

    The frame is split into equal-size pieces so no packet is much smaller than the others.
    """
    room = max_payload - 1
    n = max(1, -(-len(frame) // room))
    size = -(-len(frame) // n)
    return [(b"\x10" if i == 0 else b"\x00") + frame[i * size:(i + 1) * size]
            for i in range(n)]


def _encode_video(layer: Layer) -> list[bytes]:
    import av
    import numpy as np

    w, h = layer.width, layer.height
    frames = MEDIA_SECONDS * FPS
    vc = av.CodecContext.create("libvpx", "w")  # libvpx = VP8
    vc.width, vc.height, vc.pix_fmt = w, h, "yuv420p"
    vc.time_base = fractions.Fraction(1, FPS)
    vc.framerate = fractions.Fraction(FPS, 1)
    vc.bit_rate = layer.bitrate
    vc.gop_size = frames  # one keyframe per loop
    vc.options = {"deadline": "good", "cpu-used": "8", "lag-in-frames": "0",
                  "static-thresh": "0", "undershoot-pct": "95", "overshoot-pct": "5",
                  "buf-sz": "1000", "buf-initial-sz": "500", "buf-optimal-sz": "600",
                  "minrate": str(layer.bitrate * 9 // 10),
                  "maxrate": str(layer.bitrate * 11 // 10)}
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    bh, bw = h * 2 // 9, w * 3 // 16  # a noise block: enough detail for the bitrate
    out: list[bytes] = []
    for i in range(frames):
        y = ((xx + yy + i * 4) % 256).astype(np.uint8)  # a moving diagonal gradient
        y[h // 2 - bh // 2:h // 2 - bh // 2 + bh, w // 2 - bw // 2:w // 2 - bw // 2 + bw] = \
            rng.integers(0, 256, (bh, bw), dtype=np.uint8)
        u = np.full((h // 2, w // 2), (i * 2) % 256, np.uint8)
        v = np.full((h // 2, w // 2), 128, np.uint8)
        plane = np.vstack([y, u.reshape(-1, w), v.reshape(-1, w)])
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in vc.encode(frame)]
    out += [bytes(p) for p in vc.encode(None)]
    if len(out) != frames:
        raise RuntimeError(f"VP8 encoder gave {len(out)} frames, wanted {frames}")
    return out


def _encode_audio() -> list[bytes]:
    import av
    import numpy as np

    ac = av.CodecContext.create("libopus", "w")
    ac.sample_rate, ac.layout, ac.format = AUDIO_RATE, "stereo", "s16"
    ac.bit_rate = 32000
    ac.time_base = fractions.Fraction(1, AUDIO_RATE)
    ac.options = {"frame_duration": "20", "application": "voip"}
    n = MEDIA_SECONDS * AUDIO_RATE // AUDIO_FRAME
    out: list[bytes] = []
    for i in range(n + 5):
        t = (np.arange(AUDIO_FRAME) + i * AUDIO_FRAME) / AUDIO_RATE
        s = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        af = av.AudioFrame.from_ndarray(np.repeat(s, 2).reshape(1, -1), format="s16",
                                        layout="stereo")
        af.sample_rate = AUDIO_RATE
        af.pts = i * AUDIO_FRAME
        out += [bytes(p) for p in ac.encode(af)]
    out += [bytes(p) for p in ac.encode(None)]
    return out[:n]


def _cache_path(name: str) -> Path:
    return CACHE_DIR / f"media-v{MEDIA_VERSION}-{name}-{FPS}fps-{MEDIA_SECONDS}s.bin"


def _write_blobs(path: Path, meta: dict[str, Any], blobs: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    header = json.dumps({**meta, "count": len(blobs)}).encode()
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + struct.pack("!I", len(header)) + header)
        for blob in blobs:
            fh.write(struct.pack("!I", len(blob)) + blob)
    os.replace(tmp, path)  # atomic: concurrent runs never see half a file


def _read_blobs(path: Path) -> tuple[dict[str, Any], list[bytes]]:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError("not a bench media file")
    pos = len(MAGIC)
    (hlen,) = struct.unpack_from("!I", data, pos)
    meta = json.loads(data[pos + 4:pos + 4 + hlen])
    pos += 4 + hlen
    blobs = []
    for _ in range(meta.pop("count")):
        (n,) = struct.unpack_from("!I", data, pos)
        blobs.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return meta, blobs


def _cached(name: str, encode: Any, meta: dict[str, Any]) -> list[bytes]:
    path = _cache_path(name)
    if path.exists():
        try:
            return _read_blobs(path)[1]
        except (ValueError, struct.error, KeyError):
            pass
    blobs = encode()
    _write_blobs(path, meta, blobs)
    return list(blobs)


def load(layer: str = "720p") -> Media:
    """The media of one video layer plus Opus audio (encoding and caching them on first
    use)."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; have {sorted(LAYERS)}")
    spec = LAYERS[layer]
    frames = _cached(layer, lambda: _encode_video(spec), {"layer": layer})
    audio = _cached("opus", _encode_audio, {"codec": "opus"})
    meta = {"version": MEDIA_VERSION, "layer": layer, "width": spec.width,
            "height": spec.height, "fps": FPS, "seconds": MEDIA_SECONDS,
            "video_kbps": round(sum(map(len, frames)) * 8 / MEDIA_SECONDS / 1000, 1),
            "audio_kbps": round(sum(map(len, audio)) * 8 / MEDIA_SECONDS / 1000, 1)}
    video = [vp8_payloads(f) for f in frames]
    meta["video_pps"] = round(sum(map(len, video)) / MEDIA_SECONDS, 1)
    return Media(video, audio, meta)


def prepare_all() -> dict[str, dict[str, Any]]:
    """Encode (or load) every layer; returns their metadata."""
    return {name: load(name).meta for name in LAYERS}
