"""AcceleratorPools against a real control plane: nodes and replicas move together.

Each test gets an AcceleratorPool of its own (cluster-scoped, named after the test's namespace)
with the kwok provider: its nodes carry a label and a taint of their own, so only the test's
Deployments (which select and tolerate them) land there, and nothing else in the cluster does.
The pool's nodes are deleted with the pool after the test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from e2e_support import (
    E2E_DIR,
    E2EEnv,
    Exporter,
    Kube,
    Operator,
    Prometheus,
    ready_replicas,
    spec_replicas,
    vllm_deployment,
    wait_until,
)
from pools import GROUP, VERSION, condition_is, create_pool, get_pool, inference_pool, queue_query

pytestmark = pytest.mark.timeout(420)

APOOLS = "acceleratorpools"
CONCURRENCY = 4
POOL_LABEL = "fleetscale.io/e2e-pool"
CRDS = E2E_DIR.parent / "crds"


@pytest.fixture(scope="module")
def current_crds(e2e_env: E2EEnv) -> None:
    """The CRDs of this checkout (a cluster started earlier may hold older schemas)."""
    for name in ("acceleratorpools.fleetscale.io.yaml", "inferencepools.fleetscale.io.yaml"):
        subprocess.run(
            [e2e_env.kubectl, "apply", "--server-side", "--force-conflicts", "-f", CRDS / name],
            check=True,
            capture_output=True,
            env={"KUBECONFIG": e2e_env.kubeconfig},
        )


@pytest.fixture
def accelerator_pool(
    kube: Kube, namespace: str, current_crds: None, operator: Operator
) -> Iterator[Callable[..., dict[str, Any]]]:
    """Creates the test's AcceleratorPool; afterwards, while the operator still runs (it
    holds the pool's finalizer), removes the test's pods, the pool, then its nodes."""
    name = namespace[-40:].strip("-")

    def create(max_nodes: int = 3, delay: int = 5, min_nodes: int = 0) -> dict[str, Any]:
        doc = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AcceleratorPool",
            "metadata": {"name": name},
            "spec": {
                "provider": {
                    "kwok": {"taints": [{"key": POOL_LABEL, "value": name, "effect": "NoSchedule"}]}
                },
                "nodeLabels": {POOL_LABEL: name},
                "acceleratorsPerNode": 8,
                "nodes": {"min": min_nodes, "max": max_nodes},
                "scaleDownDelaySeconds": delay,
                "pollIntervalSeconds": 2,
            },
        }
        result: dict[str, Any] = kube.custom.create_cluster_custom_object(
            GROUP, VERSION, APOOLS, doc
        )
        return result

    yield create
    for deployment in kube.apps.list_namespaced_deployment(namespace).items:
        kube.apps.delete_namespaced_deployment(deployment.metadata.name, namespace)
    wait_until(lambda: not kube.core.list_namespaced_pod(namespace).items, 60, "pods gone")
    try:
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, APOOLS, name)
    except ApiException as error:
        if error.status != 404:
            raise

    def pool_gone() -> bool:
        try:
            get_apool(kube, name)
        except ApiException as error:
            return error.status == 404
        return False

    wait_until(pool_gone, 30, f"AcceleratorPool {name} deleted")
    for node in kube.core.list_node(label_selector=f"{POOL_LABEL}={name}").items:
        kube.core.delete_node(node.metadata.name)


def pool_name(namespace: str) -> str:
    return namespace[-40:].strip("-")


def get_apool(kube: Kube, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kube.custom.get_cluster_custom_object(GROUP, VERSION, APOOLS, name)
    return result


def pool_nodes(kube: Kube, name: str) -> dict[str, bool]:
    """The pool's Nodes and whether each is Ready."""
    return {
        node.metadata.name: any(
            c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
        )
        for node in kube.core.list_node(label_selector=f"{POOL_LABEL}={name}").items
    }


def nodes_hosting(kube: Kube, namespace: str) -> set[str]:
    return {
        pod.spec.node_name
        for pod in kube.core.list_namespaced_pod(namespace).items
        if pod.spec.node_name and not pod.metadata.deletion_timestamp
    }


def apool_event_reasons(kube: Kube, name: str) -> list[str]:
    events = kube.core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=AcceleratorPool,involvedObject.name={name}"
    ).items
    return [e.reason for e in events]


