"""The AcceleratorPool's reads and cordons through the retrying client, against kmock."""

from __future__ import annotations

from typing import Any

import kmock
import kubernetes.client
import pytest

from fleetscale.controller.acceleratorpools.cluster import (
    InMemoryCluster,
    KubernetesClusterReader,
    KubernetesNodeCordoner,
)
from fleetscale.controller.acceleratorpools.nodes import CORDONED_FOR_RELEASE, cordons
from fleetscale.kubeapi import RetryPolicy

NODES = "v1/nodes"


def gpu_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"example.com/gpu": "h100"}},
        "spec": {"providerID": f"kwok://{name}"},
    }


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    kmock.resources[NODES].kind = "Node"
    kmock.objects[NODES, None, "h100-0"] = gpu_node("h100-0")
    return kmock


async def test_cordon_marks_the_node_as_ours_and_uncordon_restores_it(
    api_client: kubernetes.client.ApiClient, emulator: kmock.KubernetesEmulator
) -> None:
    cordoner = KubernetesNodeCordoner(api_client, RetryPolicy(attempts=1))
    reader = KubernetesClusterReader(api_client)

    await cordoner.cordon("h100-0")
    node = emulator.objects[NODES, None, "h100-0"].raw
    assert node["spec"]["unschedulable"] is True
    assert node["metadata"]["annotations"] == {CORDONED_FOR_RELEASE: "true"}
    assert cordons(await reader.nodes({"example.com/gpu": "h100"})).ours == {"h100-0"}
    patch = next(iter(emulator["patch"]))
    assert patch.headers["Content-Type"] == "application/merge-patch+json"

    await cordoner.uncordon("h100-0")
    node = emulator.objects[NODES, None, "h100-0"].raw
    assert "unschedulable" not in node["spec"]
    assert CORDONED_FOR_RELEASE not in (node["metadata"].get("annotations") or {})
    assert node["spec"]["providerID"] == "kwok://h100-0"  # the rest of the Node untouched


async def test_the_in_memory_cordon_behaves_the_same() -> None:
    cluster = InMemoryCluster(node_objects=[gpu_node("h100-0")])
    await cluster.cordon("h100-0")
    assert cordons(cluster.node_objects).ours == {"h100-0"}
    await cluster.uncordon("h100-0")
    assert cordons(cluster.node_objects) == cordons([gpu_node("h100-0")])
    assert cluster.node_objects[0]["spec"] == gpu_node("h100-0")["spec"]
