"""No busy node is ever released: random sequences of demand, pods and spec changes.

A hostile closed loop around the node planner: pods land on any node at any time (also between
the tick's read and the release, as the scheduler may bind one there), demand moves on its own,
and ``nodes.max`` is lowered below the nodes that host pods. The execute step is modelled as the
controller runs it (``controller/acceleratorpools/execute.py``): cordon each node to release,
re-read its pods, release it only if still empty, uncordon it otherwise; the provider shrinks
only by the nodes released and grows through its size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import example, given
from hypothesis import strategies as st

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityState,
    InferencePoolDemand,
    NodeView,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions

NOW = 1_800_000_000.0
PER_NODE = 8
TICK_SECONDS = 30.0
PROVISIONING_SECONDS = 60.0


def _spec(max_nodes: int, delay: int) -> AcceleratorPoolSpec:
    return AcceleratorPoolSpec.model_validate(
        {
            "provider": {"kwok": {}},
            "nodeLabels": {"pool": "p"},
            "acceleratorsPerNode": PER_NODE,
            "nodes": {"min": 0, "max": max_nodes},
            "scaleDownDelaySeconds": delay,
            "provisioningTimeoutSeconds": 900,
        }
    )


@dataclass
class Node:
    created_at: float
    workload_pods: int = 0
    daemon_pods: int = 0
    cordoned: bool = False

    def view(self, name: str, now: float) -> NodeView:
        ready_at = self.created_at + PROVISIONING_SECONDS
        ready = now >= ready_at
        return NodeView(
            name=name,
            ready=ready,
            created_at=self.created_at,
            accelerators_allocatable=PER_NODE,
            accelerators_in_use=min(PER_NODE, 4 * self.workload_pods),
            workload_pods=self.workload_pods,
            ready_since=ready_at if ready else None,
        )


@dataclass
class Cluster:
    """The pool's nodes and the provider's size (nodes register as soon as they are asked)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    size: int = 0
    serial: int = 0
    released_busy: list[str] = field(default_factory=list)

    def register(self, now: float) -> None:
        while len(self.nodes) < self.size:
            self.nodes[f"n{self.serial}"] = Node(created_at=now)
            self.serial += 1

    def node_at(self, index: int) -> str | None:
        names = sorted(self.nodes)
        return names[index % len(names)] if names else None

    def busy(self) -> set[str]:
        return {name for name, node in self.nodes.items() if node.workload_pods}

    def release(self, name: str, lands: bool) -> bool:
        """The execute step for one node: cordon, re-read, release only if still empty."""
        node = self.nodes[name]
        if lands:  # the scheduler bound a pod after the tick read the node, before the cordon
            node.workload_pods += 1
        node.cordoned = True
        if node.workload_pods:  # the re-read sees it: uncordon, keep the node
            node.cordoned = False
            return False
        del self.nodes[name]
        self.size -= 1
        return True


Step = tuple[str, int, int]

steps_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("demand"), st.integers(0, 12), st.just(0)),
        st.tuples(st.just("max"), st.integers(1, 6), st.just(0)),
        st.tuples(st.just("pod"), st.integers(0, 9), st.integers(0, 1)),  # 1: a DaemonSet pod
        st.tuples(st.just("pod-gone"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("tick"), st.integers(0, 1023), st.just(0)),  # bit i: lands on i-th
    ),
    min_size=1,
    max_size=40,
)


@given(
    start=st.lists(st.integers(0, 2), max_size=6),
    steps=steps_strategy,
    delay=st.sampled_from([0, 30, 120]),
    start_max=st.integers(1, 6),
)
@example(  # three nodes host a pod each, then nodes.max drops to one
    start=[], steps=[("demand", 6, 0), ("tick", 0, 0), ("tick", 0, 0), ("tick", 0, 0),
                     ("pod", 0, 0), ("pod", 1, 0), ("pod", 2, 0), ("max", 1, 0)],
    delay=0, start_max=3,
)  # fmt: skip
@example(  # a pod lands on the one empty node between the read and the release
    start=[1, 0], steps=[("tick", 0b1, 0)], delay=0, start_max=2
)
def test_no_busy_node_is_ever_released_nor_the_provider_asked_below_them(
    start: list[int], steps: list[Step], delay: int, start_max: int
) -> None:
    cluster = Cluster()
    for pods in start:  # a pool that has run for an hour
        cluster.size += 1
        cluster.register(NOW - 3600)
        cluster.nodes[f"n{cluster.serial - 1}"].workload_pods = pods
    state = CapacityState()
    max_nodes = start_max
    desired_replicas = 0
    now = NOW
    for kind, value, extra in [*steps, ("tick", 0, 0)]:
        if kind == "demand":
            desired_replicas = value
        elif kind == "max":
            max_nodes = value
        elif kind == "pod" and (name := cluster.node_at(value)) is not None:
            node = cluster.nodes[name]
            if not node.cordoned:
                node.daemon_pods += extra
                node.workload_pods += 1 - extra
        elif kind == "pod-gone" and (name := cluster.node_at(value)) is not None:
            node = cluster.nodes[name]
            node.workload_pods = max(0, node.workload_pods - 1)
        elif kind == "tick":
            now += TICK_SECONDS
            spec = _spec(max_nodes, delay)
            running = sum(n.workload_pods for n in cluster.nodes.values())
            demand = InferencePoolDemand("ns", "m", 0, 4, running, desired_replicas)
            views = tuple(node.view(name, now) for name, node in cluster.nodes.items())
            busy = cluster.busy()
            plan, planned = plan_capacity(
                spec, [demand], CapacityObservation(views, cluster.size), state, now
            )
            # Only empty nodes are candidates, and the size never drops below the busy nodes.
            assert not busy & set(plan.release_nodes), (busy, plan.release_nodes)
            assert plan.desired_nodes >= len(busy), (plan.desired_nodes, busy, max_nodes)
            # Growth stays within nodes.max; only busy nodes keep the pool above it.
            after_release = plan.current_nodes - len(plan.release_nodes)
            assert plan.desired_nodes <= max(max_nodes, after_release)
            assert plan.nodes_busy.status == (len(busy) > max_nodes)

            released = [
                name
                for index, name in enumerate(plan.release_nodes)
                if cluster.release(name, lands=bool(value >> index & 1))
            ]
            grew = plan.desired_nodes > cluster.size
            if grew:
                cluster.size = plan.desired_nodes
                cluster.register(now)
            state = commit_node_actions(
                planned, plan, resized=grew or bool(released), released=released, now=now
            )
            assert cluster.busy() >= busy, "a node that hosted a workload pod is gone"
