"""The indexes the two kinds meet through, and what the adapters read them by.

Role: the operator keeps these indexes from its own watches (``controller.caches``, registered
in ``controller.wiring``): InferencePool demand by the AcceleratorPool it names, each
AcceleratorPool's published allocations by name, the InferencePools and HorizontalPodAutoscalers
by the workload they size (so that a pool never fights another autoscaler), and each
Namespace's labels (what an AcceleratorPool's ``spec.tenancy.namespaceSelector`` selects by).
The adapters that read them (``acceleratorpools.demand.IndexedDemands``,
``acceleratorpools.tenancy.IndexedNamespaces``, ``allocations.IndexedAllocations``,
``inferencepools.conflicts.IndexedControllers``) hold an ``Index``: the watch-fed one
(``caches.WatchedIndex``), which answers only once its first list is complete and raises
``CacheStale`` when it cannot vouch for its contents, or ``InMemoryIndex`` (tests).

These used to be kopf indexes. kopf holds every handler until its indexes are filled, and
fills them at a cost that grows with the square of the objects it lists (one toggle per
object, each waking every waiting worker): 10,000 pools never got their first tick.
Callers: ``controller.wiring``, the adapters above, tests.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

DEMAND_INDEX = "demand_by_accelerator_pool"
ALLOCATIONS_INDEX = "allocations_by_accelerator_pool"
POOLS_BY_TARGET_INDEX = "inference_pools_by_target"
HPAS_BY_TARGET_INDEX = "hpas_by_target"
NAMESPACE_LABELS_INDEX = "namespace_labels"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)
V_co = TypeVar("V_co", covariant=True)


class Index(Protocol[K_contra, V_co]):
    """What the objects of one kind contribute under a key."""

    async def lookup(self, key: K_contra) -> Sequence[V_co]:
        """Every value under ``key`` (empty: none). Raises ``CacheStale`` when the index
        cannot vouch for its contents (not listed yet, or its watch went silent)."""
        ...


@dataclass
class InMemoryIndex(Generic[K, V]):
    """``Index`` over a dict (tests)."""

    entries: Mapping[K, Sequence[V]] = field(default_factory=dict)

    async def lookup(self, key: K) -> list[V]:
        return list(self.entries.get(key, ()))
