"""The placeholder provider: let the cluster's own autoscaler add nodes ahead of the model pods.

Role: on clusters run by Cluster Autoscaler or Karpenter, fleetscale must not size node groups
itself (two writers fight). Instead it keeps a Deployment of low-priority placeholder pods, one
per node it wants beyond the nodes model pods already use; each requests all of a node's
accelerators and selects the pool's ``nodeLabels``. The cluster's autoscaler sees them Pending
and provisions nodes for them, ahead of demand. When model pods need the room, the scheduler
preempts the placeholders (their PriorityClass is below every model pod and never preempts).
Caller: the AcceleratorPool controller.

Contract (see ``base``): size = nodes hosting model pods (pods of other than placeholders that
request the pool's accelerator) + placeholder replicas. ``set_desired(n)`` keeps
``max(0, n - busy)`` placeholders, creating the PriorityClass and the Deployment when missing,
and refuses a size below the current one. ``release`` frees the named nodes: it sets
``controller.kubernetes.io/pod-deletion-cost`` low on the placeholders running there, scales the
Deployment down by their count, and deletes exactly those placeholder pods. The ReplicaSet ranks
Pending and unready placeholders before a low deletion cost, so the scale-down alone could take
another placeholder; deleting ours as well leaves exactly them gone and the count lowered by
their number (a placeholder the ReplicaSet took instead is created again). fleetscale then
holds nothing on those nodes, and they are all answered as released; the cluster's autoscaler
removes each empty node on its own schedule (Cluster Autoscaler's scale-down-unneeded-time,
Karpenter's consolidation). No node is ever deleted by this provider. Placeholder pods carry the
label ``fleetscale.io/placeholder``; the controller excludes them when it counts what a node
hosts.
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

PLACEHOLDER_LABEL = "fleetscale.io/placeholder"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
PREFERRED_DELETION_COST = "-1000"


def deployment_name(pool_name: str) -> str:
    return f"fleetscale-placeholder-{pool_name}"


def is_placeholder(pod: Mapping[str, Any]) -> bool:
    """True for the pods this provider creates (the controller does not count them as load)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return PLACEHOLDER_LABEL in labels


