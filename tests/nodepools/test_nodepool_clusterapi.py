"""The Cluster API provider against kmock's emulated API server."""

from __future__ import annotations

from typing import Any

import kmock
import kubernetes.client
import pytest

from fleetscale.api.acceleratorpool import ClusterApiProvider
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    PROVIDER_FAILED,
    SHRINK_REFUSED,
    NodeRef,
    ProviderConflict,
    ProviderError,
)
from fleetscale.nodepools.clusterapi import DELETE_MACHINE_ANNOTATION, ClusterApiNodePool

MD = "cluster.x-k8s.io/v1beta1/machinedeployments"
MACHINES = "cluster.x-k8s.io/v1beta1/machines"


def machine_deployment(replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "MachineDeployment",
        "metadata": {"name": "gpu-md", "namespace": "capi", "annotations": annotations or {}},
        "spec": {"replicas": replicas, "clusterName": "prod"},
        "status": {"replicas": replicas},
    }


def machine(
    name: str,
    node: str,
    deployment: str = "gpu-md",
    machine_set: str = "gpu-md-abc",
    marked: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Machine",
        "metadata": {
            "name": name,
            "namespace": "capi",
            "labels": {"cluster.x-k8s.io/deployment-name": deployment},
            "ownerReferences": [{"kind": "MachineSet", "name": machine_set}],
            **({"annotations": {DELETE_MACHINE_ANNOTATION: "yes"}} if marked else {}),
        },
        "status": {"nodeRef": {"kind": "Node", "name": node}},
    }


@pytest.fixture
def provider(api_client: kubernetes.client.ApiClient) -> ClusterApiNodePool:
    config = ClusterApiProvider(machine_deployment="gpu-md", namespace="capi")
    return ClusterApiNodePool(api_client, config)


async def test_reads_and_scales_through_the_scale_subresource(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(2)
    size = await provider.current()
    assert (size.desired, size.current) == (2, 2)
    await provider.set_desired(5)
    patches = list(kmock["patch"])
    assert [str(p.url.path) for p in patches] == [
        "/apis/cluster.x-k8s.io/v1beta1/namespaces/capi/machinedeployments/gpu-md/scale"
    ]
    assert patches[0].data == {"spec": {"replicas": 5}}
    assert kmock.objects[MD, "capi", "gpu-md"]["spec"]["replicas"] == 5
    await provider.set_desired(5)
    assert len(kmock["patch"]) == 1  # idempotent: same size, no write


def scale_patches(kmock: kmock.KubernetesEmulator) -> list[Any]:
    return [r.data for r in kmock["patch"] if str(r.url.path).endswith("/scale")]


async def test_release_marks_exactly_those_machines_then_scales_down_by_their_count(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(3)
    kmock.objects[MACHINES, "capi", "m-a"] = machine("m-a", "node-a")
    kmock.objects[MACHINES, "capi", "m-b"] = machine("m-b", "node-b")
    kmock.objects[MACHINES, "capi", "m-x"] = machine("m-x", "node-b", deployment="other")
    released = await provider.release([NodeRef("node-b"), NodeRef("no-machine")])
    assert released == ("node-b",)
    assert (
        DELETE_MACHINE_ANNOTATION
        in kmock.objects[MACHINES, "capi", "m-b"]["metadata"]["annotations"]
    )
    assert "annotations" not in kmock.objects[MACHINES, "capi", "m-a"]["metadata"]
    assert "annotations" not in kmock.objects[MACHINES, "capi", "m-x"]["metadata"]
    assert scale_patches(kmock) == [{"spec": {"replicas": 2}}]


async def test_a_smaller_size_is_refused(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    """A plain scale-down lets the MachineSet pick the Machine, busy or not."""
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(3)
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(2)
    assert raised.value.reason == SHRINK_REFUSED
    assert len(kmock["patch"]) == 0


@pytest.mark.parametrize(
    ("other", "why"),
    [
        pytest.param(machine("m-a", "node-a", marked=True), "already carry", id="other-marked"),
        pytest.param(machine("m-a", "node-a", machine_set="gpu-md-new"), "rolling out",
                     id="rollout"),
    ],
)  # fmt: skip
async def test_release_refuses_a_scale_down_that_could_take_another_machine(
    provider: ClusterApiNodePool,
    kmock: kmock.KubernetesEmulator,
    other: dict[str, Any],
    why: str,
) -> None:
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(2)
    kmock.objects[MACHINES, "capi", "m-a"] = other
    kmock.objects[MACHINES, "capi", "m-b"] = machine("m-b", "node-b")
    with pytest.raises(ProviderError) as raised:
        await provider.release([NodeRef("node-b")])
    assert (raised.value.reason, why in raised.value.message) == (PROVIDER_FAILED, True)
    assert len(kmock["patch"]) == 0


async def test_a_failed_scale_down_takes_the_marks_off_again(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(2)
    kmock.objects[MACHINES, "capi", "m-b"] = machine("m-b", "node-b")
    (
        kmock[
            "patch /apis/cluster.x-k8s.io/v1beta1/namespaces/capi/machinedeployments/gpu-md/scale"
        ]
        << 403
    )
    with pytest.raises(ProviderError):
        await provider.release([NodeRef("node-b")])
    annotations = kmock.objects[MACHINES, "capi", "m-b"]["metadata"].get("annotations") or {}
    assert DELETE_MACHINE_ANNOTATION not in annotations


@pytest.mark.parametrize(
    "annotation",
    [
        pytest.param("cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size", id="min"),
        pytest.param("cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size", id="max"),
    ],
)
async def test_refuses_a_machine_deployment_cluster_autoscaler_owns(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator, annotation: str
) -> None:
    kmock.objects[MD, "capi", "gpu-md"] = machine_deployment(2, {annotation: "4"})
    with pytest.raises(ProviderConflict) as raised:
        await provider.set_desired(3)
    assert raised.value.reason == "ProviderConflict"
    assert annotation in raised.value.message
    with pytest.raises(ProviderConflict):
        await provider.release([NodeRef("node-a")])
    assert len(kmock["patch"]) == 0
    assert kmock.objects[MD, "capi", "gpu-md"]["spec"]["replicas"] == 2


async def test_missing_machine_deployment(
    provider: ClusterApiNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock.resources[MD].kind = "MachineDeployment"
    with pytest.raises(ProviderError) as raised:
        await provider.current()
    assert raised.value.reason == GROUP_NOT_FOUND
