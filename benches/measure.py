"""What the benches measure and how: process CPU and memory from /proc, the machine and git
state, and cheap per-subscriber packet counting straight from the clear RTP header."""

from __future__ import annotations

import datetime
import os
import platform
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_SEQ = struct.Struct("!H").unpack_from
_SSRC = struct.Struct("!I").unpack_from
#: every media payload the bench publishers send ends with their send time (ns, monotonic)
STAMP = struct.Struct("!Q")
_SENT = STAMP.unpack_from


# -- /proc ---------------------------------------------------------------------------


def proc_times(pid: int | str = "self") -> tuple[float, float]:
    """(utime, stime) of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        text = fh.read()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_s(pid: int | str = "self") -> float:
    """utime + stime of a process, in seconds."""
    return sum(proc_times(pid))


def proc_rss(pid: int | str = "self") -> int:
    """Resident memory of a process, bytes."""
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True,
                               timeout=10).stdout.split()[1::2]
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "modified": dirty}


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def heading(title: str, m: dict[str, Any]) -> str:
    """A bench report's first line: what was measured, when, on which machine."""
    return f"## {title}, {m['date']}: {m['nproc']} CPU {m['cpu_model']}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# -- counting ------------------------------------------------------------------------


class StreamCounter:
    """One subscriber's packets per SSRC, read from the clear RTP header (SRTP encrypts only
    the payload), plus a latency sample every ``sample_every`` packets (0: none). Marker bits
    of the payload types in ``video_pts`` are counted too: one per video frame.

    ``hook`` returns True for a packet it consumed (counted and dropped) and False for one
    that must also go the full way (SRTP unprotect): the sampled ones, whose decrypted
    payload ends with the publisher's send time; ``on_plain`` reads it.
    """

    __slots__ = ("streams", "first_ns", "latencies_us", "sample_every", "video_pts", "_n",
                 "_arrival", "feedback")

    def __init__(self, sample_every: int = 16) -> None:
        #: ssrc -> [packets, base ext seq, max ext seq, video frames (marked packets)]
        self.streams: dict[int, list[int]] = {}
        self.first_ns = 0
        self.latencies_us: list[float] = []
        self.sample_every = sample_every
        #: payload types of video (from the offers the subscriber answered)
        self.video_pts: set[int] = set()
        self._n = 0
        self._arrival = 0
        #: a browser-like subscriber's feedback (benches.feedback.ReceiverFeedback), fed
        #: every packet's clear header
        self.feedback: Any = None

    def hook(self, data: bytes) -> bool:
        seq = _SEQ(data, 2)[0]
        ssrc = _SSRC(data, 8)[0]
        s = self.streams.get(ssrc)
        if s is None:
            s = self.streams[ssrc] = [1, seq, seq, 0]
            if not self.first_ns:
                self.first_ns = time.monotonic_ns()
        else:
            s[0] += 1
            diff = (seq - s[2]) & 0xFFFF
            if diff < 0x8000:
                s[2] += diff
        b1 = data[1]
        if b1 & 0x80 and b1 & 0x7F in self.video_pts:
            s[3] += 1
        if self.feedback is not None:
            self.feedback.on_packet(data, time.monotonic() * 1000.0)
        self._n += 1
        if not self.sample_every or self._n % self.sample_every:
            return True
        self._arrival = time.monotonic_ns()
        return False

    def on_plain(self, data: bytes, *_: Any) -> None:
        """A sampled packet after SRTP unprotect: its payload ends with the send time."""
        if self._arrival and len(data) >= 20:
            sent = _SENT(data, len(data) - 8)[0]
            if 0 < sent <= self._arrival:
                self.latencies_us.append((self._arrival - sent) / 1000)
        self._arrival = 0

    def snapshot(self) -> dict[int, tuple[int, int, int, int]]:
        """ssrc -> (packets, base ext seq, max ext seq, marked packets)."""
        return {ssrc: (s[0], s[1], s[2], s[3]) for ssrc, s in self.streams.items()}

    def take_latencies(self) -> list[float]:
        out, self.latencies_us = self.latencies_us, []
        return out


def hook_transport(transport: Any, counter: StreamCounter) -> None:
    """Count the RTP datagrams of a :class:`sfu.transport.MediaTransport` before SRTP: only
    the latency samples go on to be unprotected. STUN (consent checks), DTLS and RTCP go the
    normal way. Wraps the transport's datagram entry point (``_datagram_received``, what
    aioice's ``Connection.data_received`` and, once keyed, the transport's own STUN-parse
    bypass call), so it must be called before the transport starts; bench-only.
    """
    orig = transport._datagram_received

    def hook(data: bytes, component: int) -> None:
        if (len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224
                and counter.hook(data)):
            return
        orig(data, component)

    transport._datagram_received = hook
    transport._ice._connection.data_received = hook