def deploy_on_pool(
    kube: Kube, namespace: str, name: str, pool: str, replicas: int, gpus: int, model: str
) -> None:
    doc = vllm_deployment(name, replicas=replicas, gpus=gpus, model=model)
    pod_spec = doc["spec"]["template"]["spec"]
    pod_spec["nodeSelector"] = {POOL_LABEL: pool}
    pod_spec.setdefault("tolerations", []).append(
        {"key": POOL_LABEL, "operator": "Equal", "value": pool, "effect": "NoSchedule"}
    )
    kube.apps.create_namespaced_deployment(namespace, doc)


def pool_on(
    name: str, namespace: str, model: str, max_replicas: int, priority: int = 0, **kw: Any
) -> dict[str, Any]:
    doc = inference_pool(name, namespace, name, model, max_replicas=max_replicas, **kw)
    doc["spec"]["acceleratorsPerReplica"] = 4
    doc["spec"]["acceleratorPoolRef"] = {"name": pool_name(namespace)}
    doc["spec"]["priority"] = priority
    return doc


def pending_pods(kube: Kube, namespace: str) -> int:
    return sum(
        1
        for pod in kube.core.list_namespaced_pod(namespace).items
        if pod.status.phase == "Pending" and not pod.spec.node_name
    )


def test_pending_pods_get_nodes_then_empty_nodes_are_released_never_a_busy_one(
    kube: Kube,
    namespace: str,
    accelerator_pool: Callable[..., dict[str, Any]],
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    name = pool_name(namespace)
    accelerator_pool(max_nodes=3, delay=5)
    deploy_on_pool(kube, namespace, "chat", name, replicas=1, gpus=4, model="chat")
    wait_until(lambda: pending_pods(kube, namespace) == 1, 30, "the pod Pending for lack of GPUs")

    fleet_load.set_load(namespace, "chat", 30, model="chat", concurrency=CONCURRENCY)
    create_pool(
        kube, pool_on("chat", namespace, "chat", max_replicas=6, gpu=True, scale_down_window=2)
    )

    # A queue of 26 asks for 6 replicas of 4 GPUs: 3 nodes of 8, requested at once; replicas
    # run there as the nodes turn Ready (the fleet then settles where the GPU signal holds it).
    wait_until(lambda: len(pool_nodes(kube, name)) == 3, 60, "3 nodes requested")
    wait_until(lambda: all(pool_nodes(kube, name).values()), 60, "3 Ready nodes")
    wait_until(
        lambda: (
            (ready := ready_replicas(kube, namespace, "chat")) > 2
            and ready == spec_replicas(kube, namespace, "chat")
        ),
        90,
        "more replicas than one node holds, all Ready",
    )
    assert pending_pods(kube, namespace) == 0
    assert nodes_hosting(kube, namespace) <= set(pool_nodes(kube, name))
    assert "NodesRequested" in apool_event_reasons(kube, name)
    apool = wait_until(
        lambda: (p := get_apool(kube, name)).get("status", {}).get("readyNodes") == 3 and p,
        30,
        "status.readyNodes == 3",
    )
    assert condition_is(apool, "ProviderError", "False")

    # Demand drops: replicas go first, then the emptied nodes after the delay; the node that
    # still hosts the remaining replica stays.
    fleet_load.set_load(namespace, "chat", 0, model="chat", concurrency=CONCURRENCY)
    wait_until(lambda: spec_replicas(kube, namespace, "chat") == 1, 90, "scale-down to 1")
    wait_until(lambda: len(pool_nodes(kube, name)) == 1, 90, "empty nodes released")
    busy = nodes_hosting(kube, namespace)
    assert busy <= set(pool_nodes(kube, name)), "a node hosting a model pod was released"
    assert ready_replicas(kube, namespace, "chat") == 1
    assert "NodesReleased" in apool_event_reasons(kube, name)


def test_capped_pool_limits_the_lower_priority_pool_first(
    kube: Kube,
    namespace: str,
    accelerator_pool: Callable[..., dict[str, Any]],
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    name = pool_name(namespace)
    accelerator_pool(max_nodes=2, delay=300)
    for deployment in ("chat", "batch"):
        deploy_on_pool(kube, namespace, deployment, name, replicas=1, gpus=4, model=deployment)
        fleet_load.set_load(namespace, deployment, 40, model=deployment, concurrency=CONCURRENCY)
    prometheus.wait_for_value(queue_query(namespace, "batch"), 40)
    create_pool(kube, pool_on("chat", namespace, "chat", max_replicas=8, priority=100))
    create_pool(kube, pool_on("batch", namespace, "batch", max_replicas=8, priority=1))

    # Both want 8 replicas (32 GPUs); 2 nodes hold 4 replicas. chat gets the room, batch is
    # held and sheds.
    wait_until(lambda: ready_replicas(kube, namespace, "chat") == 3, 90, "chat grows to 3")
    batch = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "batch"))
            and condition_is(p, "ScalingLimited", "True", "MaxNodes")
            and (p["status"].get("shedLoad") or {}).get("active")
            and p
        ),
        60,
        "batch limited by MaxNodes and shedding",
    )
    assert batch["status"]["replicas"] == 1
    assert len(pool_nodes(kube, name)) == 2

    # While chat sheds its queue reading is a lower bound, so its ask grows round by round;
    # batch, of lower priority, is held at its one replica meanwhile, and chat's grant reaches
    # every slot (batch's running replica keeps its place: chat runs 3).
    def granted() -> dict[str, int]:
        allocations = get_apool(kube, name).get("status", {}).get("allocations") or []
        return {a["name"]: a["grantedReplicas"] for a in allocations}

    wait_until(lambda: granted() == {"chat": 4, "batch": 0}, 60, "chat granted all 4 slots")
    assert get_pool(kube, namespace, "batch")["status"]["replicas"] == 1
    assert ready_replicas(kube, namespace, "chat") == 3
    assert condition_is(get_apool(kube, name), "ScalingLimited", "True", "MaxNodes")


