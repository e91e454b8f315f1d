"""The server as an operator runs it: the token CLI, and a clean stop on SIGTERM."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time

import pytest

from benches.rawclient import RawClient
from benches.server_process import API_KEY, API_SECRET, start_server, stop_server
from signalling import tokens

pytestmark = pytest.mark.integration


def test_token_cli_mints_a_token_the_server_accepts() -> None:
    env = dict(os.environ, SFU_AUTH_API_KEY=API_KEY, SFU_AUTH_API_SECRET=API_SECRET)
    out = subprocess.run(
        [sys.executable, "-m", "signalling", "token", "--room", "maths-7b", "--identity",
         "alice", "--name", "Alice", "--role", "instructor"],
        capture_output=True, text=True, env=env, check=True, timeout=30)
    claims = tokens.verify(out.stdout.strip(), API_KEY, API_SECRET)
    assert (claims.room, claims.identity, claims.name, claims.role) == (
        "maths-7b", "alice", "Alice", "instructor")
    assert claims.grants.moderate


def test_token_cli_without_a_secret_explains_itself() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFU_")}
    out = subprocess.run([sys.executable, "-m", "signalling", "token", "--room", "r",
                          "--identity", "a"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert out.returncode == 2 and "api_secret" in out.stderr


async def test_sigterm_tells_participants_and_exits_cleanly() -> None:
    server = start_server()
    client = RawClient(server.ws_url, server.mint_token("shutdown", "alice"))
    try:
        await client.connect()
        server.proc.send_signal(signal.SIGTERM)
        left = await client.wait_for("left")
        assert left["reason"] == "server_shutdown"
        await client.wait_for("__closed__")
        assert server.proc.wait(10) == 0
    finally:
        await client.close()
        stop_server(server)
    assert not any("Traceback" in line for line in server.log), "".join(server.log)


async def test_joined_hands_out_turn_credentials() -> None:
    """With [turn] configured, ``joined`` carries the TURN servers and the participant's own
    time-limited credentials (docs/protocol.md)."""
    secret = "coturn-static-auth-secret-0123"
    server = start_server({"SFU_TURN_URLS": "turns:turn.example:443?transport=tcp",
                           "SFU_TURN_SECRET": secret, "SFU_TURN_TTL_S": "600"})
    client = RawClient(server.ws_url, server.mint_token("turn-room", "alice"))
    try:
        joined = await client.connect()
        (relay,) = joined["iceServers"]
        assert relay["urls"] == ["turns:turn.example:443?transport=tcp"]
        expiry, identity = relay["username"].split(":")
        assert identity == "alice" and 590 <= int(expiry) - time.time() <= 610
        assert relay["credential"] == base64.b64encode(hmac.new(
            secret.encode(), relay["username"].encode(), hashlib.sha1).digest()).decode()
    finally:
        await client.close()
        stop_server(server)
