"""Downlink bandwidth allocation for one subscriber: a target layer per video track (sans-IO).

Policy
------
* **Audio first, never paused.** Every audio demand gets layer 0; its bitrate (the sum of
  its available layers, or 40 kbps when unknown) is reserved before any video.
* **Budget** = estimate x ``headroom`` - audio.
* **Priority** of video: screen share before camera; instructor before student before
  observer; ties broken by ``track_id`` so the output is deterministic.
* **Fit** (in priority order): first every wanted track gets its lowest available layer
  while the budget allows; the first one that does not fit is paused and so is every track
  after it (strict priority: a cheap student camera never runs while the instructor's is
  paused). Then each running track, in priority order, is raised as high as the rest of
  the budget allows, up to its ``max_layer`` (greedy: a track whose next layer does not fit
  is passed over, a cheaper upgrade further down may still fit). Under a shrinking estimate
  students' cameras therefore step down first, then the instructor's camera, then the
  screen share; then students' cameras pause, then the instructor's camera, then the
  screen share. Resumes come back in priority order, and all before any upgrade. (Greedy
  upgrades are not monotonic: when the screen share steps down, the room it frees may
  lift a camera a layer; a higher-priority upgrade may likewise push a lower one down.)
* **Hysteresis.** Going down (a lower layer, or a pause) happens at once. Going up (a higher
  layer, or resuming a paused track) requires the upgraded allocation to fit in
  ``budget / up_margin`` continuously for ``up_hold_ms`` (``resume_hold_ms`` for a resume).
  A track that was not held back by bandwidth (new, newly wanted, bigger view, layer back)
  skips the hold but still needs the margin. A track held back by bandwidth climbs **one
  layer per hold** (a resume comes back on its lowest layer), so recovery is the reverse of
  the way down and each step tests the path before the next.
* **Anti-flap backoff.** When a track is forced down within 2 x the hold time of its last
  up-switch, its next hold doubles (capped at ``backoff_max_ms``); a forced down after
  ``stable_reset_ms`` at the upgraded layer resets it.

Layers with a bitrate of ``None`` are not available and never chosen. If none of a track's
available layers is <= ``max_layer``, its lowest available layer is used (a bigger picture
beats no picture). Bitrates are assumed to grow with the layer index.

The adapter calls :meth:`Allocator.allocate` on each estimate update or tick, and again at
:meth:`Allocator.get_timer` so a pending up-switch is not held longer than needed.
"""

from __future__ import annotations

from dataclasses import dataclass

#: bitrate reserved for an audio track whose bitrate is not known yet
AUDIO_DEFAULT_BPS = 40_000
_SOURCE_RANK = {"screen": 0, "camera": 1}
_ROLE_RANK = {"instructor": 0, "student": 1, "observer": 2}
_MAX_BACKOFF = 1 << 10


@dataclass(slots=True)
class TrackDemand:
    track_id: str
    kind: str  # "audio" | "video"
    source: str  # "microphone" | "camera" | "screen"
    publisher_role: str  # "instructor" | "student" | "observer"
    #: bps per layer, lowest first; None = layer not available now
    bitrates: list[int | None]
    #: highest layer the subscriber asked for (its view size); -1 = does not want video now
    max_layer: int


def _priority(d: TrackDemand) -> tuple[int, int, str]:
    return (_SOURCE_RANK.get(d.source, 2), _ROLE_RANK.get(d.publisher_role, 3), d.track_id)


def _choices(d: TrackDemand) -> tuple[int, ...]:
    """Layers the track may get, ascending: available and <= max_layer (see fallback)."""
    if d.max_layer < 0:
        return ()
    available = [i for i, b in enumerate(d.bitrates) if b is not None]
    allowed = tuple(i for i in available if i <= d.max_layer)
    if allowed or not available:
        return allowed
    return (available[0],)


def _cap(state: _TrackState | None, choices: tuple[int, ...]) -> int:
    if state is None:
        return -1
    layer = state.layer
    if layer < 0 or not choices or layer in choices:
        return layer
    below = [c for c in choices if c <= layer]
    return below[-1] if below else choices[0]


