"""The standard comparison: this project against Janus VideoRoom, same scenarios, same run,
and against the naive decode + re-encode relay (:mod:`benches.naive_relay`) at 1 × 20.

    python -m benches.compare                 # lecture 1×20, lecture 1×50, classroom 1+10
    python -m benches.compare --quick         # tiny load, short windows (the smoke test)
    python -m benches.compare --rounds 3      # ours and Janus three times, alternating

Runs inside a private network namespace (:mod:`benches.netns`; needs root), every scenario
against each server one after the other (ours first, then Janus, then the relay, so they
see the same machine state), and prints one Markdown table per scenario plus the ratios
ours/Janus. The relay runs only at lecture 1 × 20: it saturates both cores of a 2-core
machine already there (it is expected to fail the frame-rate check: the figure is what it
costs and what it delivers).
With ``--rounds N`` ours and Janus run N times per scenario, alternating (the relay once):
the table is the first round's, followed by every round's ratio and their median, since
this kind of machine drifts by ±15 % between runs.
Writes the full results as JSON with ``--json``. Exit status: 0 when every run is ok, 1 when
a run of ours or Janus FAILED (a subscriber missed a stream, loss > 1 %, video frame rate
short, nothing forwarded), 2 on a harness error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

from benches import harness, netns
from benches.measure import git_state, heading, machine_info
from benches.scenario import load

STANDARD = [("lecture", 20), ("lecture", 50), ("classroom", 10)]
QUICK = [("lecture", 2), ("classroom", 2)]
#: the only run of the naive relay (more load tells nothing more on 2 cores; --quick: the
#: first of QUICK)
RELAY_AT = ("lecture", 20)
BASELINE = "relay"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(ours: dict[str, Any], janus: dict[str, Any]) -> dict[str, float | None]:
    fo, fj = ours["figures"], janus["figures"]
    return {k: ratio(fo.get(k), fj.get(k)) for k in (
        "server_us_per_packet", "server_us_per_packet_minus_idle", "latency_p50_ms",
        "latency_p99_ms", "loss_pct", "join_to_first_packet_p50_ms")}


def report(runs: list[dict[str, Any]]) -> str:
    out = []
    for run in runs:
        out.append(f"### {run['scenario']} ({run['participants']} participants: "
                   f"{run['label']})\n")
        out.append(harness.markdown(run["results"]))
        r = run.get("ratios")
        if r:
            fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
            out.append(f"\n**ours / Janus**: CPU per packet {fmt(r['server_us_per_packet'])} "
                       f"(minus idle {fmt(r['server_us_per_packet_minus_idle'])}), "
                       f"latency p50 {fmt(r['latency_p50_ms'])}, "
                       f"p99 {fmt(r['latency_p99_ms'])}, loss {fmt(r['loss_pct'])}\n")
        rounds = run.get("round_ratios") or []
        if len(rounds) > 1:
            cpu = [x["server_us_per_packet"] for x in rounds
                   if x["server_us_per_packet"] is not None]
            out.append("**ours / Janus CPU per packet, round by round**: "
                       + ", ".join(f"{v:.2f}" for v in cpu)
                       + (f"; median **{statistics.median(cpu):.2f}**" if cpu else "") + "\n")
        if run.get("relay_over_ours"):
            out.append(f"**naive relay / ours**: CPU per packet {run['relay_over_ours']:.0f} "
                       "(decode + re-encode per subscriber)\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny load, short windows")
    ap.add_argument("--seconds", type=float, help="each measured window (default 15, "
                    "quick 3)")
    ap.add_argument("--servers", default="ours,janus,relay", help="comma-separated (the "
                    f"relay runs only at {RELAY_AT[0]} 1 × {RELAY_AT[1]})")
    ap.add_argument("--rounds", type=int, default=1, help="run ours and Janus this many "
                    "times per scenario, alternating, and report the median ratio")
    ap.add_argument("--clients", choices=harness.CLIENTS, default="light",
                    help="light (the default) or browser-like clients (benches.harness)")
    ap.add_argument("--json", help="write every result here")
    args = ap.parse_args(argv)
    if not netns.inside():
        return netns.reexec_inside("benches.compare", sys.argv[1:] if argv is None else argv)
    plan = QUICK if args.quick else STANDARD
    relay_at = QUICK[0] if args.quick else RELAY_AT
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    warmup = 1.0 if args.quick else 2.0
    servers = [s for s in args.servers.split(",") if s]

    import uvloop

    def log(msg: str) -> None:
        print(f"[compare] {msg}", file=sys.stderr, flush=True)

    runs: list[dict[str, Any]] = []
    try:
        for name, students in plan:
            scenario = load(name, students)
            rounds: list[list[dict[str, Any]]] = []
            for i in range(max(1, args.rounds)):
                rounds.append([
                    uvloop.run(harness.run(s, scenario, seconds=seconds, warmup=warmup,
                                           address=netns.ADDRESS, log=log,
                                           clients=args.clients))
                    for s in servers
                    if s != BASELINE or (i == 0 and (name, students) == relay_at)])
            results = rounds[0]
            run: dict[str, Any] = {"scenario": name, "students": students,
                                   "participants": len(scenario.participants),
                                   "label": scenario.description, "results": results,
                                   "later_rounds": rounds[1:]}
            by = {r["server"]: r for r in results}
            if "ours" in by and "janus" in by:
                run["ratios"] = ratios(by["ours"], by["janus"])
                run["round_ratios"] = [
                    ratios(*(next(r for r in rnd if r["server"] == s) for s in ("ours", "janus")))
                    for rnd in rounds]
            if "ours" in by and BASELINE in by:
                run["relay_over_ours"] = ratio(by[BASELINE]["figures"]["server_us_per_packet"],
                                               by["ours"]["figures"]["server_us_per_packet"])
            runs.append(run)
            log(f"{name} with {students} students done")
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        return 2
    m = machine_info()
    print(f"{heading('Comparison', m)}, Python {m['python']}, {seconds:.0f} s windows\n")
    print(report(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": m, "git": git_state(), "seconds": seconds, "runs": runs},
            indent=2) + "\n")
    ok = all(r["status"] == "ok" for run in runs
             for r in run["results"] + [x for rnd in run["later_rounds"] for x in rnd]
             if r["server"] != BASELINE)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
