"""Audio by speech in real browsers (issue #24): four Chromium pages in one room; three
students speak in turns (espeak-ng sentences as their fake microphones, each in its own
browser process, since the fake-capture file is a browser flag), the instructor's page
listens.

What a listener would notice, and what the server says:

- every student's speech reaches the listener whole: per student, the time the listener's
  received audio is loud matches the time the student's own microphone was loud (its
  ``media-source`` stats), so no word onset was clipped at a speaker change; the delay
  from a sentence's start at the speaker to its start at the listener is reported;
- no loss: the listener's ``inbound-rtp`` reports no lost packet on any student's audio
  although most of their packets (the silences) were never sent to it;
- the server counts the silent packets it did not forward
  (``sfu_audio_suppressed_packets_total``) and an opening per sentence
  (``sfu_audio_speech_gate_opens_total``).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import playwright.async_api as playwright_async
import pytest
from browser_flags import CHROMIUM_ARGS, CHROMIUM_PATH
from fake_microphone import SPEAKER_SAMPLER, STOP_SAMPLER, microphone_file

from benches.server_process import ServerProcess
from tests.integration.sfu_harness import parse_metrics

pytestmark = pytest.mark.e2e

SENTENCES = {
    "sara": "Good morning. I think the answer is three quarters.",
    "tom": "Could you explain the second example again, please?",
    "ula": "We measured the angle and it was forty five degrees.",
}
#: each student's file: this much silence, the sentence, silence up to LOOP_S (it loops): turns
LEAD_S = {"sara": 0.3, "tom": 4.1, "ula": 7.9}
LOOP_S = 12.0
#: how long the pages' audio is sampled once everyone receives everyone
MEASURE_S = 14.0
#: mean power (ΔtotalAudioEnergy / ΔtotalSamplesDuration) above which a 100 ms interval is
#: speech: -40 dBFS (the server's gate opens at -50 dBov)
LOUD_POWER = 1e-4

LISTENER_SAMPLER = """
() => {
  window.__audio = [];
  window.__sampler = setInterval(async () => {
    const pc = window.sfu.subscriberPc;
    if (!pc) return;
    const owner = new Map(window.sfu.subscriptions().map((s) => [s.mid, s.participantId]));
    const report = await pc.getStats();
    const row = {t: Date.now(), tracks: {}};
    report.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
      const pid = owner.get(r.mid);
      if (!pid) return;
      row.tracks[pid] = {e: r.totalAudioEnergy || 0, d: r.totalSamplesDuration || 0,
        received: r.packetsReceived || 0, lost: r.packetsLost || 0,
        concealed: r.concealedSamples || 0, silentConcealed: r.silentConcealedSamples || 0,
        samples: r.totalSamplesReceived || 0};
    });
    window.__audio.push(row);
  }, 100);
}
"""

def speech_file(directory: Path, name: str) -> Path:
    """The student's fake microphone: a spoken sentence at 48 kHz in a 12-second loop."""
    path, _ = microphone_file(directory, name, [SENTENCES[name]], lead_s=LEAD_S[name],
                              total_s=LOOP_S, words_per_minute=170)
    return path


