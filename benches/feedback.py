"""What a browser's receiving side sends back, for the bench's browser-like subscribers:
transport-cc feedback every 100 ms, a receiver report every second, and a NACK for each
gap in a video stream (as Chromium: no NACK for audio).

The bench counts a subscriber's packets in its socket hook, before SRTP
(:func:`benches.measure.hook_transport`); the clear RTP header is all this needs, so
:meth:`ReceiverFeedback.on_packet` is called there with it. The per-SSRC sequence
trackers and the transport-cc recorder are the server's own (:data:`sfu.engine.ENGINE`:
compiled when built), so the harness pays what a browser would in C, not more Python.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from typing import Any

from sfu import rtcp
from sfu.codecs import EXT_TWCC
from sfu.engine import ENGINE
from sfu.rtp_header import extension_offset
from sfu.sdp import SessionDescription
from sfu.sequence import SequenceTracker

_HEAD = struct.Struct("!BBHII")
#: how often a browser sends transport-cc feedback and receiver reports
TWCC_INTERVAL_S = 0.1
RR_EVERY = 10  # feedback intervals


class ReceiverFeedback:
    """One subscriber connection's feedback: fed every received packet's clear header,
    sends on ``send_rtcp`` (the transport's, SRTCP-protected there) from :meth:`start` on;
    :meth:`learn` each offer the subscriber answers."""

    def __init__(self, send_rtcp: Any, audio_rate: int = 48000) -> None:
        self.send_rtcp = send_rtcp
        self.sender_ssrc = secrets.randbits(32) | 1
        #: the server's transport-cc extension id and video payload types (:meth:`learn`)
        self.twcc_ext_id = 0
        self.video_pts: set[int] = set()
        self.audio_rate = audio_rate
        self.recorder: Any = None
        self.trackers: dict[int, SequenceTracker] = {}
        self._media_ssrc = 0
        self.sent = {"twcc": 0, "rr": 0, "nack": 0, "nacked": 0}
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0

    def learn(self, offer: SessionDescription) -> None:
        """What the server's offer says: its transport-cc id, its video payload types."""
        for m in offer.media:
            for ext_id, uri in m.extmap.items():
                if uri == EXT_TWCC and not self.twcc_ext_id:
                    self.twcc_ext_id = ext_id
            if m.kind == "video":
                self.video_pts |= {int(pt) for pt in m.formats if pt.isdigit()}
        if self.twcc_ext_id and self.recorder is None:
            self.recorder = ENGINE.twcc_recorder()

    def on_packet(self, data: bytes, now_ms: float) -> None:
        b1 = data[1]
        _, _, seq, ts, ssrc = _HEAD.unpack_from(data)
        video = (b1 & 0x7F) in self.video_pts
        tracker = self.trackers.get(ssrc)
        if tracker is None:
            tracker = self.trackers[ssrc] = ENGINE.sequence_tracker(
                90000 if video else self.audio_rate)
            self._media_ssrc = ssrc
        tracker.update(seq, ts, now_ms)
        if video:
            missing = tracker.missing
            if missing:
                # (the tracker reports gaps of at most sfu.sequence.MAX_NACK_GAP: a longer
                # one is left to a keyframe, as a browser does)
                lost = [n & 0xFFFF for n in missing]
                if self.send_rtcp(rtcp.build_nack(self.sender_ssrc, ssrc, lost)):
                    self.sent["nack"] += 1
                    self.sent["nacked"] += len(lost)
        if self.recorder is not None and data[0] & 0x10:
            off = extension_offset(data, self.twcc_ext_id, 2)
            if off:
                self.recorder.on_packet((data[off] << 8) | data[off + 1], now_ms)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TWCC_INTERVAL_S)
            self.tick(time.monotonic() * 1000.0)

    def tick(self, now_ms: float) -> None:
        """One feedback interval: transport-cc feedback; every RR_EVERY-th, a report."""
        if self.recorder is not None and self._media_ssrc:
            for packet in self.recorder.build_feedback(self.sender_ssrc, self._media_ssrc,
                                                       now_ms):
                if self.send_rtcp(packet):
                    self.sent["twcc"] += 1
        self._ticks += 1
        if self._ticks % RR_EVERY == 0 and self.trackers:
            blocks = []
            for ssrc, tracker in list(self.trackers.items())[:31]:
                fraction, cumulative, highest, jitter = tracker.report_block()
                blocks.append(rtcp.ReportBlock(ssrc, fraction, cumulative, highest, jitter,
                                               0, 0))
            if self.send_rtcp(rtcp.build_rr(self.sender_ssrc, blocks)):
                self.sent["rr"] += 1
