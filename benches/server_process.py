"""Run the server as a subprocess on loopback (tests and benches): start, find its URL, stop."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signalling import tokens

API_KEY = "testkey"
API_SECRET = "test-secret-0123456789abcdef-0123456789"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServerProcess:
    base_url: str
    proc: subprocess.Popen[str]
    #: every line the server printed (stdout and stderr), appended by a reader thread
    log: list[str] = field(default_factory=list)
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    #: the server's event log folder (a temporary one, removed at stop, unless given)
    events_dir: str = ""
    owns_events_dir: bool = False
    #: the environment it was started with (its SFU_* configuration)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    def mint_token(self, room: str, identity: str, name: str = "", role: str = "student",
                   ttl_s: int = 3600) -> str:
        return tokens.mint(self.api_key, self.api_secret, room=room, identity=identity,
                           name=name or identity, role=role, ttl_s=ttl_s)

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_secret}"}


def start_server(extra_env: dict[str, str] | None = None, *, host: str = "127.0.0.1",
                 ice_addresses: tuple[str, ...] = ("127.0.0.1",),
                 netns: str = "") -> ServerProcess:
    """``classroom-sfu serve --dev`` on ``host`` (127.0.0.1), any free port, ICE on
    ``ice_addresses`` (127.0.0.1); in the network namespace ``netns`` if given (``ip netns
    exec``: another region of a cluster test)."""
    env = dict(os.environ)
    env.update({"SFU_AUTH_API_KEY": API_KEY, "SFU_AUTH_API_SECRET": API_SECRET,
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    # the shared media ports on free ports (tests run several servers at once)
    env.setdefault("SFU_MEDIA_UDP_PORT", "0")
    env.setdefault("SFU_MEDIA_TCP_PORT", "0")
    owns_events_dir = "SFU_EVENTS_LOG_DIR" not in env
    if owns_events_dir:  # never the repository's data/events
        env["SFU_EVENTS_LOG_DIR"] = tempfile.mkdtemp(prefix="sfu-events-")
    # session reports beside the events (never the repository's data/reports)
    env.setdefault("SFU_CLASSROOM_REPORTS_DIR",
                   os.path.join(env["SFU_EVENTS_LOG_DIR"], "reports"))
    env.setdefault("SFU_CLASSROOM_WHITEBOARDS_DIR",
                   os.path.join(env["SFU_EVENTS_LOG_DIR"], "whiteboards"))
    env.setdefault("SFU_TRANSCRIPTION_DIR",
                   os.path.join(env["SFU_EVENTS_LOG_DIR"], "transcripts"))
    env.setdefault("SFU_SCHEDULER_SQLITE_PATH",
                   os.path.join(env["SFU_EVENTS_LOG_DIR"], "schedule.sqlite3"))
    for key, name in (("DIR", "recordings"), ("SECOND_DIR", "recordings-copy"),
                      ("ALARMS_FILE", "exceptions.jsonl")):
        env.setdefault(f"SFU_RECORDING_{key}", os.path.join(env["SFU_EVENTS_LOG_DIR"], name))
    proc = subprocess.Popen(
        [*(["ip", "netns", "exec", netns] if netns else []),
         sys.executable, "-m", "signalling", "serve", "--dev", "--host", host, "--port", "0",
         *(arg for addr in ice_addresses for arg in ("--ice-address", addr))],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )
    assert proc.stdout is not None
    log: list[str] = []
    url = None
    for line in proc.stdout:
        log.append(line)
        m = re.search(r"listening on (http://\S+?)/?$", line.strip())
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
        if owns_events_dir:
            shutil.rmtree(env["SFU_EVENTS_LOG_DIR"], ignore_errors=True)
        raise RuntimeError("server did not start:\n" + "".join(log))
    server = ServerProcess(url, proc, log, events_dir=env["SFU_EVENTS_LOG_DIR"],
                           owns_events_dir=owns_events_dir,
                           env={k: v for k, v in env.items() if k.startswith("SFU_")})
    drain_in_background(proc, log)
    return server


def drain_in_background(proc: subprocess.Popen[str], log: list[str],
                        keep: int | None = None) -> None:
    """A thread appends every line ``proc`` prints to ``log`` (the last ``keep`` only)."""

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if keep is not None:
                del log[:-keep]

    threading.Thread(target=drain, daemon=True).start()


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port of ``host`` nobody listens on right now (for a helper process to bind)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def stop_server(server: ServerProcess) -> None:
    terminate(server.proc)
    if server.proc.stdout is not None:
        server.proc.stdout.close()
    if server.owns_events_dir:
        shutil.rmtree(server.events_dir, ignore_errors=True)