def test_lowering_max_below_busy_nodes_keeps_them_and_still_releases_empty_ones(
    kube: Kube,
    namespace: str,
    accelerator_pool: Callable[..., dict[str, Any]],
    operator: Operator,
) -> None:
    name = pool_name(namespace)
    # nodes.min holds three nodes without any InferencePool; two whole-node pods fill two.
    accelerator_pool(max_nodes=3, min_nodes=3, delay=5)
    wait_until(lambda: sum(pool_nodes(kube, name).values()) == 3, 60, "3 Ready nodes")
    deploy_on_pool(kube, namespace, "batch", name, replicas=2, gpus=8, model="batch")
    wait_until(lambda: ready_replicas(kube, namespace, "batch") == 2, 60, "2 pods running")
    busy = nodes_hosting(kube, namespace)
    assert len(busy) == 2
    (empty,) = set(pool_nodes(kube, name)) - busy

    # nodes.max drops to one, below the two busy nodes: only the empty node goes.
    kube.custom.patch_cluster_custom_object(
        GROUP, VERSION, APOOLS, name, {"spec": {"nodes": {"min": 0, "max": 1}}}
    )

    def planned_for_the_new_max() -> bool:
        apool = get_apool(kube, name)
        observed = apool["status"].get("observedGeneration") == apool["metadata"]["generation"]
        return observed and empty not in pool_nodes(kube, name)

    # The tick that took the change has written its status only after it released nodes.
    wait_until(planned_for_the_new_max, 60, f"the new nodes.max planned, {empty} released")
    assert set(pool_nodes(kube, name)) == busy, "a node hosting a pod was released"
    assert nodes_hosting(kube, namespace) == busy
    apool = wait_until(
        lambda: (p := get_apool(kube, name)) and condition_is(p, "NodesBusy", "True") and p,
        30,
        "NodesBusy=True",
    )
    assert ready_replicas(kube, namespace, "batch") == 2
    message = next(c["message"] for c in apool["status"]["conditions"] if c["type"] == "NodesBusy")
    assert "2 node(s) host workload pods, 1 more than nodes.max=1" in message
    assert apool["status"]["desiredNodes"] == 2
    assert {"NodesReleased", "NodesBusy"} <= set(apool_event_reasons(kube, name))
    # No node is left cordoned: the busy ones were never chosen.
    for node in kube.core.list_node(label_selector=f"{POOL_LABEL}={name}").items:
        assert not node.spec.unschedulable, node.metadata.name

    # One pod goes: its node empties and is released after the delay; the pool is within max.
    kube.apps.patch_namespaced_deployment_scale(name="batch", namespace=namespace,
                                                body={"spec": {"replicas": 1}})  # fmt: skip
    wait_until(lambda: len(pool_nodes(kube, name)) == 1, 60, "the emptied node released")
    assert nodes_hosting(kube, namespace) <= set(pool_nodes(kube, name))
    wait_until(
        lambda: condition_is(get_apool(kube, name), "NodesBusy", "False"), 30, "NodesBusy=False"
    )
    assert ready_replicas(kube, namespace, "batch") == 1
