"""Read one key of a Secret (Prometheus bearer tokens and CA bundles).

Role: ``SecretReader`` on core/v1 Secrets. Values are returned decoded, exactly as stored
(a trailing newline from ``kubectl create secret --from-file`` included; callers that need a
token strip it). Errors say which Secret or key is missing, and which keys exist, so a typo in
a spec is obvious from the condition message. A name that is not a Secret name is refused
before anything is sent. Callers: the controller, when it builds a
Prometheus endpoint.
"""

from __future__ import annotations

import base64
import binascii

from kubernetes.client import ApiClient

from fleetscale.actuators.base import ActuatorError, SecretNotFound
from fleetscale.actuators.rest import (
    InvalidName,
    KubeJson,
    RetryPolicy,
    describe,
    resource_path,
    status_of,
)


class KubernetesSecretReader:
    """``SecretReader`` on the Kubernetes API; see the module docstring."""

    def __init__(self, api_client: ApiClient, *, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    async def read_key(self, namespace: str, name: str, key: str) -> str:
        try:
            path = resource_path("v1", "secrets", namespace=namespace, name=name)
        except InvalidName as exc:  # never sent: it could name another namespace's Secret
            raise ActuatorError(f"refused to read a Secret: {exc}") from exc
        try:
            secret = await self._api.request("GET", path)
        except Exception as exc:
            if status_of(exc) == 404:
                raise SecretNotFound(f"Secret {namespace}/{name} not found") from exc
            raise ActuatorError(
                f"could not read Secret {namespace}/{name}: {describe(exc)}"
            ) from exc
        data = secret.get("data") or {}
        if key not in data:
            present = ", ".join(sorted(data)) or "none"
            raise SecretNotFound(
                f"Secret {namespace}/{name} has no key {key!r} (its keys: {present})"
            )
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ActuatorError(
                f"key {key!r} of Secret {namespace}/{name} is not UTF-8 text"
            ) from exc
