"""A lesson across two regions in real Chromium pages (issue #23, docs/cluster.md, "Edge
relays"): three nodes and a real ``nats-server -js``. Region A is the host: the room's
origin a1, a spare a2, and the instructor's page. Region B is a network namespace joined
to the host by a veth pair: the edge node b1 and the three students' pages. The students
join b1 (their tokens say region B), which serves their media and pulls the lesson's from
a1 over the link between the regions. Everyone sees and hears everyone, and a1 sends each
of the instructor's tracks once to b1, not once per student. Then a1 drains: the room
moves to a2, the instructor's page follows it, the students' pages stay on b1, which
follows the room for them; every page's media gap is measured, nobody sees a leave, the
chat and the board are intact."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from browser_flags import CHROMIUM_ARGS, CHROMIUM_PATH
from netns import NetNs
from page_media import COLLECT_INBOUND_JS, RECEIVING_FROM_JS, wait_async
from playwright import async_api as playwright_async
from two_networks import api

from benches.server_process import ServerProcess, stop_server
from signalling import tokens
from tests.integration.cluster_harness import node, until_nodes
from tests.integration.sfu_harness import parse_metrics
from tests.nats_server import NatsServer
from tests.whiteboard.peer import Peer

pytestmark = pytest.mark.e2e
JOIN_MS = 30_000
BOARD_HAS_ONE = "() => window.sfu.whiteboard && window.sfu.whiteboard.items().length === 1"
# Per page and per remote participant: the longest time between two increases of the
# packets received from it (on whatever subscriber connection the page has), once
# `measure()` was called.
SENDER_GAPS_JS = """
() => {
  const m = window.__gaps = { last: {}, maxGap: {}, measuring: false };
  m.measure = () => { m.measuring = true; m.maxGap = {}; const t = performance.now();
    for (const pid in m.last) m.last[pid].t = t; };
  setInterval(async () => {
    const pc = window.sfu.subscriberPc;
    if (!pc) return;
    const byMid = new Map(window.sfu.subscriptions().map((s) => [s.mid, s.participantId]));
    const stats = await pc.getStats();
    const now = performance.now();
    const counts = {};
    stats.forEach((r) => {
      const pid = r.type === "inbound-rtp" ? byMid.get(r.mid) : null;
      if (pid) counts[pid] = (counts[pid] || 0) + (r.packetsReceived || 0);
    });
    for (const [pid, n] of Object.entries(counts)) {
      const seen = m.last[pid];
      if (seen && n === seen.n && seen.pc === pc) continue;
      if (seen && m.measuring) m.maxGap[pid] = Math.max(m.maxGap[pid] || 0, now - seen.t);
      m.last[pid] = { n, t: now, pc };
    }
  }, 50);
}
"""
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


async def receiving(page: Any, others: list[str]) -> None:
    """Until the page receives every one of ``others``' audio and video (or a failure
    that says what the page had)."""
    try:
        await wait_async(page, RECEIVING_FROM_JS, others, MEDIA_MS)
    except TimeoutError:
        state = await page.evaluate(
            """async () => ({me: window.sfu.participantId, state: window.sfu.state,
                 moves: window.sfu.moves,
                 tiles: [...document.querySelectorAll(".tile.remote")].map((t) => [
                   t.dataset.participantId, (t.querySelector("video").srcObject || {
                     getTracks: () => []}).getTracks().map((x) => [x.kind, x.readyState])]),
                 subs: window.sfu.subscriptions().map((x) => [x.mid, x.participantId,
                   x.kind, x.active])})""")
        inbound = await page.evaluate(COLLECT_INBOUND_JS)
        raise AssertionError(f"not receiving {others}: {state} {inbound}") from None


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
                await receiving(page, [i for i in ids if i != me])
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
            # the classroom is the origin's: a student's chat reaches everyone
            await students[1].fill("#chat-input", "hello from region B")
            await students[1].click("#chat-send")
            everyone = (teacher, *students)
            for page in everyone:
                await page.wait_for_function(
                    "() => document.querySelectorAll('#chat-log li').length === 1",
                    timeout=JOIN_MS)
            # and the board is the origin's: a stroke drawn there shows on every page
            async with aiohttp.ClientSession() as http:
                board = await Peer.open(http, a1, room, "board-bot", role="instructor")
                await board.draw(x=40, y=60)
                await board.ws.close()
            for page in everyone:
                await page.wait_for_function(BOARD_HAS_ONE, timeout=JOIN_MS)

            # the origin drains during the lesson: the room moves to the spare a2; the
            # teacher's page follows it, the students' pages stay on their edge, which
            # follows the room for them
            for page in everyone:
                await page.evaluate(SENDER_GAPS_JS)
                await page.evaluate("() => window.__gaps.measure()")
            moved = api(a1, "/api/cluster/drain", {})["moved"]
            assert [(m["room"], m["node"]) for m in moved] == [(room, "a2")], moved
            await teacher.wait_for_function(
                "() => window.sfu.moves === 1 && window.sfu.state === 'joined'",
                timeout=JOIN_MS)
            assert await teacher.evaluate("() => window.sfu.server") == servers["a2"].base_url
            started = time.monotonic()
            for page, me in zip(everyone, ids, strict=True):
                others = [i for i in ids if i != me]
                await receiving(page, others)
                await page.wait_for_function(
                    """(others) => others.every((pid) => window.__gaps.maxGap[pid] > 0
                         && performance.now() - window.__gaps.last[pid].t < 300)""",
                    arg=others, timeout=MEDIA_MS)
            print(f"every page receiving everyone again {time.monotonic() - started:.1f} s "
                  "after the drain")
            gaps = [await page.evaluate("() => window.__gaps.maxGap") for page in everyone]
            names = dict(zip(ids, ["teacher", "student-0", "student-1", "student-2"],
                             strict=True))
            for name, got in zip(names.values(), gaps, strict=True):
                print(f"{name}: longest gap per sender across the drain (ms): " + ", ".join(
                    f"{names[pid]} {gap:.0f}" for pid, gap in got.items()))
            for page in students:  # still on their edge, never told to move
                assert await page.evaluate("() => [window.sfu.moves, window.sfu.server]"
                                           ) == [0, ""]
                assert await page.evaluate(MEDIA_PEERS_JS) == [ns.ns_addr, ns.ns_addr]
            for page in everyone:  # nobody saw anybody leave; the chat is there
                lefts = await page.evaluate(
                    "() => window.sfu.messages.filter((m) => m.type === 'participant_left' "
                    "|| m.type === 'left').length")
                assert lefts == 0
                assert "hello from region B" in await page.locator(
                    "#chat-log li").inner_text()
                await page.wait_for_function(BOARD_HAS_ONE, timeout=JOIN_MS)
            assert metric(servers["a2"], "sfu_relay_subscriptions", edge="b1") == 2
            assert max(max(g.values()) for g in gaps) < 10_000  # (the target is 2 s)
        finally:
            for page in pages:
                await page.context.close()
            await region_b.close()
            await region_a.close()
