"""The pure steps around the planner: observe (measurements -> Observation), commit (record
only what was done) and the one definition of an InferencePool's demand."""

from __future__ import annotations

from typing import Any

import pytest
from planner_builders import NOW, make_spec

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import plan
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityState,
    NodeView,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions, commit_scale, settle_pending_scale
from fleetscale.planner.demand import inference_pool_demand
from fleetscale.planner.observe import (
    ACCELERATOR_POOL_NOT_FOUND,
    ALLOCATION_PENDING,
    GPU,
    QUEUE,
    PublishedAllocation,
    TargetSize,
    capacity_limit,
    observe,
)
from fleetscale.planner.types import CapacityLimit, MetricReading, PlannerState, TimedDelta

MAX_NODES = CapacityLimit(3, "MaxNodes", "at nodes.max")
FITS = CapacityLimit(6, "CapacityAvailable", "all 6 desired replicas fit")


@pytest.mark.parametrize(
    ("allocation", "reason", "max_replicas"),
    [
        pytest.param(None, None, None, id="no-accelerator-pool"),
        pytest.param(
            PublishedAllocation("h100", exists=False), ACCELERATOR_POOL_NOT_FOUND, 0, id="missing"
        ),
        pytest.param(PublishedAllocation("h100", exists=True), ALLOCATION_PENDING, 0, id="pending"),
        pytest.param(
            PublishedAllocation("h100", exists=True, limit=FITS), None, None, id="all-demand-fits"
        ),
        pytest.param(
            PublishedAllocation("h100", exists=True, limit=MAX_NODES), "MaxNodes", 3, id="capped"
        ),
    ],
)
def test_the_capacity_cap_comes_from_the_published_allocation(
    allocation: PublishedAllocation | None, reason: str | None, max_replicas: int | None
) -> None:
    limit = capacity_limit(allocation, pending_seconds=15)
    assert (limit.reason if limit else None, limit.max_replicas if limit else None) == (
        reason,
        max_replicas,
    )
    if reason == ALLOCATION_PENDING:
        assert limit is not None
        assert limit.seconds_until_more == 15


@pytest.mark.parametrize(
    ("spec_accelerators", "target_accelerators", "expected"),
    [
        pytest.param(2, 8, 2, id="spec-wins"),
        pytest.param(None, 8, 8, id="from-pod-template"),
        pytest.param(None, None, None, id="unknown"),
    ],
)
def test_observe_takes_accelerators_from_the_spec_else_the_target(
    spec_accelerators: int | None, target_accelerators: int | None, expected: int | None
) -> None:
    spec = make_spec().model_copy(update={"accelerators_per_replica": spec_accelerators})
    target = TargetSize(3, 2, target_accelerators)
    observation = observe(spec, target, {}, None, pending_seconds=15)
    assert observation.accelerators_per_replica == expected
    assert (observation.current_replicas, observation.ready_replicas) == (3, 2)


def test_observe_reads_only_the_signals_the_spec_configures() -> None:
    queue = MetricReading.ok(4, NOW)
    gpu = MetricReading.ok(50, NOW)
    without_gpu = observe(
        make_spec(), TargetSize(1, 1), {QUEUE: queue, GPU: gpu}, None, pending_seconds=15
    )
    assert (without_gpu.queue_depth, without_gpu.gpu_utilization_percent) == (queue, None)
    with_gpu = observe(
        make_spec(gpu_target_percent=80), TargetSize(1, 1), {QUEUE: queue}, None, pending_seconds=15
    )
    assert with_gpu.gpu_utilization_percent is not None
    assert with_gpu.gpu_utilization_percent.problem is not None  # asked for, not read


