"""Load harness: one scenario against one server, measured the same way for every server.

    python -m benches.harness --server ours --scenario lecture --students 20
    python -m benches.harness --server janus --scenario classroom --students 10
    python -m benches.harness --server relay --scenario lecture --students 5

``--server relay`` is the naive decode + re-encode baseline (:mod:`benches.naive_relay`).
``--server janus`` and ``--server relay`` (and ``--netns``) run everything inside a private
network namespace (:mod:`benches.netns`; needs root). See benches/README.md for what is
measured and why; :mod:`benches.compare` runs the standard comparison.

A run: start the server; the workers (:mod:`benches.load_worker`) join every participant and
the publishers start sending; after ``--warmup``, the **idle window** (publishers only, no
one receiving); then every subscriber subscribes, and once each receives all the streams it
should (plus ``--warmup``), the **steady window**. Exit status: 0 ok, 1 FAILED (a subscriber
missed a stream it should get, loss > 1 %, nothing forwarded), 2 the harness itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benches import (
    janus_server,
    load_clients,
    load_worker,
    media,
    naive_relay,
    netns,
    server_process,
)
from benches.measure import git_state, machine_info, percentile, proc_cpu_s, proc_rss, proc_times
from benches.scenario import Scenario, load

SERVERS = ("ours", "janus", "relay")
#: the bench clients (benches.load_clients): light, or what a browser sends on the wire
CLIENTS = ("light", "browser")
#: servers that can only run inside the bench network namespace
NETNS_ONLY = ("janus", "relay")


# -- the server under test -----------------------------------------------------------


@dataclass
class Target:
    kind: str
    pid: int
    client_config: dict[str, Any]
    stop: Any
    log: list[str]

    def alive(self) -> bool:
        try:
            proc_times(self.pid)
            return True
        except OSError:
            return False


async def start_target(kind: str, address: str, participants: int, *, rooms: int = 1,
                       speech: bool = False, listen: str = "127.0.0.1") -> Target:
    """``speech``: our server forwards audio by speech (its default; the node-capacity
    bench); else every microphone, as Janus does (it has no audio by speech), for the
    same work per packet on both sides. ``listen``: the address of its HTTP API (the bench
    address when the clients are in a namespace of their own)."""
    if kind == "ours":
        srv = server_process.start_server(
            {"SFU_ROOMS_MAX_PARTICIPANTS": str(participants + 10),
             "SFU_ROOMS_AUDIO_SPEAKERS": "3" if speech else "0"},
            host=listen, ice_addresses=(address,))
        return Target(kind, srv.proc.pid,
                      {"kind": kind, "ws_url": srv.ws_url, "api_key": srv.api_key,
                       "api_secret": srv.api_secret},
                      lambda: server_process.stop_server(srv), srv.log)
    if kind == "janus":
        j = await janus_server.start(netns.INTERFACE, publishers=participants + 10,
                                     rooms=rooms, http_ip=listen)
        return Target(kind, j.pid, {"kind": kind, "http_url": j.http_url, "room": j.room},
                      lambda: janus_server.stop(j), j.log)
    if kind == "relay":
        r = naive_relay.start(address)
        return Target(kind, r.pid, {"kind": kind, "http_url": r.http_url, "stamps": False},
                      lambda: naive_relay.stop(r), r.log)
    raise ValueError(f"unknown server {kind!r}; have {SERVERS}")


# -- workers -------------------------------------------------------------------------


class Worker:
    def __init__(self, ctx: Any, target: dict[str, Any], scenario: Scenario,
                 names: list[str], address: str, netns_path: str | None = None) -> None:
        self.names = names
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=load_worker.main,
                                args=(child, target, scenario, names, address, netns_path),
                                daemon=True)
        self.proc.start()
        child.close()

    async def call(self, cmd: str, arg: Any = None, timeout: float = 60.0) -> Any:
        self.conn.send((cmd, arg))
        return await self.recv(timeout)

    async def recv(self, timeout: float) -> Any:
        def get() -> Any:
            if self.conn.poll(timeout):
                return self.conn.recv()
            raise TimeoutError(f"worker {self.proc.pid} did not answer in {timeout} s")

        msg = await asyncio.get_running_loop().run_in_executor(None, get)
        if msg[0] == "error":
            raise RuntimeError(f"worker {self.proc.pid} failed:\n{msg[1]}")
        return msg

    async def stop(self) -> None:
        try:
            await self.call("stop", timeout=15)
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


@dataclass
class Snap:
    streams: dict[str, dict[int, tuple[int, int, int, int]]] = field(default_factory=dict)
    latencies_us: list[float] = field(default_factory=list)
    first_ms: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    #: RTCP the browser-like subscribers sent (twcc, rr, nack)
    feedback: dict[str, int] = field(default_factory=lambda: {"twcc": 0, "rr": 0, "nack": 0})


async def snap_all(workers: list[Worker]) -> Snap:
    out = Snap()
    for msg in await asyncio.gather(*(w.call("snap") for w in workers)):
        _, streams, lat, first, stats = msg
        out.streams.update(streams)
        for v in lat.values():
            out.latencies_us += v
        out.first_ms.update(first)
        out.sent += stats["sent"]
        out.failed += stats["failed"]
        for k, n in stats.get("feedback", {}).items():
            out.feedback[k] = out.feedback.get(k, 0) + n
    return out


# -- windows -------------------------------------------------------------------------


def _delta(a: dict[int, tuple[int, int, int, int]], b: dict[int, tuple[int, int, int, int]]
           ) -> dict[str, int]:
    received = expected = streams = frames = 0
    for ssrc, (n1, base, max1, m1) in b.items():
        n0, _, max0, m0 = a.get(ssrc, (0, base, base - 1, 0))
        received += n1 - n0
        expected += max1 - max0
        streams += n1 > n0
        frames += m1 - m0
    return {"received": received, "expected": expected, "lost": max(0, expected - received),
            "streams": streams, "frames": frames}


async def measure(seconds: float, target: Target, workers: list[Worker]) -> dict[str, Any]:
    s0 = await snap_all(workers)
    t0 = time.monotonic()
    (su0, ss0), h0 = proc_times(target.pid), proc_cpu_s()
    w0 = sum(proc_cpu_s(w.proc.pid) for w in workers)
    await asyncio.sleep(seconds)
    (su1, ss1), h1 = proc_times(target.pid), proc_cpu_s()
    w1 = sum(proc_cpu_s(w.proc.pid) for w in workers)
    t1 = time.monotonic()
    s1 = await snap_all(workers)
    per_sub = {n: _delta(s0.streams.get(n, {}), s1.streams[n]) for n in s1.streams}
    return {
        "seconds": t1 - t0,
        "server_cpu_s": su1 - su0 + ss1 - ss0,
        "server_sys_s": ss1 - ss0,
        "server_rss": proc_rss(target.pid),
        "harness_cpu_s": (h1 - h0) + (w1 - w0),
        "harness_rss": proc_rss() + sum(proc_rss(w.proc.pid) for w in workers),
        "sent": s1.sent - s0.sent,
        "send_failures": s1.failed - s0.failed,
        "feedback_sent": {k: s1.feedback[k] - s0.feedback.get(k, 0) for k in s1.feedback},
        "per_sub": per_sub,
        "latencies_us": s1.latencies_us,
        "first_ms": s1.first_ms,
    }


async def _wait_receiving(workers: list[Worker], scenario: Scenario, timeout: float) -> None:
    want = {p.name: scenario.expected_streams(p) for p in scenario.subscribers}
    deadline = time.monotonic() + timeout
    while True:
        snap = await snap_all(workers)
        short = {n: f"{sum(1 for v in snap.streams.get(n, {}).values() if v[0])}/{k}"
                 for n, k in want.items()
                 if sum(1 for v in snap.streams.get(n, {}).values() if v[0]) < k}
        if not short:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(short)} subscriber(s) lack streams (got/want): "
                               f"{dict(list(short.items())[:8])}")
        await asyncio.sleep(0.25)


async def _recorded_window(target: Target, seconds: float, warmup: float,
                           pool: list[Worker], failures: list[str], log: Any
                           ) -> dict[str, Any]:
    """A third window with the room recorded (ours only, through the room API): the same
    forwarding plus the recorder; then the recording is stopped and its check read."""
    import aiohttp

    cfg = target.client_config
    base = cfg["ws_url"].replace("ws://", "http://", 1).removesuffix("/ws")
    url = f"{base}/api/rooms/{load_clients.OURS_ROOM}/recording"
    headers = {"Authorization": f"Bearer {cfg['api_secret']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(url) as res:
            if res.status != 201:
                failures.append(f"recording did not start: {res.status} {await res.text()}")
        log(f"{target.kind}: recording the room; recorded window, {seconds} s")
        await asyncio.sleep(warmup)
        window = await measure(seconds, target, pool)
        async with http.delete(url) as res:
            manifest = await res.json()
    tracks = manifest.get("tracks", [])
    window["recording"] = {
        "tracks": len(tracks), "problems": manifest.get("problems"),
        "media_s": sum(t["durationS"] for t in tracks),
        "packets_in": sum(t["packetsIn"] for t in tracks),
        "packets_written": sum(t["packetsWritten"] for t in tracks),
        "packets_empty": sum(t["packetsEmpty"] for t in tracks),
        "dropped": sum(sum(t["dropped"].values()) for t in tracks),
    }
    if manifest.get("problems") or not tracks:
        failures.append(f"recording failed: {manifest.get('problems') or 'no tracks'}")
    return window


@dataclass
class Placement:
    """Where the server and the clients run. By default, together: one namespace, every
    CPU. ``split`` (inside the bench namespace): the clients in a second namespace
    (:class:`benches.netns.ClientNamespace`) and on their own CPUs, the server on the
    others (:func:`benches.netns.split_cpus`)."""

    split: bool = False
    server_cpus: set[int] | None = None
    client_cpus: set[int] | None = None
    clients_ns: netns.ClientNamespace | None = None
    #: every worker reported a network namespace other than the harness's
    clients_elsewhere: bool = False

    @classmethod
    def open(cls, split: bool) -> Placement:
        if not split:
            return cls()
        if not netns.inside():
            raise RuntimeError("split placement needs the bench network namespace")
        server_cpus, client_cpus = netns.split_cpus()
        return cls(True, server_cpus, client_cpus, netns.ClientNamespace.open())

    def close(self) -> None:
        if self.clients_ns is not None:
            self.clients_ns.close()
        if self.split:
            os.sched_setaffinity(0, self.server_cpus | self.client_cpus)  # type: ignore[operator]

    def describe(self) -> dict[str, Any]:
        if not self.split:
            return {"split": False}
        return {"split": True, "server_cpus": sorted(self.server_cpus or ()),
                "client_cpus": sorted(self.client_cpus or ()),
                "client_address": netns.CLIENT_ADDRESS,
                "clients_in_own_namespace": self.clients_elsewhere}


async def run(kind: str, scenario: Scenario, *, seconds: float = 15.0, warmup: float = 2.0,
              workers: int = 0, address: str = "127.0.0.1", log: Any = print,
              record: bool = False, clients: str = "light", split: bool = False
              ) -> dict[str, Any]:
    """``clients``: "light" (no feedback, one video layer, every packet loud) or "browser"
    (what Chromium does on the wire: benches.load_clients). ``split``: the clients in a
    namespace and on CPUs of their own (:class:`Placement`)."""
    if clients not in CLIENTS:
        raise ValueError(f"clients must be one of {CLIENTS}")
    placement = Placement.open(split)
    try:
        result = await _run(kind, scenario, seconds=seconds, warmup=warmup, workers=workers,
                            address=address, log=log, record=record, clients=clients,
                            placement=placement)
    finally:
        placement.close()
    result["placement"] = placement.describe()
    return result


async def _run(kind: str, scenario: Scenario, *, seconds: float, warmup: float,
               workers: int, address: str, log: Any, record: bool, clients: str,
               placement: Placement) -> dict[str, Any]:
    wanted = {p.video or "180p" for p in scenario.publishers}
    if any(p.simulcast for p in scenario.publishers):
        wanted |= set(media.LAYERS)
    for layer in wanted:
        media.load(layer)  # encode once, before the workers (which only read the cache)
    n = len(scenario.participants)
    n_workers = max(1, min(workers or min(8, math.ceil(n / 6)), n))
    if placement.split:
        os.sched_setaffinity(0, placement.server_cpus)  # type: ignore[arg-type]
    try:  # the server inherits the server CPUs, the workers (spawned below) the clients'
        target = await start_target(kind, address, n, rooms=scenario.rooms,
                                    speech=scenario.speech and kind == "ours",
                                    listen=address if placement.split else "127.0.0.1")
    finally:
        if placement.split:
            os.sched_setaffinity(0, placement.client_cpus)  # type: ignore[arg-type]
    client_address = netns.CLIENT_ADDRESS if placement.split else address
    ns_path = placement.clients_ns.path if placement.clients_ns is not None else None
    target.client_config["clients"] = clients
    target.client_config["lesson_start"] = time.monotonic()  # benches.talk's time zero
    log(f"{kind}: pid {target.pid}, {scenario.name} with {n} participants, "
        f"{n_workers} workers, {clients} clients"
        + (f", server on CPUs {sorted(placement.server_cpus or ())}, clients on "
           f"{sorted(placement.client_cpus or ())} in their own namespace"
           if placement.split else ""))
    ctx = mp.get_context("spawn")
    names = [p.name for p in scenario.participants]
    pool = [Worker(ctx, target.client_config, scenario, names[k::n_workers], client_address,
                   ns_path) for k in range(n_workers)]
    failures: list[str] = []
    try:
        ready = await asyncio.gather(*(w.recv(60) for w in pool))
        own_ns = os.stat("/proc/self/ns/net").st_ino
        placement.clients_elsewhere = all(msg[2] != own_ns for msg in ready)
        directory: dict[str, str] = {}
        for msg in await asyncio.gather(*(w.call("join", timeout=90) for w in pool)):
            directory.update(msg[1])
        await asyncio.sleep(warmup)
        log(f"{kind}: idle window (publishers only), {seconds} s")
        idle = await measure(seconds, target, pool)
        t_sub = time.monotonic()
        await asyncio.gather(*(w.call("subscribe", directory, timeout=90) for w in pool))
        try:
            await _wait_receiving(pool, scenario, max(30.0, n / 5))
        except TimeoutError as exc:
            failures.append(str(exc))
        log(f"{kind}: all subscribed in {time.monotonic() - t_sub:.1f} s; "
            f"steady window, {seconds} s")
        await asyncio.sleep(warmup)
        steady = await measure(seconds, target, pool)
        recorded = None
        if record:
            recorded = await _recorded_window(target, seconds, warmup, pool, failures, log)
        if not target.alive():
            failures.append("the server process died")
        if failures:
            sys.stderr.write(f"---- {kind} log (tail) ----\n" + "".join(target.log[-150:]))
    except Exception:
        sys.stderr.write(f"---- {kind} log (tail) ----\n" + "".join(target.log[-100:]))
        raise
    finally:
        await asyncio.gather(*(w.stop() for w in pool), return_exceptions=True)
        target.stop()
    result = summarize(kind, scenario, seconds, n_workers, idle, steady, failures)
    result["clients"] = clients
    if recorded is not None:
        result["recorded"] = summarize_recorded(scenario, steady, recorded)
    return result


def summarize_recorded(scenario: Scenario, steady: dict[str, Any], rec: dict[str, Any]
                       ) -> dict[str, Any]:
    """The recorded window against the steady one: what recording the room added to the
    server's CPU, per recorded track-second, and whether forwarding stayed whole."""
    subs = scenario.subscribers
    per_sub = rec["per_sub"]
    expected = sum(per_sub[p.name]["expected"] for p in subs if p.name in per_sub)
    lost = sum(per_sub[p.name]["lost"] for p in subs if p.name in per_sub)
    cpu_rate = rec["server_cpu_s"] / rec["seconds"]
    base_rate = steady["server_cpu_s"] / steady["seconds"]
    r = rec["recording"]
    tracks = r["tracks"] or 1
    added = cpu_rate - base_rate
    return {
        **r,
        "server_cpu_pct": round(100 * cpu_rate, 2),
        "server_cpu_pct_not_recorded": round(100 * base_rate, 2),
        "recording_cpu_us_per_track_second": round(1e6 * added / tracks, 1),
        "loss_pct": round(100.0 * lost / expected, 3) if expected else None,
        "rooms_on_2_cores_at_80pct": int(1.6 / cpu_rate) if cpu_rate > 0 else None,
    }


