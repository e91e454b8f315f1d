"""Simulcast from a real Chromium publisher, adapted per subscriber to its downlink.

One instructor page publishes 1280x720 camera in three simulcast layers (320x180,
640x360, 1280x720). Two observer pages receive it: ``fast`` on the host, ``capped`` in
its own network namespace whose downlink (server → page) a token-bucket filter limits.

Acceptance (issue #4): under a cap between the low and the middle layer the capped page
decodes the low layer while the fast page keeps the top one; under a cap below the low
layer its video is paused (the page is told) and its audio carries on; after the cap is
lifted it climbs back to the top layer; across all of it the capped page's audio never
stalls for more than 200 ms at its interface, except within 1.5 s of a sudden cut, a
layer raise or the video's resumption (at most 300 ms there: the emulated link's queue
drops audio with the video until the server has the feedback to step down). Dynacast:
when the only subscriber of the top layer leaves, the publisher's top encoding is
switched off, and back on when a new subscriber wants it.

Timings are printed (and gathered by benches/simulcast_bench.py); the asserts are on
behaviour, with generous timeouts.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import playwright.async_api as playwright_async
import pytest
from browser_flags import CHROMIUM_PATH
from netns import NetNs
from two_networks import BROWSER_ARGS, media, open_page, until

from benches.server_process import ServerProcess

pytestmark = pytest.mark.e2e

TOP_WIDTH, LOW_WIDTH = 1280, 320
AUDIO_GAP_LIMIT_MS = 200
#: within REACTION_S of a sudden cut or a layer raise: the emulated link's FIFO (tbf, 100 ms
#: of queue) drops audio with the video until the server has the browser's feedback and
#: steps down (a per-subscriber pacer with audio first is the fix still to come, issue #4)
AUDIO_GAP_AT_CUT_LIMIT_MS = 300
OPUS_PT = 111  # the canonical payload type the server gives subscribers
#: gaps this soon after a sudden cut or a layer raise are also reported on their own
REACTION_S = 1.5

VIDEO_IN_JS = """
async () => {
  const pc = window.sfu && window.sfu.subscriberPc;
  if (!pc) return null;
  let out = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0)
      out = {width: s.frameWidth, frames: s.framesDecoded};
  });
  return out;
}
"""

# Samples the audio packetsReceived every 20 ms and keeps the longest time it did not move.
AUDIO_MONITOR_JS = """
() => {
  const m = window.__audioMonitor = {maxGapMs: 0, lastChange: performance.now(),
                                      last: -1, samples: 0, worstAt: 0, stop: false,
                                      t0: performance.now(), gaps: []};
  const tick = async () => {
    if (m.stop) return;
    const pc = window.sfu.subscriberPc;
    let packets = -1;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") packets = s.packetsReceived;
    });
    const now = performance.now();
    m.samples++;
    if (packets !== m.last) {
      const gap = now - m.lastChange;
      if (m.last >= 0 && gap > m.maxGapMs) { m.maxGapMs = gap; m.worstAt = now; }
      if (m.last >= 0 && gap > 100) m.gaps.push([Math.round(now - m.t0), Math.round(gap)]);
      m.last = packets;
      m.lastChange = now;
    }
    setTimeout(tick, 20);
  };
  tick();
}
"""
AUDIO_RESULT_JS = """
() => { const m = window.__audioMonitor; m.stop = true;
        const open = performance.now() - m.lastChange;
        return {maxGapMs: Math.max(m.maxGapMs, open), samples: m.samples, packets: m.last,
                gaps: m.gaps.slice(0, 20)}; }
