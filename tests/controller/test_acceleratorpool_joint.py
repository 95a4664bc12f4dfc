"""Nodes and replicas move together: InferencePool ticks and AcceleratorPool ticks in a loop,
over in-memory fakes, with the real planners on both sides."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fleetscale.actuators.base import ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
)
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
    reconcile_accelerator_pool,
)
from fleetscale.controller.acceleratorpools.cluster import InMemoryCluster
from fleetscale.controller.acceleratorpools.demand import InMemoryDemands
from fleetscale.controller.allocations import IndexedAllocations, allocations_index_entry
from fleetscale.controller.indexes import InMemoryIndex
from fleetscale.controller.inferencepools import (
    InferencePoolRef,
    reconcile,
)
from fleetscale.nodepools.fake import FakeNodePool
from fleetscale.signals.fake import FakeSignalSource
from support.dependencies import fake_pool_dependencies

NOW = 1_800_000_000.0
LABELS = {"example.com/gpu": "h100"}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def node(name: str, created: float) -> dict[str, Any]:
    """A Ready GPU node of the pool (Ready a minute after creation)."""
    return {
        "metadata": {"name": name, "labels": dict(LABELS), "creationTimestamp": iso(created)},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8"},
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": iso(created + 60)}
            ],
        },
    }


QUEUE = "sum(vllm:num_requests_waiting)"
POOL = InferencePoolRef(namespace="serving", name="chat", uid="uid-1", generation=1)
TARGET = ScaleTargetRef("serving", "apps/v1", "Deployment", "vllm")

IPOOL_SPEC: dict[str, Any] = {
    "targetRef": {"name": "vllm"},
    "replicas": {"min": 1, "max": 8},
    "acceleratorsPerReplica": 4,
    "acceleratorPoolRef": {"name": "h100"},
    "metrics": {"engine": "custom", "queueDepth": {"query": QUEUE, "targetPerReplica": 5}},
    "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
        "scaleDown": {"stabilizationWindowSeconds": 0, "policies": []},
    },
    "shedLoad": {"enabled": True, "queuePerReplicaThreshold": 10},
}
APOOL_SPEC: dict[str, Any] = {
    "provider": {"kwok": {}},
    "nodeLabels": LABELS,
    "acceleratorsPerNode": 8,
    "nodes": {"min": 0, "max": 3},
    "scaleDownDelaySeconds": 60,
}


class Fleet:
    """One InferencePool on one AcceleratorPool; nodes register and turn Ready when asked."""

    def __init__(self) -> None:
        self.signals = FakeSignalSource()
        self.scaler = FakeScaleActuator(follow_immediately=True)
        self.scaler.add(TARGET, 1, accelerators_per_replica=4)
        self.cluster = InMemoryCluster(node_objects=[node("h100-0", NOW - 3600)])
        self.demands = InMemoryDemands()
        # The operator's index of AcceleratorPools: h100 exists and has allocated nothing yet.
        self.allocations_index: dict[str, list[Any]] = {"h100": [allocations_index_entry(None)]}
        self.provider = FakeNodePool(desired=1)
        self.events = FakeEventSink()
        self.ipool_deps = fake_pool_dependencies(
            signals=self.signals,
            scaler=self.scaler,
            events=self.events,
            allocations=IndexedAllocations(InMemoryIndex(self.allocations_index)),
        )
        self.apool_deps = AcceleratorPoolDependencies(
            cluster=self.cluster,
            cordoner=self.cluster,
            demands=self.demands,
            provider_for=lambda _name, _spec: self.provider,
            events=self.events,
        )
        self.ipool_status: dict[str, Any] | None = None
        self.apool_status: dict[str, Any] | None = None

    async def tick(self, now: float, queue: float) -> None:
        self.signals.set_value(QUEUE, queue, sampled_at=now)
        result = await reconcile(POOL, IPOOL_SPEC, self.ipool_status, self.ipool_deps, now)
        self.ipool_status = json.loads(json.dumps(result.status))
        self.demands.inference_pool_objects = [
            {
                "metadata": {"namespace": "serving", "name": "chat"},
                "spec": IPOOL_SPEC,
                "status": self.ipool_status,
            }
        ]
        self.cluster.pod_objects = [
            {
                "metadata": {"name": f"vllm-{i}", "namespace": "serving"},
                "spec": {
                    "nodeName": f"h100-{i // 2}",
                    "containers": [{"name": "v", "resources": {"limits": {"nvidia.com/gpu": "4"}}}],
                },
                "status": {"phase": "Running"},
            }
            for i in range(self.ipool_status["replicas"])
        ]
        pool = await reconcile_accelerator_pool(
            AcceleratorPoolRef("h100", "uid-p", 1),
            APOOL_SPEC,
            self.apool_status,
            self.apool_deps,
            now,
        )
        self.apool_status = json.loads(json.dumps(pool.status))
        self.allocations_index["h100"] = [allocations_index_entry(self.apool_status)]

    def nodes_become_ready(self, now: float) -> None:
        names = {n["metadata"]["name"] for n in self.cluster.node_objects}
        for index in range(self.provider.desired):
            if f"h100-{index}" not in names:
                self.cluster.node_objects.append(node(f"h100-{index}", now - 120))

    def condition(self, type_: str) -> dict[str, Any]:
        assert self.ipool_status is not None
        found: dict[str, Any] = next(
            c for c in self.ipool_status["conditions"] if c["type"] == type_
        )
        return found


async def test_nodes_and_replicas_move_together_and_limits_are_explained() -> None:
    fleet = Fleet()
    # Demand for 6 replicas (24 GPUs): the pool requests 2 more nodes at once.
    await fleet.tick(NOW, queue=30)
    assert fleet.provider.desired == 3
    assert "NodesRequested" in fleet.events.reasons()

    # Next tick: the InferencePool sees its cap (1 Ready node holds 2 replicas) and sheds.
    await fleet.tick(NOW + 15, queue=200)
    assert fleet.ipool_status is not None
    assert fleet.ipool_status["replicas"] == 2
    assert fleet.ipool_status["maxReplicasByCapacity"] == 2
    limited = fleet.condition("ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "NodesProvisioning")
    assert fleet.ipool_status["shedLoad"]["active"] is True

    # Nodes turn Ready: replicas follow up to what nodes.max holds (3 nodes x 2 replicas).
    fleet.nodes_become_ready(NOW + 30)
    await fleet.tick(NOW + 30, queue=200)
    await fleet.tick(NOW + 45, queue=200)
    assert fleet.ipool_status["replicas"] == 6
    assert fleet.condition("ScalingLimited")["reason"] == "MaxNodes"
    assert fleet.provider.desired == 3

    # Demand drops: replicas go first, then the emptied node after scaleDownDelaySeconds.
    await fleet.tick(NOW + 60, queue=5)
    assert fleet.ipool_status["replicas"] == 1
    assert fleet.provider.desired == 3
    for offset in (75, 90, 105, 120, 135):
        await fleet.tick(NOW + offset, queue=5)
    assert fleet.provider.desired == 1
    assert "NodesReleased" in fleet.events.reasons()
    assert "h100-0" not in fleet.provider.released  # the node hosting the replica stays
