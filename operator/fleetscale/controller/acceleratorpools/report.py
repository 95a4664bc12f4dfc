"""The report step of an AcceleratorPool tick: status and Events, as plain data.

Role: from the stored status, the plan, what the provider took and the state committed after
it, compute the AcceleratorPool's status (node counts, each InferencePool's allocation, the
planner's memory, conditions Ready / ScalingLimited / NodesBusy / ProviderError) and the Events
to post (NodesRequested, NodesReleased, NodesKept, ProvisioningFailed, NodesBusy when it turns
True, the provider's error once per reason, ClaimRefused for each newly refused claim), and
``status.refusedClaims``.
Pure. Callers: ``tick``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from fleetscale.api.acceleratorpool import (
    AcceleratorPoolSpec,
    AcceleratorPoolStatus,
    AllocationStatus,
    EmptyNode,
    RefusedClaim,
)
from fleetscale.api.base import Condition
from fleetscale.controller.acceleratorpools.execute import KeptNode, NodeOutcome
from fleetscale.controller.acceleratorpools.ports import AcceleratorPoolRef
from fleetscale.controller.conditions import (
    READY,
    EventRecord,
    find_condition,
    set_condition,
    whole_seconds,
)
from fleetscale.nodepools.base import ProviderError
from fleetscale.planner.capacity import (
    CapacityPlan,
    CapacityState,
    InferencePoolAllocation,
    NodeView,
)

SCALING_LIMITED = "ScalingLimited"
NODES_BUSY = "NodesBusy"
PROVIDER_ERROR = "ProviderError"
PROVIDER_REACHABLE = "ProviderReachable"  # ProviderError=False: the provider answered
CLAIM_REFUSED = "ClaimRefused"  # an InferencePool's claim that spec.tenancy refuses
CONDITION_ORDER = (READY, SCALING_LIMITED, NODES_BUSY, PROVIDER_ERROR)


@dataclass(frozen=True)
class AcceleratorPoolReport:
    """What one AcceleratorPool tick shows."""

    status: AcceleratorPoolStatus
    reason: str
    events: tuple[EventRecord, ...] = ()
    kept: tuple[KeptNode, ...] = ()  # nodes chosen for release that stayed, and why


@dataclass(frozen=True)
class NodeTick:
    """Everything a planned AcceleratorPool tick knew."""

    pool: AcceleratorPoolRef
    spec: AcceleratorPoolSpec
    stored: AcceleratorPoolStatus
    nodes: Sequence[NodeView]
    requested_nodes: int  # the provider's size before this tick
    plan: CapacityPlan
    committed: CapacityState
    outcome: NodeOutcome
    now: float
    refused: tuple[RefusedClaim, ...] = ()  # claims spec.tenancy refuses

    @property
    def problem(self) -> ProviderError | None:
        return self.outcome.error


def _set(
    conditions: Iterable[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    tick: NodeTick,
) -> tuple[Condition, ...]:
    return set_condition(
        conditions, type_, status, reason, message, tick.now, tick.pool.generation, CONDITION_ORDER
    )


def report_invalid(
    pool: AcceleratorPoolRef, stored: AcceleratorPoolStatus, message: str, now: float
) -> AcceleratorPoolReport:
    """Ready=False (InvalidSpec); the rest of the status (the memory) stays as it was."""
    return report_held(pool, stored, "InvalidSpec", message, now)


def report_held(
    pool: AcceleratorPoolRef,
    stored: AcceleratorPoolStatus,
    reason: str,
    message: str,
    now: float,
) -> AcceleratorPoolReport:
    """Ready=False with ``reason`` (InvalidSpec, CacheStale): nothing was planned or changed,
    so the rest of the status (the memory, the allocations) stays as it was."""
    previous = find_condition(stored.conditions, READY)
    conditions = set_condition(
        stored.conditions, READY, False, reason, message, now, pool.generation, CONDITION_ORDER
    )
    changed = previous is None or (previous.reason, previous.message) != (reason, message)
    status = stored.model_copy(
        update={"conditions": conditions, "observed_generation": pool.generation}
    )
    events = (EventRecord("Warning", reason, message),) if changed else ()
    return AcceleratorPoolReport(status=status, reason=reason, events=events)


def report_plan(tick: NodeTick) -> AcceleratorPoolReport:
    """The report of a planned tick."""
    plan, state, problem = tick.plan, tick.committed, tick.problem
    size = tick.outcome.size if tick.outcome.size is not None else tick.requested_nodes
    status = AcceleratorPoolStatus(
        observed_generation=tick.pool.generation,
        provider=tick.spec.provider.kind,
        nodes=size,
        ready_nodes=plan.ready_nodes,
        provisioning_nodes=plan.provisioning_nodes,
        failed_nodes=len(plan.failed_nodes) + plan.unregistered_failed,
        desired_nodes=size,
        accelerators=sum(v.accelerators_allocatable for v in tick.nodes if v.ready),
        accelerators_in_use=sum(v.accelerators_in_use for v in tick.nodes if v.ready),
        allocations=tuple(allocation_status(a) for a in plan.allocations),
        refused_claims=tick.refused,
        empty_nodes=_timed_nodes(state.empty_since.items()),
        failed_node_names=tuple(sorted(state.failed_nodes)),
        releasing_nodes=_timed_nodes(state.releasing.items()),
        scale_up_requested_at=_whole_seconds(state.scale_up_requested_at),
        last_scale_time=_whole_seconds(state.last_scale_time),
        last_decision_reason=plan.reason if problem is None else problem.reason,
        last_decision_message=plan.message if problem is None else problem.message,
        conditions=_conditions(tick),
    )
    return AcceleratorPoolReport(
        status=status,
        reason=status.last_decision_reason or plan.reason,
        events=_events(tick),
        kept=tick.outcome.kept,
    )


def allocation_status(allocation: InferencePoolAllocation) -> AllocationStatus:
    """One InferencePool's allocation as the status publishes it."""
    limit = allocation.limit
    return AllocationStatus(
        namespace=allocation.namespace,
        name=allocation.name,
        priority=allocation.priority,
        accelerators_per_replica=allocation.accelerators_per_replica,
        desired_replicas=allocation.desired_replicas,
        granted_replicas=allocation.granted_replicas,
        max_replicas=limit.max_replicas,
        accelerators=allocation.accelerators,
        reason=limit.reason,
        message=limit.message,
        seconds_until_more=(
            math.ceil(limit.seconds_until_more) if limit.seconds_until_more is not None else None
        ),
    )