"""

PUBLISHER_LAYERS_JS = """
async () => {
  const pc = window.sfu && window.sfu.publisherPc;
  if (!pc) return {};
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.rid)
      out[s.rid] = {active: s.active, frames: s.framesEncoded || 0, width: s.frameWidth || 0};
  });
  return out;
}
"""


async def test_capped_subscriber_steps_down_pauses_video_keeps_audio_and_recovers(
    netns: NetNs, shared_server: ServerProcess, browsers: tuple[Any, Any]
) -> None:
    host_browser, ns_browser = browsers
    port = shared_server.base_url.rsplit(":", 1)[1]
    room = "simulcast"

    def url(host: str, identity: str, role: str) -> str:
        token = shared_server.mint_token(room, identity, role=role)
        return f"http://{host}:{port}/?token={quote(token)}&video=1280x720"

    # a filter from the start (50 Mbit/s: no limit yet), so later caps only change its rate
    netns.shape(50_000)
    await open_page(host_browser, url("127.0.0.1", "teacher", "instructor"))
    fast = await open_page(host_browser, url("127.0.0.1", "fast", "observer"))
    capped = await open_page(ns_browser, url(netns.host_addr, "capped", "observer"))

    async def width(page: Any) -> int | None:
        v = await page.evaluate(VIDEO_IN_JS)
        return v["width"] if v else None

    async def trace() -> str:
        now = media(shared_server, room)
        return (f"fast={await width(fast)} capped={await width(capped)} "
                f"media={json.dumps(now)}")

    async def both_top() -> bool:
        return await width(fast) == TOP_WIDTH and await width(capped) == TOP_WIDTH

    await until("both subscribers on the top layer", both_top, 45, trace)
    layers = media(shared_server, room)["teacher"]["published"]
    video = next(t for t in layers if t["kind"] == "video")
    audio = next(t for t in layers if t["kind"] == "audio")
    # fixed caps, from the figures of Chromium's fake 720p camera on these machines: low
    # layer 60-150 kbit/s, middle 270-520 kbit/s, audio ~35 kbit/s of RTP plus ~21 kbit/s
    # of SRTP/UDP/IP/Ethernet overhead (50 packets/s): checked against fresh figures below.
    # The pause cap leaves the audio a third of headroom: at 60 kbit/s audio alone would
    # fill 92 % of the link, and any RTCP packet would queue it.
    cap_low_kbit, cap_pause_kbit = 250, 80
    await capped.evaluate(AUDIO_MONITOR_JS)
    netns.start_capture(OPUS_PT)
    probes: list[float] = []  # when the server raised the capped page's video layer
    watching = asyncio.ensure_future(_watch_upgrades(shared_server, room, "capped", probes))

    t0 = time.monotonic()
    cuts = [time.time()]  # wall clock, like the sniffer's kernel timestamps
    netns.shape(cap_low_kbit)
    t_low = await until(f"capped page on the low layer under {cap_low_kbit} kbit/s",
                         lambda: _eq(width(capped), LOW_WIDTH), 30, trace)
    assert await width(fast) == TOP_WIDTH, "the unconstrained subscriber was stepped down"

    video_id = video["trackId"]
    # the steady low-layer rate: the least of a few one-second figures, as a single one can
    # include a burst of the browser's bandwidth-probe padding on the lowest layer
    samples = []
    for _ in range(3):
        samples.append(next(t for t in media(shared_server, room)["teacher"]["published"]
                            if t["kind"] == "video")["layers"])
        await asyncio.sleep(0.7)
    fresh = min(samples, key=lambda layers: layers[0]["bitrate"])
    low, audio_bps = fresh[0]["bitrate"], audio["layers"][0]["bitrate"]
    assert low + audio_bps < cap_low_kbit * 900, f"low layer too thick for the cap: {fresh}"
    assert low + audio_bps > cap_pause_kbit * 1100, f"low layer too thin: {fresh}"
    # the second cut is an event of its own: cutting while the server is still trying a
    # layer raise (which the 250 kbit/s link cannot carry) would stack two transitions in
    # one window, a raise's queue overflow and then the cut's (a CI run of 2026-12-04: a
    # raise just before the cut, then a 311 ms audio gap), which no bound for one cut covers
    await until(f"no layer raise in the last {REACTION_S} s before the second cut",
                lambda: _quiet_since(probes, REACTION_S), 30, trace)
    t_cap2 = time.monotonic() - t0
    cuts.append(time.time())
    netns.shape(cap_pause_kbit)

    async def paused() -> bool:
        return video_id in await capped.evaluate("() => window.sfu.pausedTracks()")

    t_pause = await until("capped page told its video is paused", paused, 30, trace)
    before = await capped.evaluate("() => window.__audioMonitor.last")
    await asyncio.sleep(2)
    after = await capped.evaluate("() => window.__audioMonitor.last")
    assert after > before + 50, f"audio stopped while video was paused ({before} -> {after})"

    t_lift = time.monotonic() - t0
    netns.unshape()
    t_top = await until("capped page back on the top layer after the cap is lifted",
                         lambda: _eq(width(capped), TOP_WIDTH), 75, trace)
    audio_result = await capped.evaluate(AUDIO_RESULT_JS)
    arrivals = netns.stop_capture()
    watching.cancel()
    assert len(arrivals) > 50 * (t_lift + t_top) * 0.8, f"{len(arrivals)} audio packets"
    # Every gap counts: at most AUDIO_GAP_LIMIT_MS, except within REACTION_S of a sudden cut
    # (the bottleneck queue overflows until the server sees the browser's feedback and steps
    # down) or of a layer raise, where AUDIO_GAP_AT_CUT_LIMIT_MS holds; those are reported on
    # their own too, as the figures for the transitions (benches/simulcast_bench.py).
    events = cuts + probes
    gaps: list[tuple[float, float]] = []
    transition: list[tuple[float, float]] = []
    # longest gap within REACTION_S of: the cut to cap_low, the cut to cap_pause, a raise
    per_event = [0.0, 0.0, 0.0]
    for a, b in zip(arrivals, arrivals[1:], strict=False):
        gap = ((b - a) * 1000, a - arrivals[0])
        gaps.append(gap)
        near = [k for k, ev in enumerate(events) if a < ev + REACTION_S and b > ev]
        if near:
            transition.append(gap)
        for k in near:
            slot = min(k, 2)
            per_event[slot] = max(per_event[slot], gap[0])
    gaps.sort()
    transition.sort()
    wire_gap_ms = gaps[-1][0]
    cut_gap_ms = transition[-1][0] if transition else 0.0
    def worst(found: list[tuple[float, float]]) -> list[tuple[int, float]]:
        return [(round(g), round(at, 2)) for g, at in found[-3:]]

    print(f"audio at the page's interface: {len(arrivals)} packets; longest gaps [ms, at s] "
          f"{worst(gaps)}, of which within {REACTION_S} s of a cut or raise "
          f"{worst(transition)}")
    print(f"phases: cap2 at {t_cap2:.1f} s, lift at {t_lift:.1f} s; longest audio gap "
          f"within {REACTION_S} s of the cut to {cap_low_kbit} kbit/s {per_event[0]:.0f} ms, "
          f"of the cut to {cap_pause_kbit} kbit/s {per_event[1]:.0f} ms, of a layer raise "
          f"{per_event[2]:.0f} ms")
    print(f"simulcast figures: layers={[la['bitrate'] for la in fresh]} bps, "
          f"audio={audio_bps} bps, cap_low={cap_low_kbit} kbit/s -> low layer in "
          f"{t_low:.1f} s; cap {cap_pause_kbit} kbit/s -> paused in {t_pause:.1f} s; lifted "
          f"-> top layer in {t_top:.1f} s; longest audio gap at the interface {wire_gap_ms:.0f}"
          f" ms ({cut_gap_ms:.0f} ms within {REACTION_S} s of a cut or of one of "
          f"{len(probes)} layer raises); "
          f"{audio_result['maxGapMs']:.0f} ms in getStats sampling "
          f"({audio_result['samples']} samples; gaps > 100 ms at [ms since start, ms]: "
          f"{audio_result['gaps']})")
    steady_gaps = [g for g in gaps if g not in transition]
    steady_gap_ms = max(g for g, _ in steady_gaps) if steady_gaps else 0.0
    assert steady_gap_ms <= AUDIO_GAP_LIMIT_MS, (
        f"audio to the capped page stalled for {steady_gap_ms:.0f} ms, away from any cut")
    assert cut_gap_ms <= AUDIO_GAP_AT_CUT_LIMIT_MS, (
        f"audio to the capped page stalled for {cut_gap_ms:.0f} ms after a cut or a raise")
    assert audio_result["maxGapMs"] <= AUDIO_GAP_LIMIT_MS + 100, (
        f"audio packetsReceived did not move for {audio_result['maxGapMs']:.0f} ms")
    metrics = urllib.request.urlopen(
        shared_server.base_url.replace("0.0.0.0", "127.0.0.1") + "/metrics").read().decode()
    assert _metric(metrics, "sfu_bandwidth_pauses_total") >= 1
    assert _metric(metrics, "sfu_layer_switches_total") >= 2


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def _watch_upgrades(server: ServerProcess, room: str, identity: str,
                          out: list[float]) -> None:
    """Append the wall-clock time of every raise of ``identity``'s video target layer, and
    of every resumption of its video after a pause for bandwidth: both put more on the
    link at once."""
    last: int | None = None
    was_paused = False
    while True:
        subs = media(server, room).get(identity, {}).get("subscriptions", [])
        video = next((s for s in subs if s["kind"] == "video"), None)
        target = video["targetLayer"] if video is not None else None
        paused = bool(video and video.get("pausedForBandwidth"))
        if (target is not None and last is not None and target > last) or (
                was_paused and not paused):
            out.append(time.time() - 0.2)  # raised at most one poll ago
        last, was_paused = target, paused
        await asyncio.sleep(0.2)


async def _quiet_since(raises: list[float], seconds: float) -> bool:
    """No layer raise (wall-clock times) within the last ``seconds``."""
    return not raises or time.time() - raises[-1] > seconds


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


@pytest.fixture
async def plain_browser() -> AsyncIterator[Any]:
    async with playwright_async.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM_PATH, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_dynacast_switches_the_top_encoding_off_and_on(
    sfu_server: ServerProcess, plain_browser: Any
) -> None:
    room = "dynacast"

    def url(identity: str, role: str) -> str:
        token = sfu_server.mint_token(room, identity, role=role)
        return f"{sfu_server.base_url}/?token={quote(token)}&video=1280x720"

    pub = await open_page(plain_browser, url("teacher", "instructor"))
    thumb = await open_page(plain_browser, url("thumb", "observer"))
    big = await open_page(plain_browser, url("big", "observer"))

    async def width(page: Any) -> int | None:
        v = await page.evaluate(VIDEO_IN_JS)
        return v["width"] if v else None

    async def encodings() -> dict[str, Any]:
        return dict(await pub.evaluate(PUBLISHER_LAYERS_JS))

    async def trace() -> str:
        return (f"publisher encodings={await encodings()} thumb={await width(thumb)} "
                f"big={await width(big)} media={json.dumps(media(sfu_server, room))}")

    async def video_track_id(page: Any) -> str | None:
        subs = await page.evaluate("() => window.sfu.subscriptions()")
        return next((s["trackId"] for s in subs if s["kind"] == "video" and s["active"]),
                    None)

    await until("thumbnail subscribed", lambda: video_track_id(thumb), 20, trace)
    await thumb.evaluate("(id) => window.sfu.setQuality(id, 'low')", await video_track_id(thumb))

    async def settled() -> bool:
        enc = await encodings()
        return (await width(big) == TOP_WIDTH and await width(thumb) == LOW_WIDTH
                and enc.get("f", {}).get("active") is True
                and enc.get("q", {}).get("active") is True)

    await until("big on the top layer, thumbnail on the low one", settled, 45, trace)

    await big.context.close()  # the only subscriber of the top layer leaves

    async def top_off() -> bool:
        enc = await encodings()
        return enc.get("f", {}).get("active") is False and enc.get("q", {}).get("active") is True

    t_off = await until("publisher's top encoding switched off", top_off, 20, trace)
    frames = (await encodings())["f"]["frames"]
    await asyncio.sleep(1.0)
    assert (await encodings())["f"]["frames"] == frames, "top encoding still encodes"
    assert await width(thumb) == LOW_WIDTH

    late = await open_page(plain_browser, url("late", "observer"))

    async def top_back() -> bool:
        enc = await encodings()
        return enc.get("f", {}).get("active") is True and await width(late) == TOP_WIDTH

    t_on = await until("top encoding back on for a new subscriber", top_back, 30, trace)
    print(f"dynacast figures: top encoding off {t_off:.1f} s after its last subscriber left "
          f"(delay 3 s), back on and decoded at 1280 wide {t_on:.1f} s after a new one joined")
