"""Read and set the replicas of any workload through its ``/scale`` subresource.

Role: ``ScaleActuator`` on the Kubernetes API, for Deployments, StatefulSets,
LeaderWorkerSets and any custom kind that serves ``/scale`` (the same contract the HPA and
KEDA rely on). The kind is resolved to its resource name through API discovery, cached per
(apiVersion, kind); only successful lookups are cached, so a CRD installed later is found.

Writes follow the HPA: read the Scale, write it back with ``spec.replicas`` changed and the
``resourceVersion`` that was read (optimistic concurrency), and on a 409 Conflict read again
and retry. Nothing is written when the size is already right. A read of an apps/v1 kind takes
the object alone, whose fields its /scale mirrors; other kinds read /scale and the object.
Ready replicas come from the workload's ``status.readyReplicas``, else from counting Ready pods
that match the Scale's selector; accelerators per replica from the pod template (see
``workloads``).
Callers: the controller's reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.actuators import workloads
from fleetscale.actuators.base import ActuatorError, ScaleStatus, ScaleTargetRef, TargetNotFound
from fleetscale.actuators.rest import (
    InvalidName,
    KubeJson,
    RetryPolicy,
    api_root,
    check_names,
    describe,
    resource_path,
    status_of,
)

logger = logging.getLogger(__name__)

# Kinds whose /scale the API server maps to the object's own spec.replicas, status.replicas and
# spec.selector, so a read of the object answers for both (writes still go through /scale).
_SCALE_MIRRORS_OBJECT = frozenset(
    {("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet")}
)


@dataclass(frozen=True)
class _Resource:
    """Where a kind lives in the REST API."""

    api_version: str  # apps/v1
    plural: str  # deployments

    def object_path(self, target: ScaleTargetRef, subresource: str | None = None) -> str:
        """The target's path (raises InvalidName for a name that is not a Kubernetes name)."""
        return resource_path(
            self.api_version,
            self.plural,
            namespace=target.namespace,
            name=target.name,
            subresource=subresource,
        )


