"""The AcceleratorPool's reads of the cluster: its Nodes, and the pods on those Nodes only.

Role: ``ClusterReader`` through the one retrying client (``kubeapi.KubeJson``): Nodes by the
pool's labels, and the pods of each of those Nodes by a ``spec.nodeName`` field selector, so a
tick never lists every pod of the cluster; ``CachedClusterReader`` (the operator's) takes the
Nodes from the watch-fed node cache instead (``controller.caches``). ``NodeCordoner``
through the same client: a merge patch of the Node's ``spec.unschedulable`` with fleetscale's
mark (``nodes.CORDONED_FOR_RELEASE``) so a later tick knows the cordon is its own.
``InMemoryCluster`` is the fake of both for tests.
Callers: ``tick`` and ``execute`` (through ``AcceleratorPoolDependencies``), ``controller.wiring``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.controller.acceleratorpools.nodes import CORDONED_FOR_RELEASE
from fleetscale.controller.caches import ClusterCaches, synced
from fleetscale.kubeapi import MERGE_PATCH, KubeJson, RetryPolicy, resource_path
from fleetscale.nodepools.base import labels_match, selector_string

# Pods that hold (or may still hold) a node's accelerators.
_LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def _items(listing: Any) -> list[Mapping[str, Any]]:
    items = listing.get("items") if isinstance(listing, Mapping) else None
    return list(items or [])


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str] | None:
    labels: Mapping[str, str] | None = (obj.get("metadata") or {}).get("labels")
    return labels


class KubernetesClusterReader:
    """``ClusterReader`` over the Kubernetes API."""

    def __init__(self, api_client: ApiClient, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        listing = await self._api.request(
            "GET", "/api/v1/nodes", query={"labelSelector": selector_string(labels)}
        )
        return [node for node in _items(listing) if labels_match(_labels(node), labels)]

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        listings = await asyncio.gather(*(self._pods_on(name) for name in sorted(node_names)))
        return [pod for pods in listings for pod in pods]

    async def _pods_on(self, node_name: str) -> list[Mapping[str, Any]]:
        selector = f"spec.nodeName={node_name},{_LIVE_PODS}"
        listing = await self._api.request("GET", "/api/v1/pods", query={"fieldSelector": selector})
        return _items(listing)


class CachedClusterReader:
    """``ClusterReader`` with the Nodes from the operator's watch-fed node cache (stale:
    ``CacheStale``, the tick holds) and the pods on them through the API, node by node."""

    def __init__(
        self, api_client: ApiClient, caches: ClusterCaches, retry: RetryPolicy | None = None
    ) -> None:
        self._api = KubernetesClusterReader(api_client, retry)
        self._caches = caches

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        cache = self._caches.node_cache()
        await synced(cache, self._caches.timing)
        return [node for node in cache.values() if labels_match(_labels(node), labels)]

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        return await self._api.pods_on(node_names)


def cordon_patch(cordoned: bool) -> dict[str, Any]:
    """The merge patch that sets (or lifts) fleetscale's cordon on a Node."""
    return {
        "metadata": {"annotations": {CORDONED_FOR_RELEASE: "true" if cordoned else None}},
        "spec": {"unschedulable": True if cordoned else None},
    }


class KubernetesNodeCordoner:
    """``NodeCordoner`` over the Kubernetes API (needs ``patch`` on nodes)."""

    def __init__(self, api_client: ApiClient, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    async def cordon(self, node_name: str) -> None:
        await self._patch(node_name, cordon_patch(True))

    async def uncordon(self, node_name: str) -> None:
        await self._patch(node_name, cordon_patch(False))

    async def _patch(self, node_name: str, patch: dict[str, Any]) -> None:
        path = resource_path("v1", "nodes", name=node_name)
        await self._api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)


@dataclass
class InMemoryCluster:
    """``ClusterReader`` and ``NodeCordoner`` over objects held in memory (tests)."""

    node_objects: list[dict[str, Any]] = field(default_factory=list)
    pod_objects: list[dict[str, Any]] = field(default_factory=list)
    # The node names each ``pods_on`` call asked for, in order (what a tick read).
    pod_reads: list[tuple[str, ...]] = field(default_factory=list)
    # ("cordon" | "uncordon", node name), in order.
    cordon_calls: list[tuple[str, str]] = field(default_factory=list)
    # Pods the scheduler binds to a node just before it is cordoned (after the tick read it).
    landing: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def cordon(self, node_name: str) -> None:
        self.cordon_calls.append(("cordon", node_name))
        self.pod_objects.extend(self.landing.pop(node_name, []))
        self._patch(node_name, cordon_patch(True))

    async def uncordon(self, node_name: str) -> None:
        self.cordon_calls.append(("uncordon", node_name))
        self._patch(node_name, cordon_patch(False))

    def _patch(self, node_name: str, patch: dict[str, Any]) -> None:
        for node in self.node_objects:
            if (node.get("metadata") or {}).get("name") == node_name:
                _merge(node, patch)

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        return [n for n in self.node_objects if labels_match(_labels(n), labels)]

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        self.pod_reads.append(tuple(sorted(node_names)))
        return [
            pod
            for pod in self.pod_objects
            if (pod.get("spec") or {}).get("nodeName") in node_names
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """A JSON merge patch (RFC 7386) applied in place: None removes a key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            _merge(child, value)
        else:
            target[key] = value
