"""Every query of the Grafana dashboard (deploy/grafana/dashboards/classroom-sfu.json)
returns data from a real Prometheus (Debian ``prometheus``) scraping a live server: a room
with media flowing, a recording running, a garbage datagram on the media port and a bad
signalling message, as an operator's node would have in a lesson; the server is a node of
a cluster (a real ``nats-server -js``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sfu_harness import HealthyPair, Http, WsProbe, unique

from benches.server_process import free_port, terminate
from sfu import rtcp
from tests.conftest import ServerProcess, start_server, stop_server
from tests.nats_server import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "classroom-sfu.json"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
#: what Grafana puts in for its variables (a 1 s scrape: 15 s holds many samples)
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "1s"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The module's server, a node of a cluster (a real ``nats-server -js``), so that the
    cluster row of the dashboard has data too."""
    nats = NatsServer(tmp_path_factory.mktemp("js"))
    asyncio.run(nats.start())
    server = start_server({"SFU_CLUSTER_NATS_URL": nats.url, "SFU_CLUSTER_NODE_ID": "dash-1",
                           "SFU_CLUSTER_REGION": "eu"})
    try:
        yield server
    finally:
        stop_server(server)
        nats.stop()


@pytest.fixture
def prometheus(server: ServerProcess) -> Iterator[str]:
    """A real Prometheus scraping ``server`` every second; its base URL."""
    if not os.path.exists(PROMETHEUS):
        pytest.fail("no prometheus: apt-get install prometheus (scripts/setup.sh --test "
                    "installs it)")
    folder = tempfile.mkdtemp(prefix="sfu-prometheus-")
    target = server.base_url.split("://", 1)[1]
    config = Path(folder) / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: classroom-sfu\n    static_configs:\n"
        f"      - targets: ['{target}']\n")
    port = free_port()
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                             f"--storage.tsdb.path={folder}/data",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc)
        shutil.rmtree(folder, ignore_errors=True)


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> list[Any]:
    async with session.get(f"{base}/api/v1/query?{urlencode({'query': expr})}") as resp:
        body = await resp.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


async def until_scraped(session: aiohttp.ClientSession, base: str, samples: int) -> None:
    """Prometheus is up and has scraped the server ``samples`` times in a row."""
    deadline = time.monotonic() + 60
    while True:
        try:
            got = await query(session, base, "count_over_time(up{job='classroom-sfu'}[1m])")
            if got and float(got[0]["value"][1]) >= samples and await query(
                    session, base, "up{job='classroom-sfu'} == 1"):
                return
        except aiohttp.ClientError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError("Prometheus did not scrape the server")
        await asyncio.sleep(0.25)


async def report_round_trip(pair: HealthyPair, http: Http) -> None:
    """The subscriber answers each sender report of the server with a receiver report
    (LSR/DLSR) right away, as browsers do, until the server knows its RTT. (The raw client
    sends no reports on its own.)"""
    answered = 0
    deadline = time.monotonic() + 15
    while not await http.metric("sfu_subscriber_rtt_seconds", room=pair.room):
        if time.monotonic() > deadline:
            raise AssertionError("the server never computed the subscriber's RTT")
        reports = [m for m in pair.sub.sub_rtcp if m.pt == rtcp.SR]
        for sr in reports[answered:]:
            assert sr.sender_info is not None
            lsr = (sr.sender_info[0] >> 16) & 0xFFFFFFFF
            block = rtcp.ReportBlock(sr.sender_ssrc, 0, 0, 0, 0, lsr, 0)
            pair.sub.send_subscriber_rtcp(rtcp.build_rr(0x5EED, [block]))
        answered = len(reports)
        await asyncio.sleep(0.01)


async def test_every_dashboard_query_returns_data(server: ServerProcess, http: Http,
                                                  prometheus: str) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 40, "the dashboard lost its panels"
    pair = HealthyPair(server, unique("dash"))
    await pair.start()
    try:
        # a recording of the room, a garbage datagram on the shared media port and a
        # message the server refuses
        status, body = await http.api("POST", f"/api/rooms/{pair.room}/recording", body={})
        assert status in (200, 201), body
        udp_port, _ = await http.media_ports()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"not a STUN message", ("127.0.0.1", udp_port))
        probe = await WsProbe(server).open()
        try:
            await probe.send({"type": "join", "token": server.mint_token(pair.room, "odd")})
            await probe.expect("joined")
            await probe.send({"type": "no_such_message"})
            await probe.expect_error("unknown_type", fatal=False)
        finally:
            await probe.close()
        await report_round_trip(pair, http)
        async with aiohttp.ClientSession() as session:
            await until_scraped(session, prometheus, samples=8)
            await pair.assert_flowing()
            empty = [(title, expr) for title, expr in queries
                     if not await query(session, prometheus, expr)]
        assert not empty, "dashboard queries without data:\n" + "\n".join(
            f"  {title}: {expr}" for title, expr in empty)
    finally:
        await http.api("DELETE", f"/api/rooms/{pair.room}/recording")
        await pair.stop()
