"""Forwarding-path benchmark: server CPU per forwarded RTP packet, 1 publisher × N subscribers.

    python -m benches.forward_bench --subscribers 20 --seconds 20 --json out.json

What it does (see benches/README.md for the why):

1. Prepares pre-encoded media once and caches it under ``benches/cache/`` (gitignored): a few
   seconds of VP8 (640x360, 30 fps, ~1 Mbit/s, a moving synthetic pattern) and Opus (20 ms
   frames, a tone), encoded with PyAV. Nothing is encoded while the bench runs.
2. Starts the server as a subprocess (``python -m signalling serve --dev`` on loopback).
3. One publisher (a :class:`benches.rawclient.RawClient` in this process) sends the media
   paced in real time: every 33.3 ms one VP8 frame packetized per RFC 7741 (1-byte payload
   descriptor, S bit on the first packet, marker on the last, <= 1100 bytes of payload),
   every 20 ms one Opus packet; looping, with RTP timestamps that keep increasing.
4. Idle phase: publisher only, 0 subscribers, ``--seconds`` long: server CPU for ingress
   (SRTP unprotect, sequence tracking, retransmission cache) plus the idle loop.
5. N subscribers (RawClients, no decoding) spread over worker processes; once every
   subscriber receives audio and video, the steady-state window (``--seconds``) is measured.
   Subscribers count packets and sequence gaps per SSRC straight from the clear RTP header
   (SRTP encrypts only the payload), before SRTP unprotect, so they cost little CPU.

Server CPU is utime+stime from ``/proc/<pid>/stat``. Exit status: 0 ok, 1 FAILED (a
subscriber received nothing, or loss > 1 %), 2 the bench itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import fractions
import json
import math
import multiprocessing as mp
import os
import platform
import re
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benches import server_process
from benches.server_process import ServerProcess

CACHE_DIR = Path(__file__).resolve().parent / "cache"
API_KEY = server_process.API_KEY
API_SECRET = server_process.API_SECRET
ROOM = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")

VIDEO_W, VIDEO_H, VIDEO_FPS = 640, 360, 30
VIDEO_BITRATE = 1_000_000
AUDIO_RATE, AUDIO_FRAME = 48000, 960  # 20 ms
MEDIA_SECONDS = 4
MAX_PAYLOAD = 1100  # VP8 RTP payload, descriptor included
MEDIA_VERSION = 1
MAGIC = b"FWDBENCH1\n"

_SEQ = struct.Struct("!H").unpack_from
_SSRC = struct.Struct("!I").unpack_from


# -- media ---------------------------------------------------------------------------


@dataclass
class Media:
    video_frames: list[bytes]
    audio_packets: list[bytes]
    meta: dict[str, Any]

    def video_payloads(self) -> list[list[bytes]]:
        """Every frame as its RTP payloads (descriptor included), computed once."""
        return [vp8_payloads(f) for f in self.video_frames]


def vp8_payloads(frame: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RFC 7741 packetization: 1-byte descriptor (X=R=N=0, PID=0), S=1 on the first packet.

    The frame is split into equal-size pieces so no packet is much smaller than the others.
    """
    room = max_payload - 1
    n = max(1, -(-len(frame) // room))
    size = -(-len(frame) // n)
    return [(b"\x10" if i == 0 else b"\x00") + frame[i * size:(i + 1) * size]
            for i in range(n)]


def _cache_path() -> Path:
    return CACHE_DIR / (f"media-v{MEDIA_VERSION}-{VIDEO_W}x{VIDEO_H}-{VIDEO_FPS}fps-"
                        f"{VIDEO_BITRATE // 1000}k-{MEDIA_SECONDS}s.bin")


def _encode_media() -> Media:
    import av
    import numpy as np

    frames = MEDIA_SECONDS * VIDEO_FPS
    vc = av.CodecContext.create("libvpx", "w")  # libvpx = VP8
    vc.width, vc.height, vc.pix_fmt = VIDEO_W, VIDEO_H, "yuv420p"
    vc.time_base = fractions.Fraction(1, VIDEO_FPS)
    vc.framerate = fractions.Fraction(VIDEO_FPS, 1)
    vc.bit_rate = VIDEO_BITRATE
    vc.gop_size = frames  # one keyframe per loop
    vc.options = {"deadline": "good", "cpu-used": "4", "lag-in-frames": "0",
                  "static-thresh": "0", "undershoot-pct": "95", "overshoot-pct": "5",
                  "buf-sz": "1000", "buf-initial-sz": "500", "buf-optimal-sz": "600",
                  "minrate": str(VIDEO_BITRATE * 9 // 10), "maxrate": str(VIDEO_BITRATE * 11 // 10)}
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:VIDEO_H, 0:VIDEO_W]
    video: list[bytes] = []
    for i in range(frames):
        # a moving diagonal gradient plus a noise block: enough detail for ~1 Mbit/s
        y = ((xx + yy + i * 4) % 256).astype(np.uint8)
        y[140:220, 260:380] = rng.integers(0, 256, (80, 120), dtype=np.uint8)
        u = np.full((VIDEO_H // 2, VIDEO_W // 2), (i * 2) % 256, np.uint8)
        v = np.full((VIDEO_H // 2, VIDEO_W // 2), 128, np.uint8)
        plane = np.vstack([y, u.reshape(-1, VIDEO_W), v.reshape(-1, VIDEO_W)])
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts = i
        video += [bytes(p) for p in vc.encode(frame)]
    video += [bytes(p) for p in vc.encode(None)]

    ac = av.CodecContext.create("libopus", "w")
    ac.sample_rate, ac.layout, ac.format = AUDIO_RATE, "stereo", "s16"
    ac.bit_rate = 32000
    ac.time_base = fractions.Fraction(1, AUDIO_RATE)
    ac.options = {"frame_duration": "20", "application": "voip"}
    n_audio = MEDIA_SECONDS * AUDIO_RATE // AUDIO_FRAME
    audio: list[bytes] = []
    for i in range(n_audio + 5):
        t = (np.arange(AUDIO_FRAME) + i * AUDIO_FRAME) / AUDIO_RATE
        s = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        af = av.AudioFrame.from_ndarray(np.repeat(s, 2).reshape(1, -1), format="s16",
                                        layout="stereo")
        af.sample_rate = AUDIO_RATE
        af.pts = i * AUDIO_FRAME
        audio += [bytes(p) for p in ac.encode(af)]
    audio += [bytes(p) for p in ac.encode(None)]
    audio = audio[:n_audio]
    if len(video) != frames or len(audio) != n_audio:
        raise RuntimeError(f"encoder gave {len(video)} video / {len(audio)} audio packets")
    meta = {"version": MEDIA_VERSION, "width": VIDEO_W, "height": VIDEO_H, "fps": VIDEO_FPS,
            "seconds": MEDIA_SECONDS, "video_kbps": round(sum(map(len, video)) * 8
                                                          / MEDIA_SECONDS / 1000, 1),
            "audio_kbps": round(sum(map(len, audio)) * 8 / MEDIA_SECONDS / 1000, 1),
            "av": av.__version__}
    return Media(video, audio, meta)


def _write_media(path: Path, media: Media) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        header = json.dumps({**media.meta, "video_frames": len(media.video_frames),
                             "audio_packets": len(media.audio_packets)}).encode()
        fh.write(MAGIC + struct.pack("!I", len(header)) + header)
        for blob in (*media.video_frames, *media.audio_packets):
            fh.write(struct.pack("!I", len(blob)) + blob)
    os.replace(tmp, path)  # atomic: concurrent runs never see half a file


def _read_media(path: Path) -> Media:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError("not a bench media file")
    pos = len(MAGIC)
    (hlen,) = struct.unpack_from("!I", data, pos)
    meta = json.loads(data[pos + 4:pos + 4 + hlen])
    pos += 4 + hlen
    blobs = []
    for _ in range(meta["video_frames"] + meta["audio_packets"]):
        (n,) = struct.unpack_from("!I", data, pos)
        blobs.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    nv = meta.pop("video_frames")
    meta.pop("audio_packets")
    return Media(blobs[:nv], blobs[nv:], meta)


def load_media() -> Media:
    path = _cache_path()
    if path.exists():
        try:
            return _read_media(path)
        except (ValueError, struct.error, KeyError):
            pass
    media = _encode_media()
    _write_media(path, media)
    return media


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


# -- server --------------------------------------------------------------------------


def start_server(max_participants: int) -> ServerProcess:
    return server_process.start_server(
        {"SFU_ROOMS_MAX_PARTICIPANTS": str(max_participants)})


async def scrape_metrics(session: Any, server: ServerProcess) -> dict[str, float]:
    """The server's own counters (cross-check only; scraped outside the CPU windows)."""
    async with session.get(server.base_url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"(sfu_[a-z_]+?)(?:_total)?(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m and not line.startswith("#"):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


# -- subscribers (worker processes) --------------------------------------------------


class StreamCounter:
    """Per-SSRC packet count and sequence tracking, read from the clear RTP header."""

    __slots__ = ("streams",)

    def __init__(self) -> None:
        #: ssrc -> [packets, base ext seq, max ext seq]
        self.streams: dict[int, list[int]] = {}

    def __call__(self, data: bytes, *_: Any) -> None:
        seq = _SEQ(data, 2)[0]
        ssrc = _SSRC(data, 8)[0]
        s = self.streams.get(ssrc)
        if s is None:
            self.streams[ssrc] = [1, seq, seq]
            return
        s[0] += 1
        diff = (seq - s[2]) & 0xFFFF
        if diff < 0x8000:
            s[2] += diff

    def snapshot(self) -> dict[int, tuple[int, int, int]]:
        return {ssrc: (s[0], s[1], s[2]) for ssrc, s in self.streams.items()}


def _hook_early_count(client: Any, counter: StreamCounter) -> int:
    """Count (and drop) RTP datagrams in the UDP protocol, before aioice/DTLS/SRTP.

    STUN (consent checks), DTLS and RTCP still go the normal way. Uses aioice internals
    (``Connection._protocols``, ``StunProtocol.datagram_received``); bench-only.
    """
    hooked = 0
    for proto in client.subscriber._ice._connection._protocols:
        orig = proto.datagram_received

        def hook(data: bytes, addr: Any, _orig: Any = orig) -> None:
            if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
                counter(data)
            else:
                _orig(data, addr)

        proto.datagram_received = hook
        hooked += 1
    return hooked


def worker_main(conn: Any, ws_url: str, identities: list[str], after_srtp: bool) -> None:
    import uvloop

    try:
        uvloop.run(_worker(conn, ws_url, identities, after_srtp))
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


async def _worker(conn: Any, ws_url: str, identities: list[str], after_srtp: bool) -> None:
    from aiortc.rtcdtlstransport import RTCCertificate

    from benches.rawclient import RawClient
    from signalling import tokens

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def on_command() -> None:
        try:
            commands.put_nowait(conn.recv())
        except (EOFError, OSError):  # the bench process went away
            loop.remove_reader(conn.fileno())
            commands.put_nowait("stop")

    loop.add_reader(conn.fileno(), on_command)
    cert = RTCCertificate.generateCertificate()
    counters = [StreamCounter() for _ in identities]
    clients = [
        RawClient(ws_url, tokens.mint(API_KEY, API_SECRET, room=ROOM, identity=ident),
                  certificate=cert, on_packet=counters[i] if after_srtp else None)
        for i, ident in enumerate(identities)
    ]
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        await asyncio.gather(*(c.wait_subscribed(30) for c in clients))
        if not after_srtp:
            for c, counter in zip(clients, counters):
                if not _hook_early_count(c, counter):
                    raise RuntimeError("no UDP protocol to hook")
        conn.send(("ready", os.getpid()))
        while True:
            cmd = await commands.get()
            if cmd == "snap":
                conn.send(("snap", [c.snapshot() for c in counters],
                           [len(c.errors) for c in clients]))
            elif cmd == "stop":
                break
    finally:
        loop.remove_reader(conn.fileno())
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    try:
        conn.send(("bye", None))
    except OSError:
        pass


class Worker:
    def __init__(self, ctx: Any, ws_url: str, identities: list[str], after_srtp: bool) -> None:
        self.identities = identities
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, ws_url, identities, after_srtp),
                                daemon=True)
        self.proc.start()
        child.close()

    async def recv(self, timeout: float) -> Any:
        def get() -> Any:
            if self.conn.poll(timeout):
                return self.conn.recv()
            raise TimeoutError(f"worker {self.proc.pid} did not answer in {timeout} s")

        msg = await asyncio.get_running_loop().run_in_executor(None, get)
        if msg[0] == "error":
            raise RuntimeError(f"worker {self.proc.pid} failed:\n{msg[1]}")
        return msg

    async def snap(self) -> list[dict[int, tuple[int, int, int]]]:
        self.conn.send("snap")
        msg = await self.recv(10)
        return msg[1]

    async def stop(self) -> None:
        try:
            self.conn.send("stop")
            await self.recv(15)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- publisher -----------------------------------------------------------------------


class Publisher:
    def __init__(self, ws_url: str, media: Media) -> None:
        from benches.rawclient import RawClient
        from signalling import tokens

        self.client = RawClient(ws_url, tokens.mint(API_KEY, API_SECRET, room=ROOM,
                                                    identity="publisher", role="instructor"))
        self.frames = media.video_payloads()
        self.audio = media.audio_packets
        self.fps = media.meta["fps"]
        self.sent = {"audio": 0, "video": 0}
        self.send_failures = 0
        self.max_late_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        await self.client.publish()
        self._task = asyncio.ensure_future(self._pace())

    def _send(self, kind: str, payload: bytes, marker: bool, ts_step: int) -> None:
        c = self.client
        if c.send_packet(c.build_packet(kind, payload, marker=marker, ts_step=ts_step)):
            self.sent[kind] += 1
        else:
            self.send_failures += 1

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        v_i = a_i = 0
        next_v = next_a = t0
        frame_s = 1.0 / self.fps
        ts_video = 90000 // self.fps
        while True:
            now = loop.time()
            late = (now - min(next_v, next_a)) * 1000
            if late > self.max_late_ms:
                self.max_late_ms = late
            while next_a <= now:
                self._send("audio", self.audio[a_i % len(self.audio)], False, AUDIO_FRAME)
                a_i += 1
                next_a = t0 + a_i * 0.020
            while next_v <= now:
                payloads = self.frames[v_i % len(self.frames)]
                last = len(payloads) - 1
                for j, p in enumerate(payloads):
                    self._send("video", p, j == last, ts_video if j == 0 else 0)
                v_i += 1
                next_v = t0 + v_i * frame_s
            await asyncio.sleep(max(0.0, min(next_v, next_a) - loop.time()))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.client.close()


# -- the bench -----------------------------------------------------------------------


@dataclass
class Window:
    seconds: float
    server_cpu_s: float
    server_sys_s: float
    publisher_cpu_s: float
    workers_cpu_s: float
    sent: dict[str, int]
    server_counters: dict[str, float]
    per_sub: list[dict[str, int]]
    publisher_max_late_ms: float

    @property
    def forwarded(self) -> int:
        return sum(s["received"] for s in self.per_sub)

    @property
    def lost(self) -> int:
        return sum(max(0, s["lost"]) for s in self.per_sub)


def _sub_delta(a: dict[int, tuple[int, int, int]],
               b: dict[int, tuple[int, int, int]]) -> dict[str, int]:
    received = expected = 0
    for ssrc, (n1, base, max1) in b.items():
        n0, _, max0 = a.get(ssrc, (0, base, base - 1))
        received += n1 - n0
        expected += max1 - max0
    return {"received": received, "expected": expected, "lost": expected - received,
            "streams": sum(1 for ssrc in b if b[ssrc][0] > a.get(ssrc, (0,))[0])}


async def _snap_all(workers: list[Worker]) -> list[dict[int, tuple[int, int, int]]]:
    snaps = await asyncio.gather(*(w.snap() for w in workers))
    return [s for per_worker in snaps for s in per_worker]


async def measure(seconds: float, server: ServerProcess, pub: Publisher, workers: list[Worker],
                  http: Any) -> Window:
    m0 = await scrape_metrics(http, server)
    sent0 = dict(pub.sent)
    snaps0 = await _snap_all(workers)
    pub.max_late_ms = 0.0
    t0 = time.monotonic()
    (su0, ss0), p0 = proc_times(server.proc.pid), proc_cpu_s()
    w0 = sum(proc_cpu_s(w.proc.pid) for w in workers)
    await asyncio.sleep(seconds)
    (su1, ss1), p1 = proc_times(server.proc.pid), proc_cpu_s()
    w1 = sum(proc_cpu_s(w.proc.pid) for w in workers)
    t1 = time.monotonic()
    sent1 = dict(pub.sent)
    max_late_ms = pub.max_late_ms
    snaps1 = await _snap_all(workers)
    m1 = await scrape_metrics(http, server)
    counters = {k: m1[k] - m0.get(k, 0.0) for k in m1
                if k in ("sfu_rtp_packets_in", "sfu_rtp_packets_out", "sfu_nacks_received",
                         "sfu_retransmissions", "sfu_rtp_duplicates", "sfu_keyframe_requests_sent")}
    return Window(t1 - t0, su1 - su0 + ss1 - ss0, ss1 - ss0, p1 - p0, w1 - w0,
                  {k: sent1[k] - sent0[k] for k in sent1}, counters,
                  [_sub_delta(a, b) for a, b in zip(snaps0, snaps1)], max_late_ms)


async def _wait_all_receiving(workers: list[Worker], n_subs: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        snaps = await _snap_all(workers)
        ok = sum(1 for s in snaps if sum(1 for v in s.values() if v[0] > 0) >= 2)
        if ok == n_subs:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ok} of {n_subs} subscribers receive audio and video")
        await asyncio.sleep(0.25)


async def run_bench(subscribers: int, seconds: float, workers: int, warmup: float,
                    after_srtp: bool = False, log: Any = print) -> dict[str, Any]:
    import aiohttp

    media = load_media()
    log(f"media: {media.meta}")
    server = start_server(max_participants=subscribers + 10)
    log(f"server pid {server.proc.pid} at {server.base_url}")
    pub: Publisher | None = None
    pool: list[Worker] = []
    http = aiohttp.ClientSession()
    try:
        pub = Publisher(server.ws_url, media)
        await pub.start()
        await asyncio.sleep(warmup)
        log(f"idle phase: publisher only, {seconds} s")
        idle = await measure(seconds, server, pub, [], http)

        ctx = mp.get_context("spawn")
        idents = [f"sub{i:03d}" for i in range(subscribers)]
        n_workers = max(1, min(workers, subscribers))
        for k in range(n_workers):
            pool.append(Worker(ctx, server.ws_url, idents[k::n_workers], after_srtp))
        log(f"{subscribers} subscribers in {n_workers} worker processes "
            f"{[w.proc.pid for w in pool]}")
        await asyncio.gather(*(w.recv(90) for w in pool))
        await _wait_all_receiving(pool, subscribers, 30)
        await asyncio.sleep(max(1.0, warmup))
        log(f"steady phase: {subscribers} subscribers, {seconds} s")
        steady = await measure(seconds, server, pub, pool, http)
        publisher_stats = {"send_failures": pub.send_failures}
    except Exception:
        sys.stderr.write("---- server log (tail) ----\n" + "".join(server.log[-300:]))
        raise
    finally:
        await asyncio.gather(*(w.stop() for w in pool), return_exceptions=True)
        if pub is not None:
            await pub.close()
        await http.close()
        server_process.stop_server(server)
    return summarize(subscribers, seconds, n_workers, media, idle, steady, publisher_stats,
                     after_srtp)


def _window_json(w: Window) -> dict[str, Any]:
    sent = sum(w.sent.values())
    return {
        "seconds": round(w.seconds, 3),
        "server_cpu_s": round(w.server_cpu_s, 3),
        "server_sys_s": round(w.server_sys_s, 3),
        "server_cpu_pct": round(100 * w.server_cpu_s / w.seconds, 2),
        "publisher_sent": w.sent,
        "ingress_pps": round(sent / w.seconds, 1),
        "forwarded": w.forwarded,
        "forwarded_pps": round(w.forwarded / w.seconds, 1),
        "lost": w.lost,
        "harness_cpu_s": {"publisher": round(w.publisher_cpu_s, 3),
                          "workers": round(w.workers_cpu_s, 3),
                          "total": round(w.publisher_cpu_s + w.workers_cpu_s, 3)},
        "server_counters": w.server_counters,
        "publisher_max_late_ms": round(w.publisher_max_late_ms, 1),
    }


def summarize(subscribers: int, seconds: float, workers: int, media: Media, idle: Window,
              steady: Window, publisher_stats: dict[str, Any], after_srtp: bool) -> dict[str, Any]:
    fwd = steady.forwarded
    expected = sum(max(0, s["expected"]) for s in steady.per_sub)
    idle_rate = idle.server_cpu_s / idle.seconds
    us_total = 1e6 * steady.server_cpu_s / fwd if fwd else None
    us_minus_idle = (1e6 * (steady.server_cpu_s - idle_rate * steady.seconds) / fwd
                     if fwd else None)
    loss_pct = 100.0 * steady.lost / expected if expected else 100.0
    per_sub_loss = [100.0 * max(0, s["lost"]) / s["expected"] if s["expected"] > 0 else 100.0
                    for s in steady.per_sub]
    failures = []
    silent = [i for i, s in enumerate(steady.per_sub) if s["received"] == 0]
    if silent:
        failures.append(f"{len(silent)} subscriber(s) received nothing: {silent}")
    if loss_pct > 1.0:
        failures.append(f"loss {loss_pct:.2f} % > 1 %")
    if not fwd:
        failures.append("nothing forwarded")
    sent = sum(steady.sent.values())
    harness = steady.publisher_cpu_s + steady.workers_cpu_s
    return {
        "status": "FAILED" if failures else "ok",
        "failures": failures,
        "config": {"subscribers": subscribers, "seconds": seconds, "workers": workers,
                   "count_after_srtp": after_srtp, "media": media.meta},
        "machine": machine_info(),
        "git": git_state(),
        "idle": _window_json(idle),
        "steady": {**_window_json(steady),
                   "per_subscriber": steady.per_sub,
                   "max_subscriber_loss_pct": round(max(per_sub_loss, default=0.0), 3)},
        "publisher": publisher_stats,
        "figures": {
            "server_us_per_packet": round(us_total, 2) if us_total else None,
            "server_us_per_packet_minus_idle": (round(us_minus_idle, 2)
                                                if us_minus_idle else None),
            "forwarded_pps": round(fwd / steady.seconds, 1),
            "delivery_ratio": round(fwd / (sent * subscribers), 4) if sent else None,
            "loss_pct": round(loss_pct, 3),
            "server_cpu_pct": round(100 * steady.server_cpu_s / steady.seconds, 2),
            "idle_server_cpu_pct": round(100 * idle_rate, 2),
            "harness_cpu_pct": round(100 * harness / steady.seconds, 2),
            "harness_us_per_packet": round(1e6 * harness / fwd, 2) if fwd else None,
        },
    }


def markdown(r: dict[str, Any]) -> str:
    i, s, f = r["idle"], r["steady"], r["figures"]
    n = r["config"]["subscribers"]
    rows = [
        ("window (s)", f"{i['seconds']:.1f}", f"{s['seconds']:.1f}"),
        ("publisher packets/s (ingress)", f"{i['ingress_pps']:.0f}", f"{s['ingress_pps']:.0f}"),
        ("forwarded packets/s", "0", f"{s['forwarded_pps']:.0f}"),
        ("server CPU (s)", f"{i['server_cpu_s']:.2f}", f"{s['server_cpu_s']:.2f}"),
        ("server CPU of which kernel (stime, s)", f"{i['server_sys_s']:.2f}",
         f"{s['server_sys_s']:.2f}"),
        ("server CPU (% of one core)", f"{i['server_cpu_pct']:.1f}", f"{s['server_cpu_pct']:.1f}"),
        ("**server µs / forwarded packet**", "–", f"**{f['server_us_per_packet']}**"),
        ("server µs / forwarded packet, minus idle", "–",
         f"{f['server_us_per_packet_minus_idle']}"),
        ("loss (%)", "–", f"{f['loss_pct']:.3f} (worst subscriber "
                          f"{s['max_subscriber_loss_pct']:.3f})"),
        ("delivery (forwarded / sent×N)", "–", f"{f['delivery_ratio']}"),
        ("harness CPU (s): publisher / workers",
         f"{i['harness_cpu_s']['publisher']:.2f} / –",
         f"{s['harness_cpu_s']['publisher']:.2f} / {s['harness_cpu_s']['workers']:.2f}"),
    ]
    out = [f"| 1 × {n} | idle (publisher only) | steady state |", "|---|---:|---:|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    m = r["machine"]
    out.append("")
    out.append(f"{r['status']}{': ' + '; '.join(r['failures']) if r['failures'] else ''} — "
               f"{m['date']}, {m['nproc']} CPU {m['cpu_model']}, Python {m['python']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.forward_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="length of each measured window (idle and steady)")
    ap.add_argument("--workers", type=int, default=0,
                    help="subscriber worker processes (default: one per 5 subscribers, max 8)")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds before the idle window and after all subscribers receive")
    ap.add_argument("--count-after-srtp", action="store_true",
                    help="count in the RawClient callback after SRTP unprotect (costlier "
                         "for the harness; for checking the early count)")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    if args.subscribers < 1 or args.seconds <= 0:
        ap.error("--subscribers must be >= 1 and --seconds > 0")
    workers = args.workers or min(8, math.ceil(args.subscribers / 5))

    import uvloop

    def log(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    try:
        result = uvloop.run(run_bench(args.subscribers, args.seconds, workers, args.warmup,
                                      args.count_after_srtp, log))
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 2
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