def test_plan_records_no_change_of_size_until_it_is_committed() -> None:
    spec = make_spec(target_per_replica=5)
    observation = observe(
        spec, TargetSize(2, 2), {QUEUE: MetricReading.ok(40, NOW)}, None, pending_seconds=15
    )
    decision, planned = plan(spec, observation, PlannerState(), NOW)
    assert decision.scale_delta > 0
    assert (planned.scale_events, planned.last_scale_time) == ((), None)

    failed = commit_scale(planned, 0, spec.behavior, NOW)
    assert failed == planned
    done = commit_scale(planned, decision.scale_delta, spec.behavior, NOW)
    assert done.scale_events == (TimedDelta(NOW, decision.scale_delta),)
    assert done.last_scale_time == NOW
    assert done.recommendations == planned.recommendations


@pytest.mark.parametrize(
    ("delta", "pending", "happened", "up_time"),
    [
        pytest.param(2, None, False, NOW, id="raised"),
        pytest.param(-2, None, False, NOW - 900, id="lowered-keeps-the-last-rise"),
        pytest.param(0, TimedDelta(NOW - 15, 3), True, NOW - 15, id="pending-rise-happened"),
        pytest.param(0, TimedDelta(NOW - 15, 3), False, NOW - 900, id="pending-rise-not-made"),
        pytest.param(0, TimedDelta(NOW - 15, -3), True, NOW - 900, id="pending-fall"),
    ],
)
def test_the_last_rise_is_kept_apart_from_the_last_change(
    delta: int, pending: TimedDelta | None, happened: bool, up_time: float
) -> None:
    """The capacity probe waits after a rise, not after a fall: the time of the last rise is
    recorded only by a rise that was made."""
    spec = make_spec()
    state = PlannerState(last_scale_time=NOW - 900, last_scale_up_time=NOW - 900)
    state = settle_pending_scale(state, pending, happened, spec.behavior, NOW)
    assert commit_scale(state, delta, spec.behavior, NOW).last_scale_up_time == up_time


def _node(name: str, *, ready: bool = True, empty: bool = True) -> NodeView:
    in_use = 0 if empty else 8
    return NodeView(name, ready, NOW - 3600, 8, in_use, 0 if empty else 1, NOW - 3500)


@pytest.mark.parametrize(
    ("resized", "released", "requested_at", "last_scale", "releasing"),
    [
        pytest.param(False, (), None, None, {}, id="provider-refused"),
        pytest.param(True, (), NOW, NOW, {}, id="grew"),
    ],
)
def test_a_node_request_counts_only_once_the_provider_took_it(
    resized: bool,
    released: tuple[str, ...],
    requested_at: float | None,
    last_scale: float | None,
    releasing: dict[str, float],
) -> None:
    spec = _pool_spec()
    demand = inference_pool_demand(
        "ns",
        "m",
        _ipool_spec(),
        current_replicas=4,
        ready_replicas=4,
        asked_replicas=8,
        shedding=False,
        observed_accelerators_per_replica=None,
    )
    capacity_plan, planned = plan_capacity(
        spec, [demand], CapacityObservation([_node("a", empty=False)], 1), CapacityState(), NOW
    )
    assert capacity_plan.desired_nodes > capacity_plan.current_nodes
    assert (planned.scale_up_requested_at, planned.last_scale_time) == (None, None)
    state = commit_node_actions(planned, capacity_plan, resized=resized, released=released, now=NOW)
    assert (state.scale_up_requested_at, state.last_scale_time) == (requested_at, last_scale)
    assert dict(state.releasing) == releasing


def test_a_release_counts_only_once_the_provider_took_it() -> None:
    spec = _pool_spec(scaleDownDelaySeconds=0)
    capacity_plan, planned = plan_capacity(
        spec, [], CapacityObservation([_node("a"), _node("b")], 2), CapacityState(), NOW
    )
    assert capacity_plan.release_nodes == ("a", "b")
    assert set(planned.empty_since) == {"a", "b"}
    assert not planned.releasing
    refused = commit_node_actions(planned, capacity_plan, resized=False, released=(), now=NOW)
    assert set(refused.empty_since) == {"a", "b"}
    assert not refused.releasing
    taken = commit_node_actions(planned, capacity_plan, resized=True, released=("a", "b"), now=NOW)
    assert (dict(taken.empty_since), dict(taken.releasing)) == ({}, {"a": NOW, "b": NOW})


