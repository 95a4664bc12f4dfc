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

from kubernetes.client.exceptions import ApiException

from fleetscale.kubeapi import RetryPolicy, describe, with_retries
from fleetscale.nodepools.base import GROUP_NOT_FOUND, PROVIDER_FAILED, ProviderError

T = TypeVar("T")

ATTEMPTS = 3
FIRST_BACKOFF_SECONDS = 0.2
_RETRY = RetryPolicy(attempts=ATTEMPTS, first_backoff_seconds=FIRST_BACKOFF_SECONDS)


def is_not_found(error: BaseException) -> bool:
    return isinstance(error, ApiException) and error.status == 404


async def call(what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` off the event loop; ProviderError when it keeps failing.

    ``what`` names the operation for the error message ("scale MachineDeployment ns/md").
    A 404 raises ProviderError(NodeGroupNotFound).
    """
    try:
        return await with_retries(lambda: asyncio.to_thread(function, *args, **kwargs), _RETRY)
    except Exception as error:
        reason = GROUP_NOT_FOUND if is_not_found(error) else PROVIDER_FAILED
        raise ProviderError(reason, f"{what}: {describe(error)}") from error


async def call_json(what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Like ``call``, but answers the API server's JSON as plain data (wire names).

    The generated models would turn every field into an Optional attribute; the providers read
    a handful of fields and are simpler over the JSON the API server sent.
    """
    response = await call(what, function, *args, _preload_content=False, **kwargs)
    raw = response.data
    return json.loads(raw) if raw else None
