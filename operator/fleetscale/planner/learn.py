"""Step ``learn``: the capacity per replica, learned online from the fleet's own metrics.

Role: keep ``PlannerState.capacity`` (persisted in ``status.capacity``) an honest estimate of
what one replica carries within the latency targets: tokens per second (prompt plus generated)
and concurrency (running plus waiting requests). Callers: ``pipeline.plan``, before the load
steps that divide by it.

Rules, per tick, for each measure ``u`` (the fleet's rate or concurrency per ready replica),
with ``kappa`` the estimate and ``rho`` the target utilization (``capacity.targetUtilization``):

- **Start**: ``capacity.tokensPerSecondPerReplica`` / ``concurrencyPerReplica`` when the spec
  sets them (``CapacityFromSpec``); else, the first time the fleet serves, ``kappa = u / rho``:
  the size the fleet has is taken as right, so nothing moves until the latencies say otherwise
  (``CapacityBootstrapped``; at a latency over target, ``kappa = u``).
- **Over target** (``latency.ABOVE_TARGET``) while ``u <= kappa``: the estimate was too
  high; ``kappa`` drops to ``u``, by at most ``MAX_DROP`` per tick (``CapacityLowered``). The
  load at which a target was missed becomes the ceiling (tokens only), which probing never
  passes. While the fleet shows saturation (a backlog beyond the queue's target, a saturated
  KV cache, shedding) the miss is explained by the load, and ``u`` is diluted by replicas that
  just became ready: the tick sizes on the lowered value, but the remembered estimate does not
  change (``CapacityHeld``), so the fleet does not stay oversized once the crowd has passed.
  Sizing on the lowered value keeps the ask monotone in the load.
- **Well under target** with ``u > kappa``: one replica carried more than thought; ``kappa``
  rises to ``u``, by at most ``MAX_RISE`` per tick (``CapacityRaised``), never past the
  ceiling. A healthy load above the ceiling means the traffic changed: the ceiling is dropped.
- **Well under target** with the fleet at the size the estimate asks for (its load within the
  tolerance band of the current size, or above it): ``kappa`` grows by ``PROBE_PER_MINUTE``
  (``CapacityProbed``), up to the ceiling. The ask then falls; once it leaves the band the
  fleet shrinks (after the scale-down window), runs at the new size, and the latency tells
  whether that was right: an estimate that started low is found out, a step at a time. While
  the fleet is larger than the estimate asks for, its latency says little and nothing is
  probed. Nor is anything probed within ``PROBE_HOLD_SECONDS`` of the last scale-up, or at
  a size with no smaller one to try (one replica, or ``replicas.min``): there, any load asks
  for the current size, so the probe would never be answered and the estimate would grow
  without end (and take many missed ticks to come down when the load returns).
- Otherwise (near target, no requests, a latency unavailable, no ``spec.slo``, or
  ``capacity.learn: false``) the estimate holds (``CapacityHeld``).

Why the hold: the probe is the only rule that can ask for fewer replicas while the load
stands still (a raise stops at the load carried, so it never asks below the current size; a
lowering only asks for more). Without the hold, a fleet that scaled up on an estimate found
too low a minute later probes its way back down: a reversal on flat load. With it, a scale-up
is never undone by learning within the hold (15 minutes, three times the HPA's default
scale-down window), and a miss after a probe sets the ceiling, which holds the probe back for an
hour: flat load does not flap. The price: an estimate that started low is found out 15
minutes after the scale-up it caused, not at once.
A scale-down leaves the probe free, so a fleet shrinking with its load keeps learning.

The ceiling is forgotten ``CEILING_MEMORY_SECONDS`` after the last missed target, so that a
change of traffic is learned again. When the spec sets a starting value, the estimate stays
within ``SPEC_RANGE`` times it either way. Missing or unusable readings never change the
estimate. The probe's rate per minute is applied per tick in proportion to
``pollIntervalSeconds``. Under constant readings the estimate stops moving: a probe needs the
load per replica to keep up with the estimate, and the ceiling only changes on a missed target.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import latency
from fleetscale.planner.behavior import Tolerances
from fleetscale.planner.latency import LatencyVerdict
from fleetscale.planner.signals import ceil_replicas
from fleetscale.planner.text import number
from fleetscale.planner.types import CapacityEstimate, Step

LEARN = "learn"

FROM_SPEC = "CapacityFromSpec"
BOOTSTRAPPED = "CapacityBootstrapped"
LOWERED = "CapacityLowered"
RAISED = "CapacityRaised"
PROBED = "CapacityProbed"
HELD = "CapacityHeld"
UNKNOWN = "CapacityUnknown"

MAX_DROP = 0.3
MAX_RISE = 0.2
PROBE_PER_MINUTE = 0.02
# Measured on the simulator's standard scenarios (seed 1), holds of 0, 300, 900, 1,800 and
# 3,600 s: from 900 s the diurnal day's reversals go from 2 to 0 and its SLO from 99.62% to
# 99.99%, for 0.91x the oracle's GPU-hours instead of 0.84x; longer holds cost more (1.04x at
# an hour) for nothing the scenarios show.
PROBE_HOLD_SECONDS = 900.0
CEILING_MEMORY_SECONDS = 3600.0
SPEC_RANGE = 4.0
# No measure is learned below this (a replica serving nothing says nothing about capacity).
MIN_CAPACITY = 1e-6


@dataclass(frozen=True)
class Loads:
    """What the fleet carries per ready replica this tick (None: not read, or unusable), and
    whether the fleet is at the size each estimate asks for (``at_plan``)."""

    tokens: float | None = None
    concurrency: float | None = None
    tokens_at_plan: bool = False
    concurrency_at_plan: bool = False
    # The fleet shows it carries more than it can (a backlog, a full KV cache, shedding): a
    # missed target is then explained by the load, and says nothing about the capacity.
    saturated: bool = False


def at_plan(
    load: float | None,
    kappa: float | None,
    rho: float,
    ready: int,
    current: int,
    tolerances: Tolerances,
) -> bool:
    """Whether the current size is what ``kappa`` asks for the fleet's load (or less)."""
    if load is None or kappa is None or current <= 0:
        return False
    fraction = load * ready / (kappa * rho)
    return tolerances.within(fraction / current) or ceil_replicas(fraction) >= current


