"""The placeholder provider against kmock's emulated API server."""

from __future__ import annotations

from typing import Any

import kmock
import kubernetes.client
import pytest

from fleetscale.nodepools.base import SHRINK_REFUSED, NodeRef, ProviderError
from fleetscale.nodepools.placeholder import (
    DELETION_COST_ANNOTATION,
    PLACEHOLDER_LABEL,
    PlaceholderNodePool,
    is_placeholder,
)

from .conftest import live, pool_spec

DEPLOYMENTS = "apps/v1/deployments"
PRIORITY_CLASSES = "scheduling.k8s.io/v1/priorityclasses"


def node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"example.com/gpu": "h100"}},
    }


def pod(
    name: str, node_name: str, gpus: int, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "serving", "labels": labels or {}},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "main", "image": "vllm", "resources": resources}],
        },
        "status": {"phase": "Running"},
    }


@pytest.fixture
def provider(
    api_client: kubernetes.client.ApiClient, kmock: kmock.KubernetesEmulator
) -> PlaceholderNodePool:
    for resource, kind in [
        ("v1/nodes", "Node"),
        ("v1/pods", "Pod"),
        (DEPLOYMENTS, "Deployment"),
        (PRIORITY_CLASSES, "PriorityClass"),
    ]:
        kmock.resources[resource].kind = kind
    kmock.objects["v1/nodes", None, "gpu-a"] = node("gpu-a")
    kmock.objects["v1/nodes", None, "gpu-b"] = node("gpu-b")
    kmock.objects["v1/pods", "serving", "vllm-0"] = pod("vllm-0", "gpu-a", gpus=4)
    kmock.objects["v1/pods", "serving", "exporter"] = pod("exporter", "gpu-b", gpus=0)
    spec = pool_spec(
        {"placeholder": {"namespace": "fleetscale-system", "tolerations": [{"operator": "Exists"}]}}
    )
    return PlaceholderNodePool(api_client, "h100", spec)


async def test_placeholders_reserve_the_nodes_model_pods_do_not_use(
    provider: PlaceholderNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(3)

    priority_class = live(kmock, PRIORITY_CLASSES)["fleetscale-placeholder"]
    assert priority_class["value"] == -10
    assert priority_class["preemptionPolicy"] == "Never"
    deployment = live(kmock, DEPLOYMENTS)["fleetscale-placeholder-h100"]
    assert deployment["spec"]["replicas"] == 2  # one of the three nodes already hosts a model pod
    template = deployment["spec"]["template"]["spec"]
    assert template["priorityClassName"] == "fleetscale-placeholder"
    assert template["nodeSelector"] == {"example.com/gpu": "h100"}
    assert template["tolerations"] == [{"operator": "Exists"}]
    assert template["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "8"}

    size = await provider.current()
    assert (size.desired, size.current) == (3, 2)


async def test_release_frees_the_placeholders_on_the_chosen_nodes(
    provider: PlaceholderNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(3)
    labels = {
        "app.kubernetes.io/name": "fleetscale-placeholder",
        "fleetscale.io/accelerator-pool": "h100",
        PLACEHOLDER_LABEL: "true",
    }
    for name, on in [("ph-1", "gpu-b"), ("ph-2", "")]:
        placeholder = pod(name, on, gpus=8, labels=labels)
        placeholder["metadata"]["namespace"] = "fleetscale-system"
        kmock.objects["v1/pods", "fleetscale-system", name] = placeholder
    assert is_placeholder(placeholder)

    assert await provider.release([NodeRef("gpu-b")]) == ("gpu-b",)
    marks = [r for r in kmock["patch"] if str(r.url.path).endswith("/pods/ph-1")]
    assert [r.data for r in marks] == [
        {"metadata": {"annotations": {DELETION_COST_ANNOTATION: "-1000"}}}
    ]
    scale = [r for r in kmock["patch"] if str(r.url.path).endswith("/scale")]
    assert [r.data for r in scale] == [{"spec": {"replicas": 1}}]
    # The Pending placeholder ranks first for the ReplicaSet: ph-1 itself is deleted too.
    assert sorted(live(kmock, "v1/pods")) == ["exporter", "ph-2", "vllm-0"]
    assert [str(r.url.path) for r in kmock["delete"]] == [
        "/api/v1/namespaces/fleetscale-system/pods/ph-1"
    ]


async def test_fewer_placeholders_by_size_is_refused(
    provider: PlaceholderNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(3)
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(2)
    assert raised.value.reason == SHRINK_REFUSED
    assert live(kmock, DEPLOYMENTS)["fleetscale-placeholder-h100"]["spec"]["replicas"] == 2


async def test_no_placeholders_needed_creates_nothing(
    provider: PlaceholderNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(1)
    assert live(kmock, DEPLOYMENTS) == {}
    assert len(kmock["post"]) == 0
