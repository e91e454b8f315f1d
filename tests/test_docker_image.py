"""The container image (Dockerfile): built for real where a Docker daemon runs, and the
built image serves the page with its client, whiteboard and operations bundles and the
compiled forwarding path. Where no daemon runs (this CI machine has the docker client
only), the test is skipped with that reason, which ``-ra`` prints in the summary."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import pathlib, signalling, sfu.engine
static = pathlib.Path(signalling.__file__).parent / "static"
for name in ("client.bundle.js", "whiteboard.bundle.js", "ops.bundle.js", "index.html"):
    assert (static / name).stat().st_size > 0, name
assert sfu.engine.ENGINE.name == "compiled", "the image runs the Python engine"
print("image ok")
"""


def docker_daemon() -> str | None:
    """Why the image cannot be built here (None: it can)."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True)
    if info.returncode != 0 or not info.stdout.strip():
        return "no Docker daemon reachable (docker info: " + (
            info.stderr.strip().splitlines() or ["no output"])[-1] + ")"
    return None


def test_image_builds_and_carries_every_bundle() -> None:
    why = docker_daemon()
    if why is not None:
        pytest.skip(f"Docker image build NOT tested: {why}")
    tag = f"classroom-sfu-test:{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
        out = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", tag, "-c",
                              CHECK], check=True, capture_output=True, text=True, timeout=120)
        assert "image ok" in out.stdout
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
