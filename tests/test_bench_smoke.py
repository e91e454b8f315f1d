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
        [sys.executable, "-m", "benches.compare", "--quick", "--rounds", "2", "--json",
         str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=360,
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
        # a second round of ours and Janus (not the relay), and its ratio
        assert [r["server"] for rnd in run["later_rounds"] for r in rnd] == ["ours", "janus"]
        assert all(r["status"] == "ok" for rnd in run["later_rounds"] for r in rnd)
        assert len(run["round_ratios"]) == 2
        assert all(x["server_us_per_packet"] > 0 for x in run["round_ratios"])
    assert "round by round" in proc.stdout
    assert report["runs"][0]["relay_over_ours"] > 0
    assert "naive relay / ours" in proc.stdout


def test_browser_like_clients_and_the_capacity_search(tmp_path: Path) -> None:
    """Two classrooms at once with browser-like clients, ours and Janus, through the
    capacity command, the clients in their own network namespace: every client sent
    transport-cc feedback and receiver reports, each classroom got its own room, and our
    server forwarded audio by speech (far fewer packets than Janus, which forwards every
    microphone)."""
    assert shutil.which("janus"), "Debian janus is missing (scripts/setup.sh --test installs it)"
    out = tmp_path / "capacity.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.capacity", "--counts", "2", "--students", "3",
         "--seconds", "3", "--warmup", "1", "--max-p99-ms", "1000", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, f"capacity failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "| ours | 2 | 8 |" in proc.stdout and "| janus | 2 | 8 |" in proc.stdout
    report = json.loads(out.read_text())
    by = {r["server"]: r for r in report["runs"]}
    assert set(by) == {"ours", "janus"}
    for server, run in by.items():
        r = run["result"]
        assert r["clients"] == "browser"
        assert run["pass"], (server, run["why"])
        # the clients ran in their own namespace, on other CPUs than the server
        where = r["placement"]
        assert where["split"] and where["clients_in_own_namespace"], (server, where)
        if len(os.sched_getaffinity(0)) >= 2:
            assert not set(where["server_cpus"]) & set(where["client_cpus"]), (server, where)
        sent = r["steady"]["feedback_sent"]
        # 8 subscriber connections, 10 feedbacks a second each, for 3 s (at least half)
        assert sent["twcc"] >= 8 * 10 * 3 // 2 and sent["rr"] >= 8, (server, sent)
        per_sub = r["steady"]["per_sub"]
        # a student sees the instructor of its own classroom (video + microphone); the
        # instructor sees its 3 students
        assert per_sub["c01-student002"]["streams"] >= 2, (server, per_sub["c01-student002"])
        assert per_sub["c00-instructor"]["streams"] >= 3, (server, per_sub["c00-instructor"])
    ours, janus = (by[s]["result"]["figures"]["forwarded_pps"] for s in ("ours", "janus"))
    # Janus forwards every microphone; ours the instructor's and the students who speak
    assert ours < janus, (ours, janus)


def test_whiteboard_bench_tiny(tmp_path: Path) -> None:
    out = tmp_path / "wb.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.whiteboard_bench", "--readers", "3", "--seconds", "1",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"whiteboard bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "p99 ms" in proc.stdout
    f = json.loads(out.read_text())["figures"]
    assert f["updates"] == 20 and f["lost"] == 0
    assert 0 < f["latency_p50_ms"] <= f["latency_p99_ms"]
    # a 1 s run may spend less server CPU than /proc can resolve: then no figure, never a 0
    us, cpu = f["server_us_per_relayed_frame"], f["server_cpu_s"]
    assert (us is None and cpu < 0.05) or (us > 0 and cpu >= 0.05), f
    assert "server µs / relayed frame" in proc.stdout


def test_recorder_bench_tiny(tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.recorder_bench", "--seconds", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"recorder bench failed:\n{proc.stdout}\n{proc.stderr}"
    assert "CPU µs / track-second" in proc.stdout
    report = json.loads(out.read_text())
    assert [t["track"] for t in report["tracks"]] == ["video 720p", "video 180p", "audio opus"]
    for t in report["tracks"]:
        assert t["complete"] and t["written"] == t["packets"] > 0 and t["cpuS"] > 0, t
    assert report["estimate"]["rooms"] > 0


def test_harness_recorded_window_tiny(tmp_path: Path) -> None:
    """The live recorder figure: a lecture forwarded, then forwarded and recorded (5 s:
    the bench's video has a keyframe every 4 s, and recording starts at one)."""
    out = tmp_path / "h.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.harness", "--scenario", "lecture", "--students", "2",
         "--seconds", "5", "--warmup", "0.5", "--record", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"harness failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Recorded window" in proc.stdout
    r = json.loads(out.read_text())["recorded"]
    assert r["tracks"] == 2 and r["problems"] == []
    assert r["packets_in"] == r["packets_written"] + r["packets_empty"] > 0
    assert r["dropped"] == 0 and r["loss_pct"] == 0


def test_schedule_bench_quick(tmp_path: Path) -> None:
    """The scheduler's bench at a small size: the import stores everything, again changes
    nothing, and the watch raises exactly the planted exceptions (no timing asserts)."""
    out = tmp_path / "schedule.json"
    proc = subprocess.run([sys.executable, "-m", "benches.schedule_bench", "--quick",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"schedule bench failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert report["import"]["first_result"] == {"created": 500, "updated": 0, "unchanged": 0,
                                                "rejected": 0}
    assert report["import"]["again_result"]["unchanged"] == 500
    watch = report["watch"]
    assert watch["raised"] == {"late_join": 10, "instructor_no_show": 5}
    assert watch["lag_ms"]["max"] > 0


def test_edge_bench_tiny(tmp_path: Path) -> None:
    """The edge relays' bench (real nodes and NATS): the students on the edges receive what
    the instructor publishes, and the origin sends each track once per edge."""
    out = tmp_path / "edge.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benches.edge_bench", "--students", "4", "--seconds", "3",
         "--warmup", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    direct, edges = json.loads(out.read_text())["results"]
    for run in (direct, edges):  # every student receives about all that was published
        assert run["students_received_pps"] >= 0.9 * 4 * run["published_pps"], run
    # two edges: about twice what was published reaches them, not four times
    assert edges["origin_to_edges_pps"] <= 2.2 * edges["published_pps"], edges
    assert edges["latency_samples"] > 0 and edges["on_origin_latency_p50_ms"] > 0