@dataclass(frozen=True)
class _Setting:
    learning: bool
    rho: float
    tolerances: Tolerances
    probe: float
    # Seconds until the probe may run again after a scale-up (0: it may).
    probe_wait_seconds: float
    # Whether a smaller size may be tried (above one replica and above replicas.min).
    can_shrink: bool


@dataclass(frozen=True)
class _Outcome:
    value: float | None  # what is remembered
    reason: str
    words: str
    # What this tick sizes on, when it differs from what is remembered (a miss under
    # saturation: sized on the lowered value, remembered unchanged).
    sizing: float | None = None


def _clamp(value: float, initial: float | None) -> float:
    if initial is not None:
        value = min(max(value, initial / SPEC_RANGE), initial * SPEC_RANGE)
    return max(value, MIN_CAPACITY)


def _learn_one(
    kappa: float | None,
    load: float | None,
    planned: bool,
    saturated: bool,
    initial: float | None,
    verdict: LatencyVerdict | None,
    setting: _Setting,
    ceiling: float | None,
    unit: str,
) -> _Outcome:
    if kappa is None:
        if initial is not None:
            return _Outcome(initial, FROM_SPEC, f"{number(initial)} {unit} (from the spec)")
        if load is None or load <= 0:
            return _Outcome(None, UNKNOWN, f"unknown until the fleet serves ({unit})")
        start = load if verdict is not None and verdict.over else load / setting.rho
        return _Outcome(
            _clamp(start, None),
            BOOTSTRAPPED,
            f"{number(start)} {unit}, from {number(load)} served per replica now",
        )
    # A remembered estimate outside the spec's range (the spec changed since) is brought into
    # it first, whatever the rule: held and lowered values must not straddle the range's edge.
    kappa = _clamp(kappa, initial)
    if not setting.learning or verdict is None or load is None:
        return _Outcome(kappa, HELD, f"{number(kappa)} {unit}")
    if verdict.over and load <= kappa:
        lowered = _clamp(max(kappa * (1 - MAX_DROP), load), initial)
        if saturated:
            return _Outcome(
                kappa,
                HELD,
                f"{number(kappa)} {unit}, this tick {number(lowered)}: a target was missed at "
                f"{number(load)} per replica while saturated",
                sizing=lowered,
            )
        return _Outcome(
            lowered,
            LOWERED,
            f"{number(kappa)} -> {number(lowered)} {unit}: a target was missed at "
            f"{number(load)} per replica",
        )
    if verdict.state != latency.WELL_UNDER_TARGET:
        return _Outcome(kappa, HELD, f"{number(kappa)} {unit}")
    top = ceiling if ceiling is not None and load <= ceiling else None
    if load > kappa:
        raised = _clamp(min(load, kappa * (1 + MAX_RISE)), initial)
        if top is not None:
            raised = min(raised, top)
        if raised > kappa:
            return _Outcome(
                raised,
                RAISED,
                f"{number(kappa)} -> {number(raised)} {unit}: {number(load)} per replica "
                "served well under target",
            )
        return _Outcome(kappa, HELD, f"{number(kappa)} {unit} (at the ceiling)")
    if not planned:
        return _Outcome(kappa, HELD, f"{number(kappa)} {unit}")
    if not setting.can_shrink:
        return _Outcome(kappa, HELD, f"{number(kappa)} {unit} (no smaller size to probe)")
    if setting.probe_wait_seconds > 0:
        return _Outcome(
            kappa,
            HELD,
            f"{number(kappa)} {unit} (no probe for {number(setting.probe_wait_seconds)} s more: "
            "replicas were raised lately)",
        )
    probed = _clamp(kappa * (1 + setting.probe), initial)
    if top is not None:
        probed = min(probed, top)
    if probed > kappa:
        return _Outcome(
            probed,
            PROBED,
            f"{number(kappa)} -> {number(probed)} {unit}: well under target at the planned load",
        )
    return _Outcome(kappa, HELD, f"{number(kappa)} {unit} (at the ceiling)")


