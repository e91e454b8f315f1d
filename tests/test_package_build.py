"""The package build makes the compiled forwarding steps: a wheel of the project (what
``pip install .`` builds and installs) carries ``sfu/_fastpath``, and a server installed from
it, in a fresh virtual environment, outside the source tree and without scripts/setup.sh,
forwards on the compiled engine (``sfu_fastpath_enabled 1``).

The wheel is built as pip builds it, in an isolated build environment (setuptools and
cffi from the package index), from a copy of the project's files (what git tracks, or
would: no build directory, no compiled module left by the editable install). The fresh
environment gets the wheel itself with ``--no-deps`` and borrows the third-party
dependencies from the test environment through a ``.pth`` line (installing aiortc, PyAV,
NumPy... again would cost minutes and test pip, not us); the ``sfu`` it imports is the
wheel's, which the test checks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True, check=True,
                           timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    assert not list(source.glob("sfu/_fastpath*"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(source)], check=True, timeout=600, cwd=out)
    (built,) = out.glob("classroom_sfu-*.whl")
    return built


def test_the_wheel_carries_the_compiled_steps_and_not_their_sources(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if re.fullmatch(r"sfu/_fastpath\..*so", n)], names
    assert "sfu/engine.py" in names and "sfu/fastpath.py" in names
    assert not [n for n in names if n.endswith((".c", ".h"))]


def test_a_server_installed_from_the_wheel_forwards_on_the_compiled_engine(
        wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()
    # the dependencies, not the project: the test environment's site-packages, whose
    # .pth files (the editable install of the source tree among them) are not read
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SFU_") and k != "PYTHONPATH"}
    probe = subprocess.run(
        [str(python), "-c", "import sfu, sfu.engine; print(sfu.__file__); "
         "print(sfu.engine.ENGINE.name)"],
        capture_output=True, text=True, check=True, timeout=60, cwd=outside, env=env)
    where, engine = probe.stdout.split()
    assert where.startswith(site) and engine == "compiled", probe.stdout
    data = tmp_path / "data"
    env.update({"SFU_EVENTS_LOG_DIR": str(data / "events"),
                "SFU_RECORDING_DIR": str(data / "rec"),
                "SFU_RECORDING_SECOND_DIR": str(data / "rec2"),
                "SFU_RECORDING_ALARMS_FILE": str(data / "alarms.jsonl"),
                "SFU_CLASSROOM_REPORTS_DIR": str(data / "reports"),
                "SFU_CLASSROOM_WHITEBOARDS_DIR": str(data / "boards"),
                "PYTHONUNBUFFERED": "1"})
    server = subprocess.Popen(
        [str(venv / "bin" / "classroom-sfu"), "serve", "--dev", "--host", "127.0.0.1",
         "--port", "0", "--ice-address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=outside, env=env)
    try:
        assert server.stdout is not None
        url = None
        seen = []
        for line in server.stdout:
            seen.append(line)
            if m := re.search(r"listening on (http://\S+?)/?$", line.strip()):
                url = m.group(1)
                break
        assert url is not None, "".join(seen)
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            metrics = response.read().decode()
        assert re.search(r"^sfu_fastpath_enabled 1\.0$", metrics, re.M), metrics[:2000]
    finally:
        server.terminate()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()
