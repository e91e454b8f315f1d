"""What a page receives, read from its subscriber connection's getStats (shared by the
browser tests)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

# Inbound streams of the subscriber connection, each mapped to the remote
# participant whose track its m-line currently carries (via the mid and the
# server offer's tracks list, which the client exposes as sfu.subscriptions()).
COLLECT_INBOUND_JS = """
async () => {
  const sfu = window.sfu;
  const pc = sfu && sfu.subscriberPc;
  if (!pc || pc.connectionState === "closed") return [];
  const subs = new Map(sfu.subscriptions().map((s) => [s.mid, s]));
  const midByTrack = new Map();
  for (const t of pc.getTransceivers()) {
    if (t.mid != null) midByTrack.set(t.receiver.track.id, t.mid);
  }
  const report = await pc.getStats();
  const out = [];
  report.forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    const mid = r.mid ?? midByTrack.get(r.trackIdentifier) ?? null;
    const sub = mid != null ? subs.get(mid) : undefined;
    out.push({
      mid,
      kind: r.kind,
      participantId: sub && sub.active ? sub.participantId : null,
      direction: sub ? sub.direction : null,
      framesDecoded: r.framesDecoded || 0,
      packetsReceived: r.packetsReceived || 0,
    });
  });
  return out;
}
"""

# True once, for every expected remote participant, the page shows a tile whose
# <video> carries one live audio and one live video track, and decodes both.
RECEIVING_FROM_JS = (
    """
async (expected) => {
  const sfu = window.sfu;
  if (!sfu || sfu.state !== "joined") return false;
  const inbound = await ("""
    + COLLECT_INBOUND_JS
    + """)();
  for (const pid of expected) {
    const tile = document.querySelector(`.tile.remote[data-participant-id="${pid}"]`);
    const stream = tile && tile.querySelector("video").srcObject;
    if (!stream) return false;
    const live = stream.getTracks().filter((t) => t.readyState === "live");
    if (live.filter((t) => t.kind === "audio").length !== 1) return false;
    if (live.filter((t) => t.kind === "video").length !== 1) return false;
    const mine = inbound.filter((s) => s.participantId === pid);
    if (!mine.some((s) => s.kind === "audio" && s.packetsReceived > 0)) return false;
    if (!mine.some((s) => s.kind === "video" && s.framesDecoded > 0)) return false;
  }
  return true;
}
"""
)

__all__ = ["COLLECT_INBOUND_JS", "RECEIVING_FROM_JS", "wait_async"]


async def wait_async(page: Any, js: str, arg: Any, timeout_ms: int, poll_s: float = 0.25
                     ) -> None:
    """Like ``page.wait_for_function`` for an *async* predicate.

    ``wait_for_function`` does not await a returned promise (a promise is truthy),
    and ``getStats()`` is async, so poll with ``evaluate``, which does.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while not await page.evaluate(js, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"predicate still false after {timeout_ms} ms")
        await asyncio.sleep(poll_s)
