"""How an InferencePool learns what its AcceleratorPool allocated to it.

Role: the AcceleratorPool controller publishes each InferencePool's allocation in
``status.allocations`` (and the claims it refuses in ``status.refusedClaims``); this module reads
it back as a ``PublishedAllocation`` for the
InferencePool's observe step. ``published_allocation`` is the pure reading of one
AcceleratorPool's status; ``IndexedAllocations`` serves it from the operator's watch-fed index
of AcceleratorPools (``allocations_by_name``; no API call per tick), ``ApiAllocations`` from
one GET (``fleetscale explain``, which has no watch). Callers: ``controller.wiring`` (the
index), ``fleetscale explain``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.client import ApiClient
from pydantic import ValidationError

from fleetscale.api.acceleratorpool import PLURAL, AllocationStatus
from fleetscale.api.base import GROUP, VERSION
from fleetscale.controller.indexes import Index
from fleetscale.kubeapi import KubeJson, RetryPolicy, describe, resource_path, status_of
from fleetscale.logs import get_logger
from fleetscale.planner.observe import PublishedAllocation
from fleetscale.planner.types import CapacityLimit


def published_allocation(
    accelerator_pool: str,
    allocations: Iterable[Mapping[str, Any]] | None,
    namespace: str,
    name: str,
    refused_claims: Iterable[Mapping[str, Any]] = (),
) -> PublishedAllocation:
    """What ``allocations`` (an AcceleratorPool's ``status.allocations``; None: the pool does
    not exist) and ``refused_claims`` (its ``status.refusedClaims``) say about the
    InferencePool ``namespace/name``."""
    if allocations is None:
        return PublishedAllocation(accelerator_pool, exists=False)
    for raw in refused_claims:
        if raw.get("namespace") == namespace and raw.get("name") == name:
            why = f"{raw.get('reason', 'Refused')}: {raw.get('message', '')}".rstrip(": ")
            return PublishedAllocation(accelerator_pool, exists=True, refused=why)
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


Published = tuple[tuple[Mapping[str, Any], ...], tuple[Mapping[str, Any], ...]]


def allocations_index_entry(status: Mapping[str, Any] | None) -> Published:
    """What the operator's index keeps of an AcceleratorPool: its published allocations and
    the claims it refuses."""
    status = status or {}
    return tuple(status.get("allocations") or ()), tuple(status.get("refusedClaims") or ())


def allocations_by_name(body: Mapping[str, Any]) -> dict[str, Published]:
    """The index function: an AcceleratorPool's published allocations, by its name."""
    name = str((body.get("metadata") or {}).get("name") or "")
    return {name: allocations_index_entry(body.get("status"))}


class IndexedAllocations:
    """``AllocationSource`` over the index of AcceleratorPools by name
    (``allocations_by_name``). Raises ``CacheStale`` while the index cannot vouch for it."""

    def __init__(self, index: Index[str, Published]) -> None:
        self._index = index

    async def published_allocation(
        self, accelerator_pool: str, namespace: str, name: str
    ) -> PublishedAllocation | None:
        entries = await self._index.lookup(accelerator_pool)
        if not entries:
            return published_allocation(accelerator_pool, None, namespace, name)
        allocations, refused = entries[0]
        return published_allocation(accelerator_pool, allocations, namespace, name, refused)


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
        allocations, refused = allocations_index_entry(status)
        return published_allocation(accelerator_pool, allocations, namespace, name, refused)


def seconds_until_more(value: float | None) -> int | None:
    """Seconds until more capacity, rounded up for status (whole seconds)."""
    return None if value is None else math.ceil(value)
