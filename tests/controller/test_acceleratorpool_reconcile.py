"""One AcceleratorPool tick with in-memory cluster, provider and Events: nodes and replicas move
together, and every limit is explained in conditions and Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fleetscale.actuators.fake import FakeEventSink
from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.caches import CacheStale
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
            cordoner=cluster,
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
    assert provider.calls[-2:] == [("release", ("h100-0",)), ("release", ("h100-2",))]
    assert provider.released == ["h100-0", "h100-2"]
    assert events.reasons() == ["NodesReleased"]
    assert later.status["desiredNodes"] == 1
    # Each was cordoned and its pods read again right before it went.
    assert cluster.cordon_calls == [("cordon", "h100-0"), ("cordon", "h100-2")]
    assert cluster.pod_reads[-2:] == [("h100-0",), ("h100-2",)]


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
        cluster=cluster,
        cordoner=cluster,
        demands=InMemoryDemands(pools),
        provider_for=unavailable,
        events=events,
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
    (demand,) = await InMemoryDemands([raw]).demands_for("h100")
    assert demand.desired_replicas == recommended
    assert demand.demand_is_lower_bound is lower_bound


def cordoned(obj: dict[str, Any], ours: bool) -> dict[str, Any]:
    obj["spec"]["unschedulable"] = True
    if ours:
        obj["metadata"]["annotations"] = {"fleetscale.io/cordoned-for-release": "true"}
    return obj


def daemon_pod(name: str, on: str) -> dict[str, Any]:
    pod = model_pod(name, on, gpus=0)
    pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "dcgm-exporter"}]
    return pod


async def test_busy_nodes_stay_when_max_drops_below_them_and_empty_ones_still_go() -> None:
    pools = [inference_pool("chat", recommended=6, replicas=6)]
    cluster = InMemoryCluster(
        node_objects=[node(f"h100-{i}") for i in range(4)],
        pod_objects=[
            *(model_pod(f"chat-{i}", f"h100-{i // 2}") for i in range(6)),
            daemon_pod("dcgm-3", "h100-3"),  # a DaemonSet pod does not make a node busy
        ],
    )
    provider = FakeNodePool(desired=4)
    pool_deps, events = deps(cluster, provider, pools)
    spec = pool_spec(max_nodes=1, delay=0)
    result = await reconcile_accelerator_pool(H100, spec, None, pool_deps, NOW)

    # Only the empty node goes; the provider is never told a size below the three busy nodes.
    assert provider.calls == [("current",), ("release", ("h100-3",))]
    assert (provider.desired, result.status["desiredNodes"]) == (3, 3)
    busy = condition(result.status, "NodesBusy")
    assert (busy["status"], busy["reason"]) == ("True", "NodesBusy")
    assert "3 node(s) host workload pods, 2 more than nodes.max=1" in busy["message"]
    assert events.reasons() == ["NodesReleased", "NodesBusy"]

    # Next tick: still busy, said once; nothing more to release, nothing written.
    cluster.node_objects = cluster.node_objects[:3]
    again = await reconcile_accelerator_pool(H100, spec, result.status, pool_deps, NOW + 15)
    assert provider.calls[2:] == [("current",)]
    assert events.reasons() == ["NodesReleased", "NodesBusy"]
    assert condition(again.status, "NodesBusy")["status"] == "True"

    # The pods leave two of them: those nodes are released, and the condition clears.
    cluster.pod_objects = [p for p in cluster.pod_objects if p["spec"]["nodeName"] == "h100-0"]
    done = await reconcile_accelerator_pool(H100, spec, again.status, pool_deps, NOW + 30)
    assert provider.released == ["h100-3", "h100-1", "h100-2"]
    assert condition(done.status, "NodesBusy")["status"] == "False"


@pytest.mark.parametrize(
    ("landing", "strangers", "why"),
    [
        pytest.param([model_pod("late", "h100-1")], set(), "serving/late landed on it",
                     id="a-pod-landed-after-the-read"),
        pytest.param([], {"h100-1"}, "the fake provider cannot name it",
                     id="provider-cannot-name-it"),
    ],
)  # fmt: skip
async def test_a_node_that_cannot_go_is_kept_and_uncordoned(
    landing: list[dict[str, Any]], strangers: set[str], why: str
) -> None:
    pools = [inference_pool("chat", recommended=1, replicas=1)]
    cluster = InMemoryCluster(
        node_objects=[node("h100-0"), node("h100-1")],
        pod_objects=[model_pod("chat-0", "h100-0")],
        landing={"h100-1": landing},
    )
    provider = FakeNodePool(desired=2, strangers=strangers)
    pool_deps, events = deps(cluster, provider, pools)
    result = await reconcile_accelerator_pool(H100, pool_spec(delay=0), None, pool_deps, NOW)

    assert provider.released == []
    assert cluster.cordon_calls == [("cordon", "h100-1"), ("uncordon", "h100-1")]
    assert "unschedulable" not in cluster.node_objects[1]["spec"]
    assert events.reasons() == ["NodesKept"]
    assert f"h100-1: {why}" in events.events[0].message
    assert result.status["releasingNodes"] == []
    assert result.status["desiredNodes"] == 2


async def test_a_failed_release_lifts_the_cordon_and_counts_nothing() -> None:
    cluster = InMemoryCluster(node_objects=[node("h100-0"), node("h100-1")])
    provider = FakeNodePool(desired=2, release_error=ProviderError("ProviderFailed", "throttled"))
    pool_deps, events = deps(cluster, provider)
    result = await reconcile_accelerator_pool(H100, pool_spec(delay=0), None, pool_deps, NOW)
    assert provider.released == []
    assert cluster.cordon_calls == [("cordon", "h100-0"), ("uncordon", "h100-0")]
    problem = condition(result.status, "ProviderError")
    assert (problem["status"], problem["reason"]) == ("True", "ProviderFailed")
    assert result.status["releasingNodes"] == []
    assert events.reasons() == ["ProviderFailed"]


async def test_our_stale_cordon_is_lifted_and_someone_elses_is_left_alone() -> None:
    pools = [inference_pool("chat", recommended=2, replicas=2)]
    cluster = InMemoryCluster(
        node_objects=[
            cordoned(node("h100-0"), ours=True),
            cordoned(node("h100-1"), ours=False),
            cordoned(node("h100-2"), ours=True),  # released a tick ago, still going
        ],
        pod_objects=[model_pod("chat-0", "h100-0"), model_pod("chat-1", "h100-0")],
    )
    provider = FakeNodePool(desired=2)
    pool_deps, _ = deps(cluster, provider, pools)
    stored = {"releasingNodes": [{"name": "h100-2", "since": iso(NOW - 15)}]}
    result = await reconcile_accelerator_pool(H100, pool_spec(), stored, pool_deps, NOW)
    assert cluster.cordon_calls == [("uncordon", "h100-0")]
    assert cluster.node_objects[1]["spec"]["unschedulable"] is True
    assert cluster.node_objects[2]["spec"]["unschedulable"] is True
    # Our own cordon never made h100-0 look unready; the administrator's does for h100-1.
    assert result.status["readyNodes"] == 1


async def test_a_node_the_provider_cannot_name_does_not_hold_up_the_others() -> None:
    pools = [inference_pool("chat", recommended=3, replicas=2)]  # two nodes' worth
    cluster = InMemoryCluster(
        node_objects=[node("h100-0"), node("h100-1"), node("h100-2")],
        pod_objects=[model_pod("chat-0", "h100-0"), model_pod("chat-1", "h100-0")],
    )
    provider = FakeNodePool(desired=3, strangers={"h100-1"})
    pool_deps, events = deps(cluster, provider, pools)
    spec = pool_spec(delay=60)
    status = None
    for offset in (0, 60, 75):
        result = await reconcile_accelerator_pool(H100, spec, status, pool_deps, NOW + offset)
        status = result.status
    # h100-1 went first (same empty age, first by name) and stayed; its clock started again,
    # so the next release took h100-2.
    assert [c for c in provider.calls if c[0] == "release"] == [
        ("release", ("h100-1",)),
        ("release", ("h100-2",)),
    ]
    assert provider.released == ["h100-2"]
    assert events.reasons() == ["NodesKept", "NodesReleased"]


class StaleNodes(InMemoryCluster):
    """The node cache's answer while its watch cannot vouch for it."""

    async def nodes(self, labels: Any) -> list[Any]:
        raise CacheStale("the watch of /api/v1/nodes has had no list, event or bookmark")


async def test_a_stale_node_cache_holds_the_pool_with_its_last_allocations() -> None:
    pools = [inference_pool("chat", recommended=6, replicas=2)]
    cluster = InMemoryCluster(node_objects=[node("h100-0")])
    provider = FakeNodePool(desired=1)
    pool_deps, events = deps(cluster, provider, pools)
    planned = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
    calls = list(provider.calls)

    stale = StaleNodes(node_objects=[node("h100-0")])
    pool_deps.cluster = pool_deps.cordoner = stale
    held = await reconcile_accelerator_pool(H100, pool_spec(), planned.status, pool_deps, NOW + 15)
    again = await reconcile_accelerator_pool(
        H100, pool_spec(), {**planned.status, **held.patch}, pool_deps, NOW + 30
    )

    assert provider.calls == calls  # nothing asked of the provider while held
    ready = condition(held.status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CacheStale")
    assert held.status["allocations"] == planned.status["allocations"]
    assert held.status["desiredNodes"] == planned.status["desiredNodes"]
    assert events.reasons().count("CacheStale") == 1  # said once, not every tick
    assert again.patch == {}
