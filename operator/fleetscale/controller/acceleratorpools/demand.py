"""The demand an AcceleratorPool plans for, read from its InferencePools' status.

Role: each InferencePool tick records in its status what its signals ask for
(``demandReplicas``), its size, whether it sheds and its accelerators per replica; this module
turns one InferencePool object into its ``InferencePoolDemand`` (``planner.demand``, the one
definition of demand) keyed by the AcceleratorPool it names. The operator keeps these in a
watch-fed index (``demand_index_entry``, read by ``IndexedDemands``), so an AcceleratorPool
tick lists nothing and reads no ``/scale``: the InferencePool ticks already did.
``InMemoryDemands`` computes the same from objects held in memory (tests). Callers:
``controller.wiring`` (the index), ``tick``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fleetscale.api.inferencepool import InferencePoolSpec, InferencePoolStatus
from fleetscale.controller.conditions import READY, find_condition
from fleetscale.controller.indexes import Index
from fleetscale.controller.inferencepools.memory import parse_status
from fleetscale.controller.inferencepools.tick import INVALID_SPEC, TARGET_NOT_FOUND
from fleetscale.planner.demand import InferencePoolDemand, inference_pool_demand

# Ready reasons of a pool that runs nothing its demand could be for: its target does not exist
# (any more), or its spec is refused. Its last recorded size is not demand.
_NOTHING_TO_RUN = frozenset({TARGET_NOT_FOUND, INVALID_SPEC})


def asked_replicas(status: InferencePoolStatus) -> int | None:
    """What the pool's signals last asked for, from its status (older statuses: the last
    recommendation, else the desired size); None before its first decision."""
    if status.demand_replicas is not None:
        return status.demand_replicas
    if status.recommendations:
        return status.recommendations[-1].replicas
    return status.desired_replicas


def has_nothing_to_run(status: InferencePoolStatus) -> bool:
    """Whether the pool's last tick found no target to size (or refused its spec)."""
    ready = find_condition(status.conditions, READY)
    return ready is not None and ready.status == "False" and ready.reason in _NOTHING_TO_RUN


def demand_of(body: Mapping[str, Any]) -> tuple[str, InferencePoolDemand] | None:
    """The AcceleratorPool an InferencePool draws on and its demand; None when it names no
    AcceleratorPool, its spec does not validate (its own tick reports why), its own tick has
    not yet recorded its size and accelerators per replica (the operator never reconciled it:
    a pool in a namespace it does not watch, or whose target never existed), or its last tick
    found no target (TargetNotFound). Whether the AcceleratorPool admits the claim is decided
    there (``tenancy``)."""
    meta = body.get("metadata") or {}
    raw_spec = body.get("spec") or {}
    accelerator_pool = (raw_spec.get("acceleratorPoolRef") or {}).get("name")
    if not accelerator_pool:
        return None
    try:
        spec = InferencePoolSpec.model_validate(raw_spec)
    except ValidationError:
        return None
    status, _ = parse_status(body.get("status"))
    if status.replicas is None or (
        spec.accelerators_per_replica is None and status.accelerators_per_replica is None
    ):
        # Its own tick has not read its target yet: its size and accelerators are unknown, and
        # planning for a guess would grant (or buy) the wrong room. It asks for nothing until
        # then, and holds meanwhile (AllocationPending).
        return None
    if has_nothing_to_run(status):
        # The target is gone: the size recorded before is no demand, and a tenant must not keep
        # nodes by pointing a pool at nothing.
        return None
    demand = inference_pool_demand(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        spec,
        current_replicas=status.replicas or 0,
        ready_replicas=status.ready_replicas or 0,
        asked_replicas=asked_replicas(status),
        shedding=status.shed_load is not None and bool(status.shed_load.active),
        observed_accelerators_per_replica=status.accelerators_per_replica,
    )
    return str(accelerator_pool), demand


def demand_index_entry(body: Mapping[str, Any]) -> dict[str, InferencePoolDemand]:
    """What the operator's demand index keeps of one InferencePool, by AcceleratorPool name:
    nothing when it asks for nothing (a pool whose target went away, or that stopped naming
    the AcceleratorPool, drops what it claimed before)."""
    entry = demand_of(body)
    return {} if entry is None else {entry[0]: entry[1]}


class IndexedDemands:
    """``DemandSource`` over the index of InferencePool demands by AcceleratorPool name
    (``demand_index_entry``). Raises ``CacheStale`` until the index has listed every pool,
    and whenever it cannot vouch for them: a partial picture of demand would release nodes
    that pools not yet seen are using."""

    def __init__(self, index: Index[str, InferencePoolDemand]) -> None:
        self._index = index

    async def demands_for(self, accelerator_pool: str) -> list[InferencePoolDemand]:
        return list(await self._index.lookup(accelerator_pool))


@dataclass
class InMemoryDemands:
    """``DemandSource`` over InferencePool objects held in memory (tests)."""

    inference_pool_objects: Sequence[Mapping[str, Any]] = field(default_factory=list)

    async def demands_for(self, accelerator_pool: str) -> list[InferencePoolDemand]:
        demands = []
        for body in self.inference_pool_objects:
            entry = demand_of(body)
            if entry is not None and entry[0] == accelerator_pool:
                demands.append(entry[1])
        return demands
