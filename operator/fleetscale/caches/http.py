"""``WatchClient`` over aiohttp, with the credentials the rest of the operator uses.

Role: list a collection page by page and stream its watch, from the same
``kubernetes.client.Configuration`` that feeds the official client and kopf (server, CA,
client certificate, bearer token: ``controller.kube.load_configuration``), so the caches
never talk to another cluster or as another identity. The bearer token is asked of the
configuration at every request, so a rotated ServiceAccount token is picked up. The watch
stream is newline-delimited JSON, read as it arrives; a 410 (as a status or an ERROR event)
is ``Gone``. Reads only: nothing here writes, so the leadership fence has nothing to check.
Callers: ``controller.runtime``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes.client import Configuration

from fleetscale.caches.base import (
    Collection,
    Gone,
    Json,
    Listing,
    WatchEvent,
    WatchFailed,
)

_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})
# A list page of hundreds of objects, from a loaded API server.
LIST_PAGE_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0


def _ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def _status_message(status: int, text: str) -> str:
    try:
        payload = json.loads(text)
        message = payload.get("message", "") if isinstance(payload, dict) else ""
    except ValueError:
        message = text.strip()[:300]
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


class KubeWatchClient:
    """Lists and watches collections of the API server the configuration points at."""

    def __init__(self, configuration: Configuration, user_agent: str | None = None) -> None:
        self._configuration = configuration
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        configuration = self._configuration
        headers = {"Accept": "application/json"}
        token = configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        return headers

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            configuration = self._configuration
            auth = (
                aiohttp.BasicAuth(configuration.username, configuration.password or "")
                if configuration.username
                else None
            )
            self._session = aiohttp.ClientSession(
                base_url=str(configuration.host).rstrip("/") + "/",
                connector=aiohttp.TCPConnector(ssl=_ssl_context(configuration)),
                auth=auth,
            )
        return self._session

    async def list(self, collection: Collection, page_size: int) -> Listing:
        items: list[Json] = []
        token: str | None = None
        version = ""
        timeout = aiohttp.ClientTimeout(
            total=LIST_PAGE_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
        )
        while True:
            params = {"limit": str(page_size)}
            if token:
                params["continue"] = token
            if collection.label_selector:
                params["labelSelector"] = collection.label_selector
            page = await self._get_json(collection.path, params, timeout)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            version = str(metadata.get("resourceVersion") or version)
            token = metadata.get("continue") or None
            if not token:
                return Listing(items, version)

    async def _get_json(
        self, path: str, params: Mapping[str, str], limits: aiohttp.ClientTimeout
    ) -> Mapping[str, Any]:
        async with self._client().get(
            path.lstrip("/"), params=params, headers=self._headers(), timeout=limits
        ) as response:
            text = await response.text()
            if response.status == 410:  # an expired continue token: list from the start
                raise Gone(_status_message(response.status, text))
            if response.status != 200:
                raise WatchFailed(_status_message(response.status, text), response.status)
            answer: Mapping[str, Any] = json.loads(text)
            return answer

    async def watch(
        self, collection: Collection, resource_version: str, timeout_seconds: float
    ) -> AsyncIterator[WatchEvent]:
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(int(timeout_seconds)),
        }
        if collection.label_selector:
            params["labelSelector"] = collection.label_selector
        # No read timeout here: the reflector cuts a stream that stays silent too long.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS)
        async with self._client().get(
            collection.path.lstrip("/"), params=params, headers=self._headers(), timeout=timeout
        ) as response:
            if response.status != 200:
                text = await response.text()
                message = _status_message(response.status, text)
                if response.status == 410:
                    raise Gone(message)
                raise WatchFailed(message, response.status)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _event(json.loads(line))
            if buffer.strip():
                yield _event(json.loads(buffer))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _event(raw: Mapping[str, Any]) -> WatchEvent:
    kind, obj = raw.get("type"), raw.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj, Mapping) else None
        message = obj.get("message", "") if isinstance(obj, Mapping) else str(obj)
        if code == 410:
            raise Gone(f"HTTP 410: {message}")
        raise WatchFailed(f"watch error {code}: {message}", code)
    if kind not in _EVENT_TYPES:
        raise WatchFailed(f"unknown watch event type {kind!r}")
    return WatchEvent(kind, obj)
