"""Steps 2-4 of the replica pipeline: what each signal asks for, and how they combine.

Role: the replica calculator. Each signal is an HPA-style ratio with a tolerance; the queue is
the primary signal and GPU utilization only gates scale-down. Callers: ``pipeline.plan``.

Queue depth (step "queue") counts requests *waiting* for a slot across the fleet. Like an HPA
External metric with an AverageValue target (what KEDA feeds the HPA)::

    usage_ratio = queue / (targetPerReplica * current_replicas)
    1 - down <= usage_ratio <= 1 + up  ->  current_replicas   (the HPA's isWithin)
    otherwise                          ->  ceil(queue / targetPerReplica)

The ratio uses the target's replicas (``/scale`` spec), not the ready ones, as the HPA does for
External metrics: starting replicas will absorb the queue once loaded, and ``ceil(queue /
target)`` does not grow with the number of replicas already asked for. With zero replicas any
waiting request is outside the tolerance, so a fleet scales from zero to at least one; an empty
queue at zero replicas stays at zero. An empty queue asks for zero replicas: nothing waits, so
the queue alone would shrink the fleet to its minimum; GPU utilization decides how far.

GPU utilization (step "gpu", only when ``metrics.gpuUtilization`` is set) is the fleet's mean,
in percent, against ``targetPercent``, as the HPA's resource ratio::

    1 - down <= util / target <= 1 + up  ->  current_replicas
    otherwise                            ->  ceil(current_replicas * util / target)

``down`` and ``up`` are ``behavior.scaleDown.tolerance`` and ``behavior.scaleUp.tolerance``
(``behavior.tolerances``), compared in floating point as upstream: queue 11 on 10 replicas
at target 1 holds at 10 with a tolerance of 0.1.

Combining (step "combine")::

    desired = max(queue_desired, min(gpu_desired, current_replicas))

- Scale-up is driven by the queue alone: vLLM keeps GPUs busy even at low load, so GPU
  utilization never lifts the fleet above ``max(current, queue_desired)``.
- Scale-down goes only as far as busy GPUs allow: a fleet with an empty queue but GPUs at 95%
  keeps its replicas; with GPUs at 10% it shrinks toward ``ceil(current * 10 / target)``.
- An unusable GPU reading (missing, stale, NaN, several series) blocks scale-down (treated as
  "every replica busy") while the queue still drives scale-up. It is reported as
  MetricsAvailable=False with reason ``GpuUtilizationUnavailable``, except while no replica is
  ready (nothing exports GPU utilization yet; reason ``NoReadyReplicas``, not a fault).
- Without a GPU signal configured the queue drives both directions.

``desired`` only moves toward the queue's ask, so it is monotonic in queue depth: more waiting
requests never give fewer replicas.
"""

from __future__ import annotations

import math

from fleetscale.api.inferencepool import GpuUtilizationMetric, QueueDepthMetric
from fleetscale.planner.behavior import Tolerances
from fleetscale.planner.readings import ReadingCheck
from fleetscale.planner.text import number
from fleetscale.planner.types import Step

QUEUE = "queue"
GPU = "gpu"
COMBINE = "combine"

WITHIN_TOLERANCE = "WithinTolerance"
QUEUE_ABOVE_TARGET = "QueueAboveTarget"
QUEUE_BELOW_TARGET = "QueueBelowTarget"
QUEUE_AT_TARGET = "QueueAtTarget"
GPU_ABOVE_TARGET = "GpuAboveTarget"
GPU_BELOW_TARGET = "GpuBelowTarget"
GPU_AT_TARGET = "GpuAtTarget"
GPU_UNAVAILABLE = "GpuUtilizationUnavailable"
NO_READY_REPLICAS = "NoReadyReplicas"
QUEUE_DEPTH = "QueueDepth"
GPU_BUSY = "GpuBusy"
GPU_UTILIZATION = "GpuUtilization"

# Float division can land a hair above an integer (1.1 / 0.1 = 11.000000000000002); that hair
# must not cost a whole replica.
_CEIL_SLACK = 1e-9


def ceil_replicas(value: float) -> int:
    """Replicas needed for a fractional demand, ignoring float noise."""
    return max(0, math.ceil(value - _CEIL_SLACK))


