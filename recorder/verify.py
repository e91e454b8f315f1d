"""The check of every copy of a recorded track at the end (blocking: run in a thread).

A copy passes when its size and SHA-256 are those of the bytes the muxer wrote, it opens
with PyAV, and its last packet's time is the recorded media duration (within
``DURATION_SLACK_S``). The figures go into the manifest and the ``recording.completed`` /
``recording.failed`` event.
"""

from __future__ import annotations

from typing import Any

import av

from .sinks import Sink, SinkError

DURATION_SLACK_S = 0.5


def media_duration(path: Any) -> tuple[int, float]:
    """(packets, seconds from the first packet to the last) read by demuxing (no
    decoding); raises av.error.FFmpegError if it does not open."""
    with av.open(str(path)) as c:
        stream = c.streams[0]
        times = [float(p.pts * p.time_base) for p in c.demux(stream)
                 if p.pts is not None and p.time_base is not None]
    return len(times), (max(times) - min(times)) if times else 0.0


def check_copy(sink: Sink, path: str, size: int, sha256: str, duration_s: float
               ) -> dict[str, Any]:
    result: dict[str, Any] = {"sink": sink.name, "location": sink.location(path), "ok": False}
    try:
        got_size, got_sha = sink.digest(path)
        result.update(bytes=got_size, checksumMatch=got_sha == sha256 and got_size == size)
        if not result["checksumMatch"]:
            result["problem"] = f"{got_size} bytes, sha256 {got_sha[:12]}…; wrote {size}"
            return result
        with sink.local_copy(path) as local:
            packets, seconds = media_duration(local)
        result.update(packets=packets, durationS=round(seconds, 3))
        if abs(seconds - duration_s) > DURATION_SLACK_S:
            result["problem"] = f"{seconds:.2f} s of media; recorded {duration_s:.2f} s"
            return result
    except SinkError as exc:
        result["problem"] = str(exc)
        return result
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        result["problem"] = f"does not open: {exc}"
        return result
    result["ok"] = True
    return result
