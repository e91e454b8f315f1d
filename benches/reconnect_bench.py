"""Reconnection figures from real browsers: time from network restore to media flowing
again both ways, and to the session being resumed.

Runs ``tests/e2e/test_network_blip.py`` (two Chromium participants, one in a network
namespace whose traffic is dropped for 8 s, then for 25 s) ``--runs`` times and reports
each run and the medians, as a Markdown table and JSON. Needs root and Debian chromium.

    .venv/bin/python -m benches.reconnect_bench --runs 3 [--json out.json]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from benches.e2e_runs import run_many

FIGURES = re.compile(
    r"8 s cut noticed by the other page after (?P<noticed_s>[\d.]+) s; after restore, media "
    r"both ways in (?P<media_s>[\d.]+) s, session resumed in (?P<resumed_s>[\d.]+) s")
COLUMNS = [("noticed_s", "other page shows 'reconnecting' after the cut (s)"),
           ("media_s", "restore -> media both ways again (s)"),
           ("resumed_s", "restore -> session resumed (s)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run_many("tests/e2e/test_network_blip.py", [FIGURES], COLUMNS, args.runs, args.json)


if __name__ == "__main__":
    main()
