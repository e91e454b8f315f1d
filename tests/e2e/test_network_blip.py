"""A participant's network blips; the lesson carries on without anyone rejoining by hand.

Two Chromium participants publish camera and microphone: ``anna`` on the host and ``ben`` in
his own network namespace. Everything between ben and the server is then dropped (a tc BPF
filter on the veth, both directions, no link-state change: the browser sees silence, as
behind a dead Wi-Fi access point).

Acceptance (issue #5): a cut of 8 s, then restored: anna never sees ben leave, media flows
again both ways (getStats counters move on both pages) and the event stream shows
reconnecting -> resumed. A cut of 25 s (longer than the 20 s window): ben leaves with reason
timeout, and his page says he was disconnected and offers to rejoin, which works.
Timings are printed (the time from restore to media is the figure of interest).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import pytest
from netns import NetNs
from two_networks import ZERO, Pair, api, until

from benches.server_process import ServerProcess

pytestmark = pytest.mark.e2e

SHORT_CUT_S = 8.0
LONG_CUT_S = 25.0

async def test_an_8_s_cut_resumes_and_a_25_s_cut_times_out(
    netns: NetNs, shared_server: ServerProcess, browsers: tuple[Any, Any]
) -> None:
    pair = await Pair(shared_server, netns, "blip").open(browsers)
    anna, ben, ben_id = pair.anna, pair.ben, pair.ben_id
    trace = pair.trace
    await pair.until_flowing("media both ways", {"anna": ZERO, "ben": ZERO}, 30)

    # -- 8 s: the grace window carries ben through ------------------------------------
    netns.cut()
    cut_at = time.monotonic()

    async def anna_sees_ben_reconnecting() -> bool:
        return ben_id in await anna.evaluate("() => window.sfu.reconnectingParticipants()")

    noticed = await until("anna's page shows ben reconnecting", anna_sees_ben_reconnecting,
                          SHORT_CUT_S, trace, every_s=0.1)
    await asyncio.sleep(SHORT_CUT_S - (time.monotonic() - cut_at))  # the cut itself
    before = await pair.counters()
    netns.restore()
    media_back = await pair.until_flowing("media both ways after the network is restored",
                                          before, 20)

    async def ben_resumed() -> bool:
        return bool(await ben.evaluate(
            "() => window.sfu.resumes >= 1 && window.sfu.state === 'joined'"))

    resumed = await until("ben's page resumed its session", ben_resumed, 20, trace,
                          every_s=0.1)
    assert ben_id in await anna.evaluate("() => window.sfu.remoteParticipants()")
    assert ben_id not in await anna.evaluate("() => window.sfu.reconnectingParticipants()")
    assert await ben.evaluate("() => window.sfu.participantId") == ben_id
    kinds = [e["type"] for e in pair.events()]
    assert kinds == ["participant.joined", "participant.reconnecting",
                     "participant.resumed"], kinds
    print(f"reconnect figures: 8 s cut noticed by the other page after {noticed:.1f} s; "
          f"after restore, media both ways in {media_back:.1f} s, session resumed in "
          f"{resumed:.1f} s")

    # -- 25 s: longer than the window (20 s): ben has left --------------------------------
    netns.cut()
    await asyncio.sleep(LONG_CUT_S)  # the cut itself
    netns.restore()

    async def ben_told_disconnected() -> bool:
        return bool(await ben.evaluate(
            "() => window.sfu.state === 'error' && !document.getElementById('rejoin').hidden"))

    await until("ben's page says he was disconnected and offers to rejoin",
                ben_told_disconnected, 30, trace)
    left = [e for e in pair.events() if e["type"] == "participant.left"]
    assert [e["data"]["reason"] for e in left] == ["timeout"]
    assert ben_id not in await anna.evaluate("() => window.sfu.remoteParticipants()")
    assert "disconnected" in (await ben.text_content("#left-title") or "").lower()

    await ben.click("#rejoin")
    await ben.wait_for_function("() => window.sfu.state === 'joined'", timeout=20_000)
    new_id = await ben.evaluate("() => window.sfu.participantId")
    assert new_id != ben_id
    await pair.until_flowing("media both ways after rejoining", {"anna": ZERO, "ben": ZERO}, 30)


async def test_a_cut_that_kills_the_media_path_restarts_ice_on_resume(
    netns: NetNs, shared_server: ServerProcess, browsers: tuple[Any, Any]
) -> None:
    """A 15 s cut in a room with a 40 s window: the server declares ben's media
    connections dead after 10 s of silence (media.transport_timeout_s); when the network
    is back, ben resumes, and a fresh subscriber transport (new offer) and an ICE restart
    of his publisher connection (new answer, new DTLS certificate) bring media back both
    ways. His track ids stay the same for anna, who never renegotiates a new track."""
    room = "restart"
    created = api(shared_server, "/api/rooms", {"name": room, "reconnectWindowS": 40})
    assert created["reconnectWindowS"] == 40

    pair = await Pair(shared_server, netns, room).open(browsers)
    anna, ben, ben_id = pair.anna, pair.ben, pair.ben_id

    async def ben_tracks_seen_by_anna() -> set[str]:
        subs = await anna.evaluate("() => window.sfu.subscriptions()")
        return {s["trackId"] for s in subs if s["participantId"] == ben_id and s["active"]}

    await pair.until_flowing("media both ways", {"anna": ZERO, "ben": ZERO}, 30)
    tracks_before = await ben_tracks_seen_by_anna()
    assert len(tracks_before) == 2

    netns.cut()
    await asyncio.sleep(15)  # the cut itself
    before = await pair.counters()
    netns.restore()
    media_back = await pair.until_flowing(
        "media both ways after the dead media path was replaced", before, 30)
    assert await ben.evaluate("() => window.sfu.participantId") == ben_id
    assert await ben.evaluate("() => window.sfu.iceRestarts") >= 1
    assert await ben_tracks_seen_by_anna() == tracks_before
    events = pair.events()
    kinds = [e["type"] for e in events if e["type"] != "participant.transport_failed"]
    assert kinds == ["participant.joined", "participant.reconnecting",
                     "participant.resumed"], kinds
    failed = {e["data"]["transport"] for e in events
              if e["type"] == "participant.transport_failed"}
    assert failed == {"publisher", "subscriber"}, events
    metrics = urllib.request.urlopen(
        shared_server.base_url.replace("0.0.0.0", "127.0.0.1") + "/metrics").read().decode()
    restarts = next(float(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("sfu_transport_restarts_total "))
    assert restarts >= 2, "both of ben's transports were replaced"
    print(f"restart figures: 15 s cut (media path dead), after restore media both ways in "
          f"{media_back:.1f} s")
