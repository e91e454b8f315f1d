"""The file event log: what the bus emits is written, rotated, read back in order; a torn
or corrupt file is reported, not guessed; a stalled or failing disk never blocks the
caller and loses nothing queued; the CLI prints JSON lines; a real server writes its
events there."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from samples import emit

from benches.server_process import ROOT, start_server, stop_server
from events import EventBus
from events.filelog import HEADER, FileLog, log_files, read


def emit_many(bus: EventBus, n: int, room: str = "math") -> list[dict[str, object]]:
    return [emit(bus, i, room).envelope() for i in range(n)]


def write_log(folder: Path, n: int, sink_class: type[FileLog] = FileLog, **kw: Any
              ) -> tuple[FileLog, list[dict[str, object]]]:
    """``n`` events through a bus into a log at ``folder``, closed; (sink, envelopes)."""
    bus = EventBus()
    sink = sink_class(folder, flush_interval_s=0.01, **kw)
    bus.subscribe(sink)
    sent = emit_many(bus, n)
    sink.close()
    return sink, sent


def test_events_are_written_and_read_back_in_order(tmp_path: Path) -> None:
    sink, sent = write_log(tmp_path, 50)
    problems: list[str] = []
    assert list(read([tmp_path], problems)) == sent
    assert problems == []
    assert sink.stats.written == 50 and sink.stats.dropped == 0


def test_rotation_keeps_order_and_prunes_the_oldest(tmp_path: Path) -> None:
    sink, sent = write_log(tmp_path, 400, max_bytes=4096, keep_files=0)
    files = log_files([tmp_path])
    assert len(files) >= 5 and sink.stats.files_rotated == len(files) - 1
    assert list(read([tmp_path])) == sent  # across files, in write order
    pruned = tmp_path / "pruned"
    sink, sent = write_log(pruned, 400, max_bytes=4096, keep_files=2)
    assert len(log_files([pruned])) == 2
    kept = list(read([pruned]))
    assert 0 < len(kept) < 400 and kept == sent[-len(kept):]  # the newest, contiguous


def test_a_torn_tail_and_a_corrupt_record_are_reported(tmp_path: Path) -> None:
    _, sent = write_log(tmp_path, 10)
    path = log_files([tmp_path])[0]
    whole = path.read_bytes()
    path.write_bytes(whole + HEADER.pack(100, 0) + b"\x81\xa4")  # a crash mid-write
    problems: list[str] = []
    assert list(read([tmp_path], problems)) == sent
    assert len(problems) == 1 and "torn record" in problems[0]
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2] ^= 0xFF  # a flipped byte in the middle: caught by the CRC
    path.write_bytes(bytes(corrupt))
    problems = []
    got = list(read([tmp_path], problems))
    assert got == sent[:len(got)] and len(got) < 10
    assert len(problems) == 1


def test_a_stalled_disk_never_blocks_the_caller(tmp_path: Path) -> None:
    release = threading.Event()

    class Stalled(FileLog):
        def _write_queued(self) -> None:
            release.wait(10)  # the disk hangs
            super()._write_queued()

    bus = EventBus()
    sink = Stalled(tmp_path, queue_max=100, flush_interval_s=0.01)
    bus.subscribe(sink)
    sent = emit_many(bus, 1000)  # returns at once, whatever the disk does
    assert sink.queued == 100 and sink.stats.dropped == 900
    release.set()
    sink.close()
    assert list(read([tmp_path])) == sent[:100]  # what was queued is all there


def test_a_failing_disk_is_retried_and_loses_nothing_queued(tmp_path: Path) -> None:
    failures = [OSError(28, "No space left on device")] * 2

    class Failing(FileLog):
        def _open_new(self) -> None:
            if failures:
                raise failures.pop()
            super()._open_new()

    sink, sent = write_log(tmp_path, 30, Failing)
    assert sink.stats.write_errors == 2
    assert list(read([tmp_path])) == sent


def test_the_cli_prints_json_lines(tmp_path: Path) -> None:
    bus = EventBus()
    sink = FileLog(tmp_path, flush_interval_s=0.01)
    bus.subscribe(sink)
    sent = emit_many(bus, 6) + emit_many(bus, 2, room="art")
    sink.close()
    out = subprocess.run([sys.executable, "-m", "events", "--type", "participant.",
                          "--room", "math", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines == [e for e in sent if e["type"] == "participant.joined"
                     and e["room"] == "math"]
    (tmp_path / "x").mkdir()
    bad = tmp_path / "events-99999999T000000Z-1-000001.msgpack"
    bad.write_bytes(HEADER.pack(5, 0))
    out = subprocess.run([sys.executable, "-m", "events", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "torn record" in out.stderr
    assert len(out.stdout.splitlines()) == len(sent)


def test_the_server_writes_its_events_to_the_log(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    server = start_server({"SFU_EVENTS_LOG_DIR": str(folder)})
    try:
        req = urllib.request.Request(
            server.base_url + "/api/rooms", data=json.dumps({"name": "maths-7b"}).encode(),
            headers={**server.auth_header, "Content-Type": "application/json"},
            method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201
        with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "sfu_event_log_queue" in metrics and "sfu_event_log_dropped_total 0.0" in metrics
    finally:
        stop_server(server)  # a clean stop writes the room's closing event too
    types = [(e["type"], e["room"]) for e in read([folder])]
    assert ("room.created", "maths-7b") in types
    assert types[-2:] == [("room.closed", "maths-7b"), ("session.report", "maths-7b")]
