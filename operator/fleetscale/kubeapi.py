"""Errors and retries of the official Kubernetes client, shared by every adapter that calls it.

Role: one definition of what is worth retrying (throttling, 5xx, broken connections), how long
to back off, and how to put an API error in plain words (the API server's own message). The
adapter packages (``actuators``, ``nodepools``) may not import each other, so what they share
lives here. Callers: ``actuators.rest``, ``nodepools._kube``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import urllib3
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