def summarize(kind: str, scenario: Scenario, seconds: float, n_workers: int,
              idle: dict[str, Any], steady: dict[str, Any], failures: list[str]
              ) -> dict[str, Any]:
    subs = scenario.subscribers
    per_sub = steady["per_sub"]
    fwd = sum(per_sub[p.name]["received"] for p in subs if p.name in per_sub)
    expected = sum(per_sub[p.name]["expected"] for p in subs if p.name in per_sub)
    lost = sum(per_sub[p.name]["lost"] for p in subs if p.name in per_sub)
    missing = [p.name for p in subs
               if per_sub.get(p.name, {}).get("streams", 0) < scenario.expected_streams(p)]
    if missing:
        failures.append(f"{len(missing)} subscriber(s) did not receive every stream in the "
                        f"window: {missing[:8]}")
    loss_pct = 100.0 * lost / expected if expected else 100.0
    people = scenario.by_name()
    fps = [per_sub[p.name]["frames"] / steady["seconds"] / videos for p in subs
           if p.name in per_sub and (videos := sum(1 for n in p.sees if people[n].video))]
    if loss_pct > 1.0:
        failures.append(f"loss {loss_pct:.2f} % > 1 %")
    sent_fps = media.FPS
    if fps and min(fps) < 0.9 * sent_fps:
        failures.append(f"video at {min(fps):.1f} frames/s (worst subscriber) of the "
                        f"{sent_fps} sent")
    if not fwd:
        failures.append("nothing forwarded")
    secs = steady["seconds"]
    idle_rate = idle["server_cpu_s"] / idle["seconds"]
    lat = steady["latencies_us"]
    first = [steady["first_ms"][p.name] for p in subs if p.name in steady["first_ms"]]
    r2 = lambda v: round(v, 2) if v is not None else None  # noqa: E731
    return {
        "server": kind,
        "status": "FAILED" if failures else "ok",
        "failures": failures,
        "scenario": {"name": scenario.name, "participants": len(scenario.participants),
                     "publishers": len(scenario.publishers), "subscribers": len(subs),
                     "streams_received": sum(scenario.expected_streams(p) for p in subs)},
        "config": {"seconds": seconds, "workers": n_workers},
        "machine": machine_info(),
        "git": git_state(),
        "idle": {k: v for k, v in idle.items() if k not in ("per_sub", "latencies_us",
                                                             "first_ms")},
        "steady": {**{k: v for k, v in steady.items() if k not in ("latencies_us",
                                                                   "first_ms")},
                   "latency_samples": len(lat)},
        "figures": {
            "server_us_per_packet": r2(1e6 * steady["server_cpu_s"] / fwd) if fwd else None,
            "server_us_per_packet_minus_idle":
                r2(1e6 * (steady["server_cpu_s"] - idle_rate * secs) / fwd) if fwd else None,
            "server_cpu_pct": r2(100 * steady["server_cpu_s"] / secs),
            "server_sys_pct": r2(100 * steady["server_sys_s"] / secs),
            "idle_server_cpu_pct": r2(100 * idle_rate),
            "ingress_pps": r2(steady["sent"] / secs),
            "forwarded_pps": r2(fwd / secs),
            "loss_pct": round(loss_pct, 3),
            "video_fps_mean": r2(sum(fps) / len(fps)) if fps else None,
            "video_fps_min": r2(min(fps)) if fps else None,
            "latency_p50_ms": r2(percentile(lat, 50) / 1000) if lat else None,
            "latency_p99_ms": r2(percentile(lat, 99) / 1000) if lat else None,
            "join_to_first_packet_p50_ms": r2(percentile(first, 50)),
            "join_to_first_packet_max_ms": r2(max(first)) if first else None,
            "server_rss_mb": r2(steady["server_rss"] / 2**20),
            "server_rss_per_subscriber_kb":
                r2((steady["server_rss"] - idle["server_rss"]) / 1024 / len(subs))
                if subs else None,
            "harness_cpu_pct": r2(100 * steady["harness_cpu_s"] / secs),
            "harness_us_per_packet": r2(1e6 * steady["harness_cpu_s"] / fwd) if fwd else None,
            "harness_rss_mb": r2(steady["harness_rss"] / 2**20),
            "publisher_send_failures": steady["send_failures"],
        },
    }


