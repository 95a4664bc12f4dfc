"""Calls to the Kubernetes API for the in-cluster providers (kwok, clusterAPI, placeholder).

Role: run one call of the official, synchronous ``kubernetes`` client in a worker thread, retry
transient failures (throttling, 5xx, broken connections) a few times with a short backoff, and
turn what remains into ``ProviderError`` with the API server's own message. Callers: the
``kwok``, ``clusterapi`` and ``placeholder`` modules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

from fleetscale.nodepools.base import GROUP_NOT_FOUND, PROVIDER_FAILED, ProviderError

T = TypeVar("T")

_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.2


def _transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in _TRANSIENT_STATUSES
    return isinstance(error, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def describe(error: BaseException) -> str:
    """The API server's message (from its Status body), else the error itself."""
    if isinstance(error, ApiException):
        try:
            body = json.loads(error.body or "")
            message = body.get("message", "") if isinstance(body, dict) else ""
        except ValueError:
            message = (error.body or "").strip()[:300]
        head = f"HTTP {error.status} {error.reason or ''}".rstrip()
        return f"{head}: {message}" if message else head
    return f"{type(error).__name__}: {error}"


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 404


async def call(what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` off the event loop; ProviderError when it keeps failing.

    ``what`` names the operation for the error message ("scale MachineDeployment ns/md").
    A 404 raises ProviderError(NodeGroupNotFound).
    """
    for attempt in range(ATTEMPTS):
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as error:
            if _transient(error) and attempt < ATTEMPTS - 1:
                await asyncio.sleep(FIRST_BACKOFF_SECONDS * 2**attempt)
                continue
            reason = GROUP_NOT_FOUND if is_not_found(error) else PROVIDER_FAILED
            raise ProviderError(reason, f"{what}: {describe(error)}") from error
    raise AssertionError("unreachable: the last attempt returns or raises")


async def call_json(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Like ``call``, but answers the API server's JSON as plain data (wire names).

    The generated models would turn every field into an Optional attribute; the providers read
    a handful of fields and are simpler over the JSON the API server sent.
    """
    response = await call(what, function, *args, _preload_content=False, **kwargs)
    raw = response.data
    return json.loads(raw) if raw else None
