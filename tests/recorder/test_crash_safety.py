"""A recorder process killed with SIGKILL mid-recording leaves a file that opens and
decodes up to its last flushed cluster (clusters close every second of media)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.recorder.test_track_recorder import decode

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
from recorder.track_recorder import TrackRecorder
from tests.recorder.media_rtp import AudioSource, VideoSource
kind, path = sys.argv[1], sys.argv[2]
out = open(path, "wb", buffering=0)  # what the recorder hands over goes to the OS at once
rec = TrackRecorder(kind=kind, codec="VP8" if kind == "video" else "opus", sink=out.write)
packets = VideoSource().packets(150) if kind == "video" else AudioSource().packets(250)
for i, p in enumerate(packets):  # 5 s of media
    rec.on_rtp(p, i * 10.0)
print("written", flush=True)
time.sleep(600)  # killed here, the last cluster still in the muxer
"""


def _killed_mid_recording(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.webm"
    with subprocess.Popen([sys.executable, "-c", WRITER, kind, str(path)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "written"
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    return path


def test_video_killed_mid_recording_plays_to_its_last_cluster(tmp_path: Path) -> None:
    frames, seconds = decode(_killed_mid_recording(tmp_path, "video"))
    # 150 frames went in; at most the last second (plus the frame that closes a cluster)
    # was still in the muxer
    assert 150 - 32 <= frames < 150
    assert seconds >= 3.9


def test_audio_killed_mid_recording_plays_to_its_last_cluster(tmp_path: Path) -> None:
    frames, seconds = decode(_killed_mid_recording(tmp_path, "audio"))
    assert 250 - 52 <= frames < 250
    assert seconds >= 3.9
