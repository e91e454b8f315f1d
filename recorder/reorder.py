"""Puts one RTP stream back in sequence order for the recorder, sans-IO.

Packets reach a recorder mostly in order; a retransmission (the SFU NACKs the publisher, or
the recorder NACKs the SFU's cache) arrives late. :class:`ReorderBuffer` holds packets that
come after a gap until the gap fills, and gives up on it after ``max_delay_ms`` (by arrival
time of the oldest packet waiting) or when ``max_packets`` wait: then the missing sequence
numbers are counted as lost and the next packet is released with ``gap=True``, so the
depacketizer knows a frame may be broken.

Fed ``(seq, packet, now_ms)``; returns what is released, in order. ``missing()`` says which
sequence numbers are waited for (to NACK them); ``poll(now_ms)`` releases on a timeout when
nothing arrives; ``flush()`` releases everything at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_MOD = 1 << 16
HALF = 1 << 15
GIVEN_UP_KEPT = 1024


@dataclass(slots=True)
class Released:
    ext_seq: int
    packet: bytes
    #: packets were lost right before this one
    gap: bool


class ReorderBuffer:
    def __init__(self, max_delay_ms: float = 500.0, max_packets: int = 512) -> None:
        self.max_delay_ms = max_delay_ms
        self.max_packets = max_packets
        self._held: dict[int, tuple[bytes, float]] = {}
        self._next: int | None = None  # extended seq to release next
        self._highest = -1
        self.lost = 0  # sequence numbers given up on
        self.late = 0  # packets that came after their gap was given up (not released)
        self.duplicates = 0  # packets already released or held
        #: the last sequence numbers given up on, to tell a late packet from a repeat
        self._given_up: dict[int, None] = {}

    def _extend(self, seq: int) -> int:
        if self._highest < 0:
            return seq
        base = self._highest & ~(SEQ_MOD - 1)
        ext = base | seq
        if ext - self._highest > HALF:
            ext -= SEQ_MOD
        elif self._highest - ext > HALF:
            ext += SEQ_MOD
        return ext

    def push(self, seq: int, packet: bytes, now_ms: float) -> list[Released]:
        ext = self._extend(seq)
        if self._next is None:
            self._next = ext
        if ext < self._next:
            if self._given_up.pop(ext, 0) is None:
                self.late += 1
            else:
                self.duplicates += 1
            return []
        if ext in self._held:
            self.duplicates += 1
            return []
        self._held[ext] = (packet, now_ms)
        if ext > self._highest:
            self._highest = ext
        return self._release(now_ms)

    def poll(self, now_ms: float) -> list[Released]:
        return self._release(now_ms) if self._held else []

    def flush(self) -> list[Released]:
        return self._release(float("inf"), give_up=True)

    def missing(self) -> list[int]:
        """The sequence numbers (16-bit) waited for, oldest first (at most 64)."""
        if self._next is None or not self._held:
            return []
        out = []
        for ext in range(self._next, min(self._highest, self._next + 64)):
            if ext not in self._held:
                out.append(ext & 0xFFFF)
        return out

    def _release(self, now_ms: float, give_up: bool = False) -> list[Released]:
        out: list[Released] = []
        held = self._held
        if self._next is None:
            return out  # nothing ever came
        gap = False
        while held:
            item = held.pop(self._next, None)
            if item is not None:
                out.append(Released(self._next, item[0], gap))
                gap = False
                self._next += 1
                continue
            oldest = min(held)
            waited = now_ms - held[oldest][1]
            if give_up or waited >= self.max_delay_ms or len(held) >= self.max_packets:
                self.lost += oldest - self._next
                for ext in range(max(self._next, oldest - GIVEN_UP_KEPT), oldest):
                    self._given_up[ext] = None
                while len(self._given_up) > GIVEN_UP_KEPT:
                    del self._given_up[next(iter(self._given_up))]
                self._next = oldest
                gap = True
                continue
            break
        return out
