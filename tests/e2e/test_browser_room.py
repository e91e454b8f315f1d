"""Real headless Chromium pages in one room, through the served browser client.

Acceptance: three pages with fake devices join one room and each receives the
other two's audio and video; a fourth page joining late gets everyone and everyone
gets it; a page that leaves disappears from the others (tile gone, m-lines
inactive, counters frozen) while the rest keep flowing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
from page_media import COLLECT_INBOUND_JS, RECEIVING_FROM_JS, wait_async

pytestmark = pytest.mark.e2e

Client = Any  # tests/e2e/conftest.py: Client
ClientFactory = Callable[..., Awaitable[Any]]

JOIN_TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_MS = 25_000
LEAVE_TIMEOUT_MS = 15_000
SAMPLE_INTERVAL_S = 3.0
#: how long a counter may take to grow before the media counts as stopped
FLOW_TIMEOUT_S = 8.0
POLL_MS = 250

# True once the page no longer shows `gone`, and the m-lines that carried its
# tracks (`mids`) are no longer receiving.
FORGOTTEN_JS = """
({gone, mids}) => {
  const sfu = window.sfu;
  if (sfu.remoteParticipants().includes(gone)) return false;
  if (document.querySelector(`.tile[data-participant-id="${gone}"]`)) return false;
  const subs = sfu.subscriptions();
  if (subs.some((s) => s.participantId === gone && s.active)) return false;
  for (const mid of mids) {
    const s = subs.find((x) => x.mid === mid);
    if (s && (s.direction === "recvonly" || s.direction === "sendrecv")) return false;
  }
  return true;
}
"""


def _room() -> str:
    return "e2e-" + secrets.token_hex(4)


async def _open_joined(
    new_client: ClientFactory, base_url: str, token: str, label: str
) -> tuple[Client, str]:
    # one layer here (simulcast has its own tests): four publishing browsers on two cores
    client = await new_client(
        f"{base_url}/?token={quote(token)}&video=640x360&simulcast=0", label)
    await client.page.wait_for_function(
        "() => window.sfu && window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS
    )
    return client, await client.participant_id()


async def _wait_receiving(client: Client, expected: list[str]) -> None:
    try:
        await wait_async(client.page, RECEIVING_FROM_JS, expected, MEDIA_TIMEOUT_MS)
    except TimeoutError as exc:
        inbound = await client.page.evaluate(COLLECT_INBOUND_JS)
        subs = await client.page.evaluate("() => window.sfu.subscriptions()")
        state = await client.page.evaluate(
            "() => ({state: window.sfu.state, err: window.sfu.lastError,"
            " remotes: window.sfu.remoteParticipants(),"
            " sub: window.sfu.subscriberPc && window.sfu.subscriberPc.connectionState,"
            " pub: window.sfu.publisherPc && window.sfu.publisherPc.connectionState})"
        )
        raise AssertionError(
            f"{client.label} did not receive media from {expected}: {state}\n"
            f"subscriptions={subs}\ninbound={inbound}"
        ) from exc


async def _media_counters(client: Client) -> dict[tuple[str, str], int]:
    """(participantId, kind) -> video framesDecoded / audio packetsReceived."""
    counters: dict[tuple[str, str], int] = {}
    inbound = await client.page.evaluate(COLLECT_INBOUND_JS)
    client.console.append(f"[e2e] inbound {inbound}")
    for s in inbound:
        if not s["participantId"]:
            continue
        key = (s["participantId"], s["kind"])
        value = s["framesDecoded"] if s["kind"] == "video" else s["packetsReceived"]
        counters[key] = counters.get(key, 0) + int(value)
    return counters


async def _assert_media_flowing(clients: dict[str, Client], ids: dict[str, str]) -> None:
    """Every page decodes video and receives audio from every other page, increasingly:
    each counter grows within FLOW_TIMEOUT_S (a decoder waiting one keyframe interval on a
    loaded machine is not a frozen picture; seconds without a frame are)."""
    names = {pid: label for label, pid in ids.items()}
    before = await asyncio.gather(*(_media_counters(c) for c in clients.values()))
    deadline = time.monotonic() + FLOW_TIMEOUT_S
    await asyncio.sleep(SAMPLE_INTERVAL_S)
    while True:
        after = await asyncio.gather(*(_media_counters(c) for c in clients.values()))
        problems = []
        for (label, _client), b, a in zip(clients.items(), before, after, strict=True):
            expected = {
                (pid, kind)
                for other, pid in ids.items()
                if other != label
                for kind in ("audio", "video")
            }
            if set(a) != expected:
                problems.append(
                    f"{label} receives from {sorted((names.get(p, p), k) for p, k in a)}, "
                    f"expected {sorted((names[p], k) for p, k in expected)}"
                )
                continue
            for key in sorted(expected):
                if not a[key] > b.get(key, 0):
                    problems.append(
                        f"{label}: {key[1]} from {names[key[0]]} did not increase "
                        f"({b.get(key)} -> {a[key]})"
                    )
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_MS / 1000)
    assert not problems, "\n".join(problems)


async def test_three_pages_then_late_joiner_then_leave(
    sfu_server: Any, new_client: ClientFactory, mint_token: Any
) -> None:
    started = time.monotonic()
    base_url = sfu_server.base_url
    room = _room()
    roles = {"alice": "instructor", "bob": "student", "carol": "student"}
    tokens = {
        label: await mint_token(room, f"{label}-{secrets.token_hex(2)}", label.title(), role)
        for label, role in roles.items()
    }

    # Three pages join together.
    opened = await asyncio.gather(
        *(_open_joined(new_client, base_url, tokens[label], label) for label in roles)
    )
    clients = {label: c for label, (c, _) in zip(roles, opened, strict=True)}
    ids = {label: pid for label, (_, pid) in zip(roles, opened, strict=True)}
    assert len(set(ids.values())) == 3

    await asyncio.gather(
        *(
            _wait_receiving(c, [pid for other, pid in ids.items() if other != label])
            for label, c in clients.items()
        )
    )
    await _assert_media_flowing(clients, ids)

    async def join_late(label: str) -> str:
        """A page joins an ongoing room: it gets everyone, and everyone gets it."""
        token = await mint_token(room, f"{label}-{secrets.token_hex(2)}", label.title(),
                                 "student")
        clients[label], ids[label] = await _open_joined(new_client, base_url, token, label)
        await asyncio.gather(
            *(
                _wait_receiving(c, [pid for other, pid in ids.items() if other != name])
                for name, c in clients.items()
            )
        )
        await _assert_media_flowing(clients, ids)
        return ids[label]

    # A fourth page joins late.
    await join_late("dave")

    # Carol leaves through the leave button.
    carol = clients.pop("carol")
    carol_id = ids.pop("carol")
    carol_mids = {}
    for label, c in clients.items():
        subs = await c.page.evaluate("() => window.sfu.subscriptions()")
        carol_mids[label] = [s["mid"] for s in subs if s["participantId"] == carol_id]
        assert len(carol_mids[label]) == 2, (label, subs)

    await carol.page.click("#leave")
    await carol.page.wait_for_function(
        "() => window.sfu.state === 'left'", timeout=LEAVE_TIMEOUT_MS
    )
    assert await carol.page.is_visible("#left-panel")
    assert await carol.page.evaluate("() => window.sfu.remoteParticipants().length") == 0

    await asyncio.gather(
        *(
            c.page.wait_for_function(
                FORGOTTEN_JS,
                arg={"gone": carol_id, "mids": carol_mids[label]},
                timeout=LEAVE_TIMEOUT_MS,
                polling=POLL_MS,
            )
            for label, c in clients.items()
        )
    )

    # Carol's counters are frozen on every remaining page, the others still flow.
    async def carol_counters(label: str) -> dict[str, int]:
        stats = await clients[label].page.evaluate(COLLECT_INBOUND_JS)
        return {s["mid"]: s["packetsReceived"] for s in stats if s["mid"] in carol_mids[label]}

    frozen_before = {label: await carol_counters(label) for label in clients}
    await _assert_media_flowing(clients, ids)
    frozen_after = {label: await carol_counters(label) for label in clients}
    for label in clients:
        for mid, value in frozen_after[label].items():
            assert value == frozen_before[label].get(mid, value), (
                f"{label} still receives packets on carol's old m-line {mid}"
            )
    for label, c in clients.items():
        remotes = set(await c.page.evaluate("() => window.sfu.remoteParticipants()"))
        assert remotes == {pid for other, pid in ids.items() if other != label}, label

    # Erin joins after Carol left: the m-lines that carried Carol's tracks are recycled
    # for Erin's (the subscriber SDP stays bounded by the peak number of tracks), and
    # every page receives Erin's audio and video on them.
    erin_id = await join_late("erin")
    for label in carol_mids:
        subs = await clients[label].page.evaluate("() => window.sfu.subscriptions()")
        erin_mids = sorted(s["mid"] for s in subs if s["participantId"] == erin_id)
        assert erin_mids == sorted(carol_mids[label]), (label, subs)

    assert time.monotonic() - started < 75, "end-to-end run too slow"


async def test_dev_form_join(sfu_server: Any, new_client: ClientFactory) -> None:
    client = await new_client(sfu_server.base_url + "/", "form")
    page = client.page
    await page.wait_for_selector("#join-form", state="visible", timeout=JOIN_TIMEOUT_MS)
    # The identity field comes pre-filled with a random default.
    assert (await page.input_value("#join-identity")).strip()
    await page.fill("#join-room", _room())
    await page.fill("#join-name", "Form Student")
    await page.select_option("#join-role", "student")
    await page.click("#join-submit")
    await page.wait_for_function("() => window.sfu.state === 'joined'", timeout=JOIN_TIMEOUT_MS)
    pid = await client.participant_id()
    assert pid
    assert await page.is_hidden("#join-panel")
    assert await page.locator(f'.tile.local[data-participant-id="{pid}"]').count() == 1
    # The page publishes its fake camera and microphone.
    await page.wait_for_function(
        "() => window.sfu.publications().filter((p) => p.trackId).length === 2",
        timeout=JOIN_TIMEOUT_MS,
        polling=POLL_MS,
    )


def _forge(token: str) -> str:
    """A token with a valid shape whose signature does not verify."""
    parts = token.split(".")
    if len(parts) == 3:  # JWT: re-sign header.payload with the wrong key
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        sig = hmac.new(b"not-the-server-secret", signing_input, hashlib.sha256).digest()
        return f"{parts[0]}.{parts[1]}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    middle = len(token) // 2
    flipped = "A" if token[middle] != "A" else "B"
    return token[:middle] + flipped + token[middle + 1 :]


async def test_forged_token_shows_invalid_token(
    sfu_server: Any, new_client: ClientFactory, mint_token: Any
) -> None:
    good = await mint_token(_room(), "mallory", "Mallory", "instructor")
    forged = _forge(good)
    assert forged != good
    client = await new_client(f"{sfu_server.base_url}/?token={quote(forged)}", "forged")
    page = client.page
    await page.wait_for_function("() => window.sfu.state === 'error'", timeout=JOIN_TIMEOUT_MS)
    await page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('invalid_token')",
        timeout=JOIN_TIMEOUT_MS,
    )
    last_error = await page.evaluate("() => window.sfu.lastError")
    assert last_error["code"] == "invalid_token", last_error
    assert await page.evaluate("() => window.sfu.participantId") is None


async def test_mute_button_stops_the_others_receiving_and_unmute_resumes(
    sfu_server: Any, new_client: ClientFactory, mint_token: Any
) -> None:
    """Alice mutes her microphone with the button: Bob is told (track_muted) and stops
    receiving her audio while her video continues; unmuting brings her audio back."""
    room = _room()
    alice, alice_id = await _open_joined(
        new_client, sfu_server.base_url,
        await mint_token(room, f"alice-{secrets.token_hex(2)}", "Alice", "instructor"), "alice")
    bob, _ = await _open_joined(
        new_client, sfu_server.base_url,
        await mint_token(room, f"bob-{secrets.token_hex(2)}", "Bob", "student"), "bob")
    await _wait_receiving(bob, [alice_id])
    await alice.page.wait_for_function(
        "() => !document.querySelector('#toggle-mic').disabled", timeout=JOIN_TIMEOUT_MS)

    async def bob_from_alice() -> dict[str, int]:
        counters = await _media_counters(bob)
        return {kind: counters.get((alice_id, kind), 0) for kind in ("audio", "video")}

    await alice.page.click("#toggle-mic")
    await bob.page.wait_for_function(
        "(pid) => window.sfu.messages.some((m) => m.type === 'track_muted'"
        " && m.participantId === pid && m.muted === true)",
        arg=alice_id, timeout=JOIN_TIMEOUT_MS, polling=POLL_MS)
    await asyncio.sleep(0.5)  # packets already in flight when the mute landed
    muted_before = await bob_from_alice()
    await asyncio.sleep(SAMPLE_INTERVAL_S)
    muted_after = await bob_from_alice()
    assert muted_after["audio"] == muted_before["audio"], "audio still forwarded while muted"
    assert muted_after["video"] > muted_before["video"], "video must keep flowing"

    await alice.page.click("#toggle-mic")
    await bob.page.wait_for_function(
        "(pid) => window.sfu.messages.some((m) => m.type === 'track_muted'"
        " && m.participantId === pid && m.muted === false)",
        arg=alice_id, timeout=JOIN_TIMEOUT_MS, polling=POLL_MS)
    resumed_before = await bob_from_alice()
    await asyncio.sleep(SAMPLE_INTERVAL_S)
    resumed_after = await bob_from_alice()
    assert resumed_after["audio"] > resumed_before["audio"], "audio did not resume"
