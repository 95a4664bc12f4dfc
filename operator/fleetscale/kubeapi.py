"""The one retrying client of the Kubernetes REST API, shared by every adapter that calls it.

Role: one definition of what is worth retrying (throttling, 5xx, broken connections), how long
to back off, how to put an API error in plain words (the API server's own message), and
``KubeJson``: JSON requests built from paths with the official client's own serializer,
authentication and TLS settings (``ApiClient.param_serialize`` / ``call_api``), each run in a
worker thread and retried on transient failures. The generated per-kind API classes cannot
address "any kind with /scale" (core and custom groups alike), so requests are built from paths.
The adapter packages (``actuators``, ``nodepools``) and the controller may not import each
other's internals, so what they share lives here. Callers: ``actuators``, ``nodepools._kube``,
``controller``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a request before giving up (transient failures only)."""

    attempts: int = 4
    first_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 2.0
    request_timeout_seconds: float = 10.0

    def backoff_seconds(self, attempt: int) -> float:
        """Delay after the given failed attempt (0-based): doubling, capped."""
        return min(self.first_backoff_seconds * 2.0**attempt, self.max_backoff_seconds)


async def with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``attempt`` until it succeeds, fails permanently, or the attempts are used up."""
    for number in range(policy.attempts):
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc) or number == policy.attempts - 1:
                raise
        await asyncio.sleep(policy.backoff_seconds(number))
    raise AssertionError("unreachable: the last attempt returns or raises")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error, None for network errors."""
    return exc.status if isinstance(exc, ApiException) else None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: throttled, server-side trouble, or the connection failed."""
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUSES
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def describe(exc: BaseException) -> str:
    """The API server's own message for an error (from its Status body), else the error."""
    if isinstance(exc, ApiException):
        message = ""
        try:
            payload = json.loads(exc.body or "")
            message = payload.get("message", "") if isinstance(payload, dict) else ""
        except ValueError:
            message = (exc.body or "").strip()[:300]
        head = f"HTTP {exc.status} {exc.reason or ''}".rstrip()
        return f"{head}: {message}" if message else head
    return f"{type(exc).__name__}: {exc}"


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


# Requests that change something in the cluster; everything else only reads.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotLeader(Exception):  # noqa: N818  (reads as the reason the write was refused)
    """A write was refused because this process does not hold leadership now."""


class FencedApiClient(ApiClient):
    """An ``ApiClient`` that sends a write only while ``may_write()`` is true.

    Every adapter (``KubeJson`` and the generated per-kind APIs alike) sends its requests
    through ``call_api``; checking there, at the last moment before the request leaves, means
    no code path can write for a replica that has lost its lease, whatever it was doing when
    the lease lapsed. Reads are never fenced: a standby keeps its view warm.
    """

    def __init__(self, configuration: Any, may_write: Callable[[], bool]) -> None:
        super().__init__(configuration)
        self.may_write = may_write

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() in WRITE_METHODS and not self.may_write():
            raise NotLeader(f"{method} {urlsplit(url).path} refused: not the leader")
        return super().call_api(method, url, *args, **kwargs)
