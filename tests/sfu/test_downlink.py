"""The downlink controller re-allocates at once on a sharp drop of the estimate, and only
then: a transport-cc feedback while the estimator is still in its start phase (no overuse
or loss seen yet, the estimate "unlimited" for allocation) is no drop. (Found with the
browser-like bench clients: every feedback re-ran the allocation, 10 times a second per
subscriber, about a tenth of the server's CPU.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sfu.downlink import UNLIMITED_BPS, DownlinkController


class Estimator:
    def __init__(self) -> None:
        self.in_start_phase = True
        self.bps = 1_000_000

    def on_twcc(self, feedback: Any, history: Any, t: float) -> None:
        pass

    def estimate_bps(self, t: float) -> int:
        return self.bps


#: a subscription not negotiated yet (what allocation skips), enough to run it
SUB = {"x": SimpleNamespace(accepted=False, track=SimpleNamespace(kind="audio"))}


def controller() -> tuple[DownlinkController, Estimator, list[float]]:
    c = DownlinkController("PA", 1_000_000, listener=None)  # type: ignore[arg-type]
    est = Estimator()
    c.estimator = est  # type: ignore[assignment]
    c.twcc_negotiated = True
    allocations: list[float] = []
    real = c.allocate

    def counted(t: float, subscriptions: Any) -> None:
        allocations.append(t)
        real(t, subscriptions)

    c.allocate = counted  # type: ignore[method-assign]
    return c, est, allocations


def test_feedback_in_the_start_phase_does_not_reallocate() -> None:
    c, est, allocations = controller()
    c.on_twcc(None, None, 0.0, {})  # type: ignore[arg-type]
    c.allocate(1.0, SUB)  # type: ignore[arg-type]
    assert c.estimate(1.0) == UNLIMITED_BPS
    for k in range(50):
        c.on_twcc(None, None, 2.0 + k, {})  # type: ignore[arg-type]
    assert allocations == [1.0]


def test_a_sharp_drop_reallocates_at_once() -> None:
    c, est, allocations = controller()
    c.on_twcc(None, None, 0.0, {})  # type: ignore[arg-type]
    est.in_start_phase = False
    est.bps = 2_000_000
    c.allocate(1.0, SUB)  # type: ignore[arg-type]
    est.bps = 1_900_000  # a small step down waits for the next tick
    c.on_twcc(None, None, 2.0, {})  # type: ignore[arg-type]
    assert allocations == [1.0]
    est.bps = 1_000_000
    c.on_twcc(None, None, 3.0, SUB)  # type: ignore[arg-type]
    assert allocations == [1.0, 3.0]