def _fit(
    budget: float, costs: list[list[int]], choices: list[tuple[int, ...]], caps: list[int]
) -> tuple[list[int], float]:
    """The priority-ordered fit (inputs already sorted); returns (layers, total cost)."""
    n = len(choices)
    out = [-1] * n
    left = budget
    for i in range(n):
        ch = choices[i]
        if ch and ch[0] <= caps[i]:
            cost = costs[i][ch[0]]
            if cost > left:
                break  # strict priority: nobody after a track that does not fit
            out[i] = ch[0]
            left -= cost
    for i in range(n):
        low = out[i]
        if low < 0:
            continue
        base = costs[i][low]
        cap = caps[i]
        for layer in reversed(choices[i]):
            if layer <= low:
                break
            if layer <= cap and costs[i][layer] - base <= left:
                out[i] = layer
                left -= costs[i][layer] - base
                break
    return out, budget - left


class _TrackState:
    __slots__ = (
        "layer",
        "limited",
        "paused_for_bandwidth",
        "pending_since_ms",
        "pending_wait_ms",
        "backoff",
        "last_up_ms",
        "last_up_hold_ms",
    )

    def __init__(self) -> None:
        self.layer = -1
        #: last allocation was below what the track asked for, for lack of bandwidth
        self.limited = False
        self.paused_for_bandwidth = False
        self.pending_since_ms: float | None = None
        self.pending_wait_ms = 0.0
        self.backoff = 1
        self.last_up_ms: float | None = None
        self.last_up_hold_ms = 0.0