ROWS = [
    ("forwarded packets/s", "forwarded_pps", "{:.0f}"),
    ("**server µs / forwarded packet**", "server_us_per_packet", "**{:.2f}**"),
    ("server µs / packet, minus publisher-only idle", "server_us_per_packet_minus_idle",
     "{:.2f}"),
    ("server CPU, % of one core (idle phase)", "idle_server_cpu_pct", "{:.1f}"),
    ("server CPU, % of one core (of which kernel)", None, None),
    ("loss (%)", "loss_pct", "{:.3f}"),
    ("video frames/s received per video, mean / worst subscriber", None, None),
    ("added latency p50 / p99 (ms)", None, None),
    ("join to first packet p50 / max (ms)", None, None),
    ("server RSS (MB); per subscriber (KB)", None, None),
    ("harness CPU, % of one core; µs / packet", None, None),
]


def _cell(f: dict[str, Any], key: str | None, fmt: str | None, label: str) -> str:
    def v(k: str, form: str = "{:.2f}") -> str:
        x = f.get(k)
        return "–" if x is None else form.format(x)

    if key is not None and fmt is not None:
        return v(key, fmt)
    if label.startswith("server CPU, % of one core (of"):
        return f"{v('server_cpu_pct', '{:.1f}')} ({v('server_sys_pct', '{:.1f}')})"
    if label.startswith("video frames"):
        return f"{v('video_fps_mean', '{:.1f}')} / {v('video_fps_min', '{:.1f}')}"
    if label.startswith("added latency"):
        return f"{v('latency_p50_ms')} / {v('latency_p99_ms')}"
    if label.startswith("join"):
        return f"{v('join_to_first_packet_p50_ms', '{:.0f}')} / " \
               f"{v('join_to_first_packet_max_ms', '{:.0f}')}"
    if label.startswith("server RSS"):
        return f"{v('server_rss_mb', '{:.0f}')}; {v('server_rss_per_subscriber_kb', '{:.0f}')}"
    return f"{v('harness_cpu_pct', '{:.1f}')}; {v('harness_us_per_packet', '{:.1f}')}"


