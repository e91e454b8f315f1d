"""A lesson in real Chromium pages survives the drain of its node, and its crash (issue
#23): two nodes and a real ``nats-server -js``. An instructor and two students on the
origin; the origin drains; every page resumes on the spare without a leave, its media gap
measured, the chat and the whiteboard as they were; then the origin stops and the lesson
goes on. And a node killed with SIGKILL: its pages come back through the other node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from conftest import Client, ClientFactory

from benches.server_process import ServerProcess, stop_server
from tests.integration.cluster_harness import node, replicated, until_nodes
from tests.nats_server import NatsServer
from tests.whiteboard.peer import Peer

pytestmark = pytest.mark.e2e
JOIN_MS = 30_000

# Per page: the longest time between two increases of the packets received on whatever
# subscriber connection the page has (a move makes a new one), once `measure()` was called.
GAP_MONITOR_JS = """
() => {
  const m = window.__gap = { last: performance.now(), maxGap: 0, packets: 0,
    measuring: false, counts: new WeakMap() };
  m.measure = () => { m.measuring = true; m.maxGap = 0; m.last = performance.now(); };
  setInterval(async () => {
    const pc = window.sfu.subscriberPc;
    if (!pc) return;
    const stats = await pc.getStats();
    let n = 0;
    stats.forEach((r) => { if (r.type === "inbound-rtp") n += r.packetsReceived || 0; });
    const before = m.counts.get(pc) || 0;
    if (n > before) {
      const now = performance.now();
      if (m.measuring) m.maxGap = Math.max(m.maxGap, now - m.last);
      m.last = now;
      m.packets += n - before;
      m.counts.set(pc, n);
    }
  }, 50);
}
"""


@pytest.fixture
async def two_nodes(tmp_path: Path
                    ) -> AsyncIterator[tuple[ServerProcess, ServerProcess, str, NatsServer]]:
    nats = NatsServer(tmp_path / "js")
    await nats.start()
    a1 = node(nats, "a1", "eu")
    a2: ServerProcess | None = None
    try:
        await until_nodes(a1, {"a1"})
        room = "drained-lesson"
        async with aiohttp.ClientSession(headers=a1.auth_header) as http, http.post(
                a1.base_url + "/api/rooms", json={"name": room}) as res:
            assert res.status == 201 and (await res.json())["node"] == "a1"
        a2 = node(nats, "a2", "eu")
        await until_nodes(a1, {"a1", "a2"})
        await until_nodes(a2, {"a1", "a2"})
        yield a1, a2, room, nats
    finally:
        for server in (a1, a2):
            if server is not None and server.proc.poll() is None:
                stop_server(server)
        nats.stop()


async def joined(new_client: ClientFactory, server: ServerProcess, room: str,
                 identity: str, role: str) -> Client:
    token = server.mint_token(room, identity, role=role)
    client = await new_client(
        f"{server.base_url}/?token={quote(token)}&video=320x180&simulcast=0", identity)
    await client.page.wait_for_function(
        "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_MS)
    return client


async def media_flowing(pages: list[Client]) -> None:
    """Every page sees the others and receives their media, its gap monitor running."""
    for page in pages:
        await page.page.wait_for_function(
            f"() => window.sfu.remoteParticipants().length === {len(pages) - 1}",
            timeout=JOIN_MS)
        await page.page.evaluate(GAP_MONITOR_JS)
        await page.page.wait_for_function("() => window.__gap.packets > 100",
                                          timeout=JOIN_MS)


async def board_drawn(http: aiohttp.ClientSession, server: ServerProcess, room: str,
                      pages: list[Client], **at: float) -> None:
    """A stroke drawn on the room's board (a Python Yjs client), shown on every page."""
    board = await Peer.open(http, server, room, "board-bot", role="instructor")
    await board.draw(**at)
    for page in pages:
        await page.page.wait_for_function(
            "() => window.sfu.whiteboard && window.sfu.whiteboard.items().length === 1",
            timeout=JOIN_MS)
    await board.ws.close()


