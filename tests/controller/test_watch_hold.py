"""A pool whose target cache lost its watch holds, and acts again once the watch is back.

The pool's tick runs as in the operator, its target read from the watch-fed cache
(``controller.caches``) through the real HTTP client, against ``WatchServer`` (the API server's
list and watch on the wire). The test kills the watch's TCP connection and keeps the API
server unreachable: within the cache's bound the pool goes on from memory; past it the pool
holds (Ready=False, CacheStale, one Warning) and changes nothing, whatever the load says; when
the API server answers again the pool continues from the size the workload really has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from kubernetes.client import Configuration

from fleetscale.actuators.base import ScaleStatus, ScaleTargetRef, TargetNotFound
from fleetscale.actuators.fake import FakeEventSink
from fleetscale.caches import CacheTiming
from fleetscale.caches.http import KubeWatchClient
from fleetscale.controller.caches import CachedScaleActuator, ClusterCaches, target_status
from fleetscale.controller.conditions import apply_merge_patch
from fleetscale.controller.inferencepools import InferencePoolRef
from fleetscale.controller.inferencepools.tick import reconcile
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource
from support.dependencies import fake_pool_dependencies
from support.watch_server import TOKEN, WatchServer

NS = "serving"
PATH = "/apis/apps/v1/deployments"  # the operator watches every namespace
QUEUE = "sum(vllm:num_requests_waiting)"
POOL = InferencePoolRef(NS, "llama", "uid-llama", 1)
SPEC = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
    "replicas": {"min": 1, "max": 10},
    "metrics": {"engine": "custom", "queueDepth": {"query": QUEUE, "targetPerReplica": 5}},
    "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
        "scaleDown": {"stabilizationWindowSeconds": 0, "policies": []},
    },
    "pollIntervalSeconds": 15,
}
TIMING = CacheTiming()  # the operator's: a 60 s watch, stale after 150 s without progress


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "vllm"}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


class StoreScaler:
    """Writes /scale into the API server's store (so its watch reports it), as the real
    actuator does; reads the object the same way."""

    def __init__(self, server: WatchServer) -> None:
        self.server = server
        self.writes: list[int] = []

    async def read(self, target: ScaleTargetRef) -> ScaleStatus:
        stored = self.server.fake.objects.get(PATH, {}).get((NS, target.name))
        if stored is None:
            raise TargetNotFound(str(target))
        return target_status(stored)

    async def set_replicas(self, target: ScaleTargetRef, replicas: int) -> ScaleStatus:
        if self.server.refusing:
            raise ConnectionRefusedError("the API server cannot be reached")
        self.writes.append(replicas)
        self.server.fake.put(PATH, deployment(replicas))
        return await self.read(target)


@pytest.fixture
async def server() -> AsyncIterator[WatchServer]:
    server = WatchServer()
    server.fake.put(PATH, deployment(2))
    await server.start()
    yield server
    await server.stop()


def condition(status: Mapping[str, Any], type_: str) -> tuple[str, str]:
    found = next(c for c in status.get("conditions") or [] if c["type"] == type_)
    return found["status"], found["reason"]


@pytest.mark.looptime(noop_cycles=100)
async def test_a_killed_watch_holds_the_pool_past_the_bound_and_it_recovers(
    server: WatchServer,
) -> None:
    loop = asyncio.get_running_loop()
    configuration = Configuration(host=server.url)
    configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
    caches = ClusterCaches(KubeWatchClient(configuration), timing=TIMING, monotonic=loop.time)
    inner = StoreScaler(server)
    signals, events = FakeSignalSource(), FakeEventSink()
    deps = fake_pool_dependencies(
        signals=signals,
        scaler=CachedScaleActuator(inner, caches),
        events=events,
        settings=Settings(prometheus_url="http://prom:9090", leader_election=False),
    )
    status: dict[str, Any] = {}
    start = 1_800_000_000.0

    async def tick_at(offset: float) -> None:
        nonlocal status
        await asyncio.sleep(max(0.0, offset - (loop.time() - zero)))
        now = start + offset
        signals.set_value(QUEUE, queue, sampled_at=now)
        result = await reconcile(POOL, SPEC, status, deps, now)
        status = apply_merge_patch(status, result.patch)

    try:
        zero, queue = loop.time(), 10.0  # 10 waiting / 5 per replica: the 2 it has
        await tick_at(0)
        assert condition(status, "Ready") == ("True", "Active")
        assert status["replicas"] == 2
        for _ in range(100):  # until the cache has listed and follows the watch
            if server.fake.open_watches:
                break
            await asyncio.sleep(0.1)

        server.refusing = True  # the API server cannot be reached (lists, watches, writes)
        assert server.kill_watches() == 1  # and the watch's TCP connection is reset
        server.fake.put(PATH, deployment(4))  # someone scales it meanwhile: unseen
        for offset in range(15, 150, 15):  # within the bound: from memory, nothing to do
            await tick_at(offset)
            assert condition(status, "Ready") == ("True", "Active")

        queue = 40.0  # load that asks for 8 replicas, while the cache cannot vouch
        for offset in (150, 165, 180, 195):
            await tick_at(offset)
            assert condition(status, "Ready") == ("False", "CacheStale")
        assert inner.writes == []  # held: not one write, whatever the queue said
        assert status["replicas"] == 2  # the status shows what was last known, unchanged
        held = [e for e in events.events if e.reason == "CacheStale"]
        assert len(held) == 1
        assert held[0].type == "Warning"
        assert "no list, event or bookmark for more than 150 s" in held[0].message

        server.refusing = False  # the API server is back: the cache lists again
        for _ in range(100):
            if caches.reflectors()[0].fresh():
                break
            await asyncio.sleep(1)
        await tick_at(225)
        assert condition(status, "Ready") == ("True", "Active")
        assert inner.writes == [8]  # from the size it really had (4), to what the load asks
        assert any(e.reason == "ScaledExternally" and "to 4" in e.message for e in events.events)
    finally:
        await caches.stop()
