"""The kwok provider: fake accelerator Nodes for simulation, demos and end-to-end tests.

Role: make the pool's node count real without machines. kwok (Kubernetes WithOut Kubelet)
takes over every Node annotated ``kwok.x-k8s.io/node: fake``: it marks it Ready, keeps its
heartbeat and runs the pods scheduled onto it. This provider creates and deletes such Nodes,
carrying the pool's ``nodeLabels``, the pool label, kwok's taint and the accelerator capacity,
so the real scheduler places model pods on them exactly as on GPU nodes.
Caller: the AcceleratorPool controller (through ``nodepools.build_provider``).

Contract (see ``base``): the group is the set of Nodes labelled ``fleetscale.io/accelerator-pool
=<pool>`` and managed by fleetscale. ``set_desired`` creates Nodes named ``<prefix>-<n>`` with the
lowest free numbers, and refuses a size below the group's. ``release`` deletes exactly the named
Nodes that belong to the group (one already gone counts as removed); a Node of another group or
of no group is left alone. Nodes are created with their capacity in ``.status``; kwok sets their
conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.nodepools import _kube
from fleetscale.nodepools.base import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    POOL_LABEL,
    NodeGroupSize,
    NodeRef,
    ProviderError,
    labels_match,
    selector_string,
    shrink_refused,
)

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


class KwokNodePool:
    """Creates and deletes kwok-managed fake Nodes for one AcceleratorPool."""

    kind = "kwok"

    def __init__(
        self, api_client: kubernetes.client.ApiClient, pool_name: str, spec: AcceleratorPoolSpec
    ) -> None:
        if spec.provider.kwok is None:
            raise ValueError("KwokNodePool needs spec.provider.kwok")
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._pool_name = pool_name
        self._spec = spec
        self._kwok = spec.provider.kwok
        self._prefix = self._kwok.name_prefix or pool_name
        self._labels = {
            **spec.node_labels,
            POOL_LABEL: pool_name,
            MANAGED_BY_LABEL: MANAGED_BY,
        }

    @property
    def owned_labels(self) -> Mapping[str, str]:
        """The labels that mark a Node as one of this pool's kwok Nodes."""
        return {POOL_LABEL: self._pool_name, MANAGED_BY_LABEL: MANAGED_BY}

    async def _nodes(self) -> list[dict[str, Any]]:
        listing = await _kube.call_json(
            f"list Nodes of AcceleratorPool {self._pool_name}",
            self._core.list_node,
            label_selector=selector_string(self.owned_labels),
        )
        # The API server filters already; keep only what matches, whatever answered.
        owned = [
            node
            for node in listing.get("items") or []
            if labels_match(_meta(node).get("labels"), self.owned_labels)
            and not _meta(node).get("deletionTimestamp")
        ]
        return sorted(owned, key=_name)

    async def current(self) -> NodeGroupSize:
        count = len(await self._nodes())
        return NodeGroupSize(desired=count, current=count)

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        existing = await self._nodes()
        if nodes < len(existing):
            raise shrink_refused(f"kwok pool {self._pool_name}", len(existing), nodes)
        taken = {_name(node) for node in existing}
        names: list[str] = []
        index = 0
        while len(names) < nodes - len(existing):
            if f"{self._prefix}-{index}" not in taken:
                names.append(f"{self._prefix}-{index}")
            index += 1
        for name in names:
            await _kube.call(f"create Node {name}", self._core.create_node, self.manifest(name))

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        owned = {_name(node) for node in await self._nodes()}
        removed: list[str] = []
        for ref in nodes:
            if ref.name not in owned:
                continue  # not one of this pool's kwok Nodes: never delete it
            try:
                await _kube.call(f"delete Node {ref.name}", self._core.delete_node, ref.name)
            except ProviderError as error:
                if not _kube.is_not_found(error.__cause__ or error):
                    raise
            removed.append(ref.name)  # deleted now, or already gone: either way removed
        return tuple(removed)

    def manifest(self, name: str) -> dict[str, Any]:
        """The Node object of one fake accelerator node."""
        kwok = self._kwok
        capacity = {
            "cpu": kwok.cpu,
            "memory": kwok.memory,
            "pods": str(kwok.pods),
            self._spec.resource_name: str(self._spec.accelerators_per_node),
        }
        taints = [dict(KWOK_TAINT)] + [taint.to_wire() for taint in kwok.taints]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **self._labels,
                },
            },
            "spec": {"taints": taints, "providerID": f"kwok://{name}"},
            "status": {
                "allocatable": dict(capacity),
                "capacity": dict(capacity),
                # All fields: the client validates the body against the NodeSystemInfo model.
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "kubeProxyVersion": "fake",
                    "bootID": "",
                    "containerRuntimeVersion": "",
                    "kernelVersion": "",
                    "machineID": "",
                    "osImage": "",
                    "systemUUID": "",
                },
            },
        }


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", ""))
