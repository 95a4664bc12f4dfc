"""The real operator with an AcceleratorPool: kopf's daemon for the pool, the kwok provider
through the official client, and the InferencePool reading its cap, against kmock's emulator.

Nodes the kwok provider creates are Node objects in the emulator; the test turns them Ready as
kwok would, and watches nodes and replicas move together.
"""

from __future__ import annotations

import copy
from typing import Any

import kmock
import pytest

from integration.harness import Cluster, eventually, pool_spec, running_operator
from support.prometheus_server import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NS = "serving"
QUEUE = 'sum(vllm:num_requests_waiting{model_name="chat"})'
NODES = kmock.resource("v1/nodes")
APOOLS = kmock.resource("fleetscale.io/v1alpha1/acceleratorpools")
LABELS = {"example.com/gpu": "h100"}


def add_accelerator_pool(cluster: Cluster, max_nodes: int) -> None:
    cluster.server.resources[NODES] = kmock.ResourceInfo(
        kind="Node",
        namespaced=False,
        verbs={"list", "watch", "get", "create", "patch", "delete"},
    )
    cluster.server.objects[APOOLS, None, "h100"] = {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "AcceleratorPool",
        "metadata": {"name": "h100", "uid": "uid-h100", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "provider": {"kwok": {}},
            "nodeLabels": LABELS,
            "acceleratorsPerNode": 8,
            "nodes": {"min": 0, "max": max_nodes},
            "pollIntervalSeconds": 1,
        },
    }


def pool_nodes(cluster: Cluster) -> list[str]:
    return sorted(
        name
        for resource, _, name in list(cluster.server.objects)
        if resource == NODES and not cluster.server.objects[resource, None, name].deleted
    )


def make_ready(cluster: Cluster) -> None:
    """What kwok does to the Nodes it manages: Ready, a minute after creation."""
    for name in pool_nodes(cluster):
        node = cluster.server.objects[NODES, None, name]
        if not (node.raw.get("status") or {}).get("conditions"):
            node.patch(
                {
                    "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "lastTransitionTime": "2026-01-01T00:01:00Z",
                            }
                        ]
                    },
                }
            )
            cluster.announce("v1/nodes", None, name)  # kwok's change reaches the node watch


def apool_status(cluster: Cluster) -> dict[str, Any]:
    return dict(copy.deepcopy(cluster.server.objects[APOOLS, None, "h100"].raw).get("status") or {})


async def test_nodes_are_requested_and_replicas_follow_them(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 30)  # 30 waiting / 5 per replica = 6 replicas of 4 GPUs
    cluster.add_deployment(NS, "vllm-chat", replicas=1, gpus_per_pod=4)
    add_accelerator_pool(cluster, max_nodes=3)
    spec = pool_spec("vllm-chat", QUEUE, max_replicas=8)
    spec["acceleratorPoolRef"] = {"name": "h100"}
    cluster.add_pool(NS, "chat", spec)

    async with running_operator(cluster, prometheus):
        # 6 replicas x 4 GPUs on nodes of 8: three kwok Nodes, requested from demand.
        await eventually(lambda: len(pool_nodes(cluster)) == 3, what="3 kwok Nodes")
        node = cluster.server.objects[NODES, None, pool_nodes(cluster)[0]].raw
        assert node["metadata"]["labels"]["example.com/gpu"] == "h100"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"

        # None is Ready yet: the InferencePool may not grow past what Ready nodes hold. (Its
        # first tick may hold at 0 too, AllocationPending, before the AcceleratorPool planned.)
        def provisioning() -> bool:
            limited = cluster.condition(NS, "chat", "ScalingLimited") or {}
            return (limited.get("status"), limited.get("reason")) == ("True", "NodesProvisioning")

        await eventually(provisioning, what="ScalingLimited NodesProvisioning")
        assert cluster.status(NS, "chat").get("maxReplicasByCapacity") == 0
        assert cluster.replicas(NS, "vllm-chat") == 1

        make_ready(cluster)
        await eventually(lambda: cluster.replicas(NS, "vllm-chat") == 6, what="6 replicas")
        await eventually(lambda: apool_status(cluster).get("readyNodes") == 3, what="status")

    status = apool_status(cluster)
    assert status["desiredNodes"] == 3
    assert status["allocations"][0]["name"] == "chat"
    assert status["allocations"][0]["maxReplicas"] == 6
    assert status["allocations"][0]["reason"] == "CapacityAvailable"
    # All of its demand fits: no cap (6 is only the demand the pool planned for).
    assert cluster.status(NS, "chat").get("maxReplicasByCapacity") is None


NAMESPACES = kmock.resource("v1/namespaces")


async def test_a_namespace_the_pool_does_not_admit_gets_no_node_until_it_is_labelled(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    """spec.tenancy.namespaceSelector is evaluated against the Namespaces' labels as the
    operator's watch of Namespaces delivers them: a label added later admits the pool."""
    prometheus.set_value(QUEUE, 30)
    cluster.add_deployment(NS, "vllm-chat", replicas=1, gpus_per_pod=4)
    cluster.server.objects[NAMESPACES, None, NS] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"team": "serving"}, "resourceVersion": "1"},
    }
    add_accelerator_pool(cluster, max_nodes=3)
    cluster.server.objects[APOOLS, None, "h100"].patch(
        {"spec": {"tenancy": {"namespaceSelector": {"matchLabels": {"gpu": "h100"}}}}}
    )
    spec = pool_spec("vllm-chat", QUEUE, max_replicas=8)
    spec["acceleratorPoolRef"] = {"name": "h100"}
    cluster.add_pool(NS, "chat", spec)

    async with running_operator(cluster, prometheus):

        def refused() -> bool:
            claims = apool_status(cluster).get("refusedClaims") or []
            limited = cluster.condition(NS, "chat", "ScalingLimited") or {}
            return [c["reason"] for c in claims] == ["NamespaceNotAllowed"] and (
                limited.get("reason") == "ClaimRefused"
            )

        await eventually(refused, what="the claim refused, and the pool told")
        assert pool_nodes(cluster) == []
        assert cluster.replicas(NS, "vllm-chat") == 1
        assert "ClaimRefused" in cluster.event_reasons(NS, "chat")

        await cluster.label_namespace(NS, {"team": "serving", "gpu": "h100"})
        await eventually(lambda: len(pool_nodes(cluster)) == 3, what="3 kwok Nodes")
        await eventually(
            lambda: apool_status(cluster).get("refusedClaims") == [], what="no refused claim"
        )
