"""JSON over the Kubernetes REST API through the official client, with bounded retries.

Role: the one place where the actuator modules touch ``kubernetes.client``. The generated
per-kind API classes cannot address "any kind with /scale" (core and custom groups alike), so
requests are built from paths with the client's own serializer, authentication and TLS settings
(``ApiClient.param_serialize`` / ``call_api``), and answered as plain JSON. The client is
synchronous, so every call runs in a worker thread. Transient failures (429, 5xx, connection
errors) are retried with exponential backoff; everything else is raised at once.
Callers: ``kubernetes_scale``, ``events``, ``configmap``, ``secrets``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.kubeapi import RetryPolicy, describe, is_transient, status_of, with_retries

__all__ = [
    "JSON",
    "MERGE_PATCH",
    "KubeJson",
    "RetryPolicy",
    "api_root",
    "describe",
    "is_transient",
    "status_of",
    "with_retries",
]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class KubeJson:
    """Sends JSON requests to the API server the ``ApiClient`` is configured for."""

    def __init__(self, api_client: ApiClient, retry: RetryPolicy) -> None:
        self._api_client = api_client
        self.retry = retry

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """One request, retried on transient failures; raises ApiException or a network error."""

        def attempt() -> Awaitable[Any]:
            return asyncio.to_thread(self._send, method, path, body, query, content_type)

        return await with_retries(attempt, self.retry)

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
    ) -> Any:
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self._api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(
            method,
            url,
            header_params=headers,
            body=body,
            _request_timeout=self.retry.request_timeout_seconds,
        )
        response.read()  # type: ignore[no-untyped-call]
        return self._api_client.response_deserialize(response, {"2XX": "object"}).data


def api_root(api_version: str) -> str:
    """``v1`` -> ``/api/v1``; ``apps/v1`` -> ``/apis/apps/v1``."""
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