def _whole_seconds(epoch_seconds: float | None) -> datetime | None:
    return None if epoch_seconds is None else whole_seconds(epoch_seconds)


def _timed_nodes(entries: Iterable[tuple[str, float]]) -> tuple[EmptyNode, ...]:
    return tuple(EmptyNode(name=n, since=whole_seconds(t)) for n, t in sorted(entries))


def _conditions(tick: NodeTick) -> tuple[Condition, ...]:
    plan, problem = tick.plan, tick.problem
    conditions = _set(
        tick.stored.conditions,
        READY,
        plan.ready.status,
        plan.ready.reason,
        plan.ready.message,
        tick,
    )
    limited = plan.scaling_limited
    conditions = _set(
        conditions, SCALING_LIMITED, limited.status, limited.reason, limited.message, tick
    )
    busy = plan.nodes_busy
    conditions = _set(conditions, NODES_BUSY, busy.status, busy.reason, busy.message, tick)
    if problem is not None:
        return _set(conditions, PROVIDER_ERROR, True, problem.reason, problem.message, tick)
    message = f"{tick.spec.provider.kind} provider answers"
    return _set(conditions, PROVIDER_ERROR, False, PROVIDER_REACHABLE, message, tick)


def _refused_claim_events(tick: NodeTick) -> tuple[EventRecord, ...]:
    """A Warning for each claim refused now that was not refused (for that reason) before."""
    before = {(c.namespace, c.name, c.reason) for c in tick.stored.refused_claims}
    return tuple(
        EventRecord(
            "Warning",
            CLAIM_REFUSED,
            f"Refused the claim of InferencePool {c.namespace}/{c.name} ({c.reason}): {c.message}",
        )
        for c in tick.refused
        if (c.namespace, c.name, c.reason) not in before
    )


def _events(tick: NodeTick) -> tuple[EventRecord, ...]:
    plan, outcome, problem = tick.plan, tick.outcome, tick.problem
    events: list[EventRecord] = []
    if outcome.grew:
        events.append(EventRecord("Normal", "NodesRequested", plan.message))
    if outcome.released:
        released = ", ".join(outcome.released)
        events.append(EventRecord("Normal", "NodesReleased", f"Released empty node(s): {released}"))
    if outcome.kept:
        kept = "; ".join(f"{k.name}: {k.message}" for k in outcome.kept)
        events.append(
            EventRecord("Normal", "NodesKept", f"Kept node(s) chosen for release: {kept}")
        )
    was_busy = find_condition(tick.stored.conditions, NODES_BUSY)
    if plan.nodes_busy.status and (was_busy is None or was_busy.status != "True"):
        events.append(EventRecord("Warning", NODES_BUSY, plan.nodes_busy.message))
    events.extend(
        EventRecord(
            "Warning",
            "ProvisioningFailed",
            f"Node {node} did not become Ready within provisioningTimeoutSeconds; it is not "
            "counted as coming capacity and is released",
        )
        for node in plan.newly_failed
    )
    events.extend(_refused_claim_events(tick))
    previous = find_condition(tick.stored.conditions, PROVIDER_ERROR)
    if problem is not None and (
        previous is None or previous.status != "True" or previous.reason != problem.reason
    ):
        events.append(EventRecord("Warning", problem.reason, problem.message))
    return tuple(events)