def _ceiling(
    estimate: CapacityEstimate, loads: Loads, verdict: LatencyVerdict | None, now: float
) -> tuple[float | None, float | None]:
    """The tokens ceiling after this tick and when it was last set: set by a missed target,
    dropped by a healthy load above it or after ``CEILING_MEMORY_SECONDS``."""
    ceiling, since = estimate.ceiling_tokens_per_replica, estimate.ceiling_since
    load = loads.tokens
    if verdict is not None and load is not None and load > 0:
        if verdict.over:
            return (load if ceiling is None else min(ceiling, load)), now
        if ceiling is not None and verdict.state == latency.WELL_UNDER_TARGET and load > ceiling:
            return None, None
    if since is not None and now - since > CEILING_MEMORY_SECONDS:
        return None, None
    return ceiling, since


def learn(
    spec: InferencePoolSpec,
    estimate: CapacityEstimate,
    loads: Loads,
    verdict: LatencyVerdict | None,
    tolerances: Tolerances,
    current_replicas: int,
    now: float,
    last_scale_up_time: float | None = None,
) -> tuple[CapacityEstimate, CapacityEstimate, Step]:
    """The estimate after this tick, the one this tick sizes on, and the step that reports it
    (replicas: the current size; learning moves the estimate, the load steps move replicas).

    The two differ only after a miss under saturation: this tick sizes on the lowered value,
    as after any miss, while the remembered one is unchanged."""
    capacity = spec.capacity
    learning = capacity.learn and spec.slo is not None
    ceiling, ceiling_since = _ceiling(estimate, loads, verdict, now)
    setting = _Setting(
        learning=learning,
        rho=capacity.target_utilization,
        tolerances=tolerances,
        probe=PROBE_PER_MINUTE * spec.poll_interval_seconds / 60,
        probe_wait_seconds=(
            0.0
            if last_scale_up_time is None
            else max(0.0, last_scale_up_time + PROBE_HOLD_SECONDS - now)
        ),
        can_shrink=current_replicas > max(1, spec.replicas.min),
    )
    tokens = _learn_one(
        estimate.tokens_per_replica,
        loads.tokens,
        loads.tokens_at_plan,
        loads.saturated,
        capacity.tokens_per_second_per_replica,
        verdict,
        setting,
        ceiling,
        "tokens/s per replica",
    )
    concurrency = _learn_one(
        estimate.concurrency_per_replica,
        loads.concurrency,
        loads.concurrency_at_plan,
        loads.saturated,
        capacity.concurrency_per_replica,
        verdict,
        setting,
        None,
        "requests per replica",
    )
    read = [tokens, concurrency]
    primary = tokens if loads.tokens is not None or tokens.value is not None else concurrency
    reason = primary.reason
    words = "; ".join(o.words for o in read if o.value is not None or o.reason == UNKNOWN)
    if not learning and reason == HELD:
        why = "capacity.learn is false" if not capacity.learn else "no spec.slo to learn from"
        words = f"{words} ({why})"
    changed = (tokens.value, concurrency.value) != (
        estimate.tokens_per_replica,
        estimate.concurrency_per_replica,
    )
    learned = replace(
        estimate,
        tokens_per_replica=tokens.value,
        concurrency_per_replica=concurrency.value,
        ceiling_tokens_per_replica=ceiling,
        ceiling_since=ceiling_since,
        reason=reason if changed or not estimate.reason else estimate.reason,
        updated_at=now if changed else estimate.updated_at,
    )
    sizing = replace(
        learned,
        tokens_per_replica=_sized(tokens),
        concurrency_per_replica=_sized(concurrency),
    )
    return learned, sizing, Step(LEARN, current_replicas, reason, words)


def _sized(outcome: _Outcome) -> float | None:
    return outcome.sizing if outcome.sizing is not None else outcome.value
