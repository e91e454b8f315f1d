"""Shared fixtures: a real server process on loopback (dev mode, ICE on 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from benches.server_process import ServerProcess, start_server, stop_server

__all__ = ["ServerProcess", "start_server", "stop_server"]

# every event bus in the tests, and in the servers they start, raises on an event that does
# not match its declared schema (events.schemas) instead of only logging it
os.environ["SFU_EVENTS_STRICT"] = "1"


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
