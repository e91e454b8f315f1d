"""Reachable from school networks (issue #21): three real Chromium pages in one room, each on
a different kind of network, all see and hear each other.

- ``anna`` on the host: an open network, direct UDP to the server's one media port;
- ``ben`` in a network namespace where nftables drops every UDP datagram: ICE-TCP to the
  server's one TCP media port;
- ``carl`` in a namespace where only TCP to the signalling port and to TCP 443 of the TURN
  server is allowed: TURN over TLS through a real coturn (test certificate, configured as
  docs/operations.md says: use-auth-secret, private peers denied but the SFU's address).

Each page's connection indicator (getStats' selected candidate pair) is checked, and the
server's own count of connections by path.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import playwright.async_api as playwright_async
import pytest
from browser_flags import CHROMIUM_PATH
from netns import NetNs
from two_networks import BROWSER_ARGS, inbound, open_page, until

from benches.server_process import ServerProcess, start_server, stop_server
from tests.coturn import Coturn

pytestmark = pytest.mark.e2e

SECRET = "reachability-test-turn-secret-000000"
PATH_JS = "() => window.sfu.connectionPath()"


@pytest.fixture
def udp_blocked() -> Iterator[NetNs]:
    with NetNs() as ns:
        yield ns


@pytest.fixture
def turn_only() -> Iterator[NetNs]:
    with NetNs() as ns:
        yield ns


@pytest.fixture
def coturn(turn_only: NetNs, udp_blocked: NetNs) -> Iterator[Coturn]:
    """coturn on TCP 443 (TLS) of the TURN-only namespace's host address; it may relay to
    the SFU's ICE address (udp_blocked.host_addr) and to no other private address."""
    with Coturn(turn_only.host_addr, SECRET, tls_port=443,
                allowed_peers=(udp_blocked.host_addr,)) as server:
        yield server


