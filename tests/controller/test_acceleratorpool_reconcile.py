"""One AcceleratorPool tick with in-memory cluster, provider and Events: nodes and replicas move
together, and every limit is explained in conditions and Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fleetscale.actuators.fake import FakeEventSink
from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
    reconcile_accelerator_pool,
)
from fleetscale.controller.acceleratorpools.cluster import InMemoryCluster
from fleetscale.controller.acceleratorpools.demand import InMemoryDemands
from fleetscale.controller.allocations import published_allocation
from fleetscale.nodepools.base import PROVIDER_UNAVAILABLE, ProviderError
from fleetscale.nodepools.fake import FakeNodePool
from fleetscale.planner.capacity import MAX_NODES, NODES_PROVISIONING
from fleetscale.planner.observe import capacity_limit

NOW = 1_800_000_000.0
LABELS = {"example.com/gpu": "h100"}
H100 = AcceleratorPoolRef("h100", "uid", 1)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def pool_spec(max_nodes: int = 4, delay: int = 600) -> dict[str, Any]:
    return {
        "provider": {"kwok": {}},
        "nodeLabels": LABELS,
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": max_nodes},
        "scaleDownDelaySeconds": delay,
    }


def node(name: str, ready: bool = True, age: float = 3600) -> dict[str, Any]:
    created = NOW - age
    return {
        "metadata": {"name": name, "labels": dict(LABELS), "creationTimestamp": iso(created)},
        "spec": {"providerID": f"kwok://{name}"},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": iso(created + 60),
                }
            ],
        },
    }


def model_pod(name: str, on: str, gpus: int = 4) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {
            "nodeName": on,
            "containers": [
                {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
        },
        "status": {"phase": "Running"},
    }


def inference_pool(
    name: str, recommended: int, replicas: int, priority: int = 0, per_replica: int | None = 4
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": name},
        "replicas": {"min": 0, "max": 16},
        "acceleratorPoolRef": {"name": "h100"},
        "priority": priority,
        "metrics": {"engine": "custom", "queueDepth": {"query": "q"}},
    }
    if per_replica is not None:
        spec["acceleratorsPerReplica"] = per_replica
    return {
        "metadata": {"name": name, "namespace": "serving"},
        "spec": spec,
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "recommendations": [{"time": iso(NOW - 15), "replicas": recommended}],
        },
    }


def deps(
    cluster: InMemoryCluster,
    provider: FakeNodePool,
    inference_pools: list[dict[str, Any]] | None = None,
) -> tuple[AcceleratorPoolDependencies, FakeEventSink]:
    events = FakeEventSink()
    return (
        AcceleratorPoolDependencies(
            cluster=cluster,
            demands=InMemoryDemands(inference_pools or []),
            provider_for=lambda _name, _spec: provider,
            events=events,
        ),
        events,
    )


def allocation(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in status["allocations"] if a["name"] == name)
    return found


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == type_)
    return found


async def test_nodes_are_requested_from_demand_before_pods_go_pending() -> None:
    pools = [inference_pool("chat", recommended=6, replicas=2)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0")],
        pod_objects=[model_pod("chat-0", "h100-0"), model_pod("chat-1", "h100-0")],
    )
    provider = FakeNodePool(desired=1)
    pool_deps, events = deps(cluster, provider, pools)
    result = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)

    assert ("set_desired", 3) in provider.calls
    assert events.reasons() == ["NodesRequested"]
    status = result.status
    assert (status["readyNodes"], status["desiredNodes"], status["provisioningNodes"]) == (1, 3, 2)
    chat = allocation(status, "chat")
    assert (chat["maxReplicas"], chat["grantedReplicas"], chat["reason"]) == (
        2,
        6,
        NODES_PROVISIONING,
    )
    assert condition(status, "ScalingLimited")["reason"] == NODES_PROVISIONING
    assert status["acceleratorsInUse"] == 8

    # The InferencePool reads its cap from that status.
    published = published_allocation("h100", status["allocations"], "serving", "chat")
    limit = capacity_limit(published, pending_seconds=15)
    assert limit is not None
    assert (limit.max_replicas, limit.reason) == (2, NODES_PROVISIONING)
    assert limit.seconds_until_more == 60


async def test_a_pool_whose_demand_fits_reads_no_cap() -> None:
    """CapacityAvailable's maxReplicas is only the demand planned for: no cap for the planner."""
    pools = [inference_pool("chat", recommended=2, replicas=1)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0")],
        pod_objects=[model_pod("chat-0", "h100-0")],
    )
    pool_deps, _ = deps(cluster, FakeNodePool(desired=1), pools)
    result = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    assert allocation(result.status, "chat")["reason"] == "CapacityAvailable"
    published = published_allocation("h100", result.status["allocations"], "serving", "chat")
    assert capacity_limit(published, pending_seconds=15) is None


async def test_capped_pool_sheds_the_lower_priority_first() -> None:
    pools = [
        inference_pool("batch", recommended=4, replicas=0, priority=1),
        inference_pool("chat", recommended=4, replicas=0, priority=100),
    ]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0"), node("h100-1")],
    )
    provider = FakeNodePool(desired=2)
    pool_deps, _ = deps(cluster, provider, pools)
    spec = pool_spec(max_nodes=3)
    result = await reconcile_accelerator_pool(H100, spec, None, pool_deps, NOW)
    status = result.status
    assert [a["name"] for a in status["allocations"]] == ["chat", "batch"]
    assert allocation(status, "chat")["maxReplicas"] == 4
    batch = allocation(status, "batch")
    assert (batch["grantedReplicas"], batch["reason"]) == (2, NODES_PROVISIONING)
    assert status["desiredNodes"] == 3
    # Once the third node is Ready, batch is still capped by nodes.max.
    cluster.node_objects.append(node("h100-2"))
    provider.desired = 3
    result = await reconcile_accelerator_pool(H100, spec, result.status, pool_deps, NOW + 60)
    batch = allocation(result.status, "batch")
    assert (batch["maxReplicas"], batch["reason"]) == (2, MAX_NODES)
    assert condition(result.status, "ScalingLimited")["reason"] == MAX_NODES


