"""InferencePool manifests and readers for the e2e scenarios."""

from __future__ import annotations

from typing import Any

from e2e_support import Kube

GROUP = "fleetscale.io"
VERSION = "v1alpha1"
PLURAL = "inferencepools"


def queue_query(namespace: str, model: str) -> str:
    return f'sum(vllm:num_requests_waiting{{namespace="{namespace}",model_name="{model}"}})'


def gpu_query(namespace: str, deployment: str) -> str:
    return f'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{namespace}",pod=~"{deployment}-.*"}})'


def inference_pool(
    name: str,
    namespace: str,
    target: str,
    model: str,
    min_replicas: int = 1,
    max_replicas: int = 8,
    target_per_replica: float = 5,
    gpu: bool = False,
    scale_down_window: int = 300,
    poll: int = 2,
    mode: str = "Active",
    shed_threshold: float = 20,
    shed_config_map: str | None = None,
    max_staleness: int = 30,
) -> dict[str, Any]:
    """An InferencePool with fast polling and no rate limits, so scenarios take seconds.

    The scenarios drive the fleet by its queue (engine custom): their expectations are the
    queue rule's, exact and quick. The vLLM preset's queries are checked against the exporter
    by the harness tests."""
    metrics: dict[str, Any] = {
        "engine": "custom",
        "queueDepth": {
            "query": queue_query(namespace, model),
            "targetPerReplica": target_per_replica,
        },
        "maxStalenessSeconds": max_staleness,
    }
    if gpu:
        metrics["gpuUtilization"] = {"query": gpu_query(namespace, target), "targetPercent": 85}
    shed: dict[str, Any] = {"enabled": True, "queuePerReplicaThreshold": shed_threshold}
    if shed_config_map:
        shed["configMapName"] = shed_config_map
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": model,
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "replicas": {"min": min_replicas, "max": max_replicas},
            "metrics": metrics,
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": scale_down_window,
                    "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
                },
            },
            "shedLoad": shed,
            "pollIntervalSeconds": poll,
            "mode": mode,
        },
    }


def create_pool(kube: Kube, doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, doc["metadata"]["namespace"], PLURAL, doc
    )
    return result


def get_pool(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return result


def patch_pool(kube: Kube, namespace: str, name: str, patch: dict[str, Any]) -> None:
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def condition(pool: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in pool.get("status", {}).get("conditions", []) or []:
        if c.get("type") == ctype:
            found: dict[str, Any] = c
            return found
    return None


def condition_is(pool: dict[str, Any], ctype: str, status: str, reason: str | None = None) -> bool:
    c = condition(pool, ctype)
    return bool(c and c.get("status") == status and (reason is None or c.get("reason") == reason))


def event_reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    """Reasons of the Events about the InferencePool ``name``, oldest first."""
    events = kube.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=InferencePool"
    ).items
    events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return [e.reason for e in events]
