"""Run one of the real-browser tests several times and tabulate the figures it prints.

The browser tests print a line of figures (``... figures: ...``); a bench gives the test
path and regular expressions with named groups, and gets each run's figures, the medians
and a Markdown table. Needs what the tests need (root for network namespaces, Debian
chromium).
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


def run_test(test: str, patterns: list[re.Pattern[str]]) -> dict[str, float]:
    """One pytest run of ``test``: {"passed": 0/1, figure: value...}."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out: dict[str, float] = {"passed": float(proc.returncode == 0)}
    for pattern in patterns:
        m = pattern.search(proc.stdout)
        if m:
            out.update({k: float(v) for k, v in m.groupdict().items()})
    return out


def run_many(test: str, patterns: list[re.Pattern[str]], columns: list[tuple[str, str]],
             runs: int, json_path: Path | None) -> None:
    """``runs`` runs, each printed as it ends, then the table of ``columns`` (key, label)
    with medians, and the JSON file if asked for."""
    results = []
    for i in range(runs):
        result = run_test(test, patterns)
        results.append(result)
        print(f"run {i + 1}: {result}", flush=True)
    medians = {key: statistics.median(r[key] for r in results if key in r)
               for key, _ in columns if any(key in r for r in results)}
    print("\n| figure | " + " | ".join(f"run {i + 1}" for i in range(len(results)))
          + " | median |")
    print("|---|" + "---|" * (len(results) + 1))
    for key, label in columns:
        cells = [f"{r[key]:g}" if key in r else "–" for r in results]
        print(f"| {label} | " + " | ".join(cells) + f" | {medians.get(key, '–')} |")
    passed = sum(int(r["passed"]) for r in results)
    print(f"\nruns passing the test's assertions: {passed}/{len(results)}")
    if json_path:
        json_path.write_text(json.dumps({"runs": results, "medians": medians}, indent=2))


def main(test: str, patterns: list[re.Pattern[str]], columns: list[tuple[str, str]],
         doc: str) -> None:
    """The command line of a browser-test bench: ``--runs N``, ``--json FILE``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run_many(test, patterns, columns, args.runs, args.json)
