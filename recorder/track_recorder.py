"""One recorded track, sans-IO: RTP packets in (as the SFU forwards them to the recorder),
a WebM byte stream out, and an account of every packet.

Pipeline: :class:`~recorder.reorder.ReorderBuffer` → depacketizer → :class:`~recorder.
container.TrackFile`. The recorder asks the SFU for what it lacks through two callbacks:
``nack(seqs)`` for sequence numbers it waits for (the SFU resends them from its cache) and
``keyframe()`` when video can only go on from a keyframe (the start, or after a loss).

Accounting (docs/recording.md): every packet handed in is written (its payload is in a
muxed frame), empty (padding: no payload) or dropped with a reason, so ``packets_in ==
packets_written + packets_empty + sum(dropped.values()) + held`` at any time, and ``held
== 0`` after :meth:`close`. A session with nothing lost ends with ``packets_in ==
packets_written + packets_empty``.
"""

from __future__ import annotations

from collections.abc import Callable

from .container import TrackFile
from .depacketize import Depacketizer, depacketizer
from .reorder import Released, ReorderBuffer

NACK_EVERY_MS = 40.0


class TrackRecorder:
    def __init__(self, *, kind: str, codec: str, sink: Callable[[bytes], None],
                 nack: Callable[[list[int]], None] | None = None,
                 keyframe: Callable[[], None] | None = None,
                 max_delay_ms: float = 500.0) -> None:
        dep = depacketizer(codec)
        if dep is None:
            raise ValueError(f"cannot record {codec}")
        self.kind = kind
        self.codec = codec
        self.depacketizer: Depacketizer = dep
        self.file = TrackFile(sink, kind, codec)
        self.reorder = ReorderBuffer(max_delay_ms=max_delay_ms)
        self._nack = nack
        self._keyframe = keyframe
        self._last_nack_ms = -1e18
        self.packets_in = 0
        self.packets_written = 0
        #: packets of frames before the file could start (a keyframe without its size)
        self.unstarted = 0
        self.closed = False

    @property
    def dropped(self) -> dict[str, int]:
        """Packets not written, by reason."""
        r = self.reorder
        return {"late": r.late, "duplicate": r.duplicates,
                "undecodable": self.depacketizer.packets_dropped + self.unstarted}

    @property
    def packets_empty(self) -> int:
        """Packets without payload (padding): nothing to write, nothing lost."""
        return self.depacketizer.packets_empty

    @property
    def held(self) -> int:
        return (self.packets_in - self.packets_written - self.packets_empty
                - sum(self.dropped.values()))

    def on_rtp(self, packet: bytes, now_ms: float) -> None:
        if self.closed or len(packet) < 12:
            return
        self.packets_in += 1
        seq = (packet[2] << 8) | packet[3]
        self._take(self.reorder.push(seq, packet, now_ms))
        self.poll(now_ms, released=False)

    def poll(self, now_ms: float, released: bool = True) -> None:
        """Timeouts (a gap given up), NACKs for what is missing, and keyframe requests."""
        if released:
            self._take(self.reorder.poll(now_ms))
        if self._nack is not None and now_ms - self._last_nack_ms >= NACK_EVERY_MS:
            missing = self.reorder.missing()
            if missing:
                self._last_nack_ms = now_ms
                self._nack(missing)
        if self.depacketizer.wants_keyframe and self._keyframe is not None:
            self._keyframe()  # the SFU throttles these per layer

    def _take(self, released: list[Released]) -> None:
        for r in released:
            for frame in self.depacketizer.push(r.packet, r.gap):
                if self.file.write(frame):
                    self.packets_written += frame.packets
                else:
                    self.unstarted += frame.packets

    def close(self) -> None:
        """Release everything held (gaps given up), drop a half frame, end the file."""
        if self.closed:
            return
        self._take(self.reorder.flush())
        self.depacketizer.flush()
        self.file.close()
        self.closed = True
