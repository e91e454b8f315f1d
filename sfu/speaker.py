"""Active speaker detection from the RFC 6464 audio level header extension (sans-IO).

Each audio packet carries one byte: ``V`` (0x80, the sender's voice activity flag, not
used: browsers' VAD flags are inconsistent) and the level in -dBov (0 = loudest,
127 = silence). A packet is *loud* when its level is under ``threshold_dbov``.

Per participant, loud time is summed over a sliding ``window_ms`` (ring of buckets). A
participant starts speaking when at least ``min_speaking_ms`` of the window was loud (one
packet or a cough is too short) and stops when less than a quarter of that remains (pauses
between words keep enough loud time in the window; about one window of silence ends it).
The loudness score is the window's average of how far each loud packet was above the
threshold, 0..1, so someone talking steadily outranks someone who just started.

Speaking time is credited from the first loud packet of the utterance to the last one,
not from detection to end of detection, so talk time is close to the real one.

``on_level`` runs per audio packet: dictionary lookup and arithmetic only. ``tick`` runs on
the control loop and returns the speaker list only when it changed.
"""

from __future__ import annotations

#: ring buckets per window
_BUCKETS = 10
#: a packet stands for the time since the previous one, at most this (longer: DTX or loss)
MAX_PACKET_MS = 60.0
#: duration assumed for a participant's first packet
FIRST_PACKET_MS = 20.0
#: speech ends when the window's loud time falls under this fraction of min_speaking_ms
STOP_FRACTION = 0.25
#: a listed speaker keeps its place ahead of another unless that one is this much louder
REORDER_RATIO = 1.2


class _Voice:
    __slots__ = (
        "loud",
        "energy",
        "head",
        "loud_sum",
        "energy_sum",
        "last_ms",
        "last_loud_ms",
        "run_start_ms",
        "speaking",
        "since_ms",
        "total_ms",
    )

    def __init__(self) -> None:
        self.loud = [0.0] * _BUCKETS  # loud ms per bucket
        self.energy = [0.0] * _BUCKETS  # loud ms x loudness (0..1) per bucket
        self.head = -1  # absolute index of the newest bucket
        self.loud_sum = 0.0
        self.energy_sum = 0.0
        self.last_ms: float | None = None
        self.last_loud_ms = -1e18
        self.run_start_ms = 0.0  # start of the current run of loud packets
        self.speaking = False
        self.since_ms = 0.0
        self.total_ms = 0.0


