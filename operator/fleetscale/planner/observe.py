"""The observe step: what the adapters measured, turned into the planner's ``Observation``.

Role: one pure function, ``observe``, that every caller of the planner uses to build its input,
so the operator, ``fleetscale explain`` and the simulator cannot disagree about what a
measurement means. Callers: the InferencePool controller (after measuring through the
adapters), ``fleetscale explain`` (same measurements, read-only) and the simulator (measurements
from the simulated fleet).

What it decides:

- Accelerators per replica: the spec's value, else what the target's pod template requests.
- The capacity cap, from what the AcceleratorPool published for this pool
  (``PublishedAllocation``): no AcceleratorPool named, no cap; the named pool does not exist,
  hold (cap 0, ``AcceleratorPoolNotFound``); the pool refuses this InferencePool's claim (its
  ``spec.tenancy``), hold (cap 0, ``ClaimRefused``); the pool has not planned for this
  InferencePool yet, hold for a tick (cap 0, ``AllocationPending``); otherwise the allocation,
  where ``CapacityAvailable`` (all of the demand fits) is no cap (``limits.binding_capacity``).
- Readings: the spec's signals, by name (``signal_names``); a signal the spec does not read
  is None in the ``Observation``. With an engine preset (``metrics.engine`` other than
  ``custom``) every load signal is read; with ``custom`` only those with a query. Latencies are
  read only for the targets ``spec.slo`` sets, the gateway's rates only with
  ``metrics.offeredLoad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner.limits import binding_capacity
from fleetscale.planner.types import (
    CapacityLimit,
    LoadReadings,
    MetricProblem,
    MetricReading,
    Observation,
)

QUEUE = "queue"
GPU = "gpu"
RUNNING = "running"
KV_CACHE = "kv_cache"
PROMPT_TOKENS = "prompt_tokens"
GENERATION_TOKENS = "generation_tokens"
REQUEST_RATE = "request_rate"
WORK_GROWTH = "work_growth"
TTFT = "ttft"
ITL = "itl"
OFFERED = "offered"
REFUSED = "refused"

# Load signals by name, with the metrics.queries field that overrides each one's preset.
LOAD_QUERY_FIELDS: dict[str, str] = {
    RUNNING: "running",
    KV_CACHE: "kv_cache_usage",
    PROMPT_TOKENS: "prompt_tokens",
    GENERATION_TOKENS: "generation_tokens",
    REQUEST_RATE: "request_rate",
    WORK_GROWTH: "work_growth",
}
LATENCY_QUERY_FIELDS: dict[str, str] = {TTFT: "ttft", ITL: "itl"}

ACCELERATOR_POOL_NOT_FOUND = "AcceleratorPoolNotFound"
ALLOCATION_PENDING = "AllocationPending"
CLAIM_REFUSED = "ClaimRefused"


@dataclass(frozen=True)
class TargetSize:
    """The size of the pool's target as its ``/scale`` and pods report it."""

    spec_replicas: int
    ready_replicas: int
    accelerators_per_replica: int | None = None  # from the pod template, when known


@dataclass(frozen=True)
class PublishedAllocation:
    """What the named AcceleratorPool's status says about this InferencePool.

    ``limit`` is None while the AcceleratorPool has not planned for it (new pool, first tick).
    ``refused`` says why the AcceleratorPool refuses this pool's claim (its spec.tenancy), if
    it does.
    """

    accelerator_pool: str
    exists: bool
    limit: CapacityLimit | None = None
    refused: str | None = None


def signal_names(spec: InferencePoolSpec) -> tuple[str, ...]:
    """The readings the spec asks for, by name."""
    metrics = spec.metrics
    preset = metrics.engine != "custom"
    names = [QUEUE]
    if metrics.gpu_utilization is not None:
        names.append(GPU)
    for name, field_name in LOAD_QUERY_FIELDS.items():
        if preset or getattr(metrics.queries, field_name) is not None:
            names.append(name)
    slo = spec.slo
    targets = {TTFT: slo.ttft_seconds, ITL: slo.itl_seconds} if slo is not None else {}
    for name, field_name in LATENCY_QUERY_FIELDS.items():
        if targets.get(name) is not None and (
            preset or getattr(metrics.queries, field_name) is not None
        ):
            names.append(name)
    if metrics.offered_load is not None:
        names.append(OFFERED)
        if metrics.offered_load.refused_query is not None:
            names.append(REFUSED)
    return tuple(names)


def capacity_limit(
    allocation: PublishedAllocation | None, pending_seconds: float
) -> CapacityLimit | None:
    """The cap the replica planner gets; None when nothing caps the pool.

    ``pending_seconds`` is how soon more is expected while the allocation is pending (the
    AcceleratorPool's next tick).
    """
    if allocation is None:
        return None
    name = allocation.accelerator_pool
    if not allocation.exists:
        return CapacityLimit(
            max_replicas=0,
            reason=ACCELERATOR_POOL_NOT_FOUND,
            message=f"AcceleratorPool {name} does not exist: no accelerators to run on",
        )
    if allocation.refused is not None:
        # Not admitted: the pool holds its size, and asks the AcceleratorPool for nothing.
        return CapacityLimit(
            max_replicas=0,
            reason=CLAIM_REFUSED,
            message=f"AcceleratorPool {name} refuses this pool's claim: {allocation.refused}",
        )
    if allocation.limit is None:
        # Not planned for yet: hold the current size rather than grow onto nodes nobody asked
        # for.
        return CapacityLimit(
            max_replicas=0,
            reason=ALLOCATION_PENDING,
            message=f"AcceleratorPool {name} has not planned for this pool yet",
            seconds_until_more=pending_seconds,
        )
    return binding_capacity(allocation.limit)


def observe(
    spec: InferencePoolSpec,
    target: TargetSize,
    readings: Mapping[str, MetricReading],
    allocation: PublishedAllocation | None,
    *,
    pending_seconds: float,
    replica_startup_seconds: float | None = None,
) -> Observation:
    """The planner's view of one pool at one tick."""
    missing = MetricReading.failed(MetricProblem.QUERY_FAILED, "no reading was taken")
    wanted = signal_names(spec)

    def read(name: str) -> MetricReading | None:
        return readings.get(name, missing) if name in wanted else None

    accelerators = (
        spec.accelerators_per_replica
        if spec.accelerators_per_replica is not None
        else target.accelerators_per_replica
    )
    return Observation(
        current_replicas=target.spec_replicas,
        ready_replicas=target.ready_replicas,
        queue_depth=readings.get(QUEUE, missing),
        gpu_utilization_percent=read(GPU),
        load=LoadReadings(
            running=read(RUNNING),
            kv_cache_usage=read(KV_CACHE),
            prompt_tokens=read(PROMPT_TOKENS),
            generation_tokens=read(GENERATION_TOKENS),
            request_rate=read(REQUEST_RATE),
            work_growth=read(WORK_GROWTH),
            ttft=read(TTFT),
            itl=read(ITL),
            offered=read(OFFERED),
            refused=read(REFUSED),
        ),
        capacity=capacity_limit(allocation, pending_seconds),
        replica_startup_seconds=replica_startup_seconds,
        accelerators_per_replica=accelerators,
    )
