"""The Cluster API provider: size a MachineDeployment through its ``/scale`` subresource.

Role: on clusters whose machines Cluster API manages, the pool is one MachineDeployment. The
provider reads and grows its replicas through ``/scale`` (the same door ``kubectl scale`` and
Cluster Autoscaler's clusterapi provider use). To release nodes it marks exactly their Machines
with ``cluster.x-k8s.io/delete-machine``, which Cluster API's MachineSet deletes before any other
Machine, then scales down by that count (what Cluster Autoscaler's clusterapi provider does).
Caller: the AcceleratorPool controller.

Contract (see ``base``): a MachineDeployment carrying Cluster Autoscaler's node-group size
annotations (``cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size`` / ``-max-size``)
belongs to Cluster Autoscaler: every call raises ``ProviderConflict`` and nothing is written.
``set_desired`` writes only when the size grows. ``release`` finds Machines by their
``status.nodeRef.name`` among the MachineDeployment's Machines (label
``cluster.x-k8s.io/deployment-name``); a Node with no Machine is left alone. It refuses, and
writes nothing, when the scale-down could take another Machine than the marked ones: another
live Machine already carries the annotation, or the Machines belong to more than one MachineSet
(a rollout in progress scales the MachineSets in its own order). If the scale-down fails, the
marks it added are taken off again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes.client

from fleetscale.api.acceleratorpool import ClusterApiProvider
from fleetscale.nodepools import _kube
from fleetscale.nodepools.base import (
    PROVIDER_FAILED,
    NodeGroupSize,
    NodeRef,
    ProviderConflict,
    ProviderError,
    labels_match,
    shrink_refused,
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
        replicas = _replicas(await self._deployment())
        if nodes == replicas:
            return
        if nodes < replicas:
            raise shrink_refused(self, replicas, nodes)
        await self._scale(nodes)

    async def _scale(self, replicas: int) -> None:
        await _kube.call(
            f"scale {self} to {replicas}",
            self._api.patch_namespaced_custom_object_scale,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machinedeployments",
            self._name,
            {"spec": {"replicas": replicas}},
        )

    async def _machines(self) -> list[Mapping[str, Any]]:
        """The MachineDeployment's live Machines (not being deleted)."""
        listing = await _kube.call_json(
            f"list Machines of {self}",
            self._api.list_namespaced_custom_object,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machines",
            label_selector=f"{DEPLOYMENT_NAME_LABEL}={self._name}",
        )
        selector = {DEPLOYMENT_NAME_LABEL: self._name}
        return [
            machine
            for machine in listing.get("items") or []
            if labels_match(_meta(machine).get("labels"), selector)
            and not _meta(machine).get("deletionTimestamp")
        ]

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        if not nodes:
            return ()
        replicas = _replicas(await self._deployment())
        machines = await self._machines()
        wanted = {ref.name for ref in nodes}
        chosen = [m for m in machines if _node_name(m) in wanted]
        if not chosen:
            return ()
        self._refuse_an_imprecise_scale_down(machines, chosen)
        added = [m for m in chosen if DELETE_MACHINE_ANNOTATION not in _annotations(m)]
        for machine in added:
            await self._annotate(machine, "yes")
        try:
            await self._scale(max(0, replicas - len(chosen)))
        except ProviderError:
            # A mark left behind would steer a later scale-down; the original error is the one
            # to report, so a failure to unmark is not.
            for machine in added:
                with contextlib.suppress(ProviderError):
                    await self._annotate(machine, None)
            raise
        return tuple(_node_name(m) for m in chosen)

    def _refuse_an_imprecise_scale_down(
        self, machines: Sequence[Mapping[str, Any]], chosen: Sequence[Mapping[str, Any]]
    ) -> None:
        """Raise unless scaling down by ``len(chosen)`` removes exactly the chosen Machines."""
        chosen_names = {_meta(m).get("name") for m in chosen}
        marked = sorted(
            str(_meta(m).get("name"))
            for m in machines
            if _meta(m).get("name") not in chosen_names
            and DELETE_MACHINE_ANNOTATION in _annotations(m)
        )
        if marked:
            raise ProviderError(
                PROVIDER_FAILED,
                f"Machine(s) {', '.join(marked)} of {self} already carry "
                f"{DELETE_MACHINE_ANNOTATION}, so a scale-down could remove them instead of the "
                "empty nodes chosen; nothing is released until that annotation is removed",
            )
        sets = sorted({_machine_set(m) for m in machines})
        if len(sets) > 1:
            raise ProviderError(
                PROVIDER_FAILED,
                f"{self} is rolling out (MachineSets {', '.join(sets)}): a scale-down could "
                "remove a Machine of either, so nothing is released until the rollout ends",
            )

    async def _annotate(self, machine: Mapping[str, Any], value: str | None) -> None:
        name = _meta(machine).get("name")
        await _kube.call(
            f"{'mark' if value else 'unmark'} Machine {self._namespace}/{name} for deletion",
            self._api.patch_namespaced_custom_object,
            CAPI_GROUP,
            CAPI_VERSION,
            self._namespace,
            "machines",
            name,
            {"metadata": {"annotations": {DELETE_MACHINE_ANNOTATION: value}}},
        )


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = _meta(obj).get("annotations") or {}
    return annotations


def _node_name(machine: Mapping[str, Any]) -> str:
    return str(((machine.get("status") or {}).get("nodeRef") or {}).get("name") or "")


def _machine_set(machine: Mapping[str, Any]) -> str:
    owners = _meta(machine).get("ownerReferences") or []
    return next((str(o.get("name")) for o in owners if o.get("kind") == "MachineSet"), "")


def _replicas(deployment: Mapping[str, Any]) -> int:
    return int((deployment.get("spec") or {}).get("replicas", 1))  # Cluster API defaults to 1
