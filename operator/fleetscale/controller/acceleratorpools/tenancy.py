"""Which InferencePools may draw from an AcceleratorPool: the pool's ``spec.tenancy``.

Role: one pure step between the demand index and the node planner. Every InferencePool that
names the pool is a claim; ``admit`` keeps those the pool accepts and turns the others into
``RefusedClaim`` entries (published in ``status.refusedClaims``, read back by each refused
InferencePool as ``ClaimRefused``). A claim is refused when:

- its namespace is not one the operator watches (``NamespaceNotWatched``; kopf delivers no
  such pool, this holds if it ever did);
- ``tenancy.namespaceSelector`` is set and the namespace's labels do not match it, or are not
  known yet (``NamespaceNotAllowed``);
- its ``spec.priority`` is above ``tenancy.maxPriority`` (``PriorityAboveMax``): refused, not
  lowered, so a team cannot get ahead of the others by writing a bigger number.

Refused claims ask for nothing: no node is requested for them and no capacity is granted.
Namespace labels come from the operator's watch of Namespaces (``IndexedNamespaces``), read
before ``admit`` (``labels_for``) and only when a selector needs them.
Callers: ``tick``, ``controller.wiring`` (the index).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fleetscale.api.acceleratorpool import RefusedClaim, Tenancy
from fleetscale.controller.indexes import Index
from fleetscale.planner.demand import InferencePoolDemand

NAMESPACE_NOT_WATCHED = "NamespaceNotWatched"
NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
PRIORITY_ABOVE_MAX = "PriorityAboveMax"


class NamespaceLabels(Protocol):
    """The labels of the cluster's Namespaces."""

    async def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels; None when it is not known (not seen, or gone). Raises
        ``CacheStale`` when it cannot vouch for what it knows (the tick holds)."""
        ...


# Namespace name -> its labels, as read for one tick (a namespace missing: not known).
LabelsByNamespace = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Admission:
    """The claims an AcceleratorPool accepts, and those it refuses with why."""

    admitted: tuple[InferencePoolDemand, ...]
    refused: tuple[RefusedClaim, ...] = ()


async def labels_for(
    tenancy: Tenancy, demands: Sequence[InferencePoolDemand], namespaces: NamespaceLabels | None
) -> dict[str, Mapping[str, str]]:
    """The labels of the claims' namespaces, when ``tenancy`` selects namespaces by them
    (else none are read: no watch of Namespaces for a pool that never needs it)."""
    if tenancy.namespace_selector is None or namespaces is None:
        return {}
    found: dict[str, Mapping[str, str]] = {}
    for namespace in sorted({demand.namespace for demand in demands}):
        labels = await namespaces.labels_of(namespace)
        if labels is not None:
            found[namespace] = labels
    return found


def _refusal(
    tenancy: Tenancy,
    demand: InferencePoolDemand,
    namespaces: LabelsByNamespace,
    watched: Collection[str],
) -> tuple[str, str] | None:
    if watched and demand.namespace not in watched:
        return NAMESPACE_NOT_WATCHED, f"namespace {demand.namespace} is not watched"
    selector = tenancy.namespace_selector
    if selector is not None:
        labels = namespaces.get(demand.namespace)
        if labels is None:
            return NAMESPACE_NOT_ALLOWED, (
                f"the labels of namespace {demand.namespace} are not known, and "
                "spec.tenancy.namespaceSelector admits only namespaces it selects"
            )
        if not selector.matches(labels):
            return NAMESPACE_NOT_ALLOWED, (
                f"namespace {demand.namespace} is not selected by spec.tenancy.namespaceSelector"
            )
    if tenancy.max_priority is not None and demand.priority > tenancy.max_priority:
        return PRIORITY_ABOVE_MAX, (
            f"priority {demand.priority} is above spec.tenancy.maxPriority "
            f"{tenancy.max_priority}: lower spec.priority to {tenancy.max_priority} or below"
        )
    return None


def admit(
    tenancy: Tenancy,
    demands: Sequence[InferencePoolDemand],
    namespaces: LabelsByNamespace,
    watched: Collection[str] = (),
) -> Admission:
    """Split the claims on a pool into admitted demands and refused claims (sorted by
    namespace and name). ``namespaces``: the labels of the claims' namespaces (``labels_for``;
    one missing is not known). ``watched`` empty: every namespace is watched."""
    admitted: list[InferencePoolDemand] = []
    refused: list[RefusedClaim] = []
    for demand in demands:
        refusal = _refusal(tenancy, demand, namespaces, watched)
        if refusal is None:
            admitted.append(demand)
            continue
        reason, message = refusal
        refused.append(
            RefusedClaim(
                namespace=demand.namespace,
                name=demand.name,
                priority=demand.priority,
                reason=reason,
                message=message,
            )
        )
    refused.sort(key=lambda claim: (claim.namespace, claim.name))
    return Admission(tuple(admitted), tuple(refused))


def namespace_index_entry(body: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """What the operator's index keeps of a Namespace: its labels, by name."""
    metadata = body.get("metadata") or {}
    return {str(metadata.get("name") or ""): dict(metadata.get("labels") or {})}


class IndexedNamespaces:
    """``NamespaceLabels`` over the operator's watch-fed index of Namespaces."""

    def __init__(self, index: Index[str, Mapping[str, str]]) -> None:
        self._index = index

    async def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        entries = await self._index.lookup(namespace)
        return entries[0] if entries else None


@dataclass
class InMemoryNamespaces:
    """``NamespaceLabels`` over a dict (tests)."""

    labels: dict[str, dict[str, str]]

    async def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        return self.labels.get(namespace)
