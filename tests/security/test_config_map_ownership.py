"""A pool writes only the ConfigMap it created for itself (#11).

``shedLoad.configMapName`` used to adopt any ConfigMap of the namespace: its four keys were
overwritten and an owner reference to the pool was added (so deleting the pool could have the
garbage collector delete a platform's ConfigMap), and two pools naming one ConfigMap overwrote
each other's flag. Now the operator creates the ConfigMap marked as the pool's (label
``app.kubernetes.io/managed-by: fleetscale``, a controller owner reference to the pool) and
patches only a ConfigMap so marked for that very pool. Any other is left untouched, and the
pool says so: Ready=False (ConfigMapNotOwned) and one Warning Event, with no write at any tick,
also when a flag is withdrawn (Paused, DryRun, deleted pool, renamed ConfigMap).
"""

from __future__ import annotations

import json
from typing import Any

import kmock
import pytest
from kubernetes.client import ApiClient

from fleetscale.actuators.base import ConfigMapNotOwned, InvolvedObject, ScaleTargetRef, ShedFlag
from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
    FakeSecretReader,
    FakeShedFlagPublisher,
)
from fleetscale.actuators.rest import RetryPolicy
from fleetscale.controller.inferencepools import (
    InferencePoolDependencies,
    InferencePoolRef,
    reconcile,
)
from fleetscale.controller.inferencepools.tick import withdraw_shed_flag_of_deleted_pool
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource

NS = "team-a"
FAST_RETRY = RetryPolicy(attempts=1, request_timeout_seconds=5)
LLAMA = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "llama", "uid-llama")
MISTRAL = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "mistral", "uid-mistral")
ON = ShedFlag(True, "MaxReplicas", None, 30)


def config_map(name: str, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "5", **metadata},
        "data": {"active": "false", "routes": "a,b"},
    }


FOREIGN = [
    pytest.param(config_map("gateway"), "not created by fleetscale", id="unmarked"),
    pytest.param(
        config_map(
            "gateway",
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": "gw",
                    "uid": "u1",
                    "controller": True,
                }
            ],
        ),
        "not created by fleetscale",
        id="owned-by-a-service",
    ),
    pytest.param(
        config_map(
            "gateway",
            labels={"app.kubernetes.io/managed-by": "fleetscale"},
            ownerReferences=[
                {
                    "apiVersion": "fleetscale.io/v1alpha1",
                    "kind": "InferencePool",
                    "name": "mistral",
                    "uid": "uid-mistral",
                    "controller": True,
                }
            ],
        ),
        "belongs to InferencePool mistral",
        id="claimed-by-another-pool",
    ),
    pytest.param(
        config_map("gateway", labels={"app.kubernetes.io/managed-by": "fleetscale"}),
        "no controller reference to this pool",
        id="marked-but-owned-by-no-pool",
    ),
    pytest.param(
        config_map(
            "gateway",
            labels={"app.kubernetes.io/managed-by": "helm"},
            ownerReferences=[
                {
                    "apiVersion": "fleetscale.io/v1alpha1",
                    "kind": "InferencePool",
                    "name": "llama",
                    "uid": "uid-llama",
                    "controller": True,
                }
            ],
        ),
        "not created by fleetscale",
        id="another-manager-s-label",
    ),
]


@pytest.mark.parametrize(("existing", "why"), FOREIGN)
async def test_a_config_map_that_is_not_the_pools_is_left_untouched(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, existing: dict[str, Any], why: str
) -> None:
    emulator.objects["v1/configmaps", NS, "gateway"] = existing
    before = json.loads(json.dumps(existing))
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)

    with pytest.raises(ConfigMapNotOwned, match=why):
        await publisher.publish(LLAMA, "gateway", ON)

    assert len(emulator[kmock.method.PATCH]) == 0
    assert len(emulator[kmock.method.POST]) == 0
    assert json.loads(json.dumps(emulator.objects["v1/configmaps", NS, "gateway"].raw)) == before


