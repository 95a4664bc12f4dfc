"""Builders of planner inputs for the planner's table and property tests.

Specs are built through the real pydantic models (so every test input is a spec the API
server would accept); observations and states are the planner's own plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import plan
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityPlan,
    CapacityState,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions, commit_scale
from fleetscale.planner.demand import InferencePoolDemand
from fleetscale.planner.types import (
    CapacityLimit,
    Decision,
    LoadReadings,
    MetricProblem,
    MetricReading,
    Observation,
    PlannerState,
)

NOW = 10_000.0


def make_spec(
    *,
    min_replicas: int = 1,
    max_replicas: int = 8,
    target_per_replica: float = 5.0,
    gpu_target_percent: float | None = None,
    tolerance: float = 0.1,
    max_staleness_seconds: int = 60,
    scale_up: dict[str, Any] | None = None,
    scale_down: dict[str, Any] | None = None,
    shed_load: dict[str, Any] | None = None,
    poll_interval_seconds: int = 15,
) -> InferencePoolSpec:
    """An InferencePool spec in wire form, validated by the model (defaults as the CRD's)."""
    metrics: dict[str, Any] = {
        "engine": "custom",
        "queueDepth": {"query": "sum(waiting)", "targetPerReplica": target_per_replica},
        "tolerance": tolerance,
        "maxStalenessSeconds": max_staleness_seconds,
    }
    if gpu_target_percent is not None:
        metrics["gpuUtilization"] = {"query": "avg(util)", "targetPercent": gpu_target_percent}
    behavior: dict[str, Any] = {}
    if scale_up is not None:
        behavior["scaleUp"] = scale_up
    if scale_down is not None:
        behavior["scaleDown"] = scale_down
    wire: dict[str, Any] = {
        "targetRef": {"name": "vllm"},
        "replicas": {"min": min_replicas, "max": max_replicas},
        "metrics": metrics,
        "behavior": behavior,
        "pollIntervalSeconds": poll_interval_seconds,
    }
    if shed_load is not None:
        wire["shedLoad"] = shed_load
    return InferencePoolSpec.model_validate(wire)


def rules(window: int = 0, *policies: tuple[str, int, int], select: str = "Max") -> dict[str, Any]:
    """A scaleUp/scaleDown block: ``rules(300, ("Percent", 100, 15))``."""
    return {
        "stabilizationWindowSeconds": window,
        "selectPolicy": select,
        "policies": [
            {"type": kind, "value": value, "periodSeconds": period}
            for kind, value, period in policies
        ],
    }


def fresh(value: float, age_seconds: float = 5.0, now: float = NOW) -> MetricReading:
    return MetricReading.ok(value, sampled_at=now - age_seconds)


Reading = float | MetricReading | MetricProblem | None


def as_reading(value: Reading, now: float = NOW) -> MetricReading | None:
    if value is None or isinstance(value, MetricReading):
        return value
    if isinstance(value, MetricProblem):
        return MetricReading.failed(value, "injected")
    return fresh(value, now=now)


def observe(
    current: int = 4,
    *,
    ready: int | None = None,
    queue: Reading = 20.0,
    gpu: Reading = None,
    capacity: CapacityLimit | None = None,
    startup_seconds: float | None = None,
    now: float = NOW,
) -> Observation:
    """An observation; ``ready`` defaults to ``current``; floats become fresh readings."""
    queue_reading = as_reading(queue, now)
    assert queue_reading is not None, "the queue depth is always read"
    return Observation(
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        queue_depth=queue_reading,
        gpu_utilization_percent=as_reading(gpu, now),
        capacity=capacity,
        replica_startup_seconds=startup_seconds,
    )


def plan_and_commit(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState, now: float
) -> tuple[Decision, PlannerState]:
    """``plan``, then ``commit_scale`` as a controller whose scale write succeeded does."""
    decision, new_state = plan(spec, observation, state, now)
    return decision, commit_scale(new_state, decision.scale_delta, spec.behavior, now)


def plan_capacity_and_commit(
    spec: AcceleratorPoolSpec,
    demands: Sequence[InferencePoolDemand],
    observation: CapacityObservation,
    state: CapacityState,
    now: float,
) -> tuple[CapacityPlan, CapacityState]:
    """``plan_capacity``, then ``commit_node_actions`` as if the provider took every action."""
    capacity_plan, new_state = plan_capacity(spec, demands, observation, state, now)
    committed = commit_node_actions(
        new_state,
        capacity_plan,
        resized=capacity_plan.desired_nodes != capacity_plan.current_nodes,
        released=capacity_plan.release_nodes,
        now=now,
    )
    return capacity_plan, committed


def load_spec(
    *,
    min_replicas: int = 1,
    max_replicas: int = 40,
    ttft_seconds: float | None = 2.0,
    capacity: dict[str, Any] | None = None,
    scale_up: dict[str, Any] | None = None,
    scale_down: dict[str, Any] | None = None,
    **metrics: Any,
) -> InferencePoolSpec:
    """A pool on the vLLM preset (the load model), its latency target and capacity settings."""
    wire: dict[str, Any] = {
        "targetRef": {"name": "vllm"},
        "model": "llama",
        "replicas": {"min": min_replicas, "max": max_replicas},
        "metrics": metrics,
        "capacity": capacity or {},
        "behavior": {
            **({"scaleUp": scale_up} if scale_up is not None else {}),
            **({"scaleDown": scale_down} if scale_down is not None else {}),
        },
    }
    if ttft_seconds is not None:
        wire["slo"] = {"ttftSeconds": ttft_seconds}
    return InferencePoolSpec.model_validate(wire)


def observe_load(
    current: int = 10,
    *,
    ready: int | None = None,
    queue: Reading = 5.0,
    tokens: Reading = 8000.0,
    generated: Reading = 2000.0,
    running: Reading = 500.0,
    kv: Reading = 0.2,
    started: Reading = 50.0,
    growth: Reading = 0.0,
    ttft: Reading = 0.5,
    offered: Reading = None,
    refused: Reading = None,
    now: float = NOW,
) -> Observation:
    """An observation of a pool on the load model: prompt tokens/s, generated tokens/s,
    running requests, KV usage (fraction), requests started/s, growth/s, TTFT (s)."""
    queue_reading = as_reading(queue, now)
    assert queue_reading is not None
    return Observation(
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        queue_depth=queue_reading,
        load=LoadReadings(
            running=as_reading(running, now),
            kv_cache_usage=as_reading(kv, now),
            prompt_tokens=as_reading(tokens, now),
            generation_tokens=as_reading(generated, now),
            request_rate=as_reading(started, now),
            work_growth=as_reading(growth, now),
            ttft=as_reading(ttft, now),
            offered=as_reading(offered, now),
            refused=as_reading(refused, now),
        ),
    )
