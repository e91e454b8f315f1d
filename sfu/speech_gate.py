"""Audio by speech (sans-IO): which microphones a room forwards, decided per packet.

A classroom's audio fan-out is its largest packet count (31 microphones x 30 listeners x 50
packets/s). The room forwards the instructor's microphone always, plus at most ``slots``
other microphones (default 3, per room) while their owners speak; every other packet of a
student's microphone is dropped at the published track, before the fan-out. Listeners see
no loss: when a microphone's gate opens again, each subscription's forwarder resyncs, so
its output sequence numbers continue where they stopped and its timestamps advance by the
time that passed (``sfu.forwarder``), as after Opus DTX.

Two parts:

- the **gate**, per gated track, run on every packet (:func:`gate_step`; the compiled
  ingress step has the same logic in C, on the same field names of its ``sfu_track``). A
  packet is *loud* when its RFC 6464 level is under ``gate_threshold`` (-dBov; a packet
  without the extension counts as silent). An open gate forwards until ``gate_hold_ms``
  passed without a loud packet (pauses between words do not close it), then closes and
  drops. A closed gate drops silent packets and *asks* (:data:`ASK`) on a loud one;

- the **selection**, per room (:class:`SpeechSelection`), answering that question at once,
  for the very packet that asked, so that a speaker's first loud packet is forwarded (no
  clipped onset while a slot is free). It grants while fewer than ``slots`` other gates
  are open; else it takes the slot of the holder that has been quiet the longest, if that
  one is in a pause (``pause_ms``); else it takes the slot of the holder ranked lowest by
  the active-speaker detector if the asker ranks above it (the N loudest); else refuses
  (the packet is dropped, and the next loud one asks again).

Talk time is unaffected: the detector (``sfu.speaker``) is fed every microphone's levels,
forwarded or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: what :func:`gate_step` returns
FORWARD = 0
SUPPRESS = 1
ASK = 2
#: level byte of a packet without the RFC 6464 extension: silent
NO_LEVEL = 127

DEFAULT_SLOTS = 3
DEFAULT_THRESHOLD_DBOV = 50
#: an open gate stays open this long after the last loud packet (the tail of a word and
#: the pause before the next one)
DEFAULT_HOLD_MS = 800.0
#: a holder quiet this long gives its slot to a new speaker at once
DEFAULT_PAUSE_MS = 250.0


@dataclass(frozen=True, slots=True)
class SpeechPolicy:
    """A server's defaults (``[rooms]`` of the configuration); ``slots`` per room too."""

    #: microphones forwarded besides the instructor's, by speech (0: every microphone)
    slots: int = DEFAULT_SLOTS
    threshold_dbov: int = DEFAULT_THRESHOLD_DBOV
    hold_ms: float = DEFAULT_HOLD_MS


class GateState:
    """A gated track's fields in Python. With the compiled ingress step they live in the
    track's C ``sfu_track`` (same names)."""

    __slots__ = ("gate", "gate_open", "gate_threshold", "gate_hold_ms", "gate_last_loud_ms",
                 "gate_suppressed")

    def __init__(self) -> None:
        self.gate = 0
        self.gate_open = 0
        self.gate_threshold = DEFAULT_THRESHOLD_DBOV
        self.gate_hold_ms = DEFAULT_HOLD_MS
        self.gate_last_loud_ms = -1e12
        self.gate_suppressed = 0


def configure(g: Any, *, threshold_dbov: int, hold_ms: float) -> None:
    """Turn gating on for a track (closed until its first loud packet)."""
    g.gate_threshold = threshold_dbov
    g.gate_hold_ms = hold_ms
    g.gate_last_loud_ms = -1e12
    g.gate_open = 0
    g.gate = 1


def gate_step(g: Any, level_byte: int, now_ms: float) -> int:
    """One packet of a gated track: FORWARD, SUPPRESS (counted) or ASK the selection."""
    loud = (level_byte & 0x7F) < g.gate_threshold
    if loud:
        g.gate_last_loud_ms = now_ms
    if g.gate_open:
        if loud or now_ms - g.gate_last_loud_ms <= g.gate_hold_ms:
            return FORWARD
        g.gate_open = 0
    if loud:
        return ASK
    g.gate_suppressed += 1
    return SUPPRESS


class _Entry:
    __slots__ = ("participant_id", "gate")

    def __init__(self, participant_id: str, gate: Any) -> None:
        self.participant_id = participant_id
        self.gate = gate


class SpeechSelection:
    """The room's speech slots: which gated microphones may be forwarded now."""

    def __init__(self, slots: int = DEFAULT_SLOTS, *, pause_ms: float = DEFAULT_PAUSE_MS
                 ) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1 (0 means: do not gate, so no selection)")
        self.slots = slots
        self.pause_ms = pause_ms
        self._entries: dict[str, _Entry] = {}
        #: granted asks, by why: a free slot, a holder's pause, the detector's ranking
        self.granted = {"free": 0, "pause": 0, "louder": 0}
        #: asks refused (all slots held by people speaking, none ranked below the asker)
        self.refused = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: str, participant_id: str, gate: Any) -> None:
        self._entries[key] = _Entry(participant_id, gate)

    def remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.gate.gate_open = 0

    def open_keys(self) -> list[str]:
        return [k for k, e in self._entries.items() if e.gate.gate_open]

    def ask(self, key: str, now_ms: float, ranked: Sequence[str] = ()) -> bool:
        """A closed gate's loud packet: open it now (True) or not. ``ranked``: the active
        speakers' participant ids, loudest first (``sfu.speaker``)."""
        asker = self._entries.get(key)
        if asker is None:
            return False
        holders = [e for k, e in self._entries.items() if e.gate.gate_open and k != key]
        why = "free"
        if len(holders) >= self.slots:
            quiet = min(holders, key=lambda e: e.gate.gate_last_loud_ms)
            if now_ms - quiet.gate.gate_last_loud_ms >= self.pause_ms:
                victim, why = quiet, "pause"
            else:
                rank = {pid: i for i, pid in enumerate(ranked)}
                mine = rank.get(asker.participant_id)
                lowest = max(holders, key=lambda e: (rank.get(e.participant_id, len(rank)),
                                                     -e.gate.gate_last_loud_ms))
                if mine is None or rank.get(lowest.participant_id, len(rank)) <= mine:
                    self.refused += 1
                    return False
                victim, why = lowest, "louder"
            victim.gate.gate_open = 0
        self.granted[why] += 1
        asker.gate.gate_open = 1
        return True
