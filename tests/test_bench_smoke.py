"""Smoke test for the forwarding benchmark (benches/forward_bench.py): 1 publisher × 2
subscribers for a few seconds, through the real command line. Checks that the bench runs
and produces a sane result, not how fast the server is (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_forward_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.forward_bench", "--subscribers", "2", "--seconds", "3",
         "--warmup", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "server µs / forwarded packet" in proc.stdout  # the Markdown table
    r = json.loads(out.read_text())
    assert r["status"] == "ok", r["failures"]
    assert r["config"]["subscribers"] == 2

    idle, steady, fig = r["idle"], r["steady"], r["figures"]
    assert idle["forwarded"] == 0 and idle["ingress_pps"] > 0
    assert steady["forwarded"] > 0
    assert len(steady["per_subscriber"]) == 2
    for sub in steady["per_subscriber"]:
        assert sub["received"] > 0
        assert sub["streams"] == 2  # audio and video
    assert fig["loss_pct"] <= 1.0
    assert (fig["server_us_per_packet"] or 0) > 0
    assert steady["server_cpu_s"] > 0
    assert steady["harness_cpu_s"]["total"] >= 0
