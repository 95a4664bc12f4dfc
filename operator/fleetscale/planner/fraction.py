"""Step 10 (with the shed flag): the share of requests gateways refuse while the flag is on.

Role: all-or-nothing shedding turns away traffic the fleet could serve. While the flag is on,
the planner publishes a fraction: ``1 - servable / offered``, bounded to
``[shedLoad.minFraction, shedLoad.maxFraction]``, smoothed, and moved only past a deadband.
Gateways refuse that share of requests, lower-priority requests first. Callers: ``shed``.

Two functions, so that each part can be replaced alone:

- ``load_estimate`` says what the ready replicas can serve and what is offered, from what an
  ``Observation`` carries today (the waiting queue and the ready replicas, against the shed
  threshold). It is the one place that knows how load is measured; a load model with
  concurrency, token rates and a gateway's request counters replaces this function only.

  * servable: ``queuePerReplicaThreshold x ready``, the waiting requests the ready replicas may
    carry (the threshold is the line the user drew between "busy" and "overloaded");
  * offered: the waiting queue with the gateway's refusals added back,
    ``queue / (1 - previous fraction)``: the gateway refused that share of arrivals, so the
    queue saw only the rest. A fraction near 1 leaves little to measure, so at most
    ``MAX_UNCENSOR`` is undone (the offered load is at most 20 times the queue).

  With this estimate the fraction settles where the queue holds at the threshold: a queue above
  it raises the fraction, a queue below lowers it (an integrating controller on the queue).

- ``shed_fraction`` is the rule on plain numbers:

  1. the flag is off: 0 (``NotShedding``);
  2. no estimate (metrics unavailable while the flag is kept on): the previous fraction, or
     ``maxFraction`` when there is none (``FractionHeld``);
  3. the raw fraction ``1 - servable / offered``, bounded (``OverCapacity``, ``MinFraction``,
     ``MaxFraction``);
  4. the first tick of a shed starts at the bounded raw fraction (no smoothing from zero: the
     onset is when refusing helps most);
  5. later ticks move towards it exponentially, ``alpha = 1 - exp(-poll / smoothingSeconds)``
     (after the deadband check below);
  6. hysteresis: a bounded raw fraction within ``fractionDeadband`` of the previous fraction
     keeps the previous one (``FractionHeld``): gateways are not rewritten for noise;
  7. the result is rounded to whole percents (what gateways are told).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.planner.text import number

NOT_SHEDDING = "NotShedding"
FRACTION_HELD = "FractionHeld"
OVER_CAPACITY = "OverCapacity"
MIN_FRACTION = "MinFraction"
MAX_FRACTION = "MaxFraction"

# At most this share of the arrivals is taken as refused when the offered load is estimated
# from a censored queue (see ``load_estimate``).
MAX_UNCENSOR = 0.95


@dataclass(frozen=True)
class LoadEstimate:
    """What the ready replicas can serve and what is offered, in the same unit."""

    servable: float
    offered: float


@dataclass(frozen=True)
class FractionDecision:
    fraction: float  # share of requests to refuse, 0..1, whole percents
    reason: str
    message: str


def offered_queue(queue_depth: float, previous_fraction: float) -> float:
    """The waiting queue with the gateway's refusals added back (see ``load_estimate``)."""
    kept = 1.0 - min(max(previous_fraction, 0.0), MAX_UNCENSOR)
    return max(queue_depth, 0.0) / kept


def load_estimate(
    queue_depth: float | None,
    ready_replicas: int,
    threshold_per_replica: float,
    previous_fraction: float,
) -> LoadEstimate | None:
    """Servable and offered waiting requests from the queue and the ready replicas; None when
    the queue is unknown."""
    if queue_depth is None or not math.isfinite(queue_depth):
        return None
    return LoadEstimate(
        servable=threshold_per_replica * max(ready_replicas, 0),
        offered=offered_queue(queue_depth, previous_fraction),
    )


def smoothing_weight(poll_interval_seconds: float, smoothing_seconds: float) -> float:
    """The weight of a new reading in the exponential average (1: no smoothing)."""
    if smoothing_seconds <= 0:
        return 1.0
    return 1.0 - math.exp(-max(poll_interval_seconds, 0.0) / smoothing_seconds)


def _percent(value: float) -> str:
    return f"{number(round(value * 100, 1))}%"


def shed_fraction(
    *,
    active: bool,
    estimate: LoadEstimate | None,
    previous: float,
    spec: ShedLoadSpec,
    poll_interval_seconds: float,
) -> FractionDecision:
    """The fraction to publish with the flag this tick; see the module docstring."""
    if not active:
        return FractionDecision(0.0, NOT_SHEDDING, "not shedding")
    low, high = spec.min_fraction, spec.max_fraction
    if estimate is None:
        held = min(max(previous, low), high) if previous > 0 else high
        return FractionDecision(
            round(held, 2), FRACTION_HELD, f"refusing {_percent(held)}: no load estimate"
        )
    raw = 1.0 - estimate.servable / estimate.offered if estimate.offered > 0 else 0.0
    bounded = min(max(raw, low), high)
    reason = MIN_FRACTION if raw < low else MAX_FRACTION if raw > high else OVER_CAPACITY
    words = (
        f"{number(estimate.offered)} offered for {number(estimate.servable)} servable "
        f"(raw {_percent(max(raw, 0.0))})"
    )
    if previous <= 0:
        fraction = bounded
    else:
        kept = min(max(previous, low), high)  # the bounds may have changed since
        if abs(bounded - kept) < spec.fraction_deadband:
            return FractionDecision(
                round(kept, 2),
                FRACTION_HELD,
                f"refusing {_percent(kept)}: {words}, within "
                f"{_percent(spec.fraction_deadband)} of it",
            )
        weight = smoothing_weight(poll_interval_seconds, spec.fraction_smoothing_seconds)
        fraction = previous + (bounded - previous) * weight
    fraction = round(min(max(fraction, low), high), 2)
    return FractionDecision(fraction, reason, f"refusing {_percent(fraction)}: {words}")