class KubernetesScaleActuator:
    """``ScaleActuator`` over the ``/scale`` subresource; see the module docstring."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        retry: RetryPolicy | None = None,
        conflict_attempts: int = 5,
    ) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())
        self._conflict_attempts = conflict_attempts
        self._resources: dict[tuple[str, str], _Resource] = {}

    async def read(self, target: ScaleTargetRef) -> ScaleStatus:
        resource = await self._resource(target)
        if (target.api_version, target.kind) in _SCALE_MIRRORS_OBJECT:
            # One read a tick instead of two: the object carries all its /scale would.
            workload = await self._get(target, resource)
            return await self._status(target, workloads.scale_of_apps_workload(workload), workload)
        scale = await self._get(target, resource, "scale")
        return await self._status(target, scale, await self._get(target, resource))

    async def set_replicas(self, target: ScaleTargetRef, replicas: int) -> ScaleStatus:
        if replicas < 0:
            raise ValueError(f"replicas must not be negative, got {replicas}")
        resource = await self._resource(target)
        for _ in range(self._conflict_attempts):
            scale = await self._get(target, resource, "scale")
            scale_path = resource.object_path(target, "scale")  # valid: the read built it
            if _spec_replicas(scale) == replicas:
                return await self._status(target, scale, await self._get(target, resource))
            try:
                written = await self._api.request(
                    "PUT", scale_path, body=_scale_write(scale, replicas)
                )
            except Exception as exc:
                if status_of(exc) == 409:
                    logger.info("Conflict writing the scale of %s; reading it again", target)
                    continue
                raise self._error(target, exc, "set the replicas of") from exc
            return await self._status(target, written, await self._get(target, resource))
        raise ActuatorError(
            f"could not set the replicas of {target}: it kept changing under us "
            f"({self._conflict_attempts} conflicting writes in a row)"
        )

    async def _status(
        self, target: ScaleTargetRef, scale: Mapping[str, Any], workload: Mapping[str, Any]
    ) -> ScaleStatus:
        selector = (scale.get("status") or {}).get("selector") or None
        ready = workloads.ready_replicas_from_status(workload)
        if ready is None:
            ready = await self._count_ready_pods(target, selector) if selector else 0
        return ScaleStatus(
            spec_replicas=_spec_replicas(scale),
            status_replicas=int((scale.get("status") or {}).get("replicas") or 0),
            ready_replicas=ready,
            selector=selector,
            accelerators_per_replica=workloads.accelerators_per_replica(workload),
        )

    async def _count_ready_pods(self, target: ScaleTargetRef, selector: str) -> int:
        try:
            path = resource_path("v1", "pods", namespace=target.namespace)
            pods = await self._api.request("GET", path, query={"labelSelector": selector})
        except Exception as exc:
            raise self._error(target, exc, "list the pods of") from exc
        return workloads.count_ready_pods(pods.get("items") or [])

    async def _get(
        self, target: ScaleTargetRef, resource: _Resource, subresource: str | None = None
    ) -> Mapping[str, Any]:
        try:
            answer: Mapping[str, Any] = await self._api.request(
                "GET", resource.object_path(target, subresource)
            )
        except Exception as exc:
            if status_of(exc) == 404:
                # Maybe the kind itself went away (CRD deleted): discover it again next time.
                self._resources.pop((target.api_version, target.kind), None)
                raise TargetNotFound(f"{target} not found") from exc
            raise self._error(target, exc, "read") from exc
        return answer

    async def _resource(self, target: ScaleTargetRef) -> _Resource:
        try:
            check_names(
                api_version=target.api_version, namespace=target.namespace, name=target.name
            )
        except InvalidName as exc:  # nothing is sent for a name that is not a name
            raise ActuatorError(f"refused to address {target}: {exc}") from exc
        key = (target.api_version, target.kind)
        cached = self._resources.get(key)
        if cached is not None:
            return cached
        try:
            listing = await self._api.request("GET", api_root(target.api_version))
        except Exception as exc:
            if status_of(exc) == 404:
                raise TargetNotFound(
                    f"the API server does not serve {target.api_version} "
                    f"(is the CRD for {target.kind} installed?)"
                ) from exc
            raise self._error(target, exc, "discover the resource of") from exc
        names = {entry.get("name") for entry in listing.get("resources") or []}
        for entry in listing.get("resources") or []:
            plural = entry.get("name", "")
            if entry.get("kind") != target.kind or "/" in plural:
                continue
            if f"{plural}/scale" not in names:
                raise TargetNotFound(
                    f"{target.kind} in {target.api_version} has no /scale subresource, "
                    "so it cannot be scaled"
                )
            if entry.get("namespaced") is False:
                raise TargetNotFound(f"{target.kind} in {target.api_version} is not namespaced")
            resource = self._resources[key] = _Resource(target.api_version, plural)
            return resource
        raise TargetNotFound(f"the API server serves no kind {target.kind} in {target.api_version}")

    @staticmethod
    def _error(target: ScaleTargetRef, exc: BaseException, doing: str) -> ActuatorError:
        return ActuatorError(f"could not {doing} {target}: {describe(exc)}")


def _spec_replicas(scale: Mapping[str, Any]) -> int:
    # omitempty: a Scale at zero replicas has no spec.replicas at all.
    return int((scale.get("spec") or {}).get("replicas") or 0)


def _scale_write(scale: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """The Scale to PUT: as read (same resourceVersion), with the new spec.replicas."""
    metadata = scale.get("metadata") or {}
    return {
        "apiVersion": scale.get("apiVersion", "autoscaling/v1"),
        "kind": "Scale",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "resourceVersion", "uid")
            if key in metadata
        },
        "spec": {"replicas": replicas},
    }
