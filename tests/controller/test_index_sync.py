"""No pool acts on an index that has not listed every object, or that lost its watch.

The indexes the two kinds meet through (demand by AcceleratorPool, the controllers of each
workload) are kept by the operator's own watches (``controller.caches``), registered as
``controller.wiring`` registers them, over ``FakeApiServer``. Until an index has listed its
collection, and whenever it cannot vouch for it (no list, event or bookmark within its bound),
a tick that reads it holds: Ready=False, CacheStale, nothing asked of the provider or written
to the target (a partial picture of demand would release nodes that pools not yet seen are
using; a missing HPA would be fought). Once the collection is listed again, the tick acts on
what it lists. looptime makes the waits take no real time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_acceleratorpool_reconcile import (
    H100,
    NOW,
    condition,
    deps,
    inference_pool,
    model_pod,
    node,
    pool_spec,
)
from test_reconcile import TARGET, World, spec

from fleetscale.caches import CacheTiming
from fleetscale.caches.fake import FakeApiServer
from fleetscale.controller.acceleratorpools import reconcile_accelerator_pool
from fleetscale.controller.acceleratorpools.cluster import InMemoryCluster
from fleetscale.controller.acceleratorpools.demand import IndexedDemands, demand_index_entry
from fleetscale.controller.caches import ClusterCaches
from fleetscale.controller.indexes import DEMAND_INDEX, HPAS_BY_TARGET_INDEX, POOLS_BY_TARGET_INDEX
from fleetscale.controller.inferencepools.conflicts import IndexedControllers, hpa_entry, pool_entry
from fleetscale.controller.wiring import HORIZONTAL_POD_AUTOSCALERS, INFERENCE_POOLS
from fleetscale.nodepools.fake import FakeNodePool

TIMING = CacheTiming(
    watch_timeout_seconds=60, cut_margin_seconds=10, stale_after_seconds=90, max_retry_seconds=4
)
REFUSE_EVERYTHING = 10**6


def caches_over(server: FakeApiServer) -> ClusterCaches:
    return ClusterCaches(server, timing=TIMING, monotonic=lambda: asyncio.get_running_loop().time())


def set_desired(provider: FakeNodePool) -> list[Any]:
    return [call for call in provider.calls if call[0] == "set_desired"]


@pytest.mark.looptime
async def test_an_accelerator_pool_holds_until_every_claim_is_listed_and_after_a_lost_watch() -> (
    None
):
    # Three nodes in use by "chat" (6 replicas of 4 accelerators on 8-accelerator nodes).
    # Planned from an empty, unlisted index, the pool would release all three.
    server = FakeApiServer(refuse_next=REFUSE_EVERYTHING)
    server.put(INFERENCE_POOLS.path(), inference_pool("chat", recommended=6, replicas=6))
    caches = caches_over(server)
    cluster = InMemoryCluster(
        node_objects=[node(f"h100-{i}") for i in range(3)],
        pod_objects=[model_pod(f"chat-{i}", f"h100-{i // 2}") for i in range(6)],
    )
    provider = FakeNodePool(desired=3)
    pool_deps, events = deps(cluster, provider)
    pool_deps.demands = IndexedDemands(
        caches.index(INFERENCE_POOLS, DEMAND_INDEX, demand_index_entry)
    )
    try:
        held = await reconcile_accelerator_pool(H100, pool_spec(), None, pool_deps, NOW)
        ready = condition(held.status, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "CacheStale")
        assert "has not listed it yet" in ready["message"]
        assert set_desired(provider) == []
        assert provider.desired == 3
        assert events.reasons() == ["CacheStale"]

        server.refuse_next = 0  # the API server answers again: the index lists every pool
        planned = await reconcile_accelerator_pool(
            H100, pool_spec(), held.status, pool_deps, NOW + 15
        )
        assert condition(planned.status, "Ready")["status"] == "True"
        assert planned.status["desiredNodes"] == 3
        assert [a["name"] for a in planned.status["allocations"]] == ["chat"]
        assert provider.desired == 3

        # The watch is lost and the API server refuses every list past the cache's bound.
        server.refuse_next = REFUSE_EVERYTHING
        server.break_watches()
        await asyncio.sleep(TIMING.stale_after_seconds + 1)
        calls = list(provider.calls)
        stale = await reconcile_accelerator_pool(
            H100, pool_spec(), planned.status, pool_deps, NOW + 120
        )
        ready = condition(stale.status, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "CacheStale")
        assert provider.calls == calls
        assert stale.status["allocations"] == planned.status["allocations"]

        server.refuse_next = 0  # listed again: the pool plans from what it lists
        await asyncio.sleep(TIMING.max_retry_seconds + 1)
        again = await reconcile_accelerator_pool(
            H100, pool_spec(), stale.status, pool_deps, NOW + 135
        )
        assert condition(again.status, "Ready")["status"] == "True"
        assert again.status["desiredNodes"] == 3
    finally:
        await caches.stop()


def hpa(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": TARGET.namespace,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"}},
    }


@pytest.mark.parametrize(
    ("hpas", "after_the_list"),
    [
        pytest.param([hpa("vllm")], "ConflictingAutoscaler", id="an-hpa-not-yet-seen"),
        pytest.param([], "ScaledUp", id="alone"),
    ],
)
@pytest.mark.looptime
async def test_an_inference_pool_holds_until_the_other_controllers_are_listed(
    hpas: list[dict[str, Any]], after_the_list: str
) -> None:
    server = FakeApiServer(refuse_next=REFUSE_EVERYTHING)
    for body in hpas:
        server.put(HORIZONTAL_POD_AUTOSCALERS.path(), body)
    caches = caches_over(server)
    world = World(replicas=2)
    world.deps.controllers = IndexedControllers(
        caches.index(INFERENCE_POOLS, POOLS_BY_TARGET_INDEX, pool_entry),
        caches.index(HORIZONTAL_POD_AUTOSCALERS, HPAS_BY_TARGET_INDEX, hpa_entry),
    )
    try:
        held = await world.tick(spec(), NOW, queue=40)
        assert held.reason == "CacheStale"
        assert world.scaler.writes == []
        ready = world.condition("Ready")
        assert (ready["status"], ready["reason"]) == ("False", "CacheStale")

        server.refuse_next = 0
        result = await world.tick(spec(), NOW + 15, queue=40)
        assert result.reason == after_the_list
        expected = 8 if after_the_list == "ScaledUp" else 2
        assert world.scaler.targets[TARGET].spec_replicas == expected
    finally:
        await caches.stop()
