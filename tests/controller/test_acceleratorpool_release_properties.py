"""No busy node is ever released, through the real AcceleratorPool tick.

Random sequences of demand, pods landing on and leaving nodes (also right before a node is
cordoned, after the tick read it) and ``nodes.max`` changes, lowered under the busy nodes
included, drive ``reconcile_accelerator_pool`` over the in-memory cluster and provider. The
provider checks, at the moment it is asked, that no node it releases hosts a workload pod and
that it is never told to hold fewer nodes than host one; no plan counts fewer nodes than host
one either, and no cordon outlives its tick.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetscale.actuators.fake import FakeEventSink
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
    reconcile_accelerator_pool,
)
from fleetscale.controller.acceleratorpools.cluster import InMemoryCluster
from fleetscale.controller.acceleratorpools.demand import InMemoryDemands
from fleetscale.controller.acceleratorpools.nodes import is_workload
from fleetscale.nodepools.base import NodeRef
from fleetscale.nodepools.fake import FakeNodePool

NOW = 1_800_000_000.0
LABELS = {"example.com/gpu": "h100"}
POOL = AcceleratorPoolRef("h100", "uid", 1)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def node(name: str, created: float) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": dict(LABELS), "creationTimestamp": iso(created)},
        "spec": {"providerID": f"kwok://{name}"},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8"},
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": iso(created + 30)}
            ],
        },
    }


def pod(name: str, on: str, daemon: bool = False) -> dict[str, Any]:
    owners = [{"kind": "DaemonSet", "name": "dcgm"}] if daemon else []
    return {
        "metadata": {"name": name, "namespace": "serving", "ownerReferences": owners},
        "spec": {
            "nodeName": on,
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "4"}}}],
        },
        "status": {"phase": "Running"},
    }


@dataclass
class GuardedPool(FakeNodePool):
    """The fake provider, checking every call against the cluster as it is at that moment."""

    cluster: InMemoryCluster = field(default_factory=InMemoryCluster)
    violations: list[str] = field(default_factory=list)

    def busy(self) -> set[str]:
        return {p["spec"]["nodeName"] for p in self.cluster.pod_objects if is_workload(p)}

    async def set_desired(self, nodes: int) -> None:
        if nodes < len(self.busy()):
            self.violations.append(f"asked for {nodes} nodes, {len(self.busy())} busy")
        await super().set_desired(nodes)

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        self.violations.extend(f"released busy {n.name}" for n in nodes if n.name in self.busy())
        removed = await super().release(nodes)
        self.cluster.node_objects = [
            n for n in self.cluster.node_objects if n["metadata"]["name"] not in removed
        ]
        return removed


Step = tuple[str, int]
steps_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("demand"), st.integers(0, 10)),
        st.tuples(st.just("max"), st.integers(1, 5)),
        st.tuples(st.just("pod"), st.integers(0, 15)),
        st.tuples(st.just("daemon-pod"), st.integers(0, 15)),
        st.tuples(st.just("pod-gone"), st.integers(0, 15)),
        st.tuples(st.just("lands"), st.integers(0, 15)),  # on that node, once it is cordoned
        st.tuples(st.just("tick"), st.just(0)),
    ),
    max_size=30,
)


class Harness:
    def __init__(self, start_nodes: int) -> None:
        self.cluster = InMemoryCluster(
            node_objects=[node(f"h100-{i}", NOW - 3600) for i in range(start_nodes)]
        )
        self.provider = GuardedPool(desired=start_nodes, cluster=self.cluster)
        self.serial = start_nodes
        self.pods = 0
        self.replicas = 0
        self.max_nodes = 5
        self.status: dict[str, Any] | None = None
        self.deps = AcceleratorPoolDependencies(
            cluster=self.cluster,
            cordoner=self.cluster,
            demands=InMemoryDemands(),
            provider_for=lambda _name, _spec: self.provider,
            events=FakeEventSink(),
        )

    def node_at(self, index: int) -> str | None:
        names = sorted(n["metadata"]["name"] for n in self.cluster.node_objects)
        return names[index % len(names)] if names else None

    def schedulable(self, name: str) -> bool:
        found = next(n for n in self.cluster.node_objects if n["metadata"]["name"] == name)
        return not found["spec"].get("unschedulable")

    def new_pod(self, on: str, daemon: bool = False) -> dict[str, Any]:
        self.pods += 1
        return pod(f"p{self.pods}", on, daemon)

    def set_demand(self, replicas: int) -> None:
        self.deps.demands = InMemoryDemands(
            [
                {
                    "metadata": {"name": "chat", "namespace": "serving"},
                    "spec": {
                        "targetRef": {"name": "chat"},
                        "replicas": {"min": 0, "max": 16},
                        "acceleratorPoolRef": {"name": "h100"},
                        "acceleratorsPerReplica": 4,
                        "metrics": {"queueDepth": {"query": "q"}},
                    },
                    "status": {
                        "replicas": len(self.provider.busy()),
                        "demandReplicas": replicas,
                        "acceleratorsPerReplica": 4,
                    },
                }
            ]
        )

    async def tick(self, now: float) -> None:
        spec = {
            "provider": {"kwok": {}},
            "nodeLabels": LABELS,
            "acceleratorsPerNode": 8,
            "nodes": {"min": 0, "max": self.max_nodes},
            "scaleDownDelaySeconds": 0,
        }
        busy = self.provider.busy()
        result = await reconcile_accelerator_pool(POOL, spec, self.status, self.deps, now)
        assert result.plan is not None
        assert result.plan.desired_nodes >= len(busy), "planned below the busy nodes"
        self.status = json.loads(json.dumps(result.status))
        while len(self.cluster.node_objects) < self.provider.desired:  # new nodes register
            self.cluster.node_objects.append(node(f"h100-{self.serial}", now))
            self.serial += 1

    async def run(self, steps: list[Step]) -> None:
        now = NOW
        for kind, value in [*steps, ("tick", 0)]:
            name = self.node_at(value)
            if kind == "demand":
                self.set_demand(value)
            elif kind == "max":
                self.max_nodes = value
            elif kind in ("pod", "daemon-pod") and name and self.schedulable(name):
                self.cluster.pod_objects.append(self.new_pod(name, kind == "daemon-pod"))
            elif kind == "pod-gone" and name:
                on = [p for p in self.cluster.pod_objects if p["spec"]["nodeName"] == name]
                if on:
                    self.cluster.pod_objects.remove(on[0])
            elif kind == "lands" and name:
                self.cluster.landing.setdefault(name, []).append(self.new_pod(name))
            elif kind == "tick":
                now += 60
                await self.tick(now)
                assert self.provider.violations == []
                # Every cordon of a tick is lifted or its node is gone.
                assert not any(n["spec"].get("unschedulable") for n in self.cluster.node_objects)


@given(start_nodes=st.integers(0, 5), steps=steps_strategy)
def test_the_tick_never_releases_a_busy_node(start_nodes: int, steps: list[Step]) -> None:
    harness = Harness(start_nodes)
    for index in range(start_nodes):  # the pool starts half full
        if index % 2 == 0:
            harness.cluster.pod_objects.append(harness.new_pod(f"h100-{index}"))
    asyncio.run(harness.run(steps))