def loud_spans(samples: list[tuple[float, float, float]]) -> list[tuple[float, float]]:
    """(start ms, end ms) of the runs of loud 100 ms intervals in (t, energy, duration)."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    for (t0, e0, d0), (t1, e1, d1) in zip(samples, samples[1:]):
        loud = d1 > d0 and (e1 - e0) / (d1 - d0) > LOUD_POWER
        if loud and start is None:
            start = t0
        elif not loud and start is not None:
            spans.append((start, t0))
            start = None
    if start is not None:
        spans.append((start, samples[-1][0]))
    return spans


def loud_seconds(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in spans) / 1000.0


def metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=5) as resp:
        found = parse_metrics(resp.read().decode())
    return sum(v for (n, _), v in found.items() if n == name)


async def test_students_heard_whole_while_silences_are_not_forwarded(
        sfu_server: ServerProcess, tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng missing: scripts/setup.sh --test installs it")
    room = "speech-e2e"
    files = {name: speech_file(tmp_path, name) for name in SENTENCES}
    args = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
    video = "&video=320x180&simulcast=0"

    def url(identity: str, role: str) -> str:
        token = sfu_server.mint_token(room, identity, identity, role=role)
        return f"{sfu_server.base_url}/?token={quote(token)}{video}"

    async with playwright_async.async_playwright() as pw:
        browsers: list[Any] = []
        try:
            pages: dict[str, Any] = {}
            for name in ["teacher", *SENTENCES]:
                flags = args if name == "teacher" else [
                    *args, f"--use-file-for-fake-audio-capture={files[name]}"]
                browser = await pw.chromium.launch(executable_path=CHROMIUM_PATH, args=flags)
                browsers.append(browser)
                context = await browser.new_context(permissions=["camera", "microphone"])
                page = await context.new_page()
                await page.goto(url(name, "instructor" if name == "teacher" else "student"))
                pages[name] = page
            for page in pages.values():
                await page.wait_for_function(
                    "() => window.sfu && window.sfu.state === 'joined'", timeout=20_000)
            ids = {name: await page.evaluate("() => window.sfu.participantId")
                   for name, page in pages.items()}
            listener = pages["teacher"]
            # the teacher subscribes to every student's microphone
            await listener.wait_for_function(
                """(want) => want.every((pid) => window.sfu.subscriptions().some(
                     (s) => s.participantId === pid && s.kind === "audio" && s.active))""",
                arg=[ids[n] for n in SENTENCES], timeout=20_000)
            suppressed_before = metric(sfu_server, "sfu_audio_suppressed_packets_total")
            opens_before = metric(sfu_server, "sfu_audio_speech_gate_opens_total")
            for name in SENTENCES:
                await pages[name].evaluate(SPEAKER_SAMPLER)
            await listener.evaluate(LISTENER_SAMPLER)
            # sampled for a fixed stretch of the lesson: the measurement window, not a wait
            await asyncio.sleep(MEASURE_S)
            heard = await listener.evaluate(STOP_SAMPLER)
            spoken = {name: await pages[name].evaluate(STOP_SAMPLER) for name in SENTENCES}
            suppressed = (metric(sfu_server, "sfu_audio_suppressed_packets_total")
                          - suppressed_before)
            opens = metric(sfu_server, "sfu_audio_speech_gate_opens_total") - opens_before
        finally:
            for browser in browsers:
                await browser.close()

    lo = max(heard[0]["t"], *(s[0]["t"] for s in spoken.values())) + 300
    hi = min(heard[-1]["t"], *(s[-1]["t"] for s in spoken.values())) - 300
    report: list[str] = []
    delays: list[float] = []
    for name in SENTENCES:
        pid = ids[name]
        sent = [(r["t"], r["e"], r["d"]) for r in spoken[name]]
        rows = [r for r in heard if pid in r["tracks"]]
        got = [(r["t"], r["tracks"][pid]["e"], r["tracks"][pid]["d"]) for r in rows]
        first, last = rows[0]["tracks"][pid], rows[-1]["tracks"][pid]
        sent_spans, got_spans = loud_spans(sent), loud_spans(got)
        s_loud, g_loud = loud_seconds(sent_spans, lo, hi), loud_seconds(got_spans, lo, hi)
        for a, _ in sent_spans:
            later = [b for b, _ in got_spans if a - 150 <= b <= a + 1500]
            if lo <= a <= hi - 1500 and later:
                delays.append(later[0] - a)
        packets_sent = spoken[name][-1]["sent"] - spoken[name][0]["sent"]
        packets_got = last["received"] - first["received"]
        audible_concealed = ((last["concealed"] - first["concealed"])
                             - (last["silentConcealed"] - first["silentConcealed"]))
        samples = last["samples"] - first["samples"]
        report.append(
            f"{name}: spoke {s_loud:.1f} s, heard {g_loud:.1f} s; packets sent {packets_sent}, "
            f"received {packets_got}; lost {last['lost']}; audible concealment "
            f"{audible_concealed / max(1, samples):.2%}")
        # each student spoke in the window, and the listener heard it all
        assert s_loud >= 1.5, report
        assert g_loud >= 0.85 * s_loud - 0.2, report
        assert g_loud <= 1.2 * s_loud + 0.5, report
        # listeners see no loss although the silences were not sent to them
        assert last["lost"] == 0, report
        assert packets_got < 0.8 * packets_sent, report
    print("\n".join(report))
    print(f"onset delay speaker -> listener (ms, 100 ms sampling): median "
          f"{statistics.median(delays):.0f}, max {max(delays):.0f} over {len(delays)} sentences")
    print(f"server: {suppressed:.0f} microphone packets not forwarded, {opens:.0f} openings")
    assert delays, "no sentence start seen at both ends"
    assert statistics.median(delays) < 400, delays
    assert suppressed > 0.3 * 3 * 50 * MEASURE_S  # most of three students' silences
    assert opens >= 3
