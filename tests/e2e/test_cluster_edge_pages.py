"""A lesson across two regions in real Chromium pages (issue #23, docs/cluster.md, "Edge
relays"): three nodes and a real ``nats-server -js``. Region A is the host: the room's
origin a1, a spare a2, and the instructor's page. Region B is a network namespace joined
to the host by a veth pair: the edge node b1 and the three students' pages. The students
join b1 (their tokens say region B), which serves their media and pulls the lesson's from
a1 over the link between the regions. Everyone sees and hears everyone, and a1 sends each
of the instructor's tracks once to b1, not once per student."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser_flags import CHROMIUM_ARGS, CHROMIUM_PATH
from netns import NetNs
from page_media import COLLECT_INBOUND_JS, RECEIVING_FROM_JS, wait_async
from playwright import async_api as playwright_async

from benches.server_process import ServerProcess, stop_server
from signalling import tokens
from tests.integration.cluster_harness import node, until_nodes
from tests.integration.sfu_harness import parse_metrics
from tests.nats_server import NatsServer

pytestmark = pytest.mark.e2e
JOIN_MS = 30_000
# The address each of the page's two peer connections (publisher, subscriber) sends its
# media to: the remote candidate of the selected pair, from getStats.
MEDIA_PEERS_JS = """
async () => {
  const out = [];
  for (const pc of [window.sfu.publisherPc, window.sfu.subscriberPc]) {
    if (!pc) { out.push(null); continue; }
    const stats = await pc.getStats();
    let address = null;
    stats.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) {
        const pair = stats.get(r.selectedCandidatePairId);
        const remote = pair && stats.get(pair.remoteCandidateId);
        address = remote ? remote.address : null;
      }
    });
    out.push(address);
  }
  return out;
}
"""
MEDIA_MS = 45_000


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as res:
        found = parse_metrics(res.read().decode())
    return found.get((name, frozenset(labels.items())), 0.0)


def api(server: ServerProcess, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(server.base_url + path, headers={
        **server.auth_header, "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=5) as res:
        return json.loads(res.read())


@pytest.fixture
async def regions(tmp_path: Path) -> AsyncIterator[tuple[NetNs, dict[str, ServerProcess], str]]:
    """Nodes a1 (the room's origin) and a2 in region A on the host, b1 (relays on) in region
    B inside the namespace; NATS on the host's end of the veth, reachable from both."""
    with NetNs() as ns:
        nats = NatsServer(tmp_path / "js", host=ns.host_addr)
        await nats.start()
        servers: dict[str, ServerProcess] = {}
        try:
            servers["a1"] = node(nats, "a1", "A", host=ns.host_addr,
                                 ice_addresses=(ns.host_addr,))
            await until_nodes(servers["a1"], {"a1"})
            room = "two-regions"
            made = api(servers["a1"], "/api/rooms", {"name": room, "region": "A"})
            assert made["node"] == "a1"
            servers["a2"] = node(nats, "a2", "A", host=ns.host_addr,
                                 ice_addresses=(ns.host_addr,))
            servers["b1"] = node(nats, "b1", "B", host=ns.ns_addr, ice_addresses=(ns.ns_addr,),
                                 netns=ns.name, SFU_CLUSTER_RELAYS="1")
            for server in servers.values():
                await until_nodes(server, {"a1", "a2", "b1"})
            yield ns, servers, room
        finally:
            for server in servers.values():
                stop_server(server)
            nats.stop()
        for name, server in servers.items():
            assert not any("Traceback" in line for line in server.log), (
                name, "".join(server.log[-60:]))


def page_url(server: ServerProcess, room: str, identity: str, role: str, region: str) -> str:
    token = tokens.mint(server.api_key, server.api_secret, room=room, identity=identity,
                        role=role, region=region)
    return f"{server.base_url}/?token={quote(token)}&video=320x180&simulcast=0"


async def open_page(browser: Any, url: str, pages: list[Any]) -> Any:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    pages.append(page)
    await page.goto(url)
    await page.wait_for_function("() => window.sfu && window.sfu.state === 'joined'",
                                 timeout=JOIN_MS)
    return page


async def test_students_in_another_region_take_the_lesson_through_their_edge(
        regions: tuple[NetNs, dict[str, ServerProcess], str]) -> None:
    ns, servers, room = regions
    a1, b1 = servers["a1"], servers["b1"]
    # (one flag, its origins comma-separated: a second flag would replace the first)
    origins = ["--unsafely-treat-insecure-origin-as-secure=" + ",".join(
        s.base_url for s in (a1, b1))]
    pages: list[Any] = []
    async with playwright_async.async_playwright() as pw:
        region_a = await pw.chromium.launch(executable_path=CHROMIUM_PATH,
                                            args=[*CHROMIUM_ARGS, *origins])
        region_b = await pw.chromium.launch(executable_path=ns.chromium_wrapper,
                                            args=[*CHROMIUM_ARGS, *origins])
        try:
            teacher = await open_page(region_a, page_url(a1, room, "teacher", "instructor",
                                                         "A"), pages)
            students = [await open_page(region_b, page_url(b1, room, f"student-{i}",
                                                           "student", "B"), pages)
                        for i in range(3)]
            ids = [await p.evaluate("() => window.sfu.participantId")
                   for p in (teacher, *students)]
            # every page receives every other page's audio and video
            started = time.monotonic()
            for page, me in zip((teacher, *students), ids, strict=True):
                await wait_async(page, RECEIVING_FROM_JS, [i for i in ids if i != me],
                                 MEDIA_MS)
            print(f"all four pages receiving everyone {time.monotonic() - started:.1f} s "
                  "after the last join")
            # the students stayed on their edge (no redirect), and their media connections
            # go to it; the teacher's go to the origin
            for page in students:
                assert await page.evaluate("() => window.sfu.server") == ""
                assert await page.evaluate(MEDIA_PEERS_JS) == [ns.ns_addr, ns.ns_addr]
            assert await teacher.evaluate(MEDIA_PEERS_JS) == [ns.host_addr, ns.host_addr]
            # the origin sends each of the teacher's tracks once to the edge, which serves
            # the three students; it receives each student's tracks once from the edge
            assert metric(a1, "sfu_relay_subscriptions", edge="b1") == 2
            assert metric(b1, "sfu_edge_pages") == 3
            assert metric(b1, "sfu_edge_relayed_tracks") == 2
            at_origin = {p["identity"]: p
                         for p in api(a1, f"/api/rooms/{room}/participants")["participants"]}
            assert set(at_origin) == {"teacher", "student-0", "student-1", "student-2"}
            for i in range(3):
                assert len(at_origin[f"student-{i}"]["tracks"]) == 2
            sent = metric(a1, "sfu_relay_packets_sent_total", edge="b1")
            inbound = await students[0].evaluate(COLLECT_INBOUND_JS)
            from_teacher = sum(s["packetsReceived"] for s in inbound
                               if s["participantId"] == ids[0])
            print(f"a1 sent {sent:.0f} packets to b1; student-0 received {from_teacher} "
                  "of the teacher's")
            # (three copies, one per student, would be about three times what one got)
            assert 0 < sent < 2 * from_teacher, (sent, from_teacher)
            # the classroom is the origin's: a student's chat reaches the teacher
            await students[1].fill("#chat-input", "hello from region B")
            await students[1].click("#chat-send")
            await teacher.wait_for_selector("text=hello from region B", timeout=JOIN_MS)
        finally:
            for page in pages:
                await page.context.close()
            await region_b.close()
            await region_a.close()