async def test_a_lesson_survives_the_drain_of_its_node(
        two_nodes: tuple[ServerProcess, ServerProcess, str, NatsServer],
        new_client: ClientFactory) -> None:
    a1, a2, room, _ = two_nodes
    teacher = await joined(new_client, a1, room, "teacher", "instructor")
    students = [await joined(new_client, a1, room, f"student-{i}", "student")
                for i in range(2)]
    pages = [teacher, *students]
    await media_flowing(pages)
    # the chat and the board have something to keep
    await teacher.page.fill("#chat-input", "before the drain")
    await teacher.page.click("#chat-send")
    for page in pages:
        await page.page.wait_for_function(
            "() => document.querySelectorAll('#chat-log li').length === 1", timeout=JOIN_MS)
    async with aiohttp.ClientSession() as http:
        await board_drawn(http, a1, room, pages, x=40, y=60)
        for page in pages:
            await page.page.evaluate("() => window.__gap.measure()")
        async with http.post(a1.base_url + "/api/cluster/drain",
                             headers=a1.auth_header) as res:
            drained = await res.json()
    assert drained["moved"] == [{"room": room, "node": "a2", "participants": 3}], drained
    # every page resumes on the spare, with the others, the chat and the board
    for page in pages:
        await page.page.wait_for_function(
            "() => window.sfu.moves === 1 && window.sfu.state === 'joined' && "
            "window.sfu.remoteParticipants().length === 2", timeout=JOIN_MS)
        assert await page.page.evaluate("() => window.sfu.server") == a2.base_url
    gaps = {}
    for page in pages:
        await page.page.wait_for_function(
            "() => window.__gap.maxGap > 0 && performance.now() - window.__gap.last < 300",
            timeout=JOIN_MS)
        gaps[page.label] = await page.page.evaluate("() => window.__gap.maxGap")
    print("media gap per page across the drain (ms): " + ", ".join(
        f"{label} {gap:.0f}" for label, gap in gaps.items()))
    for page in pages:
        lefts = await page.page.evaluate(
            "() => window.sfu.messages.filter((m) => m.type === 'participant_left' "
            "|| m.type === 'left').length")
        assert lefts == 0, page.label
        assert await page.page.locator("#chat-log li").count() == 1
        assert "before the drain" in await page.page.locator("#chat-log li").inner_text()
        await page.page.wait_for_function(
            "() => window.sfu.whiteboard && window.sfu.whiteboard.items().length === 1",
            timeout=JOIN_MS)
    # the drained node stops; the lesson goes on on the spare
    stop_server(a1)
    for page in pages:
        before = await page.page.evaluate("() => window.__gap.packets")
        await page.page.wait_for_function(f"() => window.__gap.packets > {before} + 100",
                                          timeout=JOIN_MS)
    assert max(gaps.values()) < 10_000  # (the figure is the point; the target is 2 s)



async def test_a_lesson_comes_back_after_its_node_is_killed(
        two_nodes: tuple[ServerProcess, ServerProcess, str, NatsServer],
        new_client: ClientFactory) -> None:
    """SIGKILL of the node: the pages reconnect through the other node of ``servers``,
    which takes the room over once the dead node's entry expires (TTL 3 s here), within
    the 20 s reconnection window; the whiteboard is intact."""
    a1, a2, room, nats = two_nodes
    teacher = await joined(new_client, a1, room, "teacher", "instructor")
    student = await joined(new_client, a1, room, "student", "student")
    pages = [teacher, student]
    await media_flowing(pages)
    async with aiohttp.ClientSession() as http:
        await board_drawn(http, a1, room, pages, x=7, y=8)
    # the board in the replica (written every 0.5 s: what a crash may lose at most)
    await replicated(nats, room, {"board": b"pen"})
    for page in pages:
        await page.page.evaluate("() => window.__gap.measure()")
    a1.proc.kill()
    a1.proc.wait(10)
    for page in pages:
        await page.page.wait_for_function(
            "() => window.sfu.moves === 1 && window.sfu.state === 'joined' && "
            "window.sfu.remoteParticipants().length === 1", timeout=JOIN_MS)
        assert await page.page.evaluate("() => window.sfu.server") == a2.base_url
        await page.page.wait_for_function(
            "() => window.__gap.maxGap > 0 && performance.now() - window.__gap.last < 300",
            timeout=JOIN_MS)
        await page.page.wait_for_function(
            "() => window.sfu.whiteboard && window.sfu.whiteboard.items().length === 1",
            timeout=JOIN_MS)
    gaps = {p.label: await p.page.evaluate("() => window.__gap.maxGap") for p in pages}
    print("media gap per page across the SIGKILL of their node (ms): " + ", ".join(
        f"{label} {gap:.0f}" for label, gap in gaps.items()))
    assert max(gaps.values()) < 20_000  # within the reconnection window
    if a1.proc.stdout is not None:
        a1.proc.stdout.close()
