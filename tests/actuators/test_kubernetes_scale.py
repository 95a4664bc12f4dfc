"""KubernetesScaleActuator against kmock's Kubernetes emulator, through the official client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kmock
import pytest
from kubernetes.client import ApiClient

from fleetscale.actuators.base import ActuatorError, ScaleStatus, ScaleTargetRef, TargetNotFound
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.rest import RetryPolicy
from support.kube_emulator import ScaleSubresource, declare

NS = "models"
FAST_RETRY = RetryPolicy(attempts=3, first_backoff_seconds=0.01, request_timeout_seconds=5)
DEPLOYMENT = ScaleTargetRef(NS, "apps/v1", "Deployment", "vllm-llama")
STATEFULSET = ScaleTargetRef(NS, "apps/v1", "StatefulSet", "sglang")
LWS = ScaleTargetRef(NS, "leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "llama-405b")
CUSTOM = ScaleTargetRef(NS, "serving.example.com/v1alpha1", "ModelServer", "tgi")


def pod_template(gpus: int | None, labels: Mapping[str, str]) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus), "cpu": "8"}} if gpus else {}
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [{"name": "server", "image": "vllm", "resources": resources}]},
    }


def deployment(replicas: int, ready: int | None, gpus: int | None = 4) -> dict[str, Any]:
    status: dict[str, Any] = {"replicas": replicas}
    if ready is not None:
        status["readyReplicas"] = ready
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT.name, "namespace": NS, "resourceVersion": "7"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "vllm"}},
            "template": pod_template(gpus, {"app": "vllm"}),
        },
        "status": status,
    }


def pod(name: str, ready: bool, namespace: str = NS, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": "tgi"}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.fixture
def actuator(api_client: ApiClient) -> KubernetesScaleActuator:
    return KubernetesScaleActuator(api_client, retry=FAST_RETRY)


@pytest.fixture
def deployments(emulator: kmock.KubernetesEmulator) -> ScaleSubresource:
    return ScaleSubresource(emulator, "apps/v1/deployments")


async def test_reads_a_deployment(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=2)
    status = await actuator.read(DEPLOYMENT)
    assert status == ScaleStatus(
        spec_replicas=3,
        status_replicas=3,
        ready_replicas=2,
        selector="app=vllm",
        accelerators_per_replica=4,
    )
    # One request a tick: the Deployment itself carries what its /scale would say.
    object_path = f"/apis/apps/v1/namespaces/{NS}/deployments/{DEPLOYMENT.name}"
    assert len(emulator[f"get {object_path}"]) == 1
    assert len(emulator[f"get {object_path}/scale"]) == 0


async def test_a_deployment_without_ready_replicas_has_none_ready(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    # Deployments omit readyReplicas at zero; no pod listing is needed to know it.
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(2, ready=None)
    assert (await actuator.read(DEPLOYMENT)).ready_replicas == 0
    assert len(emulator[kmock.resource("v1/pods")]) == 0


async def test_scales_a_deployment_with_its_resource_version(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    status = await actuator.set_replicas(DEPLOYMENT, 5)
    assert status.spec_replicas == 5
    assert status.ready_replicas == 3  # the new pods are not ready yet
    stored = emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name]
    assert stored["spec"]["replicas"] == 5
    assert stored["metadata"]["resourceVersion"] == "8"
    assert [w["metadata"]["resourceVersion"] for w in deployments.writes] == ["7"]
    assert deployments.writes[0]["spec"] == {"replicas": 5}


async def test_scaling_to_the_current_size_writes_nothing(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    assert (await actuator.set_replicas(DEPLOYMENT, 3)).spec_replicas == 3
    assert deployments.writes == []


async def test_scales_to_zero(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(1, ready=1)
    assert (await actuator.set_replicas(DEPLOYMENT, 0)).spec_replicas == 0
    assert emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name]["spec"]["replicas"] == 0


async def test_negative_replicas_are_refused(actuator: KubernetesScaleActuator) -> None:
    with pytest.raises(ValueError, match="negative"):
        await actuator.set_replicas(DEPLOYMENT, -1)


async def test_conflicts_are_retried_with_a_fresh_read(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    deployments.interfere(times=2)  # two concurrent writers get in first
    status = await actuator.set_replicas(DEPLOYMENT, 6)
    assert status.spec_replicas == 6
    # Each retry sent the version it had just read: 7 (stale), 8 (stale), 9 (current).
    assert [w["metadata"]["resourceVersion"] for w in deployments.writes] == ["7", "8", "9"]


async def test_endless_conflicts_give_up_with_a_clear_error(
    emulator: kmock.KubernetesEmulator,
    api_client: ApiClient,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    deployments.interfere(times=100)
    actuator = KubernetesScaleActuator(api_client, retry=FAST_RETRY, conflict_attempts=3)
    with pytest.raises(ActuatorError, match="kept changing"):
        await actuator.set_replicas(DEPLOYMENT, 6)
    assert len(deployments.writes) == 3
    assert emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name]["spec"]["replicas"] == 3


async def test_a_statefulset(
    emulator: kmock.KubernetesEmulator, actuator: KubernetesScaleActuator
) -> None:
    statefulsets = ScaleSubresource(emulator, "apps/v1/statefulsets")
    emulator.objects["apps/v1/statefulsets", NS, STATEFULSET.name] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": STATEFULSET.name, "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "sglang", "tier": "serve"}},
            "template": pod_template(8, {"app": "sglang", "tier": "serve"}),
        },
        "status": {"replicas": 2, "readyReplicas": 2},
    }
    before = await actuator.read(STATEFULSET)
    after = await actuator.set_replicas(STATEFULSET, 4)
    assert before == ScaleStatus(2, 2, 2, "app=sglang,tier=serve", 8)
    assert after.spec_replicas == 4
    assert len(statefulsets.writes) == 1


async def test_a_leader_worker_set_counts_the_accelerators_of_the_whole_group(
    emulator: kmock.KubernetesEmulator, actuator: KubernetesScaleActuator
) -> None:
    declare(
        emulator,
        "leaderworkerset.x-k8s.io/v1/leaderworkersets",
        "LeaderWorkerSet",
        subresources=["scale"],
    )
    ScaleSubresource(
        emulator,
        "leaderworkerset.x-k8s.io/v1/leaderworkersets",
        label_selector_path=("status", "hpaPodSelector"),
    )
    emulator.objects["leaderworkerset.x-k8s.io/v1/leaderworkersets", NS, LWS.name] = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": LWS.name, "namespace": NS, "resourceVersion": "3"},
        "spec": {
            "replicas": 2,
            "leaderWorkerTemplate": {
                "size": 4,
                "workerTemplate": pod_template(8, {"app": "llama-405b"}),
            },
        },
        "status": {
            "replicas": 2,
            "readyReplicas": 1,
            "hpaPodSelector": "leaderworkerset.sigs.k8s.io/name=llama-405b",
        },
    }
    status = await actuator.read(LWS)
    assert status == ScaleStatus(2, 2, 1, "leaderworkerset.sigs.k8s.io/name=llama-405b", 32)


async def test_a_custom_resource_counts_ready_pods_by_the_scale_selector(
    emulator: kmock.KubernetesEmulator, actuator: KubernetesScaleActuator
) -> None:
    declare(
        emulator,
        "serving.example.com/v1alpha1/modelservers",
        "ModelServer",
        subresources=["scale", "status"],
    )
    servers = ScaleSubresource(
        emulator,
        "serving.example.com/v1alpha1/modelservers",
        spec_replicas_path=("spec", "size"),
        status_replicas_path=("status", "size"),
        label_selector_path=("status", "selector"),
    )
    emulator.objects["serving.example.com/v1alpha1/modelservers", NS, CUSTOM.name] = {
        "apiVersion": "serving.example.com/v1alpha1",
        "kind": "ModelServer",
        "metadata": {"name": CUSTOM.name, "namespace": NS, "resourceVersion": "11"},
        "spec": {"size": 3, "template": pod_template(2, {"app": "tgi"})},
        "status": {"size": 3, "selector": "app=tgi"},  # no readyReplicas: count pods
    }
    emulator.objects["v1/pods", NS, "tgi-0"] = pod("tgi-0", ready=True)
    emulator.objects["v1/pods", NS, "tgi-1"] = pod("tgi-1", ready=False)
    emulator.objects["v1/pods", NS, "tgi-2"] = pod("tgi-2", ready=True, deleting=True)

    status = await actuator.read(CUSTOM)
    assert status == ScaleStatus(3, 3, 1, "app=tgi", 2)
    pod_lists = list(emulator[kmock.resource("v1/pods"), kmock.method.GET])
    assert pod_lists[-1].params["labelSelector"] == "app=tgi"

    await actuator.set_replicas(CUSTOM, 1)
    stored = emulator.objects["serving.example.com/v1alpha1/modelservers", NS, CUSTOM.name]
    assert stored["spec"]["size"] == 1
    assert servers.writes[0]["spec"] == {"replicas": 1}


async def test_discovery_is_cached_per_kind(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    for _ in range(3):
        await actuator.read(DEPLOYMENT)
    await actuator.set_replicas(DEPLOYMENT, 4)
    assert len(emulator["get /apis/apps/v1"]) == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param(
            DEPLOYMENT, f"Deployment.apps/v1 {NS}/vllm-llama not found", id="missing-object"
        ),
        pytest.param(
            ScaleTargetRef(NS, "apps/v1", "Rollout", "x"),
            "serves no kind Rollout in apps/v1",
            id="unknown-kind",
        ),
        pytest.param(
            ScaleTargetRef(NS, "argoproj.io/v1alpha1", "Rollout", "x"),
            "does not serve argoproj.io/v1alpha1 (is the CRD for Rollout installed?)",
            id="group-not-installed",
        ),
        pytest.param(
            ScaleTargetRef(NS, "v1", "ConfigMap", "x"),
            "ConfigMap in v1 has no /scale subresource",
            id="kind-without-scale",
        ),
    ],
)
async def test_target_not_found_says_what_is_missing(
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
    target: ScaleTargetRef,
    message: str,
) -> None:
    with pytest.raises(TargetNotFound) as caught:
        await actuator.read(target)
    assert message in str(caught.value)
    with pytest.raises(TargetNotFound):
        await actuator.set_replicas(target, 2)


async def test_transient_errors_are_retried(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    unavailable = kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="etcd")
    emulator[kmock.method.PUT, kmock.subresource("scale")][:2] << unavailable
    assert (await actuator.set_replicas(DEPLOYMENT, 5)).spec_replicas == 5
    assert len(emulator[kmock.method.PUT]) == 3
    assert len(deployments.writes) == 1  # the two failures never reached the scale handler


async def test_persistent_errors_become_actuator_errors(
    emulator: kmock.KubernetesEmulator,
    actuator: KubernetesScaleActuator,
    deployments: ScaleSubresource,
) -> None:
    emulator.objects["apps/v1/deployments", NS, DEPLOYMENT.name] = deployment(3, ready=3)
    forbidden = kmock.KubernetesError(
        status=403,
        reason="Forbidden",
        message='deployments.apps "vllm-llama" is forbidden: cannot update deployments/scale',
    )
    emulator[kmock.method.PUT, kmock.subresource("scale")] << forbidden
    with pytest.raises(ActuatorError, match=r"HTTP 403.*cannot update deployments/scale"):
        await actuator.set_replicas(DEPLOYMENT, 5)
    assert len(emulator[kmock.method.PUT]) == 1  # permanent: not retried
