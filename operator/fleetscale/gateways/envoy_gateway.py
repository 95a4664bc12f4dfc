"""Envoy Gateway: the shed decision as a BackendTrafficPolicy (gateway.envoyproxy.io/v1alpha1).

Role: ``GatewayWriter`` for Envoy Gateway (checked against the CRDs of v1.9.1). While a pool
sheds, one BackendTrafficPolicy in the pool's namespace targets the route (or one rule of it,
``sectionName``) that the spec names:

- ``faultInjection.abort``: HTTP 429 for ``percentage`` (the shed fraction x 100) of the
  requests, answered by Envoy itself before any backend is picked;
- ``responseOverride``: those local 429 replies (``source: Local``, so a backend's own 429 is
  untouched) get ``Retry-After: <seconds>`` and a JSON body
  ``{"error": {"message": ..., "type": "fleetscale_shed", "code": 429}}``.

It is labelled ``app.kubernetes.io/managed-by: fleetscale`` and owned by the InferencePool
(deleted with it). An object of the same name without both marks is someone else's: the writer
refuses (``GatewayConflict``) and changes nothing.

Withdrawal deletes the policy (with the uid read as a precondition, so a policy recreated by
someone else in between is never deleted). Why delete rather than leave a policy that aborts
nothing: Envoy Gateway lets one BackendTrafficPolicy apply per target (the oldest wins when
several target the same route), so a leftover policy would shadow one the platform team adds
later; and a route the pool stops naming keeps nothing behind.

Writes read first (GET), then create (POST) or replace the spec with a merge patch (PATCH) only
when it differs; transient API errors are retried by ``KubeJson``. Names go into paths only
after a DNS-1123 check and URL quoting. Callers: the InferencePool tick's execute step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.gateways.base import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    POOL_LABEL,
    GatewayConflict,
    GatewayError,
    GatewayTarget,
    Owner,
    ShedOrder,
    check_name,
)
from fleetscale.kubeapi import (
    MERGE_PATCH,
    InvalidName,
    KubeJson,
    RetryPolicy,
    controller_reference,
    describe,
    resource_path,
    status_of,
)

GROUP = "gateway.envoyproxy.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "BackendTrafficPolicy"
PLURAL = "backendtrafficpolicies"
ERROR_TYPE = "fleetscale_shed"
REASON_ANNOTATION = "fleetscale.io/reason"


def policy_body(owner: Owner, target: GatewayTarget, order: ShedOrder) -> dict[str, Any]:
    """The whole BackendTrafficPolicy for ``order`` (pure: what the tests and docs show)."""
    if target.route is None:
        raise GatewayError(f"{KIND} {target.policy_name}: no route to target")
    reference: dict[str, Any] = {
        "group": target.route.group,
        "kind": target.route.kind,
        "name": target.route.name,
    }
    if target.route.section_name:
        reference["sectionName"] = target.route.section_name
    body = json.dumps(
        {"error": {"message": order.message, "type": ERROR_TYPE, "code": 429}},
        separators=(",", ":"),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": target.policy_name,
            "namespace": target.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, POOL_LABEL: owner.name},
            "annotations": {REASON_ANNOTATION: order.reason},
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": {
            "targetRefs": [reference],
            "faultInjection": {
                "abort": {"httpStatus": 429, "percentage": round(order.fraction * 100, 2)}
            },
            "responseOverride": [
                {
                    "match": {"statusCodes": [{"type": "Value", "value": 429}]},
                    "source": "Local",
                    "response": {
                        "statusCode": 429,
                        "contentType": "application/json",
                        "body": {"type": "Inline", "inline": body},
                        "header": {
                            "set": [
                                {"name": "Retry-After", "value": str(order.retry_after_seconds)}
                            ]
                        },
                    },
                }
            ],
        },
    }


def _owner_reference(owner: Owner) -> dict[str, Any]:
    if not owner.uid:
        raise GatewayError(f"{owner.kind} {owner.name} has no uid to own the policy with")
    return controller_reference(owner.api_version, owner.kind, owner.name, owner.uid)


def owned_by(current: Mapping[str, Any], owner: Owner) -> bool:
    """Whether ``current`` carries fleetscale's label and this pool's ownerReference."""
    metadata = current.get("metadata") or {}
    labels = metadata.get("labels") or {}
    references = metadata.get("ownerReferences") or []
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and any(
        ref.get("uid") == owner.uid and ref.get("kind") == owner.kind for ref in references
    )


def _conflict(target: GatewayTarget, owner: Owner) -> GatewayConflict:
    return GatewayConflict(
        f"{KIND} {target.namespace}/{target.policy_name} exists and was not created by "
        f"fleetscale for {owner.kind} {owner.name} (no {MANAGED_BY_LABEL}={MANAGED_BY} label "
        f"and ownerReference): left unchanged; delete it or name another policyName"
    )


class EnvoyGatewayWriter:
    """``GatewayWriter`` writing one BackendTrafficPolicy per pool; see the module docstring."""

    kind = "EnvoyGateway"

    def __init__(self, api_client: ApiClient, *, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    @staticmethod
    def _path(target: GatewayTarget, name: str | None = None) -> str:
        try:
            return resource_path(
                f"{GROUP}/{VERSION}", PLURAL, namespace=target.namespace, name=name
            )
        except InvalidName as error:
            raise GatewayError(str(error)) from error

    async def write(self, owner: Owner, target: GatewayTarget, order: ShedOrder) -> None:
        name = check_name("policy name", target.policy_name)
        if target.route is not None:
            check_name("route name", target.route.name)
            if target.route.section_name is not None:
                check_name("route rule", target.route.section_name, label=True)
        desired = policy_body(owner, target, order)
        path = self._path(target, name)
        where = f"{KIND} {target.namespace}/{name}"
        try:
            current = await self._get(path)
            if current is None:
                try:
                    await self._api.request("POST", self._path(target), body=desired)
                    return
                except Exception as error:
                    if status_of(error) != 409:
                        raise
                current = await self._get(path)  # created meanwhile: judge it as found
                if current is None:
                    raise GatewayError(f"{where} vanished while it was being created") from None
            if not owned_by(current, owner):
                raise _conflict(target, owner)
            patch = _patch_for(current, desired)
            if patch:
                await self._api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except GatewayError:
            raise
        except Exception as error:
            raise GatewayError(f"could not write {where}: {describe(error)}") from error

    async def withdraw(self, owner: Owner, target: GatewayTarget) -> None:
        name = check_name("policy name", target.policy_name)
        path = self._path(target, name)
        where = f"{KIND} {target.namespace}/{name}"
        try:
            current = await self._get(path)
            if current is None:
                return
            if not owned_by(current, owner):
                raise _conflict(target, owner)
            uid = (current.get("metadata") or {}).get("uid")
            options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
            try:
                await self._api.request("DELETE", path, body=options)
            except Exception as error:
                if status_of(error) != 404:
                    raise
        except GatewayError:
            raise
        except Exception as error:
            raise GatewayError(f"could not delete {where}: {describe(error)}") from error

    async def _get(self, path: str) -> Mapping[str, Any] | None:
        try:
            current: Mapping[str, Any] = await self._api.request("GET", path)
        except Exception as error:
            if status_of(error) == 404:
                return None
            raise
        return current


def _patch_for(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that brings ``current`` to ``desired`` (spec, labels, annotation)."""
    patch: dict[str, Any] = {}
    if current.get("spec") != desired["spec"]:
        # Lists are replaced whole by a merge patch; unset fields of ours are sent as null.
        spec = dict(desired["spec"])
        for key in current.get("spec") or {}:
            spec.setdefault(key, None)
        patch["spec"] = spec
    metadata = current.get("metadata") or {}
    wanted = desired["metadata"]
    labels = {
        k: v for k, v in wanted["labels"].items() if (metadata.get("labels") or {}).get(k) != v
    }
    annotations = {
        k: v
        for k, v in wanted["annotations"].items()
        if (metadata.get("annotations") or {}).get(k) != v
    }
    if labels or annotations:
        patch["metadata"] = {
            **({"labels": labels} if labels else {}),
            **({"annotations": annotations} if annotations else {}),
        }
    return patch