class Allocator:
    """One per subscriber. ``allocate`` returns {track_id: target layer}; -1 = paused."""

    def __init__(
        self,
        *,
        up_margin: float = 1.25,
        up_hold_ms: float = 2000.0,
        resume_hold_ms: float = 3000.0,
        backoff_max_ms: float = 30000.0,
        headroom: float = 0.95,
        stable_reset_ms: float = 60000.0,
    ) -> None:
        if up_margin < 1.0 or not 0.0 < headroom <= 1.0:
            raise ValueError("up_margin must be >= 1 and headroom in (0, 1]")
        self.up_margin = up_margin
        self.up_hold_ms = up_hold_ms
        self.resume_hold_ms = resume_hold_ms
        self.backoff_max_ms = backoff_max_ms
        self.headroom = headroom
        self.stable_reset_ms = stable_reset_ms
        #: number of target changes of known video tracks (a new track's first is not one)
        self.changes = 0
        #: bps of the last allocation (audio reserve + chosen video layers)
        self.allocated_bps = 0
        self._tracks: dict[str, _TrackState] = {}

    def paused_for_bandwidth(self, track_id: str) -> bool:
        """Paused by the allocator although wanted (not: unwanted, or no layer arriving)."""
        state = self._tracks.get(track_id)
        return state is not None and state.paused_for_bandwidth

    def get_timer(self) -> float | None:
        """When the earliest pending up-switch may be applied (call ``allocate`` then)."""
        deadlines = [s.pending_since_ms + s.pending_wait_ms for s in self._tracks.values()
                     if s.pending_since_ms is not None]
        return min(deadlines) if deadlines else None

    def _hold_ms(self, state: _TrackState, resume: bool) -> float:
        base = self.resume_hold_ms if resume else self.up_hold_ms
        return min(base * state.backoff, max(base, self.backoff_max_ms))

    def allocate(self, estimate_bps: int, demands: list[TrackDemand], now_ms: float
                 ) -> dict[str, int]:
        result: dict[str, int] = {}
        audio_bps = 0
        video: list[TrackDemand] = []
        for d in demands:
            if d.kind == "audio":
                result[d.track_id] = 0
                audio_bps += sum(b for b in d.bitrates if b is not None) or AUDIO_DEFAULT_BPS
            elif d.kind == "video":
                video.append(d)
        budget = estimate_bps * self.headroom - audio_bps
        up_budget = budget / self.up_margin
        video.sort(key=_priority)
        choices = [_choices(d) for d in video]
        costs = [[b if b is not None else 0 for b in d.bitrates] for d in video]
        old = self._tracks
        states = [old.get(d.track_id) for d in video]
        # downs at once: nobody above the layer it has now, except that a track whose layer
        # stopped arriving may take the nearest available one (that is not a bandwidth
        # decision: pausing it would blank the picture until a resume hold passes)
        caps = [_cap(s, ch) for s, ch in zip(states, choices, strict=True)]
        layers, total = _fit(budget, costs, choices, caps)
        # where hysteresis-free allocation with the margin would put every track: upgrades
        # only move towards it, so they follow the policy's order (e.g. a paused student
        # resumes before the instructor's camera goes back up a layer)
        want, _ = _fit(up_budget, costs, choices, [ch[-1] if ch else -1 for ch in choices])
        for i in range(len(video)):
            state = states[i]
            if state is None:
                state = states[i] = _TrackState()
            up = None
            if want[i] > layers[i]:
                # a track held back by bandwidth climbs one layer at a time (a resume comes
                # back on the lowest layer): each step is a test of the path before the next
                up = self._upgrade(i, want, budget, up_budget, costs, choices, caps, layers,
                                   total, one_step=state.limited)
            if up is None:
                state.pending_since_ms = None
                continue
            resume = layers[i] < 0
            if state.limited:
                if state.pending_since_ms is None:
                    state.pending_since_ms = now_ms
                    state.pending_wait_ms = self._hold_ms(state, resume)
                if now_ms - state.pending_since_ms < state.pending_wait_ms:
                    continue
            state.pending_since_ms = None
            state.last_up_hold_ms = self._hold_ms(state, resume)
            caps, layers, total = up
        self._commit(video, states, choices, layers, now_ms)
        self.allocated_bps = int(total) + audio_bps
        for d, layer in zip(video, layers, strict=True):
            result[d.track_id] = layer
        return result

    def _upgrade(
        self, i: int, want: list[int], budget: float, up_budget: float, costs: list[list[int]],
        choices: list[tuple[int, ...]], caps: list[int], layers: list[int], total: float,
        one_step: bool = False,
    ) -> tuple[list[int], list[int], float] | None:
        """The highest raise of track ``i`` (up to ``want[i]``) whose whole allocation fits
        ``up_budget`` without lowering any track of higher priority; None if there is none.
        Lower-priority tracks are lowered towards ``want`` when that is what makes room.
        Returns (caps, layers, total) of that allocation."""
        n = len(layers)
        current = layers[i]
        # lower-priority tracks may be pushed down to make room: count them as free
        freeable = up_budget - total + sum(
            costs[j][layers[j]] for j in range(i + 1, n) if layers[j] >= 0
        )
        base = costs[i][current] if current >= 0 else 0
        best: tuple[list[int], list[int], float] | None = None
        for layer in choices[i]:
            if layer <= current:
                continue
            if layer > want[i] or costs[i][layer] - base > freeable:
                break
            trial_caps = caps.copy()
            trial_caps[i] = layer
            trial, trial_total = _fit(budget, costs, choices, trial_caps)
            if trial[i] == layer and trial_total > up_budget:
                for j in range(i + 1, n):
                    trial_caps[j] = min(trial_caps[j], want[j])
                trial, trial_total = _fit(budget, costs, choices, trial_caps)
            if trial[i] != layer or trial_total > up_budget:
                break
            if any(trial[j] < layers[j] for j in range(i)):
                break
            best = (trial_caps, trial, trial_total)
            if one_step:
                break
        return best

    def _commit(self, video: list[TrackDemand], states: list[_TrackState | None],
                choices: list[tuple[int, ...]], layers: list[int], now_ms: float) -> None:
        tracks: dict[str, _TrackState] = {}
        for d, state, ch, layer in zip(video, states, choices, layers, strict=True):
            assert state is not None
            previous = state.layer
            if d.track_id in self._tracks:  # a new track's first layer is no change
                if layer != previous:
                    self.changes += 1
                if layer > previous:
                    state.last_up_ms = now_ms  # (its hold was noted when it was applied)
                else:
                    kept = max((c for c in ch if c <= previous), default=-1)
                    if layer < kept:
                        self._forced_down(state, now_ms)
            ceiling = ch[-1] if ch else -1
            state.layer = layer
            state.limited = layer < ceiling
            state.paused_for_bandwidth = layer < 0 and ceiling >= 0
            if not state.limited:
                state.pending_since_ms = None
            tracks[d.track_id] = state
        self._tracks = tracks

    def _forced_down(self, state: _TrackState, now_ms: float) -> None:
        state.pending_since_ms = None
        if state.last_up_ms is None:
            return
        since_up = now_ms - state.last_up_ms
        if since_up < 2 * state.last_up_hold_ms:
            state.backoff = min(state.backoff * 2, _MAX_BACKOFF)
        elif since_up >= self.stable_reset_ms:
            state.backoff = 1
        state.last_up_ms = None  # one doubling per up-switch, however many steps down