def test_a_node_kept_from_release_waits_the_delay_again() -> None:
    spec = _pool_spec(scaleDownDelaySeconds=60)
    state = CapacityState(empty_since={"stranger": NOW - 600, "b": NOW - 300})
    nodes = CapacityObservation([_node("stranger"), _node("b")], 2)
    capacity_plan, planned = plan_capacity(spec, [], nodes, state, NOW)
    assert capacity_plan.release_nodes == ("stranger", "b")
    # The provider could not name "stranger": it stays, and its empty clock starts again.
    kept = commit_node_actions(
        planned, capacity_plan, resized=True, released=("b",), now=NOW, kept=("stranger",)
    )
    assert dict(kept.empty_since) == {"stranger": NOW}
    assert dict(kept.releasing) == {"b": NOW}
    again, _ = plan_capacity(spec, [], CapacityObservation([_node("stranger")], 1), kept, NOW + 30)
    assert again.release_nodes == ()


def _pool_spec(**overrides: Any) -> AcceleratorPoolSpec:
    raw: dict[str, Any] = {
        "provider": {"kwok": {}},
        "nodeLabels": {"gpu": "h100"},
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": 8},
        **overrides,
    }
    return AcceleratorPoolSpec.model_validate(raw)


def _ipool_spec(**overrides: Any) -> InferencePoolSpec:
    raw: dict[str, Any] = {
        "targetRef": {"name": "vllm"},
        "replicas": {"min": 1, "max": 10},
        "acceleratorsPerReplica": 4,
        "metrics": {"engine": "custom", "queueDepth": {"query": "q"}},
        **overrides,
    }
    return InferencePoolSpec.model_validate(raw)


@pytest.mark.parametrize(
    ("overrides", "current", "asked", "shedding", "observed", "expected"),
    [
        pytest.param({}, 2, 6, False, None, (6, 4, False), id="asks-within-bounds"),
        pytest.param({}, 2, 40, False, None, (10, 4, False), id="clamped-to-max"),
        pytest.param({}, 2, 0, False, None, (1, 4, False), id="clamped-to-min"),
        pytest.param({}, 3, None, False, None, (3, 4, False), id="never-decided-asks-current"),
        pytest.param({}, 0, None, False, None, (0, 4, False), id="target-at-zero-is-disabled"),
        pytest.param(
            {"replicas": {"min": 0, "max": 10}},
            0,
            None,
            False,
            None,
            (0, 4, False),
            id="never-decided-asks-current-zero",
        ),
        pytest.param({"mode": "Paused"}, 0, 6, False, None, (0, 4, False), id="paused-keeps"),
        pytest.param({}, 2, 6, True, None, (6, 4, True), id="shedding-below-max-lower-bound"),
        pytest.param({}, 2, 12, True, None, (10, 4, False), id="shedding-at-max"),
        pytest.param(
            {"acceleratorsPerReplica": None},
            2,
            6,
            False,
            8,
            (6, 8, False),
            id="accelerators-from-target",
        ),
        pytest.param(
            {"acceleratorsPerReplica": None},
            2,
            6,
            False,
            None,
            (6, 0, False),
            id="accelerators-unknown",
        ),
    ],
)
def test_an_inference_pools_demand(
    overrides: dict[str, Any],
    current: int,
    asked: int | None,
    shedding: bool,
    observed: int | None,
    expected: tuple[int, int, bool],
) -> None:
    demand = inference_pool_demand(
        "ns",
        "m",
        _ipool_spec(**overrides),
        current_replicas=current,
        ready_replicas=current,
        asked_replicas=asked,
        shedding=shedding,
        observed_accelerators_per_replica=observed,
    )
    assert (
        demand.desired_replicas,
        demand.accelerators_per_replica,
        demand.demand_is_lower_bound,
    ) == expected
