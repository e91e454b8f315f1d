"""The dual writer against real storage: a local folder and a real S3-compatible server
(moto_server) on loopback. S3 taken away mid-lesson raises the alarm within 5 s while the
local copy goes on; when S3 is back, what it missed is back-filled and both copies end
with the same bytes. A local volume that fills up (a small tmpfs) raises the alarm, and
the S3 copy is complete. Media is fed at its real pace: the alarm times are wall-clock."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.dual import DualWriter, TrackOutput
from recorder.sinks import LocalSink, S3Sink, Sink
from recorder.track_recorder import TrackRecorder
from recorder.verify import check_copy
from tests.recorder.media_rtp import VideoSource
from tests.recorder.s3_server import BUCKET, s3_server

FRAME_S = 1 / 30
ALARM_WITHIN_S = 5.0


class Watch:
    """The writer's alarms and recoveries, with their wall-clock times."""

    def __init__(self) -> None:
        self.alarms: list[tuple[float, str, str]] = []
        self.recovered: list[tuple[float, str]] = []
        self.alarmed = asyncio.Event()
        self.back = asyncio.Event()

    def alarm(self, sink: Sink, error: str) -> None:
        self.alarms.append((time.monotonic(), sink.name, error))
        self.alarmed.set()

    def recover(self, sink: Sink) -> None:
        self.recovered.append((time.monotonic(), sink.name))
        self.back.set()


class Feed:
    """A VP8 track recorded into ``out`` at its real pace (30 frames/s)."""

    def __init__(self, writer: DualWriter, out: TrackOutput, layer: str = "180p") -> None:
        self.writer = writer
        self.out = out
        self.rec = TrackRecorder(kind="video", codec="VP8", sink=out.write)
        self.src = VideoSource(layer=layer)

    async def seconds(self, s: float) -> None:
        start = time.monotonic()
        for n in range(round(s * 30)):
            now = time.monotonic()
            for p in self.src.frame():
                self.rec.on_rtp(p, now * 1000)
            self.writer.tick(now * 1000)
            await asyncio.sleep(max(0.0, start + (n + 1) * FRAME_S - time.monotonic()))

    async def check(self, sink: Sink) -> dict[str, object]:
        # in a thread: the S3 proxy runs on this event loop
        return await asyncio.to_thread(check_copy, sink, self.out.path, self.out.size,
                                       self.out.sha256.hexdigest(), self.rec.file.duration_s)


def _s3(endpoint: str) -> S3Sink:
    return S3Sink("s3", bucket=BUCKET, endpoint_url=endpoint, access_key="test",
                  secret_key="test", timeout_s=1.0)


async def test_s3_taken_away_alarms_in_time_and_is_back_filled(tmp_path: Path) -> None:
    async with s3_server() as (endpoint, proxy, direct):
        watch = Watch()
        local, s3 = LocalSink("local", tmp_path / "local"), _s3(endpoint)
        writer = DualWriter([local, s3], on_alarm=watch.alarm, on_recovered=watch.recover)
        writer.start()
        feed = Feed(writer, writer.output("room/RC_1/cam.webm"))
        await feed.seconds(2.5)
        assert not watch.alarms
        await proxy.down()
        down_at = time.monotonic()
        await feed.seconds(4.0)  # the lesson goes on
        assert watch.alarmed.is_set(), "no alarm while S3 was away"
        t, sink, error = watch.alarms[0]
        assert sink == "s3" and t - down_at < ALARM_WITHIN_S, (t - down_at, error)
        assert writer.copies[1].backlog and writer.copies[0].healthy
        await proxy.up()
        await feed.seconds(2.0)
        await asyncio.wait_for(watch.back.wait(), 15)  # back-filled
        assert watch.recovered[0][1] == "s3" and not writer.copies[1].backlog
        feed.rec.close()
        assert await writer.close(30) == {"local": True, "s3": True}
        for sink in (local, s3):
            check = await feed.check(sink)
            assert check["ok"] and check["checksumMatch"], check
        assert feed.rec.file.duration_s > 8.0
        # the parts were folded into one object and removed
        keys = [o["Key"] for o in direct.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert keys == ["room/RC_1/cam.webm"]


@contextmanager
def _small_volume(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


async def test_a_full_local_volume_alarms_and_the_s3_copy_is_complete(tmp_path: Path) -> None:
    capacity = 512 * 1024
    async with s3_server() as (endpoint, _proxy, _direct):
        with _small_volume(tmp_path / "small", "512k") as small:
            watch = Watch()
            local, s3 = LocalSink("local", small), _s3(endpoint)
            writer = DualWriter([local, s3], on_alarm=watch.alarm,
                                on_recovered=watch.recover)
            writer.start()
            feed = Feed(writer, writer.output("room/RC_2/cam.webm"), layer="720p")
            full_at = None
            for _ in range(16):  # 8 s of 720p: about 1.5 MB
                await feed.seconds(0.5)
                if full_at is None and feed.out.size > capacity:
                    full_at = time.monotonic()
                if watch.alarmed.is_set():
                    break
            assert full_at is not None and watch.alarmed.is_set()
            t, sink, error = watch.alarms[0]
            assert sink == "local" and "No space left" in error, error
            assert t - full_at < ALARM_WITHIN_S
            await feed.seconds(1.0)
            feed.rec.close()
            complete = await writer.close(3)
            assert complete == {"local": False, "s3": True}
            check = await feed.check(s3)
            assert check["ok"] and check["checksumMatch"], check