class ActiveSpeakerDetector:
    """Who is speaking in a room, loudest first, and for how long each participant spoke."""

    def __init__(
        self,
        *,
        interval_ms: float = 400.0,
        threshold_dbov: int = 50,
        min_speaking_ms: float = 200.0,
        window_ms: float = 1000.0,
        max_speakers: int = 3,
    ) -> None:
        if window_ms <= 0 or min_speaking_ms <= 0 or min_speaking_ms > window_ms:
            raise ValueError("need 0 < min_speaking_ms <= window_ms")
        self.interval_ms = interval_ms
        self.threshold_dbov = threshold_dbov
        self.min_speaking_ms = min_speaking_ms
        self.window_ms = window_ms
        self.max_speakers = max_speakers
        self._bucket_ms = window_ms / _BUCKETS
        self._stop_ms = min_speaking_ms * STOP_FRACTION
        # loud packets closer than this belong to one utterance (for crediting its start)
        self._gap_ms = window_ms / 2
        self._voices: dict[str, _Voice] = {}
        self._last_tick_ms: float | None = None
        self._last_ids: list[str] = []
        #: the last list returned by ``tick``
        self.speakers: list[tuple[str, float]] = []

    # -- per packet -------------------------------------------------------------------

    def on_level(self, participant_id: str, level_byte: int, now_ms: float) -> None:
        v = self._voices.get(participant_id)
        if v is None:
            v = self._voices[participant_id] = _Voice()
        last = v.last_ms
        if last is None:
            dt = FIRST_PACKET_MS
        else:
            dt = now_ms - last
            if dt > MAX_PACKET_MS:
                dt = MAX_PACKET_MS
            elif dt < 0.0:
                dt = 0.0  # reordered: no time of its own
        if last is None or now_ms > last:
            v.last_ms = now_ms
        bucket = int(now_ms // self._bucket_ms)
        if bucket > v.head:
            self._advance(v, bucket)
        level = level_byte & 0x7F
        threshold = self.threshold_dbov
        if level >= threshold or dt == 0.0:
            return
        i = v.head % _BUCKETS
        weighted = dt * (threshold - level) / threshold
        v.loud[i] += dt
        v.energy[i] += weighted
        v.loud_sum += dt
        v.energy_sum += weighted
        if now_ms - v.last_loud_ms > self._gap_ms:
            v.run_start_ms = now_ms - dt
        v.last_loud_ms = now_ms
        if not v.speaking and v.loud_sum >= self.min_speaking_ms:
            v.speaking = True
            v.since_ms = v.run_start_ms

    def _advance(self, v: _Voice, bucket: int) -> None:
        """Move the window to end at ``bucket``, forgetting buckets that fell out of it."""
        steps = bucket - v.head if v.head >= 0 else _BUCKETS
        loud, energy = v.loud, v.energy
        for k in range(1, min(steps, _BUCKETS) + 1):
            i = (v.head + k) % _BUCKETS
            loud[i] = 0.0
            energy[i] = 0.0
        v.head = bucket
        v.loud_sum = sum(loud)  # re-summed: no drift from adding and subtracting floats
        v.energy_sum = sum(energy)
        if v.speaking and v.loud_sum < self._stop_ms:
            v.speaking = False
            v.total_ms += max(0.0, v.last_loud_ms - v.since_ms)

    # -- periodic ---------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When ``tick`` will next evaluate (None: at the first call)."""
        return None if self._last_tick_ms is None else self._last_tick_ms + self.interval_ms

    def tick(self, now_ms: float) -> list[tuple[str, float]] | None:
        """The current speakers (id, loudness 0..1), loudest first, at most once per
        ``interval_ms`` and only when the set or the order changed; else None."""
        if self._last_tick_ms is not None and now_ms - self._last_tick_ms < self.interval_ms:
            return None
        self._last_tick_ms = now_ms
        bucket = int(now_ms // self._bucket_ms)
        scores: dict[str, float] = {}
        for pid, v in self._voices.items():
            if bucket > v.head:
                self._advance(v, bucket)
            if v.speaking:
                scores[pid] = min(1.0, v.energy_sum / self.window_ms)
        ids = self._order(scores)[: self.max_speakers]
        if ids == self._last_ids:
            return None
        self._last_ids = ids
        self.speakers = [(pid, scores[pid]) for pid in ids]
        return self.speakers

    def _order(self, scores: dict[str, float]) -> list[str]:
        """Loudest first; a pair keeps its previous order unless the one behind is now
        ``REORDER_RATIO`` louder (two people talking at once do not swap every tick)."""
        ids = sorted(scores, key=lambda pid: (-scores[pid], pid))
        previous = {pid: rank for rank, pid in enumerate(self._last_ids)}
        new_rank = len(previous)
        swapped = True
        while swapped:
            swapped = False
            for k in range(len(ids) - 1):
                a, b = ids[k], ids[k + 1]
                if (previous.get(b, new_rank) < previous.get(a, new_rank)
                        and scores[a] < scores[b] * REORDER_RATIO):
                    ids[k], ids[k + 1] = b, a
                    swapped = True
        return ids

    # -- engagement -------------------------------------------------------------------

    def speaking_ms(self, participant_id: str) -> float:
        """Accumulated speaking time, including the utterance in progress."""
        v = self._voices.get(participant_id)
        if v is None:
            return 0.0
        if v.speaking:
            return v.total_ms + max(0.0, v.last_loud_ms - v.since_ms)
        return v.total_ms

    def remove(self, participant_id: str) -> None:
        """Forget a participant (read ``speaking_ms`` first); the next tick drops it."""
        self._voices.pop(participant_id, None)
