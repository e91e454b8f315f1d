"""The whiteboard in real headless Chromium beside a stock Yjs client in Node (y-websocket's
own provider, webui/test/yjs_node_client.mjs) and a pycrdt client, all on one room's board:
an instructor's page draws a rectangle with the mouse, a student's page a pen stroke, the
Node client adds a text box and the Python client a line, at the same time; every client
ends with the same items in the same order. Then the student's eraser removes the
rectangle everywhere; the instructor locks the board: the student's tools are disabled, a
write forced past them is refused by the server and dropped by the page, which resyncs to
the board everyone else has; an observer's page never gets tools; Clear empties every
client."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from conftest import Client, ClientFactory
from two_networks import until

from tests.whiteboard.peer import Peer
from whiteboard import protocol

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "webui" / "test" / "yjs_node_client.mjs"
JOIN_TIMEOUT_MS = 15_000
SEEN_MS = 10_000
SEEN_S = SEEN_MS / 1000


class NodeYjs:
    """The Node client: commands on its stdin, JSON events from its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, ws_base: str, token: str) -> NodeYjs:
        node = shutil.which("node")
        assert node, "node is needed (scripts/setup.sh --test installs it)"
        proc = await asyncio.create_subprocess_exec(
            node, str(NODE_CLIENT), f"{ws_base}/ws", token, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.events.put_nowait(json.loads(line))

    async def wait(self, event: str, **match: Any) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                e = await self.events.get()
                if e["event"] == event and all(e.get(k) == v for k, v in match.items()):
                    return e
        try:
            return await asyncio.wait_for(find(), SEEN_S)
        except TimeoutError:
            err = await self._stderr()
            raise AssertionError(f"node client: no {event} {match}; stderr: {err}") from None

    async def _stderr(self) -> str:
        if self.proc.returncode is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def items(self) -> list[Any]:
        self.send(op="dump")
        return list((await self.wait("items"))["items"])

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.send(op="exit")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
        self._reader.cancel()


def _norm(x: Any) -> Any:
    """Yjs numbers are doubles: compare 120 and 120.0 as equal."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, list):
        return [_norm(v) for v in x]
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    raise TypeError(x)


async def _joined(new_client: ClientFactory, base_url: str, token: str, label: str) -> Client:
    client = await new_client(f"{base_url}/?token={quote(token)}&video=320x180&simulcast=0",
                              label)
    await client.page.wait_for_function(
        "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS)
    await client.page.wait_for_selector('#whiteboard-panel[data-synced="1"]',
                                        timeout=SEEN_MS)
    return client


async def _page_items(client: Client) -> list[Any]:
    return list(await client.page.evaluate("() => window.sfu.whiteboard.items()"))


async def _drag(client: Client, tool: str, path: list[tuple[float, float]]) -> None:
    """Draw with ``tool`` along ``path`` (fractions of the canvas) with the mouse."""
    page = client.page
    await page.click(f'#whiteboard-panel button[data-tool="{tool}"]')
    box = await page.locator("#wb-canvas").bounding_box()
    assert box is not None
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
    await page.mouse.move(*at[0])
    await page.mouse.down()
    for x, y in at[1:]:
        await page.mouse.move(x, y, steps=4)
    await page.mouse.up()


async def _follow(peer: Peer) -> None:
    """Keep the Python client's document current (others' cursors are skipped)."""
    async for msg in peer.ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            frame = protocol.parse(msg.data)
            if frame.kind == "update":
                peer.doc.apply_update(frame.payload)


async def test_browsers_node_and_python_share_one_board(
        sfu_server: Any, new_client: ClientFactory,
        mint_token: Callable[..., Awaitable[str]]) -> None:
    room = "e2e-board-" + secrets.token_hex(3)
    ws_base = sfu_server.base_url.replace("http", "ws", 1)
    teacher = await _joined(new_client, sfu_server.base_url,
                            await mint_token(room, "teacher", "Ms T", "instructor"), "teacher")
    student = await _joined(new_client, sfu_server.base_url,
                            await mint_token(room, "sam", "Sam", "student"), "student")
    pages = [teacher, student]
    node = await NodeYjs.start(ws_base, await mint_token(room, "node", "Node", "student"))
    async with aiohttp.ClientSession() as http:
        py = await Peer.open(http, sfu_server, room, "py")
        follower = asyncio.ensure_future(_follow(py))
        last: list[Any] = []

        async def converged(n: int) -> bool:
            """Every client holds the same ``n`` items, in the same order."""
            nonlocal last
            last = [await _page_items(p) for p in pages] + [await node.items(),
                                                            py.items.to_py()]
            return len(last[0]) == n and all(_norm(b) == _norm(last[0]) for b in last)

        async def seen() -> str:
            return f"last seen: {last}"

        async def everywhere(what: str, n: int) -> None:
            await until(what, lambda: converged(n), SEEN_S, seen, every_s=0.05)

        try:
            await node.wait("synced")
            # at the same time: a rectangle and a pen stroke with the mouse, a text box
            # from Node and a line from Python
            node.send(op="add", item={"kind": "text", "by": "Node", "points": [100, 700],
                                      "text": "from node", "size": 32, "color": "#1f6feb"})
            await asyncio.gather(
                _drag(teacher, "rect", [(0.1, 0.1), (0.3, 0.2), (0.4, 0.4)]),
                _drag(student, "pen", [(0.6, 0.6), (0.65, 0.7), (0.7, 0.65), (0.8, 0.8)]),
                py.draw(kind="line", points=[800, 100, 1500, 200], color="#2a9d3f", width=4),
            )
            await everywhere("four items everywhere", 4)
            assert sorted(item["kind"] for item in last[0]) == ["line", "pen", "rect", "text"]
            pen = next(item for item in last[0] if item["kind"] == "pen")
            assert pen["by"] == "Sam" and len(pen["points"]) >= 8  # the stroke's moves
            rect = next(item for item in last[0] if item["kind"] == "rect")
            assert rect["by"] == "Ms T" and rect["points"] == [160, 90, 640, 360]

            # the student erases the rectangle (a click inside it) for everyone
            await student.page.click('#whiteboard-panel button[data-tool="eraser"]')
            box = await student.page.locator("#wb-canvas").bounding_box()
            assert box is not None
            await student.page.mouse.click(box["x"] + 0.25 * box["width"],
                                           box["y"] + 0.25 * box["height"])
            await everywhere("the rectangle erased everywhere", 3)
            assert "rect" not in [item["kind"] for item in last[0]]

            # locked: the student's tools are off; a write forced past them is refused by
            # the server and dropped by the page, which resyncs to everyone's board
            await teacher.page.check("#wb-lock")
            s = student.page
            await s.wait_for_selector('#whiteboard-panel[data-locked="1"]', timeout=SEEN_MS)
            assert await s.is_disabled('#whiteboard-panel button[data-tool="pen"]')
            assert "Locked by the instructor" in (await s.text_content("#wb-status") or "")
            await s.evaluate("""() => window.sfu.whiteboard.doc().getArray('items')
                                 .push([{kind: 'pen', by: 'sneaky', points: [1, 2]}])""")
            await s.wait_for_function(
                "() => document.querySelector('#whiteboard-panel').dataset.resyncs === '1'",
                timeout=SEEN_MS)
            await s.wait_for_selector('#whiteboard-panel[data-synced="1"]', timeout=SEEN_MS)
            await everywhere("the refused item dropped", 3)
            # the teacher still draws; everyone sees it, the refused item reached no one
            await _drag(teacher, "ellipse", [(0.5, 0.1), (0.6, 0.3)])
            await everywhere("the teacher's ellipse everywhere", 4)
            assert "sneaky" not in json.dumps(last)

            # an observer's page shows the board without tools
            observer = await _joined(new_client, sfu_server.base_url,
                                     await mint_token(room, "parent", "Parent", "observer"),
                                     "observer")
            pages.append(observer)
            await everywhere("the observer has the board", 4)
            assert await observer.page.is_disabled('#whiteboard-panel button[data-tool="pen"]')
            assert await observer.page.is_hidden("#wb-clear")
            assert "View only" in (await observer.page.text_content("#wb-status") or "")

            # Clear empties every client
            await teacher.page.click("#wb-clear")
            await everywhere("the board cleared everywhere", 0)
        finally:
            follower.cancel()
            await node.close()
            await py.ws.close()
