"""The classroom side panel in real headless Chromium: an instructor's page and a student's
page in one room raise and lower a hand, chat (text shown as text, never as markup),
delete a message, react, and run a quiz poll from the instructor's form to shared results."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from conftest import Client, ClientFactory

JOIN_TIMEOUT_MS = 15_000
SEEN_MS = 10_000


async def _joined(new_client: ClientFactory, base_url: str, token: str, label: str
                  ) -> tuple[Client, str]:
    client = await new_client(f"{base_url}/?token={quote(token)}&video=320x180&simulcast=0",
                              label)
    await client.page.wait_for_function(
        "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS)
    await client.page.wait_for_selector("#classroom-panel", state="visible",
                                        timeout=SEEN_MS)
    return client, await client.participant_id()


async def test_hands_chat_reactions_and_a_poll_in_two_pages(
        sfu_server: Any, new_client: ClientFactory,
        mint_token: Callable[..., Awaitable[str]]) -> None:
    room = "e2e-class-" + secrets.token_hex(3)
    teacher, _ = await _joined(new_client, sfu_server.base_url,
                               await mint_token(room, "teacher", "Ms Teacher", "instructor"),
                               "teacher")
    student, student_id = await _joined(new_client, sfu_server.base_url,
                                        await mint_token(room, "sam", "Sam", "student"),
                                        "student")
    t, s = teacher.page, student.page
    assert await s.is_hidden("#poll-create") and await t.is_visible("#poll-create")

    # a raised hand shows on the instructor's page, and she lowers it
    await s.click("#hand-toggle")
    hand = f'#hand-list li[data-participant-id="{student_id}"]'
    await t.wait_for_selector(hand, timeout=SEEN_MS)
    assert (await t.text_content(f"{hand} .who")) == "Sam"
    assert (await s.text_content("#hand-toggle")) == "Lower hand"
    await t.click(f"{hand} button")
    await s.wait_for_function(
        "() => document.querySelector('#hand-list').children.length === 0", timeout=SEEN_MS)
    assert (await s.text_content("#hand-toggle") or "").startswith("Raise hand")

    # chat: markup in a message is text; the instructor deletes the message
    text = "is it <b>4</b>? <img src=x onerror=alert(1)>"
    await s.fill("#chat-input", text)
    await s.click("#chat-send")
    line = "#chat-log li"
    await t.wait_for_selector(line, timeout=SEEN_MS)
    assert (await t.text_content(f"{line} .text")) == text
    assert await t.locator("#chat-log b, #chat-log img").count() == 0
    assert (await t.text_content(f"{line} .who")) == "Sam"
    await t.click(f"{line} button")
    await s.wait_for_function(
        "() => document.querySelector('#chat-log').children.length === 0", timeout=SEEN_MS)

    # a reaction reaches the other page
    await t.click('#reaction-buttons button[data-reaction="clap"]')
    await s.wait_for_selector('#reaction-feed li[data-reaction="clap"]', timeout=SEEN_MS)

    # a quiz from the instructor's form; the student answers; results live, then shared
    await t.click("#poll-create summary")
    await t.fill("#poll-question", "2 + 2?")
    await t.fill("#poll-options", "3\n4")
    await t.fill("#poll-correct", "2")
    await t.click("#poll-submit")
    await s.wait_for_selector("#poll-list li.poll form.answer", timeout=SEEN_MS)
    assert (await s.text_content("#poll-list .question")) == "2 + 2?"
    await s.check('#poll-list input[name="choice"][value="1"]')
    await s.click("#poll-list form.answer button")
    await s.wait_for_selector("#poll-list .answered", timeout=SEEN_MS)
    await t.wait_for_selector('#poll-list li[data-option="1"][data-count="1"]',
                              timeout=SEEN_MS)
    assert "100 % right" in (await t.text_content("#poll-list .results") or "")
    assert await s.locator("#poll-list .results").count() == 0  # not shared yet
    await t.click("#poll-list .actions button:has-text('Close')")
    await t.click("#poll-list .actions button:has-text('Share results')")
    await s.wait_for_selector('#poll-list li[data-option="1"][data-count="1"]',
                              timeout=SEEN_MS)
    assert "✔" in (await s.text_content('#poll-list li[data-option="1"]') or "")
    for client in (teacher, student):
        assert not [line for line in client.console if "[pageerror]" in line]
