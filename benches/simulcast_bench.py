"""Adaptation figures from real browsers: layer-switch time after a bandwidth drop, pause and
recovery times, and the audio gap at the capped page's network interface.

Runs the real-browser scenario of ``tests/e2e/test_simulcast.py`` (Chromium publisher with
three simulcast layers, one subscriber in a network namespace whose downlink is capped with
tbf) ``--runs`` times and reports each run and the medians, as a Markdown table and JSON.
Needs root (network namespaces) and Debian chromium, like the test suite.

    .venv/bin/python -m benches.simulcast_bench --runs 3 [--json out.json]
"""

from __future__ import annotations

import re

from benches.e2e_runs import main

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


if __name__ == "__main__":
    main("tests/e2e/test_simulcast.py", [FIGURES, PHASES, DYNACAST], COLUMNS, __doc__ or "")
