"""Post Kubernetes Events about InferencePools and AcceleratorPools, aggregated like kubectl's.

Role: ``EventSink`` on core/v1 Events (what ``kubectl describe`` shows). A repeat of the same
Event (same object, type, reason and message) within ``aggregate_window_seconds`` bumps the
count and lastTimestamp of the Event already posted instead of creating another, as
client-go's event recorder does; so a pool stuck at its limit shows one line "x42", not 42.
Posting never raises: Events are diagnostics, and a failure to post one must not fail the
reconcile that decided something. Events about cluster-scoped objects go to the "default"
namespace, as kubectl and kopf do. Callers: the controller's reconcile.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient

from fleetscale.actuators.base import EventType, InvolvedObject
from fleetscale.actuators.rest import (
    MERGE_PATCH,
    KubeJson,
    RetryPolicy,
    describe,
    resource_path,
    status_of,
)

logger = logging.getLogger(__name__)

MESSAGE_MAX_CHARS = 1024  # the API server rejects longer Event messages
_NAME_MAX_CHARS = 253
_CLUSTER_SCOPED_EVENTS_NAMESPACE = "default"

_Key = tuple[InvolvedObject, str, str, str]


@dataclass
class _Posted:
    namespace: str
    name: str
    count: int
    last_seen: float


def rfc3339(epoch_seconds: float) -> str:
    """Seconds since the epoch as the API's timestamp format (UTC, whole seconds)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate_message(message: str) -> str:
    if len(message) <= MESSAGE_MAX_CHARS:
        return message
    return message[: MESSAGE_MAX_CHARS - 3] + "..."


class KubernetesEventSink:
    """``EventSink`` writing core/v1 Events; see the module docstring."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        component: str = "fleetscale",
        instance: str | None = None,
        aggregate_window_seconds: float = 600.0,
        remembered_events: int = 4096,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy(attempts=2))
        self._component = component
        self._instance = instance or socket.gethostname()
        self._window_seconds = aggregate_window_seconds
        self._capacity = remembered_events
        self._clock = clock
        self._posted: OrderedDict[_Key, _Posted] = OrderedDict()

    async def post(
        self, involved: InvolvedObject, type: EventType, reason: str, message: str
    ) -> None:
        message = truncate_message(message)
        try:
            await self._post(involved, type, reason, message)
        except Exception as exc:
            logger.warning(
                "Could not post the %s Event %s about %s %s: %s",
                type,
                reason,
                involved.kind,
                involved.name,
                describe(exc),
            )

    async def _post(
        self, involved: InvolvedObject, type: EventType, reason: str, message: str
    ) -> None:
        now = self._clock()
        key: _Key = (involved, type, reason, message)
        posted = self._posted.get(key)
        if posted is not None and now - posted.last_seen <= self._window_seconds:
            path = resource_path("v1", "events", namespace=posted.namespace, name=posted.name)
            patch = {"count": posted.count + 1, "lastTimestamp": rfc3339(now)}
            try:
                await self._api.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
            except Exception as exc:
                if status_of(exc) != 404:  # 404: expired (Events live one hour); post anew
                    raise
            else:
                posted.count += 1
                posted.last_seen = now
                self._posted.move_to_end(key)
                return
        namespace = involved.namespace or _CLUSTER_SCOPED_EVENTS_NAMESPACE
        body = self._event(involved, namespace, type, reason, message, now)
        events = resource_path("v1", "events", namespace=namespace)
        await self._api.request("POST", events, body=body)
        self._posted[key] = _Posted(namespace, body["metadata"]["name"], 1, now)
        self._posted.move_to_end(key)
        while len(self._posted) > self._capacity:
            self._posted.popitem(last=False)

    def _event(
        self,
        involved: InvolvedObject,
        namespace: str,
        type: EventType,
        reason: str,
        message: str,
        now: float,
    ) -> dict[str, Any]:
        # Unique like client-go's names: the object's name and a nanosecond stamp in hex.
        suffix = f".{time.time_ns():x}"
        name = involved.name[: _NAME_MAX_CHARS - len(suffix)].rstrip(".-") + suffix
        reference: dict[str, Any] = {
            "apiVersion": involved.api_version,
            "kind": involved.kind,
            "name": involved.name,
        }
        if involved.namespace:
            reference["namespace"] = involved.namespace
        if involved.uid:
            reference["uid"] = involved.uid
        timestamp = rfc3339(now)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": reference,
            "type": type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
        }
