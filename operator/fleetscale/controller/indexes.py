"""The operator's watch-fed indexes, as the adapters see them.

Role: kopf keeps these indexes current from its watches (``controller.handlers`` declares them):
InferencePool demand by the AcceleratorPool it names, each AcceleratorPool's published
allocations by name, and the InferencePools and HorizontalPodAutoscalers by the workload they
size (so that a pool never fights another autoscaler), and each Namespace's labels (what an
AcceleratorPool's ``spec.tenancy.namespaceSelector`` selects by). The adapters that read them
(``acceleratorpools.demand.IndexedDemands``, ``allocations.IndexedAllocations``,
``inferencepools.conflicts.IndexedControllers``) are built at startup, before any handler has
received kopf's index objects, so they hold an ``IndexView`` that the first handler binds.
Callers: ``controller.handlers``, ``controller.wiring``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetscale.controller.caches import ClusterCaches

DEMAND_INDEX = "demand_by_accelerator_pool"
ALLOCATIONS_INDEX = "allocations_by_accelerator_pool"
POOLS_BY_TARGET_INDEX = "inference_pools_by_target"
HPAS_BY_TARGET_INDEX = "hpas_by_target"
NAMESPACE_LABELS_INDEX = "namespace_labels"


class IndexView(Mapping[Any, Iterable[Any]]):
    """A kopf index, bound once the first handler receives it; empty until then.

    The adapters are built at startup, before any handler has seen kopf's indexes; they hold
    this view, and the event handlers bind the live index (kopf keeps it current) when first
    called.
    """

    def __init__(self) -> None:
        self._index: Mapping[Any, Iterable[Any]] = {}

    def bind(self, index: Mapping[Any, Iterable[Any]] | None) -> None:
        if index is not None:
            self._index = index

    def __getitem__(self, key: Any) -> Iterable[Any]:
        return self._index[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass
class Indexes:
    """The operator's watch-fed indexes (see the module docstring), and its watch-fed caches
    of targets and nodes (``controller.caches``; None: read through the API each tick)."""

    demands: IndexView = field(default_factory=IndexView)
    allocations: IndexView = field(default_factory=IndexView)
    pools_by_target: IndexView = field(default_factory=IndexView)
    hpas_by_target: IndexView = field(default_factory=IndexView)
    namespaces: IndexView = field(default_factory=IndexView)
    caches: ClusterCaches | None = None

    def bind(self, kwargs: Mapping[str, Any]) -> None:
        self.demands.bind(kwargs.get(DEMAND_INDEX))
        self.allocations.bind(kwargs.get(ALLOCATIONS_INDEX))
        self.pools_by_target.bind(kwargs.get(POOLS_BY_TARGET_INDEX))
        self.hpas_by_target.bind(kwargs.get(HPAS_BY_TARGET_INDEX))
        self.namespaces.bind(kwargs.get(NAMESPACE_LABELS_INDEX))