def _quantity(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_requests(pod: Mapping[str, Any], resource_name: str) -> int:
    """Accelerators of ``resource_name`` a pod holds (limits, else requests, of its containers)."""
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        total += _quantity(limits.get(resource_name, requests.get(resource_name, 0)))
    return total


class PlaceholderNodePool:
    """Keeps placeholder pods for one AcceleratorPool so the cluster's autoscaler adds nodes."""

    kind = "placeholder"

    def __init__(
        self, api_client: kubernetes.client.ApiClient, pool_name: str, spec: AcceleratorPoolSpec
    ) -> None:
        if spec.provider.placeholder is None:
            raise ValueError("PlaceholderNodePool needs spec.provider.placeholder")
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)
        self._scheduling = kubernetes.client.SchedulingV1Api(api_client)
        self._pool_name = pool_name
        self._spec = spec
        self._config = spec.provider.placeholder
        self._name = deployment_name(pool_name)
        self._pod_labels = {
            "app.kubernetes.io/name": "fleetscale-placeholder",
            POOL_LABEL: pool_name,
            PLACEHOLDER_LABEL: "true",
        }

    def __str__(self) -> str:
        return f"placeholder Deployment {self._config.namespace}/{self._name}"

    async def _busy_nodes(self) -> tuple[int, list[str]]:
        """(nodes hosting model pods, names of all the pool's nodes)."""
        nodes = await _kube.call_json(
            f"list Nodes of AcceleratorPool {self._pool_name}",
            self._core.list_node,
            label_selector=selector_string(self._spec.node_labels),
        )
        names = sorted(
            (node.get("metadata") or {}).get("name", "")
            for node in nodes.get("items") or []
            if labels_match((node.get("metadata") or {}).get("labels"), self._spec.node_labels)
        )
        if not names:
            return 0, []
        pods = await _kube.call_json(
            "list running pods",
            self._core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )
        pool = set(names)
        busy = {
            (pod.get("spec") or {}).get("nodeName")
            for pod in pods.get("items") or []
            if (pod.get("spec") or {}).get("nodeName") in pool
            and not is_placeholder(pod)
            and pod_requests(pod, self._spec.resource_name) > 0
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        }
        return len(busy), names

    async def _deployment(self) -> Mapping[str, Any] | None:
        try:
            found: Mapping[str, Any] = await _kube.call_json(
                f"read {self}",
                self._apps.read_namespaced_deployment,
                self._name,
                self._config.namespace,
            )
        except ProviderError as error:
            if _kube.is_not_found(error.__cause__ or error):
                return None
            raise
        return found

    async def current(self) -> NodeGroupSize:
        busy, names = await self._busy_nodes()
        deployment = await self._deployment()
        placeholders = int(((deployment or {}).get("spec") or {}).get("replicas", 0))
        return NodeGroupSize(desired=busy + placeholders, current=len(names))

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        busy, _ = await self._busy_nodes()
        replicas = max(0, nodes - busy)
        deployment = await self._deployment()
        if deployment is None:
            if replicas == 0:
                return
            await self._ensure_priority_class()
            await _kube.call(
                f"create {self}",
                self._apps.create_namespaced_deployment,
                self._config.namespace,
                self.manifest(replicas),
            )
            return
        current = int((deployment.get("spec") or {}).get("replicas", 0))
        if current == replicas:
            return
        if replicas < current:
            raise shrink_refused(self, busy + current, nodes)
        await self._scale(replicas)

    async def _scale(self, replicas: int) -> None:
        await _kube.call(
            f"scale {self} to {replicas}",
            self._apps.patch_namespaced_deployment_scale,
            self._name,
            self._config.namespace,
            {"spec": {"replicas": replicas}},
        )

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        wanted = {ref.name for ref in nodes}
        if not wanted:
            return ()
        pods = await _kube.call_json(
            f"list pods of {self}",
            self._core.list_namespaced_pod,
            self._config.namespace,
            label_selector=selector_string(self._pod_labels),
        )
        freed = [
            pod
            for pod in pods.get("items") or []
            if labels_match((pod.get("metadata") or {}).get("labels"), self._pod_labels)
            and (pod.get("spec") or {}).get("nodeName") in wanted
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        ]
        patch = {"metadata": {"annotations": {DELETION_COST_ANNOTATION: PREFERRED_DELETION_COST}}}
        for pod in freed:
            name = pod["metadata"]["name"]
            await _kube.call(
                f"prefer deleting placeholder pod {name}",
                self._core.patch_namespaced_pod,
                name,
                self._config.namespace,
                patch,
            )
        deployment = await self._deployment() if freed else None
        if deployment is not None:
            current = int((deployment.get("spec") or {}).get("replicas", 0))
            await self._scale(max(0, current - len(freed)))
        for pod in freed:
            name = pod["metadata"]["name"]
            try:
                await _kube.call(
                    f"delete placeholder pod {name}",
                    self._core.delete_namespaced_pod,
                    name,
                    self._config.namespace,
                )
            except ProviderError as error:
                if not _kube.is_not_found(error.__cause__ or error):
                    raise  # gone already (the ReplicaSet took it): that is what was asked
        return tuple(ref.name for ref in nodes)

    async def _ensure_priority_class(self) -> None:
        name = self._config.priority_class_name
        try:
            await _kube.call_json(
                f"read PriorityClass {name}", self._scheduling.read_priority_class, name
            )
            return
        except ProviderError as error:
            if not _kube.is_not_found(error.__cause__ or error):
                raise
        body = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "value": self._config.priority_value,
            "preemptionPolicy": "Never",
            "globalDefault": False,
            "description": "fleetscale placeholder pods: hold accelerator nodes until model "
            "pods need them, then get preempted.",
        }
        await _kube.call(
            f"create PriorityClass {name}", self._scheduling.create_priority_class, body
        )

    def manifest(self, replicas: int) -> dict[str, Any]:
        """The placeholder Deployment: pause containers that request a whole node."""
        accelerators = str(self._spec.accelerators_per_node)
        resources = {
            "requests": {self._spec.resource_name: accelerators},
            "limits": {self._spec.resource_name: accelerators},
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self._name,
                "namespace": self._config.namespace,
                "labels": {**self._pod_labels, MANAGED_BY_LABEL: MANAGED_BY},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(self._pod_labels)},
                "template": {
                    "metadata": {"labels": dict(self._pod_labels)},
                    "spec": {
                        "priorityClassName": self._config.priority_class_name,
                        "terminationGracePeriodSeconds": 0,
                        "nodeSelector": dict(self._spec.node_labels),
                        "tolerations": [t.to_wire() for t in self._config.tolerations],
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "placeholder",
                                "image": self._config.image,
                                "resources": resources,
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "runAsNonRoot": True,
                                    "runAsUser": 65535,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        }