async def test_two_pools_naming_one_config_map_never_overwrite_each_other(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    await publisher.publish(LLAMA, "shared", ON)
    with pytest.raises(ConfigMapNotOwned, match="belongs to InferencePool llama"):
        await publisher.publish(MISTRAL, "shared", ShedFlag(False, "NotLimited", None, None))

    stored = emulator.objects["v1/configmaps", NS, "shared"]
    assert stored["data"]["active"] == "true"
    assert [ref["uid"] for ref in stored["metadata"]["ownerReferences"]] == ["uid-llama"]
    assert len(emulator[kmock.method.PATCH]) == 0


async def test_the_config_map_it_creates_is_marked_as_the_pools(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    await publisher.publish(LLAMA, "llama-shed", ON)
    await publisher.publish(LLAMA, "llama-shed", ShedFlag(False, "NotLimited", None, None))

    metadata = emulator.objects["v1/configmaps", NS, "llama-shed"]["metadata"]
    assert metadata["labels"] == {"app.kubernetes.io/managed-by": "fleetscale"}
    assert metadata["annotations"] == {"fleetscale.io/inference-pool": "llama"}
    [reference] = metadata["ownerReferences"]
    assert (reference["uid"], reference["controller"]) == ("uid-llama", True)
    assert len(emulator[kmock.method.PATCH]) == 1  # its own: patched


# ----- the controller: a condition, one Warning Event, nothing written -----

POOL = InferencePoolRef(NS, "llama", "uid-llama", 1)
TARGET = ScaleTargetRef(NS, "apps/v1", "Deployment", "vllm")
QUEUE = "sum(q)"


class Tenant:
    def __init__(self) -> None:
        self.publisher = FakeShedFlagPublisher()
        self.events = FakeEventSink()
        self.signals = FakeSignalSource()
        scaler = FakeScaleActuator(follow_immediately=True)
        scaler.add(TARGET, 2, accelerators_per_replica=1)
        self.deps = InferencePoolDependencies(
            signals=self.signals,
            scaler=scaler,
            events=self.events,
            shed_publisher=self.publisher,
            secrets=FakeSecretReader(),
            settings=Settings(prometheus_url="http://prom:9090"),
            metrics=OperatorMetrics(),
            plan=plan,
        )
        self.status: dict[str, Any] | None = None

    async def tick(self, spec: dict[str, Any], now: float, queue: float = 100) -> None:
        self.signals.set_value(QUEUE, queue, sampled_at=now)
        result = await reconcile(POOL, spec, self.status, self.deps, now)
        self.status = json.loads(json.dumps(result.status))

    def condition(self, type_: str) -> dict[str, Any]:
        assert self.status is not None
        found: dict[str, Any] = next(c for c in self.status["conditions"] if c["type"] == type_)
        return found


def pool(config_map_name: str, mode: str = "Active") -> dict[str, Any]:
    return {
        "targetRef": {"name": "vllm"},
        "replicas": {"min": 1, "max": 2},
        "metrics": {"engine": "custom", "queueDepth": {"query": QUEUE, "targetPerReplica": 5}},
        "shedLoad": {
            "enabled": True,
            "queuePerReplicaThreshold": 5,
            "releaseAfterSeconds": 0,
            "configMapName": config_map_name,
        },
        "mode": mode,
    }


async def test_the_pool_says_the_config_map_is_not_its_own_once_and_writes_nothing() -> None:
    tenant = Tenant()
    tenant.publisher.add_foreign(NS, "gateway")
    for tick in range(3):
        await tenant.tick(pool("gateway"), 1.8e9 + 15 * tick)

    ready = tenant.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ConfigMapNotOwned")
    assert "ConfigMap team-a/gateway is not this pool's" in ready["message"]
    warnings = [e for e in tenant.events.events if e.reason == "ConfigMapNotOwned"]
    assert [e.type for e in warnings] == ["Warning"]
    assert tenant.publisher.published == []
    assert len(tenant.publisher.refused) == 3  # tried each tick, written never


async def test_a_pool_that_leaves_active_does_not_adopt_a_config_map_to_withdraw() -> None:
    """The pool shed into its own ConfigMap; meanwhile someone replaced that ConfigMap with one
    of theirs. Withdrawing the flag must not write it: nothing of the pool's is there."""
    tenant = Tenant()
    await tenant.tick(pool("llama-shed"), 1.8e9, queue=100)
    assert tenant.status is not None
    assert tenant.status["shedLoad"]["active"] is True
    written = len(tenant.publisher.published)
    tenant.publisher.owners.clear()
    tenant.publisher.add_foreign(NS, "llama-shed")

    await tenant.tick(pool("llama-shed", mode="Paused"), 1.8e9 + 15)

    assert len(tenant.publisher.published) == written
    assert tenant.status["shedLoad"]["active"] is False  # the status flag does not stick on
    assert tenant.condition("Ready")["reason"] == "Paused"


async def test_a_deleted_pool_does_not_write_a_config_map_that_is_not_its_own() -> None:
    tenant = Tenant()
    await tenant.tick(pool("llama-shed"), 1.8e9, queue=100)
    written = len(tenant.publisher.published)
    tenant.publisher.owners.clear()
    tenant.publisher.add_foreign(NS, "llama-shed")
    body = {"metadata": {"namespace": NS, "name": "llama", "uid": "uid-llama"}}

    await withdraw_shed_flag_of_deleted_pool(
        (NS, "llama"), {**body, "status": tenant.status}, tenant.deps
    )

    assert len(tenant.publisher.published) == written