@pytest.fixture
def server(udp_blocked: NetNs, turn_only: NetNs, coturn: Coturn,
           request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = {"SFU_TURN_URLS": f"turns:{turn_only.host_addr}:443?transport=tcp",
           "SFU_TURN_SECRET": SECRET}
    server = start_server(env, host="0.0.0.0",
                          ice_addresses=("127.0.0.1", udp_blocked.host_addr))
    yield server
    stop_server(server)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("---- server log ----\n" + "".join(server.log[-300:]))
        print("---- coturn log ----\n" + coturn.log()[-5000:])


def origin(server: ServerProcess, host: str) -> str:
    return "http://{}:{}".format(host, server.base_url.rsplit(":", 1)[1])


@pytest.fixture
async def browsers(server: ServerProcess, udp_blocked: NetNs, turn_only: NetNs
                   ) -> AsyncIterator[dict[str, Any]]:
    async with playwright_async.async_playwright() as pw:
        made: dict[str, Any] = {}
        try:
            made["anna"] = await pw.chromium.launch(executable_path=CHROMIUM_PATH,
                                                    args=BROWSER_ARGS)
            made["ben"] = await pw.chromium.launch(
                executable_path=udp_blocked.chromium_wrapper,
                args=[*BROWSER_ARGS, "--unsafely-treat-insecure-origin-as-secure="
                      + origin(server, udp_blocked.host_addr)])
            made["carl"] = await pw.chromium.launch(
                executable_path=turn_only.chromium_wrapper,
                # the TURN server's certificate is a test one, signed by nobody
                args=[*BROWSER_ARGS, "--ignore-certificate-errors",
                      "--unsafely-treat-insecure-origin-as-secure="
                      + origin(server, turn_only.host_addr)])
            yield made
        finally:
            for b in made.values():
                await b.close()


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(server.base_url.replace("0.0.0.0", "127.0.0.1") + "/metrics",
                                timeout=5) as resp:
        text = resp.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


async def both_paths(page: Any) -> dict[str, Any]:
    """The page's {publisher, subscriber} paths (what its indicator reads), once known."""
    got: dict[str, Any] = {}

    async def known() -> bool:
        got.update(await page.evaluate(PATH_JS))
        return bool(got.get("publisher") and got.get("subscriber"))

    await until("both connections report their path", known, 20)
    return got


async def test_open_udp_blocked_and_turn_only_pages_see_each_other(
    server: ServerProcess, udp_blocked: NetNs, turn_only: NetNs, coturn: Coturn,
    browsers: dict[str, Any],
) -> None:
    for ns in (udp_blocked, turn_only):
        ns.route_via_host()  # the SFU's ICE address is reachable: only the filters block it
    udp_blocked.block_udp()
    turn_only.allow_only_tcp_to(turn_only.host_addr,
                                (443, int(server.base_url.rsplit(":", 1)[1])))
    hosts = {"anna": "127.0.0.1", "ben": udp_blocked.host_addr, "carl": turn_only.host_addr}
    pages: dict[str, Any] = {}
    for name, host in hosts.items():
        token = server.mint_token("reach", name, role="student")
        pages[name] = await open_page(
            browsers[name],
            f"{origin(server, host)}/?token={quote(token)}&video=320x180&simulcast=0")

    async def counters() -> dict[str, dict[str, int]]:
        return {name: await inbound(page) for name, page in pages.items()}

    async def everyone_receives_everyone() -> bool:
        # each page receives the two others' audio and video: 2 tracks of each kind
        now = await counters()
        tracks = {name: await pages[name].evaluate(
            "() => window.sfu.subscriberPc ? window.sfu.subscriberPc.getReceivers()"
            ".filter((r) => r.track && r.track.readyState === 'live').length : 0")
            for name in pages}
        return all(now[n]["audio"] > 50 and now[n]["video"] > 50 and tracks[n] >= 4
                   for n in pages)

    async def trace() -> str:
        return (f"counters={await counters()} paths="
                f"{ {n: await p.evaluate(PATH_JS) for n, p in pages.items()} }")

    took = await until("every page receives the two others' audio and video",
                       everyone_receives_everyone, 60, trace, every_s=0.5)
    print(f"all three pages receiving {took:.1f} s after they joined")
    paths = {name: await both_paths(page) for name, page in pages.items()}
    print("selected paths:", paths)
    for side in ("publisher", "subscriber"):
        assert paths["anna"][side]["kind"] == "udp", paths["anna"]
        assert paths["ben"][side]["kind"] == "tcp", paths["ben"]
        assert paths["ben"][side]["protocol"] == "tcp", paths["ben"]
        assert paths["carl"][side]["kind"] == "relay", paths["carl"]
        assert paths["carl"][side]["candidateType"] == "relay", paths["carl"]
        assert paths["carl"][side]["relayProtocol"] == "tls", paths["carl"]
    # the blocks were real: UDP was tried from both namespaces and dropped
    assert udp_blocked.udp_dropped() > 0 and turn_only.udp_dropped() > 0
    # the server: ben's two connections on ICE-TCP, anna's and carl's (relayed by coturn
    # over UDP) on the UDP port
    assert metric(server, "sfu_media_transports_connected", protocol="tcp") == 2
    assert metric(server, "sfu_media_transports_connected", protocol="udp") == 4
    # each page's indicator says how it is connected
    for name, kind, text in (("anna", "udp", "Direct UDP"), ("ben", "tcp", "TCP"),
                             ("carl", "relay", "Relayed (TURN/TLS)")):
        indicator = pages[name].locator("#connection-path")
        await indicator.wait_for(state="visible", timeout=10_000)
        assert await indicator.get_attribute("data-path") == kind, name
        assert text in (await indicator.text_content() or ""), name
    # and media keeps flowing on these paths
    before = await counters()

    async def still_flowing() -> bool:
        now = await counters()
        return all(now[n][k] > before[n][k] + 20 for n in pages for k in ("audio", "video"))

    await until("media still flowing on every page", still_flowing, 15, trace)
