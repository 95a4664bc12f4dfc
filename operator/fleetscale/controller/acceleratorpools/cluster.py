"""The AcceleratorPool's reads of the cluster: its Nodes, and the pods on those Nodes only.

Role: ``ClusterReader`` through the one retrying client (``kubeapi.KubeJson``): Nodes by the
pool's labels, and the pods of each of those Nodes by a ``spec.nodeName`` field selector, so a
tick never lists every pod of the cluster. ``InMemoryCluster`` is the fake for tests.
Callers: ``tick`` (through ``AcceleratorPoolDependencies.cluster``), ``controller.wiring``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.kubeapi import KubeJson, RetryPolicy
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


@dataclass
class InMemoryCluster:
    """``ClusterReader`` over objects held in memory (tests)."""

    node_objects: list[dict[str, Any]] = field(default_factory=list)
    pod_objects: list[dict[str, Any]] = field(default_factory=list)
    # The node names each ``pods_on`` call asked for, in order (what a tick read).
    pod_reads: list[tuple[str, ...]] = field(default_factory=list)

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
