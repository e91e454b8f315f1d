"""Reconnection figures from real browsers: time from network restore to media flowing
again both ways, and to the session being resumed.

Runs ``tests/e2e/test_network_blip.py`` (two Chromium participants, one in a network
namespace whose traffic is dropped for 8 s, then for 25 s; and a 15 s cut that kills the
media path, which is then replaced) ``--runs`` times and reports
each run and the medians, as a Markdown table and JSON. Needs root and Debian chromium.

    .venv/bin/python -m benches.reconnect_bench --runs 3 [--json out.json]
"""

from __future__ import annotations

import re

from benches.e2e_runs import main

FIGURES = re.compile(
    r"8 s cut noticed by the other page after (?P<noticed_s>[\d.]+) s; after restore, media "
    r"both ways in (?P<media_s>[\d.]+) s, session resumed in (?P<resumed_s>[\d.]+) s")
RESTART = re.compile(r"15 s cut \(media path dead\), after restore media both ways in "
                     r"(?P<restart_media_s>[\d.]+) s")
COLUMNS = [("noticed_s", "8 s cut: other page shows 'reconnecting' after (s)"),
           ("media_s", "8 s cut: restore -> media both ways again (s)"),
           ("resumed_s", "8 s cut: restore -> session resumed (s)"),
           ("restart_media_s", "15 s cut (media path replaced): restore -> media both ways (s)")]


if __name__ == "__main__":
    main("tests/e2e/test_network_blip.py", [FIGURES, RESTART], COLUMNS, __doc__ or "")
