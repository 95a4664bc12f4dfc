"""How an InferencePool learns what its AcceleratorPool allocated to it.

Role: the AcceleratorPool controller publishes each InferencePool's allocation in
``status.allocations``; this module reads it back as a ``PublishedAllocation`` for the
InferencePool's observe step. ``published_allocation`` is the pure reading of one
AcceleratorPool's status; ``IndexedAllocations`` serves it from the operator's watch-fed index
of AcceleratorPools (no API call per tick), ``ApiAllocations`` from one GET (``fleetscale
explain``, which has no watch). Callers: ``controller.handlers`` (the index), ``controller.
wiring``, ``fleetscale explain``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.client import ApiClient
from pydantic import ValidationError

from fleetscale.api.acceleratorpool import PLURAL, AllocationStatus
from fleetscale.api.base import GROUP, VERSION
from fleetscale.kubeapi import KubeJson, RetryPolicy, describe, resource_path, status_of
from fleetscale.logs import get_logger
from fleetscale.planner.observe import PublishedAllocation
from fleetscale.planner.types import CapacityLimit


def published_allocation(
    accelerator_pool: str,
    allocations: Iterable[Mapping[str, Any]] | None,
    namespace: str,
    name: str,
) -> PublishedAllocation:
    """What ``allocations`` (an AcceleratorPool's ``status.allocations``; None: the pool does
    not exist) say about the InferencePool ``namespace/name``."""
    if allocations is None:
        return PublishedAllocation(accelerator_pool, exists=False)
    for raw in allocations:
        if raw.get("namespace") != namespace or raw.get("name") != name:
            continue
        try:
            entry = AllocationStatus.model_validate(raw)
        except ValidationError:
            break  # a hand-edited entry: treat as not planned yet
        limit = CapacityLimit(
            max_replicas=entry.max_replicas,
            reason=entry.reason,
            message=entry.message,
            seconds_until_more=entry.seconds_until_more,
        )
        return PublishedAllocation(accelerator_pool, exists=True, limit=limit)
    return PublishedAllocation(accelerator_pool, exists=True)


def allocations_index_entry(status: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], ...]:
    """What the operator's index keeps of an AcceleratorPool: its published allocations."""
    return tuple((status or {}).get("allocations") or ())


class IndexedAllocations:
    """``AllocationSource`` over the index of AcceleratorPools by name.

    ``index`` maps an AcceleratorPool's name to the entries its objects contributed
    (``allocations_index_entry``); kopf keeps it current from its watch.
    """

    def __init__(self, index: Mapping[str, Iterable[tuple[Mapping[str, Any], ...]]]) -> None:
        self._index = index

    async def published_allocation(
        self, accelerator_pool: str, namespace: str, name: str
    ) -> PublishedAllocation | None:
        entries = list(self._index.get(accelerator_pool, ()))
        allocations = entries[0] if entries else None
        return published_allocation(accelerator_pool, allocations, namespace, name)


class ApiAllocations:
    """``AllocationSource`` that reads the AcceleratorPool with one GET."""

    def __init__(self, api_client: ApiClient, retry: RetryPolicy | None = None) -> None:
        self._api = KubeJson(api_client, retry or RetryPolicy())

    async def published_allocation(
        self, accelerator_pool: str, namespace: str, name: str
    ) -> PublishedAllocation | None:
        try:
            path = resource_path(f"{GROUP}/{VERSION}", PLURAL, name=accelerator_pool)
            found = await self._api.request("GET", path)
        except Exception as error:
            if status_of(error) == 404:
                return published_allocation(accelerator_pool, None, namespace, name)
            # Never fail the tick: plan without a cap, and say why in the log.
            get_logger("fleetscale.acceleratorpool", pool=accelerator_pool).warning(
                "capacity_unreadable", reason="CapacityUnreadable", detail=describe(error)
            )
            return None
        status = found.get("status") if isinstance(found, Mapping) else None
        return published_allocation(
            accelerator_pool, allocations_index_entry(status), namespace, name
        )


def seconds_until_more(value: float | None) -> int | None:
    """Seconds until more capacity, rounded up for status (whole seconds)."""
    return None if value is None else math.ceil(value)
