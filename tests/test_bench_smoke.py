"""Smoke test for the load harness: the comparison command at a tiny load (lecture with 2
students and classroom with 2, 3 s windows) against this server and Janus, and the naive
decode + re-encode relay at lecture 1 × 2, through the real command line, in its own network
namespace. Checks that the harness runs every server and produces sane, complete figures,
not how fast any is (no timing asserts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_compare_quick(tmp_path: Path) -> None:
    assert shutil.which("janus"), "Debian janus is missing (scripts/setup.sh --test installs it)"
    assert os.geteuid() == 0, "the bench's network namespace needs root"
    out = tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.compare", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"compare failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "server µs / forwarded packet" in proc.stdout  # the Markdown tables
    assert "ours / Janus" in proc.stdout
    report = json.loads(out.read_text())
    assert [(r["scenario"], r["students"]) for r in report["runs"]] == [
        ("lecture", 2), ("classroom", 2)]
    servers = {"lecture": ["ours", "janus", "relay"], "classroom": ["ours", "janus"]}
    for run in report["runs"]:
        assert [r["server"] for r in run["results"]] == servers[run["scenario"]]
        for r in run["results"]:
            f = r["figures"]
            assert f["forwarded_pps"] > 0 and f["loss_pct"] <= 1.0
            assert f["server_us_per_packet"] > 0
            assert f["join_to_first_packet_p50_ms"] > 0
            assert f["video_fps_mean"] > 0
            per_sub = r["steady"]["per_sub"]
            # every participant that should receive got packets on every stream it should
            want = {"lecture": {"student000": 2, "student001": 2},
                    "classroom": {"instructor": 4, "student000": 3, "student001": 3}}
            for name, streams in want[run["scenario"]].items():
                assert per_sub[name]["streams"] == streams, (r["server"], name, per_sub[name])
                assert per_sub[name]["received"] > 0
            if r["server"] == "relay":  # re-encoded: no send times to read, may drop frames
                assert f["latency_p50_ms"] is None
                continue
            assert r["status"] == "ok", (r["server"], r["failures"])
            assert f["video_fps_min"] >= 27, (r["server"], f)  # 30 sent; 0.9 x 30 is the bar
            assert f["latency_p50_ms"] is not None and f["latency_p99_ms"] >= f["latency_p50_ms"]
        assert run["ratios"]["server_us_per_packet"] > 0
    assert report["runs"][0]["relay_over_ours"] > 0
    assert "naive relay / ours" in proc.stdout
