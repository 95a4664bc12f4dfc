"""A tenant's pools spend only the accelerators the platform lets them spend (#11).

An InferencePool could make its AcceleratorPool buy nodes.max nodes and keep them: with no
workload (its last recorded size stayed demand after its target went away), from any namespace,
at any priority (taking capacity from every other team). Now an AcceleratorPool counts demand
only from pools the operator reconciled, that still have a target, in namespaces it watches,
and that its ``spec.tenancy`` admits (``namespaceSelector``, ``maxPriority``). A refused claim
asks for nothing; the AcceleratorPool lists it in ``status.refusedClaims`` with a Warning
Event, and the InferencePool holds its size with ScalingLimited=True (ClaimRefused) and a
Warning Event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from fleetscale.actuators.base import ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
)
from fleetscale.api.acceleratorpool import AcceleratorPoolSpec, LabelSelector
from fleetscale.caches.fake import FakeApiServer
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
    reconcile_accelerator_pool,
)
from fleetscale.controller.acceleratorpools.cluster import InMemoryCluster
from fleetscale.controller.acceleratorpools.demand import (
    IndexedDemands,
    InMemoryDemands,
    demand_index_entry,
)
from fleetscale.controller.acceleratorpools.tenancy import InMemoryNamespaces
from fleetscale.controller.allocations import IndexedAllocations, allocations_index_entry
from fleetscale.controller.caches import ClusterCaches
from fleetscale.controller.indexes import DEMAND_INDEX, InMemoryIndex
from fleetscale.controller.inferencepools import (
    InferencePoolRef,
    reconcile,
)
from fleetscale.controller.wiring import INFERENCE_POOLS
from fleetscale.nodepools.fake import FakeNodePool
from fleetscale.signals.fake import FakeSignalSource
from support.dependencies import fake_pool_dependencies

NOW = 1_800_000_000.0
H100 = AcceleratorPoolRef("h100", "uid-h100", 1)
NAMESPACES = {
    "team-a": {"kubernetes.io/metadata.name": "team-a", "gpu.example.com/h100": "allowed"},
    "team-b": {"kubernetes.io/metadata.name": "team-b"},
}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def accelerator_pool(max_nodes: int = 4, **tenancy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": {"kwok": {}},
        "nodeLabels": {"example.com/gpu": "h100"},
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": max_nodes},
    }
    if tenancy:
        spec["tenancy"] = tenancy
    return spec


def claim(
    namespace: str,
    name: str,
    replicas: int,
    priority: int = 0,
    ready: tuple[str, str] = ("True", "Active"),
    minimum: int = 0,
) -> dict[str, Any]:
    """An InferencePool on h100 as the watch delivers it, after its own tick wrote status."""
    return {
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "targetRef": {"name": name},
            "replicas": {"min": minimum, "max": 10000},
            "acceleratorsPerReplica": 8,
            "acceleratorPoolRef": {"name": "h100"},
            "priority": priority,
            "metrics": {"queueDepth": {"query": "q"}},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "demandReplicas": replicas,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready[0],
                    "reason": ready[1],
                    "message": "",
                    "lastTransitionTime": iso(NOW - 60),
                }
            ],
        },
    }


async def plan_for(
    claims: list[dict[str, Any]],
    spec: dict[str, Any],
    watched: tuple[str, ...] = (),
    stored: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], FakeNodePool, FakeEventSink]:
    provider = FakeNodePool(desired=0)
    events = FakeEventSink()
    deps = AcceleratorPoolDependencies(
        cluster=InMemoryCluster(),
        cordoner=InMemoryCluster(),
        demands=InMemoryDemands(claims),
        provider_for=lambda _name, _spec: provider,
        events=events,
        namespaces=InMemoryNamespaces(NAMESPACES),
        watched_namespaces=watched,
    )
    result = await reconcile_accelerator_pool(H100, spec, stored, deps, NOW)
    return json.loads(json.dumps(result.status)), provider, events


def requested(provider: FakeNodePool) -> int:
    """Nodes the pool asked its provider for."""
    return provider.desired


# ----- demand counts only from pools that run something -----


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(
            claim("team-a", "ghost", 10000, ready=("False", "TargetNotFound")), id="target-gone"
        ),
        pytest.param(
            claim("team-a", "ghost", 10000, ready=("False", "InvalidSpec")), id="invalid-spec"
        ),
        pytest.param(
            {**claim("team-a", "ghost", 0, minimum=10000), "status": {}}, id="never-reconciled"
        ),
    ],
)
async def test_a_pool_with_nothing_to_run_buys_no_node(hostile: dict[str, Any]) -> None:
    status, provider, _ = await plan_for([hostile], accelerator_pool())
    assert requested(provider) == 0
    assert status["desiredNodes"] == 0
    assert status["allocations"] == []


def target_gone(body: dict[str, Any]) -> None:
    body["status"]["conditions"][0].update(status="False", reason="TargetNotFound")


def names_no_pool(body: dict[str, Any]) -> None:
    del body["spec"]["acceleratorPoolRef"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(target_gone, id="target-gone"),
        pytest.param(names_no_pool, id="no-longer-names-the-pool"),
    ],
)
@pytest.mark.looptime
async def test_a_pool_that_stops_claiming_leaves_the_operators_demand_index(
    change: Callable[[dict[str, Any]], None],
) -> None:
    """Through the operator's own watch-fed index of the pools: a pool that stops claiming
    drops what it claimed before."""
    server = FakeApiServer()
    caches = ClusterCaches(server, monotonic=lambda: asyncio.get_running_loop().time())
    demands = IndexedDemands(caches.index(INFERENCE_POOLS, DEMAND_INDEX, demand_index_entry))
    path = INFERENCE_POOLS.path()
    body = claim("team-a", "chat", 4)
    server.put(path, body)
    try:
        [demand] = await demands.demands_for("h100")
        assert (demand.namespace, demand.name) == ("team-a", "chat")
        change(body)
        server.put(path, body)
        for _ in range(20):
            await asyncio.sleep(0)
        assert await demands.demands_for("h100") == []
    finally:
        await caches.stop()


# ----- spec.tenancy: who may draw, and how hard -----


async def test_a_namespace_the_selector_does_not_select_gets_nothing_and_is_listed() -> None:
    spec = accelerator_pool(
        max_nodes=4, namespaceSelector={"matchLabels": {"gpu.example.com/h100": "allowed"}}
    )
    claims = [claim("team-a", "chat", 2), claim("team-b", "thief", 10000)]
    status, provider, events = await plan_for(claims, spec)

    assert requested(provider) == 2  # team-a's two replicas, nothing for team-b
    assert [a["namespace"] for a in status["allocations"]] == ["team-a"]
    [refused] = status["refusedClaims"]
    assert (refused["namespace"], refused["name"], refused["reason"]) == (
        "team-b",
        "thief",
        "NamespaceNotAllowed",
    )
    assert "namespaceSelector" in refused["message"]
    [warning] = [e for e in events.events if e.reason == "ClaimRefused"]
    assert warning.type == "Warning"
    assert "team-b/thief" in warning.message

    # Said once: the next tick lists it again and posts nothing new.
    _, _, again = await plan_for(claims, spec, stored=status)
    assert [e.reason for e in again.events if e.reason == "ClaimRefused"] == []


async def test_a_priority_above_the_maximum_is_refused_not_lowered() -> None:
    spec = accelerator_pool(max_nodes=2, maxPriority=100)
    claims = [
        claim("team-a", "chat", 2, priority=100),
        claim("team-b", "vip", 2, priority=1000000),
    ]
    status, provider, _ = await plan_for(claims, spec)

    assert requested(provider) == 2
    chat = next(a for a in status["allocations"] if a["name"] == "chat")
    assert (chat["grantedReplicas"], chat["reason"]) == (2, "NodesProvisioning")
    [refused] = status["refusedClaims"]
    assert (refused["name"], refused["reason"], refused["priority"]) == (
        "vip",
        "PriorityAboveMax",
        1000000,
    )


async def test_a_claim_from_a_namespace_the_operator_does_not_watch_is_refused() -> None:
    claims = [claim("team-a", "chat", 1), claim("team-b", "stray", 10000)]
    status, provider, _ = await plan_for(claims, accelerator_pool(), watched=("team-a",))
    assert requested(provider) == 1
    assert [(c["name"], c["reason"]) for c in status["refusedClaims"]] == [
        ("stray", "NamespaceNotWatched")
    ]


async def test_without_tenancy_every_namespace_and_priority_is_admitted() -> None:
    claims = [claim("team-a", "chat", 1, priority=5), claim("team-b", "batch", 1, priority=999)]
    status, provider, _ = await plan_for(claims, accelerator_pool())
    assert requested(provider) == 2
    assert status.get("refusedClaims", []) == []


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        pytest.param({}, {"team-a", "team-b"}, id="empty-selects-all"),
        pytest.param({"matchLabels": {"gpu.example.com/h100": "allowed"}}, {"team-a"}, id="labels"),
        pytest.param(
            {"matchExpressions": [{"key": "gpu.example.com/h100", "operator": "Exists"}]},
            {"team-a"},
            id="exists",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "gpu.example.com/h100", "operator": "DoesNotExist"}]},
            {"team-b"},
            id="does-not-exist",
        ),
        pytest.param(
            {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": ["team-b", "team-c"],
                    }
                ]
            },
            {"team-b"},
            id="in",
        ),
        pytest.param(
            {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["team-b"],
                    }
                ]
            },
            {"team-a"},
            id="not-in",
        ),
    ],
)
def test_the_namespace_selector_has_kubernetes_semantics(
    selector: dict[str, Any], selected: set[str]
) -> None:
    parsed = LabelSelector.model_validate(selector)
    assert {ns for ns, labels in NAMESPACES.items() if parsed.matches(labels)} == selected


@pytest.mark.parametrize(
    "requirement",
    [
        pytest.param({"key": "a", "operator": "In"}, id="in-without-values"),
        pytest.param({"key": "a", "operator": "Exists", "values": ["x"]}, id="exists-with-values"),
        pytest.param({"key": "a b", "operator": "Exists"}, id="bad-key"),
    ],
)
def test_a_malformed_selector_is_refused(requirement: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AcceleratorPoolSpec.model_validate(
            accelerator_pool(namespaceSelector={"matchExpressions": [requirement]})
        )


# ----- the refused InferencePool learns it, says it, and holds -----

TARGET = ScaleTargetRef("team-b", "apps/v1", "Deployment", "thief")
THIEF = InferencePoolRef("team-b", "thief", "uid-thief", 1)


async def test_a_refused_pool_holds_its_size_and_says_why_once() -> None:
    spec = accelerator_pool(namespaceSelector={"matchLabels": {"gpu.example.com/h100": "allowed"}})
    apool_status, _, _ = await plan_for([claim("team-b", "thief", 1)], spec)
    index = {"h100": [allocations_index_entry(apool_status)]}

    signals = FakeSignalSource()
    scaler = FakeScaleActuator(follow_immediately=True)
    scaler.add(TARGET, 1, accelerators_per_replica=8)
    events = FakeEventSink()
    deps = fake_pool_dependencies(
        signals=signals,
        scaler=scaler,
        events=events,
        allocations=IndexedAllocations(InMemoryIndex(index)),
    )
    pool_spec = {
        "targetRef": {"name": "thief"},
        "replicas": {"min": 1, "max": 100},
        "acceleratorPoolRef": {"name": "h100"},
        "metrics": {"queueDepth": {"query": "q", "targetPerReplica": 1}},
    }
    stored: dict[str, Any] | None = None
    for tick in range(3):
        signals.set_value("q", 500, sampled_at=NOW + 15 * tick)
        result = await reconcile(THIEF, pool_spec, stored, deps, NOW + 15 * tick)
        stored = json.loads(json.dumps(result.status))

    assert scaler.writes == []  # the queue asks for 500 replicas: held at 1
    assert stored is not None
    limited = next(c for c in stored["conditions"] if c["type"] == "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "ClaimRefused")
    assert "NamespaceNotAllowed" in limited["message"]
    assert [e.type for e in events.events if e.reason == "ClaimRefused"] == ["Warning"]
