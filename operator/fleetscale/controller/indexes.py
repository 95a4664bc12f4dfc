"""The operator's watch-fed indexes, as the adapters see them.

Role: kopf keeps two indexes current from its watches (``controller.handlers`` declares them):
InferencePool demand by the AcceleratorPool it names, and each AcceleratorPool's published
allocations by name. The adapters that read them (``acceleratorpools.demand.IndexedDemands``,
``allocations.IndexedAllocations``) are built at startup, before any handler has received
kopf's index objects, so they hold an ``IndexView`` that the first daemon binds.
Callers: ``controller.handlers``, ``controller.wiring``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

DEMAND_INDEX = "demand_by_accelerator_pool"
ALLOCATIONS_INDEX = "allocations_by_accelerator_pool"


class IndexView(Mapping[str, Iterable[Any]]):
    """A kopf index, bound once the first handler receives it; empty until then.

    The adapters are built at startup, before any handler has seen kopf's indexes; they hold
    this view, and the daemons bind the live index (kopf keeps it current) when they start.
    """

    def __init__(self) -> None:
        self._index: Mapping[str, Iterable[Any]] = {}

    def bind(self, index: Mapping[str, Iterable[Any]] | None) -> None:
        if index is not None:
            self._index = index

    def __getitem__(self, key: str) -> Iterable[Any]:
        return self._index[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass
class Indexes:
    """The operator's watch-fed indexes (see the module docstring)."""

    demands: IndexView = field(default_factory=IndexView)
    allocations: IndexView = field(default_factory=IndexView)

    def bind(self, kwargs: Mapping[str, Any]) -> None:
        self.demands.bind(kwargs.get(DEMAND_INDEX))
        self.allocations.bind(kwargs.get(ALLOCATIONS_INDEX))
