"""How many classrooms one node holds: the node-capacity figure, ours and Janus, same run.

    python -m benches.capacity                       # 1, 2, 4, 6, ... classrooms until one fails
    python -m benches.capacity --counts 1,2,3 --seconds 20 --servers ours,janus

A classroom is ``benches/scenarios/classroom.toml`` with 30 students: the instructor sends
720p video in three simulcast layers and a microphone and sees every student; each student
sends a microphone and 180p video and sees the instructor. Clients are browser-like
(:mod:`benches.load_clients`: transport-cc feedback, receiver reports, NACKs, audio levels
that follow a lesson, :mod:`benches.talk`). Our server forwards audio by speech (its
default: the instructor's microphone and the students who speak); Janus forwards every
microphone (it has no such mode), so each server does what it would do in a real lesson.

For each server, the count of concurrent classrooms grows until a run fails the bar: loss
over 0.5 %, p99 added latency over 10 ms, a subscriber missing a stream, or a video short
of frames. The figure is the largest count that passed.

Everything runs on this machine. The server runs in the bench network namespace
(:mod:`benches.netns`) on the first half of the CPUs; the clients run in a second namespace,
joined to the first by a veth pair, on the other half (``--together`` puts them all in one
namespace on every CPU, as before). The harness's own CPU is reported next to the
server's: the clients need CPU too, and a count can fail because the clients' CPUs are full
rather than the server's (the table shows which).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from benches import harness, netns
from benches.measure import git_state, heading, machine_info
from benches.scenario import load, replicate

STUDENTS = 30
#: the bar a count of classrooms must meet
MAX_LOSS_PCT = 0.5
MAX_P99_MS = 10.0
DEFAULT_COUNTS = (1, 2, 4, 6, 8, 10, 12)


def passes(result: dict[str, Any], max_loss_pct: float = MAX_LOSS_PCT,
           max_p99_ms: float = MAX_P99_MS) -> tuple[bool, str]:
    f = result["figures"]
    if result["status"] != "ok":
        return False, "; ".join(result["failures"])[:200]
    if f["loss_pct"] is None or f["loss_pct"] > max_loss_pct:
        return False, f"loss {f['loss_pct']} %"
    if f["latency_p99_ms"] is None or f["latency_p99_ms"] > max_p99_ms:
        return False, f"p99 {f['latency_p99_ms']} ms"
    return True, ""


def row(server: str, n: int, participants: int, result: dict[str, Any], ok: bool, why: str
        ) -> str:
    f = result["figures"]
    return (f"| {server} | {n} | {participants} | {f['forwarded_pps']:.0f} | "
            f"{f['server_cpu_pct']:.0f} | {f['harness_cpu_pct']:.0f} | {f['loss_pct']} | "
            f"{f['latency_p50_ms']} / {f['latency_p99_ms']} | "
            f"{f['video_fps_min']} | {'pass' if ok else 'FAIL: ' + why} |")


HEADER = ("| server | classrooms | participants | forwarded packets/s | server CPU % of one "
          "core | harness CPU % of one core | loss % | added latency p50 / p99 ms | worst "
          "video fps | |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.capacity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="ours,janus")
    ap.add_argument("--counts", default=",".join(map(str, DEFAULT_COUNTS)),
                    help="classroom counts to try, in order; a server stops at its first "
                    "failing count")
    ap.add_argument("--students", type=int, default=STUDENTS)
    ap.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    ap.add_argument("--warmup", type=float, default=8.0, help="after everyone receives, "
                    "before measuring (the allocator raises layers on its feedback)")
    ap.add_argument("--clients", choices=harness.CLIENTS, default="browser")
    ap.add_argument("--max-loss-pct", type=float, default=MAX_LOSS_PCT)
    ap.add_argument("--max-p99-ms", type=float, default=MAX_P99_MS, help="the bar on the "
                    "added latency's p99 (the harness's own scheduling is in it: on a small "
                    "machine shared with the clients, a looser bar shows how the server "
                    "scales)")
    ap.add_argument("--together", action="store_true", help="server and clients in one "
                    "namespace on every CPU (by default the clients run in a second namespace "
                    "on CPUs of their own: benches.harness.Placement)")
    ap.add_argument("--json", help="write every result here")
    args = ap.parse_args(argv)
    if not netns.inside():
        return netns.reexec_inside("benches.capacity", sys.argv[1:] if argv is None else argv)
    counts = [int(c) for c in args.counts.split(",") if c]
    servers = [s for s in args.servers.split(",") if s]
    base = load("classroom", args.students)

    import uvloop

    def log(msg: str) -> None:
        print(f"[capacity] {msg}", file=sys.stderr, flush=True)

    rows: list[str] = []
    best: dict[str, int] = {}
    runs: list[dict[str, Any]] = []
    try:
        for server in servers:
            best[server] = 0
            for n in counts:
                scenario = replicate(base, n, speech=server == "ours")
                log(f"{server}: {n} classroom(s), {len(scenario.participants)} participants")
                result = uvloop.run(harness.run(
                    server, scenario, seconds=args.seconds, warmup=args.warmup,
                    address=netns.ADDRESS, log=log, clients=args.clients,
                    split=not args.together))
                ok, why = passes(result, args.max_loss_pct, args.max_p99_ms)
                rows.append(row(server, n, len(scenario.participants), result, ok, why))
                runs.append({"server": server, "classrooms": n, "pass": ok, "why": why,
                             "result": result})
                log(rows[-1])
                if not ok:
                    break
                best[server] = n
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 2
    m = machine_info()
    where = runs[0]["result"].get("placement", {}) if runs else {}
    placed = (f"server on CPUs {where['server_cpus']}, clients in their own namespace on "
              f"CPUs {where['client_cpus']}" if where.get("split")
              else "server and clients on every CPU")
    print(f"{heading('Node capacity', m)}, {args.clients} clients, {args.seconds:.0f} s "
          f"windows; {placed}; bar: loss <= {args.max_loss_pct} %, p99 <= "
          f"{args.max_p99_ms} ms\n")
    print(HEADER)
    print("\n".join(rows))
    print("\n" + ", ".join(f"**{s}: {best[s]} classrooms**" for s in servers))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": m, "git": git_state(), "best": best, "runs": runs},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
