"""The recorder's per-track pipeline on real VP8 and Opus packets: reorder, depacketize,
mux to WebM without transcoding; what comes out opens and decodes with PyAV, and every
packet handed in is written or counted as dropped with its reason."""

from __future__ import annotations

import random
from pathlib import Path

import av
import pytest

from recorder.track_recorder import TrackRecorder
from tests.recorder.media_rtp import AudioSource, VideoSource, rtp

FRAME_MS = 1000 / 30


def decode(path: Path) -> tuple[int, float]:
    """(frames decoded, seconds from first to last frame); any decode error raises."""
    with av.open(str(path)) as c:
        stream = c.streams[0]
        times = [float(f.time) for f in c.decode(stream) if f.time is not None]
    return len(times), (times[-1] - times[0]) if times else 0.0


class Recording:
    def __init__(self, tmp_path: Path, kind: str, codec: str) -> None:
        self.path = tmp_path / f"{kind}.webm"
        self.fh = self.path.open("wb")
        self.nacked: list[int] = []
        self.keyframes = 0
        self.rec = TrackRecorder(kind=kind, codec=codec, sink=self.fh.write,
                                 nack=self.nacked.extend, keyframe=self._keyframe)

    def _keyframe(self) -> None:
        self.keyframes += 1

    def close(self) -> None:
        self.rec.close()
        self.fh.close()

    def accounted(self) -> bool:
        r = self.rec
        return r.held == 0 and r.packets_in == (r.packets_written + r.packets_empty
                                                + sum(r.dropped.values()))


def test_video_in_order_is_written_whole(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "video", "VP8")
    src = VideoSource(seq=65000, ts=2**32 - 30000)  # both wrap during the recording
    now = 0.0
    for _ in range(90):
        for p in src.frame():
            rec.rec.on_rtp(p, now)
        now += FRAME_MS
    rec.close()
    assert rec.rec.packets_in == rec.rec.packets_written > 90
    assert rec.accounted() and not rec.nacked
    frames, seconds = decode(rec.path)
    assert frames == 90
    assert seconds == pytest.approx(89 / 30, abs=0.002)


def test_reordered_and_repeated_packets_are_all_written_once(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "video", "VP8")
    packets = list(VideoSource().packets(60))
    rnd = random.Random(7)
    stream: list[bytes] = []
    for i in range(0, len(packets), 6):  # shuffled in windows of 6, some sent twice
        window = packets[i:i + 6]
        if i:  # (the very first packet starts the stream: what comes before it is late)
            rnd.shuffle(window)
        stream += window + rnd.sample(window, k=1)
    for i, p in enumerate(stream):
        rec.rec.on_rtp(p, i * 2.0)
    rec.close()
    assert rec.rec.packets_written == len(packets)
    assert rec.rec.dropped == {"late": 0, "duplicate": len(stream) - len(packets),
                               "undecodable": 0}
    assert rec.accounted()
    assert decode(rec.path)[0] == 60


def test_a_nacked_packet_resent_in_time_loses_nothing(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "video", "VP8")
    src = VideoSource()
    held_back: list[bytes] = []
    now = 0.0
    for n in range(60):
        frame = src.frame()
        if n == 20:
            held_back.append(frame.pop(0))  # lost on the way...
        for p in frame:
            rec.rec.on_rtp(p, now)
        if n == 22:
            lost_seq = (held_back[0][2] << 8) | held_back[0][3]
            assert lost_seq in rec.nacked  # ...asked for again...
            rec.rec.on_rtp(held_back[0], now)  # ...and resent within the wait
        now += FRAME_MS
    rec.close()
    assert rec.rec.packets_in == rec.rec.packets_written
    assert decode(rec.path)[0] == 60


def test_a_lost_packet_drops_video_until_the_next_keyframe(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "video", "VP8")
    src = VideoSource()
    now, lost_at = 0.0, 30
    asked_before = 0
    for n in range(90):
        if rec.keyframes > asked_before and n > lost_at:
            src.keyframe()  # the publisher answers the PLI
            asked_before = rec.keyframes
        frame = src.frame()
        if n == lost_at:
            frame = frame[1:]  # one packet never arrives
        for p in frame:
            rec.rec.on_rtp(p, now)
        rec.rec.poll(now)
        if n <= lost_at:
            asked_before = rec.keyframes  # the start's own request is not the loss's
        now += FRAME_MS
    rec.close()
    r = rec.rec
    assert r.reorder.lost == 1
    assert r.dropped["undecodable"] > 0 and r.dropped["late"] == r.dropped["duplicate"] == 0
    assert rec.accounted()
    frames, _ = decode(rec.path)  # decodes without an error: no broken frame went in
    # frames 0..29 and everything from the keyframe asked for after the loss
    assert lost_at <= frames < 90 - 15


def test_audio_is_written_whole(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "audio", "opus")
    for i, p in enumerate(AudioSource(seq=65500).packets(150)):
        rec.rec.on_rtp(p, i * 20.0)
    rec.close()
    assert rec.rec.packets_in == rec.rec.packets_written == 150
    frames, seconds = decode(rec.path)
    assert frames == 150
    assert seconds == pytest.approx(149 * 0.02, abs=0.01)  # the decoder's own delay


def test_garbage_is_counted_and_the_file_stays_good(tmp_path: Path) -> None:
    rec = Recording(tmp_path, "video", "VP8")
    rnd = random.Random(3)
    src = VideoSource()
    now = 0.0
    for n in range(30):
        for p in src.frame():
            rec.rec.on_rtp(p, now)
        if n % 5 == 2:  # junk with our SSRC's next sequence numbers, and worse
            junk = rtp(src.seq, src.ts, bytes(rnd.randrange(256) for _ in range(40)))
            src.seq += 1
            rec.rec.on_rtp(junk, now)
            rec.rec.on_rtp(b"\x80\x60", now)  # too short to be RTP: ignored
        now += FRAME_MS
    rec.close()
    assert rec.accounted()
    frames, _ = decode(rec.path)
    assert frames > 0
