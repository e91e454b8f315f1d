"""The default outward sink: an append-only event log in local files, rotated by size.

Format (``docs/events.md``): a file is a sequence of records, each an 8-byte header, the
payload length and its CRC-32 (both big-endian ``uint32``), then the payload: one event
envelope in msgpack. Files are named ``events-<UTC start time>-<n>.msgpack``, so names sort
in write order; a new file starts at start-up and whenever the current one passes
``max_bytes``; the oldest are deleted beyond ``keep_files`` (0 keeps everything).

Writing never blocks the caller: :meth:`FileLog.__call__` (the bus listener) only packs
the event and appends it to a bounded queue; a writer thread writes, flushes every
``flush_interval_s`` and rotates. A queue that is full (the disk stalls for longer than
``queue_max`` events) drops the newest events and counts them; a write error is counted
and retried with the events kept, so a disk that comes back loses nothing queued.
:func:`read` reads the files back, stopping cleanly at a torn last record (a crash mid-
write) and reporting corrupt records instead of guessing.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from .bus import Event

log = logging.getLogger(__name__)

HEADER = struct.Struct("!II")  # payload length, CRC-32 of the payload
MAX_RECORD = 16 << 20  # a larger length field is corruption, not an event
PATTERN = "events-*.msgpack"


@dataclass
class FileLogStats:
    written: int = 0
    dropped: int = 0
    write_errors: int = 0
    files_rotated: int = 0


class FileLog:
    """Bus listener writing every event to ``folder`` (created if missing)."""

    def __init__(self, folder: str | Path, *, max_bytes: int = 64 << 20,
                 keep_files: int = 200, queue_max: int = 100_000,
                 flush_interval_s: float = 0.2) -> None:
        if max_bytes < 4096:
            raise ValueError("max_bytes must be at least 4096")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.queue_max = queue_max
        self.flush_interval_s = flush_interval_s
        self.stats = FileLogStats()
        self._queue: deque[bytes] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._close_deadline = 0.0
        self._file: Any = None
        self._size = 0
        self._n = 0
        self._thread = threading.Thread(target=self._run, name="event-file-log", daemon=True)
        self._thread.start()

    # -- the bus side (event loop thread): never blocks --------------------------------

    def __call__(self, event: Event) -> None:
        if len(self._queue) >= self.queue_max:
            self.stats.dropped += 1
            return
        payload = event.pack()
        self._queue.append(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def counters(self) -> list[tuple[str, str, float]]:
        s = self.stats
        return [
            ("sfu_event_log_written", "events written to the event log", s.written),
            ("sfu_event_log_dropped", "events dropped because the event log's queue was full "
             "(the disk stalled)", s.dropped),
            ("sfu_event_log_write_errors", "failed writes to the event log (retried)",
             s.write_errors),
            ("sfu_event_log_rotations", "event log files rotated", s.files_rotated),
        ]

    def gauges(self) -> list[tuple[str, str, float]]:
        return [("sfu_event_log_queue", "events waiting to be written", self.queued)]

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (retrying a failing disk for up to ``timeout``), close the
        file, stop the thread."""
        with self._wake:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._wake.notify()
        self._thread.join(timeout + 1.0)
        if self._queue:
            log.error("event log: %d events could not be written to %s", len(self._queue),
                      self.folder)

    # -- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        backoff = self.flush_interval_s
        while True:
            with self._wake:
                if not self._closing:
                    self._wake.wait(backoff)
                closing = self._closing
            try:
                self._write_queued()
                backoff = self.flush_interval_s
            except OSError:
                self.stats.write_errors += 1
                log.exception("event log: writing to %s failed; retrying", self.folder)
                self._close_file()
                backoff = min(5.0, backoff * 2)
                if closing:
                    left = self._close_deadline - time.monotonic()
                    if left <= 0:
                        return
                    time.sleep(min(backoff, left))
                continue
            if closing:
                self._close_file()
                return

    def _write_queued(self) -> None:
        queue = self._queue
        if not queue:
            return
        if self._file is None:
            self._open_new()
        while queue:
            record = queue[0]
            self._file.write(record)
            queue.popleft()  # only once written: a failed write keeps it queued
            self._size += len(record)
            self.stats.written += 1
            if self._size >= self.max_bytes:
                self._file.flush()
                self._close_file()
                self.stats.files_rotated += 1
                self._open_new()
        self._file.flush()

    def _open_new(self) -> None:
        self._n += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.folder / f"events-{stamp}-{os.getpid()}-{self._n:06d}.msgpack"
        self._file = open(path, "ab")
        self._size = self._file.tell()
        self._prune()

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _prune(self) -> None:
        if self.keep_files <= 0:
            return
        files = log_files([self.folder])
        for old in files[:-self.keep_files]:
            try:
                old.unlink()
            except OSError:
                pass


# -- reading --------------------------------------------------------------------------


class LogProblem(Exception):
    """A record that cannot be read: the reader reports it and goes on with the next file."""


def log_files(paths: Iterable[str | Path]) -> list[Path]:
    """Event log files in write order: each path is a file or a folder of them."""
    found: list[Path] = []
    for p in map(Path, paths):
        found += sorted(p.glob(PATTERN)) if p.is_dir() else [p]
    return found


def read_file(path: Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The envelopes of one file, in order. A torn last record (a crash mid-write) ends the
    file quietly; a corrupt record (bad length or checksum, not an envelope) ends it with a
    note in ``problems``."""
    for _, envelope in records(path, problems):
        yield envelope


def records(path: Path, problems: list[str] | None = None, start: int = 0
            ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset after the record, envelope) of each complete record from byte ``start``."""
    def problem(text: str) -> None:
        if problems is not None:
            problems.append(f"{path}: {text}")

    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        while True:
            head = fh.read(HEADER.size)
            if len(head) < HEADER.size:
                if head:
                    problem(f"torn record at byte {offset} (ignored)")
                return
            length, crc = HEADER.unpack(head)
            if length > MAX_RECORD:
                problem(f"corrupt record length at byte {offset}")
                return
            payload = fh.read(length)
            if len(payload) < length:
                problem(f"torn record at byte {offset} (ignored)")
                return
            if zlib.crc32(payload) != crc:
                problem(f"checksum mismatch at byte {offset}")
                return
            try:
                envelope = msgpack.unpackb(payload, raw=False)
            except (ValueError, msgpack.UnpackException) as exc:
                problem(f"undecodable record at byte {offset}: {exc}")
                return
            if not isinstance(envelope, dict) or "type" not in envelope:
                problem(f"not an event envelope at byte {offset}")
                return
            offset += HEADER.size + length
            yield offset, envelope


def read(paths: Iterable[str | Path], problems: list[str] | None = None
         ) -> Iterator[dict[str, Any]]:
    """Every envelope of the files or folders ``paths``, in write order."""
    for path in log_files(paths):
        yield from read_file(path, problems)
