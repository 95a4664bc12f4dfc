"""The latency targets (``spec.slo``): where the fleet's latency stands against them.

Role: judge the engine's latency quantiles (time to first token, inter-token latency, each at
``slo.percentile`` over the query's window) against their targets, once per tick. The verdict
drives two things: the ``latency`` step of the pipeline (over target adds a replica, near it
holds, well under it lets the load shrink the fleet) and the learning of the capacity per
replica (``learn``). Callers: ``pipeline.plan``.

Verdicts, worst latency first (``ratio`` is the largest quantile / target):

- ``LatencyAboveTarget``: ratio above 1.
- ``LatencyNearTarget``: between ``slo.scaleDownBelow`` and 1: no scale-down.
- ``LatencyWellUnderTarget``: every ratio under ``slo.scaleDownBelow``.
- ``NoRequests``: no request got a first token in the window (the quantile is NaN, as
  ``histogram_quantile`` over an empty window is): nothing to judge, nothing held.
- ``LatencyUnavailable``: a quantile cannot be used while requests flow (query failed, stale,
  NaN with traffic): no scale-down, ``MetricsAvailable=False``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetscale.api.inferencepool import SloSpec
from fleetscale.planner.readings import check_reading
from fleetscale.planner.text import number
from fleetscale.planner.types import LoadReadings, MetricProblem, MetricReading

ABOVE_TARGET = "LatencyAboveTarget"
NEAR_TARGET = "LatencyNearTarget"
WELL_UNDER_TARGET = "LatencyWellUnderTarget"
NO_REQUESTS = "NoRequests"
UNAVAILABLE = "LatencyUnavailable"

# Below this many first tokens per second the window holds no request worth a quantile.
MIN_REQUEST_RATE = 1e-3


@dataclass(frozen=True)
class LatencyVerdict:
    """Where the latencies stand; ``ratio`` is the worst quantile over its target."""

    state: str
    ratio: float | None
    message: str
    problem: MetricProblem | None = None

    @property
    def over(self) -> bool:
        return self.state == ABOVE_TARGET

    @property
    def allows_scale_down(self) -> bool:
        return self.state in (WELL_UNDER_TARGET, NO_REQUESTS)


def _idle(request_rate: float | None, ready_replicas: int) -> bool:
    return ready_replicas == 0 or (request_rate is not None and request_rate < MIN_REQUEST_RATE)


def judge(
    slo: SloSpec | None,
    load: LoadReadings,
    *,
    request_rate: float | None,
    ready_replicas: int,
    now: float,
    max_staleness_seconds: float,
) -> LatencyVerdict | None:
    """The verdict for this tick; None when no latency target is read."""
    if slo is None:
        return None
    targets: list[tuple[str, MetricReading, float]] = []
    if slo.ttft_seconds is not None and load.ttft is not None:
        targets.append(("TTFT", load.ttft, slo.ttft_seconds))
    if slo.itl_seconds is not None and load.itl is not None:
        targets.append(("ITL", load.itl, slo.itl_seconds))
    if not targets:
        return None
    percentile = f"p{number(slo.percentile)}"
    parts: list[str] = []
    worst = 0.0
    for name, reading, target in targets:
        value = reading.value
        empty = reading.problem is None and value is not None and math.isnan(value)
        if empty and _idle(request_rate, ready_replicas):
            idle = f"{name} {percentile}: no request in the window"
            return LatencyVerdict(NO_REQUESTS, None, idle)
        check = check_reading(
            reading,
            signal=f"{name} {percentile}",
            now=now,
            max_staleness_seconds=max_staleness_seconds,
            unit=" s",
        )
        if check.value is None:
            if _idle(request_rate, ready_replicas):
                return LatencyVerdict(NO_REQUESTS, None, f"{check.message}; no requests flow")
            return LatencyVerdict(
                UNAVAILABLE,
                None,
                f"{check.message}; scale-down waits for it",
                check.problem or MetricProblem.NO_DATA,
            )
        worst = max(worst, check.value / target)
        parts.append(f"{name} {percentile} {number(check.value)} s (target {number(target)} s)")
    described = ", ".join(parts)
    below = slo.scale_down_below
    if worst > 1:
        return LatencyVerdict(ABOVE_TARGET, worst, f"{described}: over target")
    if worst >= below:
        return LatencyVerdict(
            NEAR_TARGET,
            worst,
            f"{described}: within {number((1 - below) * 100)}% of target, no scale-down",
        )
    return LatencyVerdict(
        WELL_UNDER_TARGET,
        worst,
        f"{described}: under {number(below * 100)}% of target",
    )
