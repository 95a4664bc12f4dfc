"""Steps 7-8 of the replica pipeline and the ScalingLimited verdict: capacity, bounds, limits.

Role: apply what the fleet may not cross and say so. Callers: ``pipeline.plan``.

Capacity (step "capacity"): ``Observation.capacity`` is what the AcceleratorPool can hold for
this pool (from the joint node planner). It stops growth: a scale-up goes no higher than
``max(capacity.max_replicas, current)``. It never forces a scale-down: replicas that already
run keep running, and shrinking is left to the signals. A limit whose reason is
``CapacityAvailable`` (the node planner's "all of this pool's demand fits") is no limit: its
cap is only the demand it was planned for, and the pool may grow past it while nodes follow.

Bounds (step "bounds", always last): clamp to ``[replicas.min, replicas.max]``. The user's
bounds win over everything before them, including capacity: a pool below its minimum asks for
the minimum even when capacity is short (the extra replicas stay Pending and ScalingLimited
names the capacity reason), and a lowered maximum is applied even while metrics are missing.

ScalingLimited (condition) answers "can the fleet reach what the signals ask for?". True, with
the first reason that applies:

1. the capacity reason (``MaxNodes``, ``NodesProvisioning``, ``Quota``, ...) when the
   AcceleratorPool holds fewer replicas than both the ask and ``replicas.max``;
2. ``MaxReplicas`` when the ask is above ``replicas.max``;
3. ``ReplicasNotReady`` when the ask is above the ready replicas and the replicas wanted are
   not all ready yet: capacity is coming (a model loads for minutes) but does not serve.
   Shedding may cover that gap; Retry-After then says when the replicas should be ready.

A rate-limited scale-up is not a limit (the next ticks continue it); it is only a step reason.
When metrics are unavailable the ask is unknown; the verdict then answers "could the fleet grow
at all?" (same reasons against ``current + 1``), so the condition does not flap at a limit
while Prometheus blinks.
"""

from __future__ import annotations

from fleetscale.api.inferencepool import ReplicaBounds
from fleetscale.planner.capacity import CAPACITY_AVAILABLE
from fleetscale.planner.text import replicas
from fleetscale.planner.types import CapacityLimit, ConditionVerdict, Step

CAPACITY = "capacity"
BOUNDS = "bounds"

NO_CAPACITY_LIMIT = "NoCapacityLimit"
WITHIN_CAPACITY = "WithinCapacity"
MAX_REPLICAS = "MaxReplicas"
MIN_REPLICAS = "MinReplicas"
WITHIN_BOUNDS = "WithinBounds"
REPLICAS_NOT_READY = "ReplicasNotReady"
DESIRED_WITHIN_RANGE = "DesiredWithinRange"


def _capacity_words(capacity: CapacityLimit) -> str:
    detail = f": {capacity.message}" if capacity.message else ""
    return (
        f"the accelerator pool holds {capacity.max_replicas} replicas ({capacity.reason}{detail})"
    )


def binding_capacity(capacity: CapacityLimit | None) -> CapacityLimit | None:
    """The capacity limit that actually binds, or None (see the module docstring)."""
    if capacity is None or capacity.reason == CAPACITY_AVAILABLE:
        return None
    return capacity


def cap_to_capacity(desired: int, current_replicas: int, capacity: CapacityLimit | None) -> Step:
    """Stop growth at what the accelerator pool can hold (step "capacity")."""
    if capacity is None:
        return Step(CAPACITY, desired, NO_CAPACITY_LIMIT)
    ceiling = max(capacity.max_replicas, current_replicas)
    if desired > ceiling:
        return Step(CAPACITY, ceiling, capacity.reason, _capacity_words(capacity))
    return Step(CAPACITY, desired, WITHIN_CAPACITY)


def clamp_to_bounds(desired: int, bounds: ReplicaBounds) -> Step:
    """Keep within replicas.min and replicas.max (step "bounds")."""
    if desired > bounds.max:
        return Step(BOUNDS, bounds.max, MAX_REPLICAS, f"replicas.max is {bounds.max}")
    if desired < bounds.min:
        return Step(BOUNDS, bounds.min, MIN_REPLICAS, f"replicas.min is {bounds.min}")
    return Step(BOUNDS, desired, WITHIN_BOUNDS)


def scaling_limited(
    *,
    demand: int | None,
    desired_replicas: int,
    current_replicas: int,
    ready_replicas: int,
    bounds: ReplicaBounds,
    capacity: CapacityLimit | None,
) -> ConditionVerdict:
    """Whether the fleet can reach the signals' ask; ``demand`` None means metrics are missing."""
    if demand is None:
        ask = current_replicas + 1
        wants = "metrics are unavailable and"
    else:
        ask = demand
        wants = f"the signals ask for {replicas(demand)} and"

    if capacity is not None and capacity.max_replicas < min(ask, bounds.max):
        return ConditionVerdict(True, capacity.reason, f"{wants} {_capacity_words(capacity)}")
    if ask > bounds.max:
        return ConditionVerdict(True, MAX_REPLICAS, f"{wants} replicas.max is {bounds.max}")
    wanted = min(ask, desired_replicas) if demand is not None else current_replicas
    if ready_replicas < wanted:
        return ConditionVerdict(
            True,
            REPLICAS_NOT_READY,
            f"{wants} {ready_replicas} of {desired_replicas} replicas are ready",
        )
    return ConditionVerdict(False, DESIRED_WITHIN_RANGE, f"{wants} the fleet can reach them")