def _band(tolerances: Tolerances) -> str:
    if tolerances.down == tolerances.up:
        return f"within {number(tolerances.up * 100)}%"
    return f"within -{number(tolerances.down * 100)}%/+{number(tolerances.up * 100)}%"


def _direction_reason(desired: int, current: int, above: str, below: str, at: str) -> str:
    if desired > current:
        return above
    if desired < current:
        return below
    return at


def queue_signal(
    queue_depth: float, current_replicas: int, metric: QueueDepthMetric, tolerances: Tolerances
) -> Step:
    """Replicas the waiting requests ask for (step "queue")."""
    target = metric.target_per_replica
    if current_replicas > 0:
        per_replica = queue_depth / current_replicas
        usage_ratio = per_replica / target
        load = f"queue {number(queue_depth)} waiting, {number(per_replica)} per replica"
    else:
        usage_ratio = 1.0 if queue_depth == 0 else math.inf
        load = f"queue {number(queue_depth)} waiting, no replicas"
    if tolerances.within(usage_ratio):
        return Step(
            QUEUE,
            current_replicas,
            WITHIN_TOLERANCE,
            f"{load}, {_band(tolerances)} of target {number(target)}",
        )
    desired = ceil_replicas(queue_depth / target)
    relation = "over" if usage_ratio > 1 else "under"
    return Step(
        QUEUE,
        desired,
        _direction_reason(
            desired, current_replicas, QUEUE_ABOVE_TARGET, QUEUE_BELOW_TARGET, QUEUE_AT_TARGET
        ),
        f"{load} {relation} target {number(target)}",
    )


def gpu_signal(
    reading: ReadingCheck,
    current_replicas: int,
    ready_replicas: int,
    metric: GpuUtilizationMetric,
    tolerances: Tolerances,
) -> Step:
    """Replicas GPU utilization asks for (step "gpu"); an unusable reading keeps current."""
    target = metric.target_percent
    if reading.value is None:
        reason = NO_READY_REPLICAS if ready_replicas == 0 else GPU_UNAVAILABLE
        return Step(GPU, current_replicas, reason, f"{reading.message}; scale-down waits for it")
    utilization = reading.value
    usage_ratio = utilization / target
    load = f"GPU utilization {number(utilization)}%"
    if tolerances.within(usage_ratio):
        return Step(
            GPU,
            current_replicas,
            WITHIN_TOLERANCE,
            f"{load}, {_band(tolerances)} of target {number(target)}%",
        )
    desired = ceil_replicas(current_replicas * usage_ratio)
    relation = "over" if usage_ratio > 1 else "under"
    return Step(
        GPU,
        desired,
        _direction_reason(
            desired, current_replicas, GPU_ABOVE_TARGET, GPU_BELOW_TARGET, GPU_AT_TARGET
        ),
        f"{load} {relation} target {number(target)}%",
    )


def combine(queue: Step, gpu: Step | None, current_replicas: int) -> Step:
    """The signals' joint ask (step "combine"): see the module docstring for the rule."""
    if gpu is None:
        if queue.replicas == current_replicas:
            return Step(COMBINE, current_replicas, WITHIN_TOLERANCE, queue.message)
        return Step(COMBINE, queue.replicas, QUEUE_DEPTH, queue.message)

    gpu_floor = min(gpu.replicas, current_replicas)
    desired = max(queue.replicas, gpu_floor)
    if desired > queue.replicas:
        # The queue would shrink the fleet further; the GPUs say those replicas are needed.
        if gpu.reason in (GPU_UNAVAILABLE, NO_READY_REPLICAS):
            return Step(
                COMBINE,
                desired,
                gpu.reason,
                f"{queue.message}; GPU utilization is unknown, so no replica is released",
            )
        if desired == current_replicas:
            return Step(
                COMBINE, desired, GPU_BUSY, f"{queue.message}; {gpu.message}: replicas are busy"
            )
        return Step(
            COMBINE,
            desired,
            GPU_UTILIZATION,
            f"{queue.message}; {gpu.message}: {desired} of {current_replicas} replicas needed",
        )
    if desired == current_replicas:
        note = ""
        if gpu.replicas > current_replicas:
            note = f"; {gpu.message} (GPU utilization alone never adds replicas)"
        return Step(COMBINE, desired, WITHIN_TOLERANCE, f"{queue.message}{note}")
    return Step(COMBINE, desired, QUEUE_DEPTH, f"{queue.message}; {gpu.message}")
