"""Adaptation figures from real browsers: layer-switch time after a bandwidth drop, pause and
recovery times, and the audio gap at the capped page's network interface.

Runs the real-browser scenario of ``tests/e2e/test_simulcast.py`` (Chromium publisher with
three simulcast layers, one subscriber in a network namespace whose downlink is capped with
tbf) ``--runs`` times and reports each run and the medians, as a Markdown table and JSON.
Needs root (network namespaces) and Debian chromium, like the test suite.

    .venv/bin/python -m benches.simulcast_bench --runs 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = re.compile(
    r"cap_low=(?P<cap_low>\d+) kbit/s -> low layer in (?P<low_s>[\d.]+) s; cap (?P<cap_pause>\d+)"
    r" kbit/s -> paused in (?P<pause_s>[\d.]+) s; lifted -> top layer in (?P<top_s>[\d.]+) s; "
    r"longest audio gap at the interface (?P<gap_ms>\d+) ms \((?P<gap_cut_ms>\d+) ms within"
    r".*?; (?P<gap_stats_ms>\d+) ms in getStats sampling"
)
PHASES = re.compile(
    r"of the cut to \d+ kbit/s (?P<gap_low_cut_ms>\d+) ms, of the cut to \d+ kbit/s "
    r"(?P<gap_pause_cut_ms>\d+) ms, of a layer raise (?P<gap_raise_ms>\d+) ms")
DYNACAST = re.compile(r"top encoding off (?P<off_s>[\d.]+) s .* back on and decoded at 1280 "
                      r"wide (?P<on_s>[\d.]+) s")
COLUMNS = [("low_s", "low layer after cut to 250 kbit/s (s)"),
           ("pause_s", "video paused after cut to 80 kbit/s (s)"),
           ("top_s", "top layer after cap lifted (s)"),
           ("gap_ms", "longest audio gap at the page's interface (ms)"),
           ("gap_low_cut_ms", "longest audio gap within 1.5 s of the cut to 250 kbit/s (ms)"),
           ("gap_pause_cut_ms", "longest audio gap within 1.5 s of the cut to 80 kbit/s (ms)"),
           ("gap_raise_ms", "longest audio gap within 1.5 s of a layer raise (ms)"),
           ("gap_stats_ms", "longest audio gap in 20 ms getStats sampling (ms)"),
           ("off_s", "dynacast: top encoding off after its subscriber left (s)"),
           ("on_s", "dynacast: top layer decoded after a new subscriber (s)")]


def run_once() -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "tests/e2e/test_simulcast.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out: dict[str, float] = {"passed": float(proc.returncode == 0)}
    for pattern in (FIGURES, PHASES, DYNACAST):
        m = pattern.search(proc.stdout)
        if m:
            out.update({k: float(v) for k, v in m.groupdict().items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        result = run_once()
        runs.append(result)
        print(f"run {i + 1}: {result}", flush=True)
    medians = {key: statistics.median(r[key] for r in runs if key in r)
               for key, _ in COLUMNS if any(key in r for r in runs)}
    print("\n| figure | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |")
    print("|---|" + "---|" * (len(runs) + 1))
    for key, label in COLUMNS:
        cells = [f"{r[key]:g}" if key in r else "–" for r in runs]
        print(f"| {label} | " + " | ".join(cells) + f" | {medians.get(key, '–')} |")
    passed = sum(int(r["passed"]) for r in runs)
    print(f"\nruns passing the test's assertions: {passed}/{len(runs)}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
