"""The Cluster API provider: size a MachineDeployment through its ``/scale`` subresource.

Role: on clusters whose machines Cluster API manages, the pool is one MachineDeployment. The
provider reads and writes its replicas through ``/scale`` (the same door ``kubectl scale`` and
Cluster Autoscaler's clusterapi provider use), and before a shrink marks the Machines of the
chosen empty Nodes with ``cluster.x-k8s.io/delete-machine``, which Cluster API's MachineSet
deletes before any other Machine. Caller: the AcceleratorPool controller.

Contract (see ``base``): a MachineDeployment carrying Cluster Autoscaler's node-group size
annotations (``cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size`` / ``-max-size``)
belongs to Cluster Autoscaler: every call raises ``ProviderConflict`` and nothing is written.
``set_desired`` writes only when the size differs. ``prefer_removal`` finds Machines by their
``status.nodeRef.name`` among the MachineDeployment's Machines (label
``cluster.x-k8s.io/deployment-name``); a Node with no Machine is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client

from fleetscale.api.acceleratorpool import ClusterApiProvider
from fleetscale.nodepools import _kube
from fleetscale.nodepools.base import (
    NodeGroupSize,
    NodeRef,
    ProviderConflict,
    ProviderError,
    labels_match,
)

CAPI_GROUP = "cluster.x-k8s.io"
CAPI_VERSION = "v1beta1"
DELETE_MACHINE_ANNOTATION = "cluster.x-k8s.io/delete-machine"
DEPLOYMENT_NAME_LABEL = "cluster.x-k8s.io/deployment-name"
AUTOSCALER_ANNOTATIONS = (
    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size",
    "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size",
)


class ClusterApiNodePool:
    """Scales one Cluster API MachineDeployment."""

    kind = "clusterAPI"

    def __init__(self, api_client: kubernetes.client.ApiClient, config: ClusterApiProvider) -> None:
        self._api = kubernetes.client.CustomObjectsApi(api_client)
        self._namespace = config.namespace
        self._name = config.machine_deployment

    def __str__(self) -> str:
        return f"MachineDeployment {self._namespace}/{self._name}"

    async def _deployment(self) -> Mapping[str, Any]:
        """The MachineDeployment, refused when Cluster Autoscaler owns it."""
        deployment: Mapping[str, Any] = await _kube.call_json(
            f"read {self}",
            self._api.get_namespaced_custom_object,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machinedeployments",
            self._name,
        )
        annotations = (deployment.get("metadata") or {}).get("annotations") or {}
        owned = [key for key in AUTOSCALER_ANNOTATIONS if key in annotations]
        if owned:
            raise ProviderConflict(
                f"{self} is managed by Cluster Autoscaler (annotations {', '.join(owned)}); "
                "remove them, or use the placeholder provider to work with Cluster Autoscaler"
            )
        return deployment

    async def current(self) -> NodeGroupSize:
        deployment = await self._deployment()
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        return NodeGroupSize(
            desired=int(spec.get("replicas", 1)),  # Cluster API defaults replicas to 1
            current=int(status.get("replicas", 0)),
        )

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        deployment = await self._deployment()
        if int((deployment.get("spec") or {}).get("replicas", 1)) == nodes:
            return
        await _kube.call(
            f"scale {self} to {nodes}",
            self._api.patch_namespaced_custom_object_scale,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machinedeployments",
            self._name,
            {"spec": {"replicas": nodes}},
        )

    async def prefer_removal(self, nodes: Sequence[NodeRef]) -> None:
        if not nodes:
            return
        await self._deployment()
        selector = {DEPLOYMENT_NAME_LABEL: self._name}
        listing = await _kube.call_json(
            f"list Machines of {self}",
            self._api.list_namespaced_custom_object,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machines",
            label_selector=f"{DEPLOYMENT_NAME_LABEL}={self._name}",
        )
        wanted = {ref.name for ref in nodes}
        patch = {"metadata": {"annotations": {DELETE_MACHINE_ANNOTATION: "yes"}}}
        for machine in listing.get("items") or []:
            meta = machine.get("metadata") or {}
            node_name = ((machine.get("status") or {}).get("nodeRef") or {}).get("name")
            if node_name not in wanted or not labels_match(meta.get("labels"), selector):
                continue
            if DELETE_MACHINE_ANNOTATION in (meta.get("annotations") or {}):
                continue
            await _kube.call(
                f"mark Machine {self._namespace}/{meta.get('name')} for deletion",
                self._api.patch_namespaced_custom_object,
                CAPI_GROUP,
                CAPI_VERSION,
                self._namespace,
                "machines",
                meta["name"],
                patch,
            )
