"""Shared fixtures: a real server process on loopback (dev mode, ICE on 127.0.0.1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from signalling import tokens

API_KEY = "testkey"
API_SECRET = "test-secret-0123456789abcdef-0123456789"


@dataclass
class ServerProcess:
    base_url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    api_key: str = API_KEY
    api_secret: str = API_SECRET

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


def start_server(extra_env: dict[str, str] | None = None) -> ServerProcess:
    env = dict(os.environ)
    env.update({"SFU_AUTH_API_KEY": API_KEY, "SFU_AUTH_API_SECRET": API_SECRET,
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "signalling", "serve", "--dev", "--host", "127.0.0.1",
         "--port", "0", "--ice-address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
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
        raise RuntimeError("server did not start:\n" + "".join(log))
    server = ServerProcess(url, proc, log)

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return server


def stop_server(server: ServerProcess) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
    if server.proc.stdout is not None:
        server.proc.stdout.close()


@pytest.fixture
def sfu_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    server = start_server()
    yield server
    stop_server(server)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write("---- server log ----\n" + "".join(server.log[-200:]))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
