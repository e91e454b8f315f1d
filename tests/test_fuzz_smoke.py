"""Every fuzz target of benches/fuzz.py (coverage-guided, atheris) runs a short session in
the suite, so that none rots: no crash, no exception outside the parser's documented error
types. The full run (10**6 inputs per target) is the bench command in benches/README.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benches.fuzz import TARGETS

ROOT = Path(__file__).resolve().parent.parent


def test_every_parser_survives_a_short_fuzzing_run() -> None:
    proc = subprocess.run([sys.executable, "-m", "benches.fuzz", "--runs", "5000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in TARGETS]
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert {line.split()[0] for line in lines} == set(TARGETS), proc.stdout
    assert all(" ok: " in line and "5000 inputs" in line for line in lines), proc.stdout
