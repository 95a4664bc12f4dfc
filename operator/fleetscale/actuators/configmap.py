"""Publish the shed-load flag as a ConfigMap that gateways read.

Role: ``ShedFlagPublisher`` on core/v1 ConfigMaps. The ConfigMap lives in the InferencePool's
namespace and holds plain string keys any gateway or script can read without knowing
fleetscale:

    active             "true" | "false"
    fraction           share of requests to refuse, "0.00" to "1.00" ("0.00" while off);
                       lower-priority requests first
    reason             CamelCase, e.g. MaxReplicas, NodesProvisioning, NotLimited
    retryAfterSeconds  whole seconds for the Retry-After header (absent when unknown)
    since              RFC 3339 UTC time the flag last turned on (absent when off)
    message            the body text of a refused request (when the spec sets a gateway)
    lowPriorityHeader, lowPriorityValue   the request header (and value) that marks requests
                       to refuse first (when the spec names one)

Ownership: the operator writes only ConfigMaps it created for the pool. It creates a missing
one (and recreates it if someone deleted it) marked as the pool's: the label
``app.kubernetes.io/managed-by: fleetscale``, the annotation ``fleetscale.io/inference-pool``
naming the pool, and a controller owner reference to the pool (deleting the pool deletes the
flag). An existing ConfigMap is patched only if it carries that label and a controller
reference to this very pool (its uid); any other (a platform's ConfigMap that happens to have
the name, one claimed by another pool) raises ``ConfigMapNotOwned`` and is left untouched, so a
pool cannot take over, or overwrite, a ConfigMap that is not its own.

Reads before it writes: an unchanged flag costs one GET and no write, so gateways that watch
the ConfigMap see a change only when there is one. Callers: the controller's reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.actuators.base import ActuatorError, ConfigMapNotOwned, InvolvedObject, ShedFlag
from fleetscale.actuators.rest import (
    MERGE_PATCH,
    InvalidName,
    KubeJson,
    RetryPolicy,
    controller_reference,
    describe,
    resource_path,
    status_of,
)

logger = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_LABELS = {MANAGED_BY: "fleetscale"}
# Names the pool a ConfigMap was created for (annotations take any name length, labels 63).
POOL_ANNOTATION = "fleetscale.io/inference-pool"


def flag_data(flag: ShedFlag) -> dict[str, str | None]:
    """The ConfigMap data for a flag; None marks a key to remove."""
    since = None
    if flag.active and flag.since is not None:
        at = flag.since if flag.since.tzinfo else flag.since.replace(tzinfo=UTC)
        since = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    retry_after = None
    if flag.retry_after_seconds is not None:
        retry_after = str(max(0, int(flag.retry_after_seconds)))
    header, value = flag.low_priority_header or (None, None)
    return {
        "active": "true" if flag.active else "false",
        "fraction": f"{flag.fraction if flag.active else 0.0:.2f}",
        "reason": flag.reason,
        "retryAfterSeconds": retry_after,
        "since": since,
        "message": flag.message,
        "lowPriorityHeader": header,
        "lowPriorityValue": value,
    }


def owner_reference(owner: InvolvedObject) -> dict[str, Any]:
    if not owner.uid:
        raise ValueError(f"{owner.kind} {owner.name} has no uid to own the ConfigMap with")
    return controller_reference(owner.api_version, owner.kind, owner.name, owner.uid)


def not_owned_because(current: Mapping[str, Any], owner: InvolvedObject) -> str | None:
    """Why an existing ConfigMap is not ``owner``'s to write (None: it is)."""
    metadata = current.get("metadata") or {}
    controllers = [
        ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller") is True
    ]
    if (metadata.get("labels") or {}).get(MANAGED_BY) != MANAGED_BY_LABELS[MANAGED_BY]:
        return (
            f"it was not created by fleetscale (no label {MANAGED_BY}=fleetscale); "
            "name a ConfigMap that does not exist yet, and the pool creates it"
        )
    if any(ref.get("uid") == owner.uid for ref in controllers):
        return None
    others = [f"{ref.get('kind')} {ref.get('name')}" for ref in controllers]
    if others:
        return f"it belongs to {others[0]}, not to this pool"
    return "it carries no controller reference to this pool"


class ConfigMapShedFlagPublisher:
    """``ShedFlagPublisher`` writing one ConfigMap per pool; see the module docstring."""

    def __init__(self, api_client: ApiClient, *, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    async def publish(self, owner: InvolvedObject, config_map_name: str, flag: ShedFlag) -> None:
        if owner.namespace is None:
            raise ValueError(f"{owner.kind} {owner.name} is not namespaced")
        namespace = owner.namespace
        data = flag_data(flag)
        reference = owner_reference(owner)
        where = f"ConfigMap {namespace}/{config_map_name}"
        try:
            path = resource_path("v1", "configmaps", namespace=namespace, name=config_map_name)
        except InvalidName as exc:  # never sent: it could name another namespace's ConfigMap
            raise ActuatorError(f"refused to publish the shed flag: {exc}") from exc
        try:
            current = await self._get(path)
            if current is None:
                created = await self._create(namespace, config_map_name, data, reference)
                if created:
                    return
                current = await self._get(path)  # someone created it meanwhile
                if current is None:
                    raise ActuatorError(f"{where} vanished while it was being created")
            refusal = not_owned_because(current, owner)
            if refusal is not None:
                raise ConfigMapNotOwned(
                    f"{where} is not this pool's, so it is left untouched: {refusal}"
                )
            patch = _patch_for(current, data)
            if patch:
                await self._api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except ActuatorError:
            raise
        except Exception as exc:
            raise ActuatorError(
                f"could not publish the shed flag to {where}: {describe(exc)}"
            ) from exc

    async def _get(self, path: str) -> Mapping[str, Any] | None:
        try:
            current: Mapping[str, Any] = await self._api.request("GET", path)
        except Exception as exc:
            if status_of(exc) == 404:
                return None
            raise
        return current

    async def _create(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str | None],
        reference: Mapping[str, Any],
    ) -> bool:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(MANAGED_BY_LABELS),
                "annotations": {POOL_ANNOTATION: str(reference["name"])},
                "ownerReferences": [dict(reference)],
            },
            "data": {key: value for key, value in data.items() if value is not None},
        }
        try:
            collection = resource_path("v1", "configmaps", namespace=namespace)
            await self._api.request("POST", collection, body=body)
        except Exception as exc:
            if status_of(exc) == 409:
                return False
            raise
        return True


def _patch_for(current: Mapping[str, Any], data: Mapping[str, str | None]) -> dict[str, Any]:
    """The merge patch that brings ``current`` (this pool's own ConfigMap) to ``data``; empty
    if none."""
    current_data = current.get("data") or {}
    changed = {key: value for key, value in data.items() if current_data.get(key) != value}
    return {"data": changed} if changed else {}