async def test_only_empty_nodes_are_released_after_the_delay() -> None:
    pools = [inference_pool("chat", recommended=1, replicas=1)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0"), node("h100-1"), node("h100-2")],
        pod_objects=[model_pod("chat-0", "h100-1")],
    )
    provider = FakeNodePool(desired=3)
    pool_deps, events = deps(cluster, provider, pools)
    first = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    assert provider.writes == 0
    assert first.status["lastDecisionReason"] == "WaitingForEmptyNodes"

    later = await reconcile_accelerator_pool(H100, pool_spec(), first.status, pool_deps, NOW + 600)
    assert provider.calls[-2:] == [("prefer_removal", ("h100-0", "h100-2")), ("set_desired", 1)]
    assert "h100-1" not in provider.marked
    assert events.reasons() == ["NodesReleased"]
    assert later.status["desiredNodes"] == 1


async def test_provider_conflict_is_reported_and_nothing_is_written() -> None:
    pools = [inference_pool("chat", recommended=6, replicas=2)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0")],
    )
    provider = FakeNodePool(desired=1, conflict="Cluster Autoscaler owns gpu-md")
    pool_deps, events = deps(cluster, provider, pools)
    result = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    assert provider.writes == 0
    assert events.reasons() == ["ProviderConflict"]
    problem = condition(result.status, "ProviderError")
    assert (problem["status"], problem["reason"]) == ("True", "ProviderConflict")
    # Caps are still published: replicas must not outgrow the Ready nodes.
    assert allocation(result.status, "chat")["maxReplicas"] == 2
    again = await reconcile_accelerator_pool(H100, pool_spec(), result.status, pool_deps, NOW + 15)
    assert events.reasons() == ["ProviderConflict"]  # posted once, not every tick
    assert again.patch == {} or "conditions" not in again.patch


async def test_accelerators_per_replica_from_the_pools_status_when_the_spec_omits_it() -> None:
    """The InferencePool tick records what the target's pod template requests; the
    AcceleratorPool plans with it and reads no /scale of its own."""
    raw = inference_pool("chat", recommended=2, replicas=0, per_replica=None)
    raw["status"]["acceleratorsPerReplica"] = 8
    provider = FakeNodePool(desired=0)
    pool_deps, _ = deps(InMemoryCluster(), provider, [raw])
    result = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    assert result.status["desiredNodes"] == 2


@pytest.mark.parametrize(
    ("spec_change", "reason"),
    [pytest.param({"nodes": {"min": 5, "max": 1}}, "InvalidSpec", id="min-above-max")],
)
async def test_invalid_spec_is_reported(spec_change: dict[str, Any], reason: str) -> None:
    provider = FakeNodePool()
    pool_deps, events = deps(InMemoryCluster(), provider)
    spec = {**pool_spec(), **spec_change}
    result = await reconcile_accelerator_pool(H100, spec, None, pool_deps, NOW)
    assert condition(result.status, "Ready")["reason"] == reason
    assert events.reasons() == [reason]
    assert provider.calls == []
    AcceleratorPoolSpec.model_validate(pool_spec())  # the base spec itself is valid


async def test_missing_cloud_extra_is_reported_and_caps_still_published() -> None:
    def unavailable(_name: str, _spec: AcceleratorPoolSpec) -> FakeNodePool:
        raise ProviderError(PROVIDER_UNAVAILABLE, "the eks provider needs fleetscale[eks]")

    pools = [inference_pool("chat", recommended=6, replicas=2)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0")],
    )
    events = FakeEventSink()
    pool_deps = AcceleratorPoolDependencies(
        cluster=cluster, demands=InMemoryDemands(pools), provider_for=unavailable, events=events
    )
    result = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    problem = condition(result.status, "ProviderError")
    assert (problem["status"], problem["reason"]) == ("True", PROVIDER_UNAVAILABLE)
    assert "fleetscale[eks]" in problem["message"]
    assert events.reasons() == [PROVIDER_UNAVAILABLE]
    assert allocation(result.status, "chat")["maxReplicas"] == 2
    assert result.status["desiredNodes"] == 1  # what exists: nothing was asked of anyone


@pytest.mark.parametrize(
    ("shedding", "recommended", "lower_bound"),
    [
        pytest.param(True, 4, True, id="sheds-below-max"),
        pytest.param(True, 16, False, id="sheds-at-replicas-max"),
        pytest.param(False, 4, False, id="not-shedding"),
    ],
)
async def test_a_shedding_pools_demand_reads_as_a_lower_bound(
    shedding: bool, recommended: int, lower_bound: bool
) -> None:
    raw = inference_pool("chat", recommended=recommended, replicas=2)
    raw["status"]["shedLoad"] = {"active": shedding, "reason": "MaxNodes"}
    (demand,) = InMemoryDemands([raw]).demands_for("h100")
    assert demand.desired_replicas == recommended
    assert demand.demand_is_lower_bound is lower_bound
