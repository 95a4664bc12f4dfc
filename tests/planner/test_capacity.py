"""The joint node and replica planner: tables of situations and what it must decide."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from planner_builders import plan_capacity_and_commit

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.planner.capacity import (
    CAPACITY_AVAILABLE,
    MAX_NODES,
    NODES_BUSY,
    NODES_PROVISIONING,
    NODES_RELEASED,
    NODES_REQUESTED,
    PROVISIONING_FAILED,
    WAITING_FOR_EMPTY_NODES,
    CapacityObservation,
    CapacityState,
    InferencePoolDemand,
    NodeView,
    nodes_needed,
    replicas_per_node,
)

NOW = 1_800_000_000.0


def pool_spec(**overrides: Any) -> AcceleratorPoolSpec:
    wire: dict[str, Any] = {
        "provider": {"kwok": {}},
        "nodeLabels": {"fleetscale.io/accelerator-pool": "h100"},
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": 4},
        "scaleDownDelaySeconds": 600,
        "provisioningTimeoutSeconds": 900,
    }
    wire.update(overrides)
    return AcceleratorPoolSpec.model_validate(wire)


def demand(
    name: str = "llama",
    desired: int = 1,
    current: int = 0,
    per_replica: int = 4,
    priority: int = 0,
) -> InferencePoolDemand:
    return InferencePoolDemand(
        namespace="serving",
        name=name,
        priority=priority,
        accelerators_per_replica=per_replica,
        current_replicas=current,
        desired_replicas=desired,
    )


def node(
    name: str,
    ready: bool = True,
    age: float = 3600.0,
    in_use: int = 0,
    pods: int | None = None,
    ready_after: float = 60.0,
) -> NodeView:
    created = NOW - age
    return NodeView(
        name=name,
        ready=ready,
        created_at=created,
        accelerators_allocatable=8,
        accelerators_in_use=in_use,
        workload_pods=(1 if in_use else 0) if pods is None else pods,
        ready_since=created + ready_after if ready else None,
    )


def observe(*nodes: NodeView, requested: int | None = None) -> CapacityObservation:
    return CapacityObservation(
        nodes=nodes, requested_nodes=len(nodes) if requested is None else requested
    )


@pytest.mark.parametrize(
    ("per_replica", "per_node", "expected"),
    [
        pytest.param(1, 8, 8.0, id="eight-small-replicas-per-node"),
        pytest.param(3, 8, 2.0, id="remainder-unused"),
        pytest.param(8, 8, 1.0, id="one-replica-fills-a-node"),
        pytest.param(16, 8, 0.5, id="replica-spans-two-nodes"),
        pytest.param(9, 8, 0.5, id="spanning-rounds-up-to-whole-nodes"),
    ],
)
def test_replicas_per_node(per_replica: int, per_node: int, expected: float) -> None:
    assert replicas_per_node(per_replica, per_node) == expected


@pytest.mark.parametrize(
    ("demands", "expected"),
    [
        pytest.param([], 0, id="no-demand"),
        pytest.param([demand(desired=3, per_replica=4)], 2, id="two-per-node"),
        pytest.param(
            [demand("a", desired=1, per_replica=4), demand("b", desired=1, per_replica=4)],
            1,
            id="pools-share-a-node",
        ),
        pytest.param(
            [demand("a", desired=1, per_replica=6), demand("b", desired=2, per_replica=2)],
            2,
            id="first-fit-decreasing",
        ),
        pytest.param([demand(desired=2, per_replica=16)], 4, id="multi-node-replicas"),
        pytest.param([demand(desired=5, per_replica=0)], 0, id="cpu-only-pool"),
        pytest.param([demand(desired=1, current=3, per_replica=8)], 3, id="running-replicas-kept"),
    ],
)
def test_nodes_needed(demands: list[InferencePoolDemand], expected: int) -> None:
    assert nodes_needed(demands, 8) == expected


def test_nodes_are_requested_before_replicas_go_pending() -> None:
    plan, state = plan_capacity_and_commit(
        pool_spec(),
        [demand(desired=4, current=2)],
        observe(node("n0", in_use=8)),
        CapacityState(),
        NOW,
    )
    assert plan.desired_nodes == 2
    assert plan.reason == NODES_REQUESTED
    assert state.scale_up_requested_at == NOW
    # Replicas stay on what is Ready until the new node is: no pod is created to wait Pending.
    limit = plan.limit_for("serving", "llama")
    assert limit is not None
    assert limit.max_replicas == 2
    assert limit.reason == NODES_PROVISIONING
    assert limit.seconds_until_more == pytest.approx(60.0)  # learned from n0: created->Ready


def test_provisioning_node_is_expected_not_requested_again() -> None:
    nodes = observe(node("n0", in_use=8), node("n1", ready=False, age=20))
    plan, _ = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], nodes, CapacityState(), NOW
    )
    assert plan.desired_nodes == 2
    assert plan.provisioning_nodes == 1
    limit = plan.limit_for("serving", "llama")
    assert limit is not None
    assert (limit.max_replicas, limit.reason) == (2, NODES_PROVISIONING)
    assert limit.seconds_until_more == pytest.approx(40.0)


def test_everything_fits_once_nodes_are_ready() -> None:
    nodes = observe(node("n0", in_use=8), node("n1"))
    plan, _ = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], nodes, CapacityState(), NOW
    )
    assert plan.desired_nodes == 2
    assert plan.release_nodes == ()
    limit = plan.limit_for("serving", "llama")
    assert limit is not None
    assert (limit.max_replicas, limit.reason) == (4, CAPACITY_AVAILABLE)
    assert not plan.scaling_limited.status


def test_max_nodes_caps_the_lowest_priority_first() -> None:
    spec = pool_spec(nodes={"min": 0, "max": 2})
    demands = [
        demand("batch", desired=4, current=2, priority=1),
        demand("chat", desired=4, current=2, priority=100),
    ]
    nodes = observe(node("n0", in_use=8), node("n1", in_use=8))
    plan, _ = plan_capacity_and_commit(spec, demands, nodes, CapacityState(), NOW)
    assert plan.desired_nodes == 2
    assert [a.name for a in plan.allocations] == ["chat", "batch"]
    chat, batch = plan.allocations
    assert chat.granted_replicas == 4
    # chat grows only into room batch's running replicas free: the replica planner never
    # scales batch down for capacity, so batch is held at its size and sheds first.
    assert (chat.limit.max_replicas, chat.limit.reason) == (2, MAX_NODES)
    assert (batch.granted_replicas, batch.limit.reason) == (0, MAX_NODES)
    assert batch.limit.max_replicas == 0
    assert plan.scaling_limited.status
    assert plan.scaling_limited.reason == MAX_NODES


@pytest.mark.parametrize(
    ("chat_sheds", "max_nodes", "batch_granted"),
    [
        # chat asks 2 of the 4 slots, but its reading is censored: it will ask for more.
        pytest.param(True, 2, 1, id="lower-bound-at-max-holds-lower-priority"),
        pytest.param(False, 2, 2, id="honest-demand-at-max-lets-lower-priority-grow"),
        pytest.param(True, 4, 2, id="below-max-everyone-gets-nodes"),
    ],
)
def test_a_shedding_pool_keeps_room_from_lower_priorities(
    chat_sheds: bool, max_nodes: int, batch_granted: int
) -> None:
    spec = pool_spec(nodes={"min": 0, "max": max_nodes})
    chat = demand("chat", desired=2, current=1, priority=100)
    demands = [
        replace(chat, demand_is_lower_bound=chat_sheds),
        demand("batch", desired=2, current=1, priority=1),
    ]
    nodes = observe(node("n0", in_use=4), node("n1", in_use=4))
    plan, _ = plan_capacity_and_commit(spec, demands, nodes, CapacityState(), NOW)
    grants = {a.name: a.granted_replicas for a in plan.allocations}
    assert grants == {"chat": 2, "batch": batch_granted}


def test_a_shedding_pool_never_holds_its_own_priority() -> None:
    spec = pool_spec(nodes={"min": 0, "max": 2})
    demands = [
        replace(demand("a", desired=2, current=1), demand_is_lower_bound=True),
        demand("b", desired=2, current=1),
    ]
    nodes = observe(node("n0", in_use=4), node("n1", in_use=4))
    plan, _ = plan_capacity_and_commit(spec, demands, nodes, CapacityState(), NOW)
    assert {a.name: a.granted_replicas for a in plan.allocations} == {"a": 2, "b": 2}


def test_running_replicas_keep_their_place_while_nodes_provision() -> None:
    demands = [
        demand("batch", desired=2, current=2, priority=1),
        demand("chat", desired=4, current=0, priority=100),
    ]
    nodes = observe(node("n0", in_use=8))
    plan, _ = plan_capacity_and_commit(pool_spec(), demands, nodes, CapacityState(), NOW)
    assert plan.desired_nodes == 3
    limits = plan.limits
    assert limits[("serving", "batch")].max_replicas == 2
    assert limits[("serving", "chat")].max_replicas == 0
    assert limits[("serving", "chat")].reason == NODES_PROVISIONING


def test_empty_node_waits_for_the_delay_then_is_released() -> None:
    spec = pool_spec()
    demands = [demand(desired=2, current=2)]
    nodes = observe(node("busy", in_use=8), node("idle"))
    plan, state = plan_capacity_and_commit(spec, demands, nodes, CapacityState(), NOW)
    assert plan.release_nodes == ()
    assert plan.reason == WAITING_FOR_EMPTY_NODES
    assert state.empty_since == {"idle": NOW}

    plan, state = plan_capacity_and_commit(spec, demands, nodes, state, NOW + 599)
    assert plan.release_nodes == ()

    plan, state = plan_capacity_and_commit(spec, demands, nodes, state, NOW + 600)
    assert plan.release_nodes == ("idle",)
    assert plan.desired_nodes == 1
    assert plan.reason == NODES_RELEASED
    assert "idle" not in state.empty_since


def test_a_busy_node_is_never_released() -> None:
    spec = pool_spec(scaleDownDelaySeconds=0)
    nodes = observe(node("a", in_use=4), node("b", in_use=0, pods=1), node("c", in_use=4))
    plan, _ = plan_capacity_and_commit(
        spec, [demand(desired=1, current=1)], nodes, CapacityState(), NOW
    )
    assert plan.release_nodes == ()
    assert plan.desired_nodes == 3


@pytest.mark.parametrize(
    ("max_nodes", "nodes", "release", "desired", "busy"),
    [
        pytest.param(
            1, [node("a", in_use=8), node("b", in_use=8), node("c", in_use=4)], (), 3, True,
            id="three-busy-under-max-one",
        ),
        pytest.param(
            1, [node("a", in_use=8), node("b"), node("c", in_use=4)], ("b",), 2, True,
            id="the-empty-one-still-goes",
        ),
        pytest.param(
            1, [node("a", in_use=8), node("b", ready=False, pods=1, age=30)], (), 2, True,
            id="a-busy-node-not-ready-counts",
        ),
        pytest.param(
            2, [node("a", in_use=8), node("b", in_use=8), node("c")], ("c",), 2, False,
            id="busy-within-max",
        ),
    ],
)  # fmt: skip
def test_busy_nodes_keep_the_pool_above_a_lowered_max(
    max_nodes: int, nodes: list[NodeView], release: tuple[str, ...], desired: int, busy: bool
) -> None:
    spec = pool_spec(nodes={"min": 0, "max": max_nodes}, scaleDownDelaySeconds=0)
    demands = [demand(desired=8, current=4)]
    plan, _ = plan_capacity_and_commit(spec, demands, observe(*nodes), CapacityState(), NOW)
    assert plan.release_nodes == release
    assert plan.desired_nodes == desired
    assert plan.nodes_busy.status is busy
    assert plan.nodes_busy.reason == (NODES_BUSY if busy else "BusyNodesWithinMax")
    if busy:
        assert f"more than nodes.max={max_nodes}" in plan.nodes_busy.message
        assert "a" in plan.nodes_busy.message


def test_nodes_min_is_kept_even_when_empty() -> None:
    spec = pool_spec(nodes={"min": 1, "max": 4}, scaleDownDelaySeconds=0)
    plan, _ = plan_capacity_and_commit(
        spec, [], observe(node("a"), node("b")), CapacityState(), NOW
    )
    assert len(plan.release_nodes) == 1
    assert plan.desired_nodes == 1


def test_oldest_empty_node_goes_first() -> None:
    spec = pool_spec(scaleDownDelaySeconds=60)
    state = CapacityState(empty_since={"a": NOW - 100, "b": NOW - 500, "c": NOW - 300})
    nodes = observe(node("a"), node("b"), node("c"))
    plan, _ = plan_capacity_and_commit(spec, [demand(desired=2, per_replica=8)], nodes, state, NOW)
    assert plan.release_nodes == ("b",)


def test_node_not_ready_in_time_is_failed_and_released() -> None:
    nodes = observe(node("n0", in_use=8), node("stuck", ready=False, age=901))
    plan, state = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], nodes, CapacityState(), NOW
    )
    assert plan.failed_nodes == ("stuck",)
    assert plan.newly_failed == ("stuck",)
    assert plan.release_nodes == ("stuck",)
    # It is not counted as coming: a replacement is requested.
    assert plan.desired_nodes == 2
    assert plan.reason == NODES_REQUESTED
    assert not plan.ready.status
    assert plan.ready.reason == PROVISIONING_FAILED
    assert state.failed_nodes == {"stuck"}
    again, _ = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], nodes, state, NOW + 15
    )
    assert again.newly_failed == ()


def test_requested_nodes_that_never_register_time_out() -> None:
    spec = pool_spec(nodes={"min": 0, "max": 2})
    state = CapacityState(scale_up_requested_at=NOW - 1000)
    nodes = observe(node("n0", in_use=8), requested=2)
    plan, _ = plan_capacity_and_commit(spec, [demand(desired=4, current=2)], nodes, state, NOW)
    limit = plan.limit_for("serving", "llama")
    assert limit is not None
    assert limit.max_replicas == 2
    assert limit.reason == PROVISIONING_FAILED
    assert limit.seconds_until_more is None
    assert plan.unregistered_failed == 1
    assert plan.provisioning_nodes == 0
    assert plan.desired_nodes == 2  # the unregistered one still holds a slot of nodes.max


def test_unregistered_nodes_within_the_timeout_are_coming() -> None:
    state = CapacityState(scale_up_requested_at=NOW - 100)
    nodes = observe(node("n0", in_use=8), requested=2)
    plan, new_state = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], nodes, state, NOW
    )
    assert plan.desired_nodes == 2
    assert plan.provisioning_nodes == 1
    assert plan.seconds_until_more == pytest.approx(0.0)  # 60 s learned, 100 s already passed
    assert new_state.scale_up_requested_at == NOW - 100


def test_zero_accelerator_pools_are_never_limited() -> None:
    plan, _ = plan_capacity_and_commit(
        pool_spec(), [demand(desired=50, per_replica=0)], observe(), CapacityState(), NOW
    )
    assert plan.desired_nodes == 0
    limit = plan.limit_for("serving", "llama")
    assert limit is not None
    assert (limit.max_replicas, limit.reason) == (50, CAPACITY_AVAILABLE)


def test_same_inputs_same_plan() -> None:
    args = (pool_spec(), [demand(desired=5)], observe(node("a", in_use=4)), CapacityState(), NOW)
    assert plan_capacity_and_commit(*args) == plan_capacity_and_commit(*args)


def test_released_nodes_that_linger_are_neither_capacity_nor_released_again() -> None:
    spec = pool_spec(scaleDownDelaySeconds=0)
    nodes = observe(node("a", in_use=8), node("b"), node("c"))
    plan, state = plan_capacity_and_commit(
        spec, [demand(desired=2, current=2)], nodes, CapacityState(), NOW
    )
    assert plan.release_nodes == ("b", "c")
    assert plan.desired_nodes == 1
    assert state.releasing == {"b": NOW, "c": NOW}
    # The provider shrank, but the Node objects are still there (terminating).
    lingering = observe(node("a", in_use=8), node("b"), node("c"), requested=1)
    again, state = plan_capacity_and_commit(
        spec, [demand(desired=2, current=2)], lingering, state, NOW + 15
    )
    assert (again.release_nodes, again.desired_nodes, again.ready_nodes) == ((), 1, 1)
    # Once gone, they are forgotten.
    _, state = plan_capacity_and_commit(
        spec, [demand(desired=2, current=2)], observe(node("a", in_use=8)), state, NOW + 30
    )
    assert state.releasing == {}


def test_a_new_node_with_a_released_nodes_name_is_a_new_node() -> None:
    state = CapacityState(releasing={"b": NOW - 100})
    reused = observe(node("a", in_use=8), node("b", age=50), requested=2)
    plan, state = plan_capacity_and_commit(
        pool_spec(), [demand(desired=4, current=2)], reused, state, NOW
    )
    assert plan.ready_nodes == 2
    assert state.releasing == {}
