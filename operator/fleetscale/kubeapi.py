"""The one retrying client of the Kubernetes REST API, shared by every adapter that calls it.

Role: one definition of what is worth retrying (throttling, 5xx, broken connections), how long
to back off, how to put an API error in plain words (the API server's own message), and
``KubeJson``: JSON requests built from paths with the official client's own serializer,
authentication and TLS settings (``ApiClient.param_serialize`` / ``call_api``), each run in a
worker thread and retried on transient failures. The generated per-kind API classes cannot
address "any kind with /scale" (core and custom groups alike), so requests are built from paths,
and every path by ``resource_path`` from segments checked as Kubernetes names and URL-quoted,
never by pasting a value into a string. The adapter packages (``actuators``, ``nodepools``)
and the controller may not import each other's internals, so what they share lives here.
Callers: ``actuators``, ``nodepools._kube``, ``controller``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from fleetscale.api.base import API_VERSION_PATTERN, is_dns_label, is_dns_subdomain

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


class InvalidName(ValueError):  # noqa: N818  (reads as what the value is)
    """A name, namespace, resource or apiVersion is not valid for what it names.

    Raised before any request is built: a value that is not a Kubernetes name could be read as
    more than one path segment (``../kube-system/...``; urllib3 resolves ``..`` before it sends
    the request, so the API server would see another namespace's path)."""


def _checked(value: str, what: str, valid: Callable[[str], bool]) -> str:
    if not isinstance(value, str) or not valid(value):
        raise InvalidName(f"{what} {value!r} is not a valid Kubernetes name: refused, not sent")
    return quote(value, safe="")


def _api_version_ok(value: str) -> bool:
    return len(value) <= 317 and re.fullmatch(API_VERSION_PATTERN, value) is not None


def api_root(api_version: str) -> str:
    """``v1`` -> ``/api/v1``; ``apps/v1`` -> ``/apis/apps/v1``. Raises InvalidName."""
    _checked(api_version, "apiVersion", _api_version_ok)
    group, _, version = api_version.rpartition("/")
    if not group:
        return f"/api/{quote(version, safe='')}"
    return f"/apis/{quote(group, safe='')}/{quote(version, safe='')}"


def check_names(
    *, api_version: str | None = None, namespace: str | None = None, name: str | None = None
) -> None:
    """Raise InvalidName unless each value given is valid for what it names (before anything
    is sent)."""
    if api_version is not None:
        _checked(api_version, "apiVersion", _api_version_ok)
    if namespace is not None:
        _checked(namespace, "namespace", is_dns_label)
    if name is not None:
        _checked(name, "name", is_dns_subdomain)


def resource_path(
    api_version: str,
    resource: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection (no ``name``) or of one object, from validated segments.

    The only way the adapters build a path from names that come from specs, status or the
    cluster: each segment must be a valid name of its kind (a namespace a DNS-1123 label, an
    object name a DNS-1123 subdomain, the resource and subresource lower-case labels) and is
    URL-quoted, so no value can add, remove or climb out of a segment. Raises InvalidName.
    """
    parts = [api_root(api_version)]
    if namespace is not None:
        parts += ["namespaces", _checked(namespace, "namespace", is_dns_label)]
    parts.append(_checked(resource, "resource", is_dns_label))
    if name is not None:
        parts.append(_checked(name, "name", is_dns_subdomain))
    if subresource is not None:
        if name is None:
            raise InvalidName(f"subresource {subresource!r} without an object name")
        parts.append(_checked(subresource, "subresource", is_dns_label))
    return "/".join(parts)


def controller_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """The ownerReference that makes the named object the controller of what carries it (the
    garbage collector deletes it with its owner)."""
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True}


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
