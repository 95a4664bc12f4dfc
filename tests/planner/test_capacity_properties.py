"""Properties of the joint planner that hold for every input, and a closed-loop run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from planner_builders import plan_capacity_and_commit

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.planner.capacity import (
    MAX_NODES,
    CapacityObservation,
    CapacityPlan,
    CapacityState,
    InferencePoolDemand,
    NodeView,
)

NOW = 1_800_000_000.0
PER_NODE = 8


def _spec(max_nodes: int, min_nodes: int = 0, delay: int = 300) -> AcceleratorPoolSpec:
    return AcceleratorPoolSpec.model_validate(
        {
            "provider": {"kwok": {}},
            "nodeLabels": {"pool": "p"},
            "acceleratorsPerNode": PER_NODE,
            "nodes": {"min": min(min_nodes, max_nodes), "max": max_nodes},
            "scaleDownDelaySeconds": delay,
            "provisioningTimeoutSeconds": 900,
        }
    )


demands_strategy = st.lists(
    st.builds(
        InferencePoolDemand,
        namespace=st.just("ns"),
        name=st.sampled_from(["a", "b", "c", "d"]),
        priority=st.integers(-5, 5),
        accelerators_per_replica=st.sampled_from([0, 1, 2, 4, 8, 16]),
        current_replicas=st.integers(0, 8),
        desired_replicas=st.integers(0, 12),
    ),
    max_size=4,
    unique_by=lambda d: d.name,
)

nodes_strategy = st.lists(
    st.builds(
        NodeView,
        name=st.sampled_from([f"n{i}" for i in range(10)]),
        ready=st.booleans(),
        created_at=st.floats(NOW - 2000, NOW),
        accelerators_allocatable=st.just(PER_NODE),
        accelerators_in_use=st.sampled_from([0, 0, 4, 8]),
        workload_pods=st.integers(0, 2),
    ),
    max_size=8,
    unique_by=lambda n: n.name,
)


@given(
    demands=demands_strategy,
    nodes=nodes_strategy,
    max_nodes=st.integers(1, 8),
    extra_requested=st.integers(0, 3),
    empty_for=st.floats(0, 1000),
)
def test_bounds_and_safety_hold_for_any_input(
    demands: list[InferencePoolDemand],
    nodes: list[NodeView],
    max_nodes: int,
    extra_requested: int,
    empty_for: float,
) -> None:
    spec = _spec(max_nodes)
    state = CapacityState(
        empty_since={n.name: NOW - empty_for for n in nodes},
        scale_up_requested_at=NOW - 100,
    )
    observation = CapacityObservation(nodes, requested_nodes=len(nodes) + extra_requested)
    plan, _ = plan_capacity_and_commit(spec, demands, observation, state, NOW)

    by_name = {n.name: n for n in nodes}
    # Never release a node that hosts a model pod, nor one we do not see.
    for name in plan.release_nodes:
        assert by_name[name].empty, name
    # Never fewer nodes asked than host workload pods; growth never past nodes.max (only
    # nodes that are not released keep the size above it); never more granted than it holds.
    busy = [n for n in nodes if not n.empty]
    assert plan.desired_nodes >= len(busy)
    assert plan.desired_nodes <= max(spec.nodes.max, plan.current_nodes - len(plan.release_nodes))
    assert plan.nodes_busy.status == (len(busy) > spec.nodes.max)
    granted = sum(a.accelerators for a in plan.allocations)
    assert granted <= spec.nodes.max * PER_NODE
    # Caps only on Ready nodes.
    ready = sum(1 for n in nodes if n.ready)
    running = sum(a.limit.max_replicas * a.accelerators_per_replica for a in plan.allocations)
    assert running <= ready * PER_NODE
    for allocation in plan.allocations:
        assert 0 <= allocation.limit.max_replicas <= allocation.granted_replicas
    # Same inputs, same plan.
    assert plan_capacity_and_commit(spec, demands, observation, state, NOW)[0] == plan


@given(
    high=st.integers(0, 12),
    low=st.integers(0, 12),
    per_replica=st.sampled_from([1, 2, 4, 8]),
    max_nodes=st.integers(1, 4),
)
def test_lower_priority_is_capped_first(
    high: int, low: int, per_replica: int, max_nodes: int
) -> None:
    demands = [
        InferencePoolDemand("ns", "low", 1, per_replica, current_replicas=0, desired_replicas=low),
        InferencePoolDemand(
            "ns", "high", 9, per_replica, current_replicas=0, desired_replicas=high
        ),
    ]
    ready = tuple(NodeView(f"n{i}", True, NOW - 999, PER_NODE, 0) for i in range(max_nodes))
    plan, _ = plan_capacity_and_commit(
        _spec(max_nodes), demands, CapacityObservation(ready, max_nodes), CapacityState(), NOW
    )
    grants = {a.name: a for a in plan.allocations}
    if grants["high"].granted_replicas < high:
        assert grants["high"].limit.reason == MAX_NODES
        assert grants["low"].granted_replicas == 0
    if grants["low"].granted_replicas < low and low > 0:
        assert grants["low"].limit.reason == MAX_NODES


def _simulate(
    spec: AcceleratorPoolSpec,
    demand_at: Sequence[int],
    provisioning_ticks: int = 2,
    tick_seconds: float = 60.0,
) -> list[CapacityPlan]:
    """Run the planner in a loop against a tiny cluster: requested nodes register at once and
    turn Ready after ``provisioning_ticks``; replicas follow their cap at once."""
    state = CapacityState()
    nodes: dict[str, NodeView] = {}
    requested = 0
    replicas = 0
    serial = 0
    plans = []
    empty_from: dict[str, float] = {}
    for tick, desired in enumerate(demand_at):
        now = NOW + tick * tick_seconds
        for name, view in list(nodes.items()):
            if not view.ready and now - view.created_at >= provisioning_ticks * tick_seconds:
                nodes[name] = NodeView(name, True, view.created_at, PER_NODE, 0, 0, now)
        while len(nodes) < requested:
            nodes[f"n{serial}"] = NodeView(f"n{serial}", False, now, PER_NODE, 0, 0)
            serial += 1
        # Place the running replicas (4 accelerators each, two per node) on Ready nodes.
        ready_names = sorted(n for n, v in nodes.items() if v.ready)
        for index, name in enumerate(ready_names):
            on_node = max(0, min(2, replicas - 2 * index))
            old = nodes[name]
            nodes[name] = NodeView(
                name, True, old.created_at, PER_NODE, 4 * on_node, on_node, old.ready_since
            )
        for name, view in nodes.items():
            if view.ready and view.empty:
                empty_from.setdefault(name, now)
            else:
                empty_from.pop(name, None)
        pool = InferencePoolDemand(
            "ns", "m", 0, 4, current_replicas=replicas, desired_replicas=desired
        )
        plan, state = plan_capacity_and_commit(
            spec, [pool], CapacityObservation(tuple(nodes.values()), requested), state, now
        )
        for name in plan.release_nodes:
            assert nodes[name].empty
            # Never released before it stayed empty for the whole delay.
            assert now - empty_from[name] >= spec.scale_down_delay_seconds
            del nodes[name]
        requested = plan.desired_nodes
        replicas = min(desired, plan.allocations[0].limit.max_replicas)
        plans.append(plan)
    return plans


@given(demand=st.integers(0, 16))
def test_constant_demand_converges_without_flapping(demand: int) -> None:
    plans = _simulate(_spec(max_nodes=6, delay=120), [demand] * 12)
    sizes = [p.desired_nodes for p in plans]
    # Monotone toward the target, then still: never up-then-down or down-then-up.
    assert sizes == sorted(sizes) or sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == sizes[-2] == sizes[-3]
    assert sizes[-1] == min(6, -(-demand // 2))
    assert plans[-1].allocations[0].limit.max_replicas == min(demand, 12)


def test_dip_shorter_than_the_delay_keeps_the_nodes() -> None:
    demand: list[Any] = [8] * 6 + [2] * 2 + [8] * 4
    plans = _simulate(_spec(max_nodes=6, delay=300), demand)
    sizes = [p.desired_nodes for p in plans]
    assert max(sizes) == 4
    assert sizes[6:] == [4] * 6  # the 2-minute dip never released a node


def test_lasting_drop_releases_nodes_after_the_delay() -> None:
    plans = _simulate(_spec(max_nodes=6, delay=120), [8] * 6 + [2] * 8)
    sizes = [p.desired_nodes for p in plans]
    assert sizes[5] == 4
    assert sizes[-1] == 1
    released = [p for p in plans if p.release_nodes]
    assert released
    first_release = plans.index(released[0])
    assert first_release >= 6 + 2  # not before the nodes were empty for 120 s


@given(
    demand=st.lists(st.integers(0, 16), min_size=4, max_size=30),
    delay=st.sampled_from([0, 60, 300]),
)
def test_any_demand_never_exceeds_max_nor_releases_early(demand: list[int], delay: int) -> None:
    plans = _simulate(_spec(max_nodes=5, delay=delay), demand)
    assert all(0 <= p.desired_nodes <= 5 for p in plans)
    for plan in plans:
        assert plan.allocations[0].limit.max_replicas <= 2 * plan.ready_nodes