def markdown(results: list[dict[str, Any]]) -> str:
    head = "| | " + " | ".join(f"{r['server']} ({r['status']})" for r in results) + " |"
    out = [head, "|---|" + "---:|" * len(results)]
    for label, key, fmt in ROWS:
        out.append(f"| {label} | " + " | ".join(_cell(r["figures"], key, fmt, label)
                                                for r in results) + " |")
    for r in results:
        if r["failures"]:
            out.append(f"\n{r['server']} FAILED: " + "; ".join(r["failures"]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.harness", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=SERVERS, default="ours")
    ap.add_argument("--scenario", default="lecture", help="a name in benches/scenarios or "
                    "a TOML file")
    ap.add_argument("--students", type=int, help="override the scenario's student count")
    ap.add_argument("--seconds", type=float, default=15.0, help="each measured window")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=0, help="client processes (default: one "
                    "per 6 participants, at most 8)")
    ap.add_argument("--netns", action="store_true", help="run in a private network "
                    "namespace (always for janus and relay)")
    ap.add_argument("--record", action="store_true", help="ours: a third window with the "
                    "room recorded (both copies checked after it)")
    ap.add_argument("--clients", choices=CLIENTS, default="light", help="light: no "
                    "feedback, one video layer; browser: transport-cc both ways with feedback "
                    "every 100 ms, receiver reports, NACKs, audio levels that follow the "
                    "lesson, simulcast where the scenario says")
    ap.add_argument("--split", action="store_true", help="the clients in a second network "
                    "namespace and on their own CPUs, the server on the others (implies "
                    "--netns; ours and janus)")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    if args.split and args.server == "relay":
        ap.error("--split is for ours and janus")
    if (args.netns or args.split or args.server in NETNS_ONLY) and not netns.inside():
        return netns.reexec_inside("benches.harness", sys.argv[1:] if argv is None else argv)
    scenario = load(args.scenario, args.students)
    address = netns.ADDRESS if netns.inside() else "127.0.0.1"

    import uvloop

    def log(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    try:
        result = uvloop.run(run(args.server, scenario, seconds=args.seconds,
                                warmup=args.warmup, workers=args.workers, address=address,
                                log=log, record=args.record, clients=args.clients,
                                split=args.split))
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 2
    print(f"{scenario.name}, {len(scenario.participants)} participants\n")
    print(markdown([result]))
    if "recorded" in result:
        r = result["recorded"]
        print(f"\nRecorded window: server CPU {r['server_cpu_pct']} % of one core "
              f"({r['server_cpu_pct_not_recorded']} % not recorded), {r['tracks']} tracks, "
              f"{r['recording_cpu_us_per_track_second']} µs CPU per recorded track-second; "
              f"forwarding loss {r['loss_pct']} %; packets to the recorder "
              f"{r['packets_in']} = written {r['packets_written']} + padding "
              f"{r['packets_empty']} + dropped {r['dropped']}; such rooms on 2 cores at "
              f"80 %: {r['rooms_on_2_cores_at_80pct']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
