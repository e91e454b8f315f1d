"""Headless Chromium fixtures for the end-to-end tests.

The server itself comes from the ``sfu_server`` fixture in ``tests/conftest.py``
(dev mode, ICE on 127.0.0.1, ``.base_url`` and ``.mint_token(...)``).
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import playwright.async_api as playwright_async
import pytest
from browser_flags import CHROMIUM_ARGS, CHROMIUM_PATH
from netns import NetNs
from two_networks import BROWSER_ARGS

from benches.server_process import ServerProcess, start_server, stop_server

# How much of each page's console to print when a test fails.
CONSOLE_TAIL = 60

# The client's summary of recent signalling frames (window.sfu.messages), minus trickle.
MESSAGES_JS = """
() => (window.sfu && window.sfu.messages || [])
  .filter((m) => m.type !== "candidate")
  .map((m) => JSON.stringify(m))
"""


@dataclass
class Client:
    """One browser context + page joined (or joining) through the served client."""

    label: str
    context: Any
    page: Any
    console: list[str] = field(default_factory=list)

    async def state(self) -> str:
        return str(await self.page.evaluate("() => window.sfu && window.sfu.state"))

    async def participant_id(self) -> str:
        return str(await self.page.evaluate("() => window.sfu.participantId"))


ClientFactory = Callable[..., Awaitable[Client]]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"_e2e_report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(
        getattr(getattr(node, f"_e2e_report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not (os.path.exists(CHROMIUM_PATH) or shutil.which(CHROMIUM_PATH)):
        # a missing browser is a broken set-up, never a pass: scripts/test.sh installs it
        pytest.fail(f"no Chromium at {CHROMIUM_PATH} (apt-get install chromium, or set "
                    "SFU_E2E_CHROMIUM)")
    async with playwright_async.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def new_client(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[ClientFactory]:
    """Factory: ``await new_client(url, label)`` opens a page in its own browser context."""
    clients: list[Client] = []

    async def factory(url: str, label: str = "") -> Client:
        context = await browser.new_context(
            viewport={"width": 960, "height": 640},
            permissions=["camera", "microphone"],
        )
        page = await context.new_page()
        client = Client(label=label or f"page{len(clients)}", context=context, page=page)

        def on_console(msg: Any) -> None:
            client.console.append(f"[{msg.type}] {msg.text}")

        def on_error(exc: Any) -> None:
            client.console.append(f"[pageerror] {exc}")

        page.on("console", on_console)
        page.on("pageerror", on_error)
        clients.append(client)
        await page.goto(url)
        return client

    try:
        yield factory
    finally:
        if _failed(request):
            for client in clients:
                print(f"---- console of {client.label} ----")
                for line in client.console[-CONSOLE_TAIL:]:
                    print(line)
                print(f"---- signalling of {client.label} (no candidates) ----")
                try:
                    messages = await client.page.evaluate(MESSAGES_JS)
                except Exception as exc:
                    messages = [f"unavailable: {exc!r}"]
                for message in messages:
                    print(message)
        for client in clients:
            try:
                await client.context.close()
            except Exception as exc:  # the browser may already be gone
                print(f"closing {client.label}: {exc!r}")


@pytest.fixture
def mint_token(sfu_server: Any) -> Callable[..., Awaitable[str]]:
    """``await mint_token(room, identity, name, role)``; the server helper may be sync or async."""

    async def mint(room: str, identity: str, name: str, role: str = "student") -> str:
        token = sfu_server.mint_token(room, identity, name, role=role)
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    return mint


# -- one browser in its own network namespace (tests/e2e/netns.py) ------------------------


@pytest.fixture
def netns() -> Iterator[NetNs]:
    with NetNs() as ns:
        yield ns


@pytest.fixture
def shared_server(netns: NetNs, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server reachable from the host and from inside the namespace."""
    server = start_server(getattr(request, "param", None), host="0.0.0.0",
                          ice_addresses=("127.0.0.1", netns.host_addr))
    yield server
    stop_server(server)
    if os.environ.get("SFU_E2E_SERVER_LOG") or _failed(request):
        print("---- server log ----\n" + "".join(server.log[-1000:]))


@pytest.fixture
async def browsers(netns: NetNs, shared_server: ServerProcess
                   ) -> AsyncIterator[tuple[Any, Any]]:
    """(a Chromium on the host, a Chromium inside the namespace). The one inside reaches the
    server at ``http://<host_addr>:<port>``, not a secure context: it is told to treat that
    origin as secure, or the page could not use the camera and microphone."""
    origin = "http://{}:{}".format(netns.host_addr, shared_server.base_url.rsplit(":", 1)[1])
    async with playwright_async.async_playwright() as pw:
        host = await pw.chromium.launch(executable_path=CHROMIUM_PATH, args=BROWSER_ARGS)
        inside = await pw.chromium.launch(
            executable_path=netns.chromium_wrapper,
            args=[*BROWSER_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"])
        try:
            yield host, inside
        finally:
            await inside.close()
            await host.close()
