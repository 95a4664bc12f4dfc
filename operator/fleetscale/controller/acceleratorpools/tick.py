"""One tick of one AcceleratorPool: validate -> measure -> plan -> execute -> commit -> report.

Role: the control loop that sizes a pool of accelerator nodes jointly for every InferencePool
that draws on it, as a plain async function over its ports (``AcceleratorPoolDependencies``)
with the clock passed in as ``now``. Mirrors the InferencePool tick, step for step:

1. validate the spec (Ready=False, InvalidSpec, when it does not).
2. measure: the pool's Nodes (by ``nodeLabels``) and the pods on those Nodes only; the
   InferencePools' demand from the watch-fed index (``demand``), of which only the claims
   ``spec.tenancy`` admits count (``tenancy``); the provider's size.
3. plan: the pure ``planner.capacity.plan_capacity``.
4. execute: release each chosen node that is still empty (cordon, read its pods again, release
   by name through the provider, else lift the cordon), then grow the size (``execute``).
5. commit: a node request or release enters the memory only if the provider took it.
6. report (pure) and publish: status with every InferencePool's allocation (which the
   InferencePools read back as their capacity cap), Events, one log line.

It never raises: failures become conditions and Events, and the next tick retries.
Callers: ``controller.handlers`` (the kopf daemon), tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec, AcceleratorPoolStatus
from fleetscale.caches import CacheStale
from fleetscale.controller.acceleratorpools.execute import (
    NodeOutcome,
    execute,
    node_commands,
)
from fleetscale.controller.acceleratorpools.nodes import cordons, node_views
from fleetscale.controller.acceleratorpools.ports import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
)
from fleetscale.controller.acceleratorpools.report import (
    AcceleratorPoolReport,
    NodeTick,
    report_held,
    report_invalid,
    report_plan,
)
from fleetscale.controller.acceleratorpools.tenancy import admit, labels_for
from fleetscale.controller.conditions import (
    merge_patch,
    optional_epoch,
    owned_fields,
    parse_owned,
    plain_validation_error,
    to_epoch,
)
from fleetscale.logs import get_logger
from fleetscale.nodepools.base import NodePoolProvider, ProviderError
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityPlan,
    CapacityState,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions

STATUS_FIELDS = owned_fields(AcceleratorPoolStatus)
CACHE_STALE = "CacheStale"


@dataclass(frozen=True)
class AcceleratorPoolTickResult:
    """What one AcceleratorPool tick produced."""

    status: dict[str, Any]
    patch: dict[str, Any]
    reason: str
    plan: CapacityPlan | None = None


def state_from_status(status: AcceleratorPoolStatus) -> CapacityState:
    """The node planner's memory as the last tick left it in status."""
    return CapacityState(
        empty_since={n.name: to_epoch(n.since) for n in status.empty_nodes},
        failed_nodes=frozenset(status.failed_node_names),
        scale_up_requested_at=optional_epoch(status.scale_up_requested_at),
        last_scale_time=optional_epoch(status.last_scale_time),
        releasing={n.name: to_epoch(n.since) for n in status.releasing_nodes},
    )


async def reconcile_accelerator_pool(
    pool: AcceleratorPoolRef,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any] | None,
    deps: AcceleratorPoolDependencies,
    now: float,
) -> AcceleratorPoolTickResult:
    """Run one tick for one AcceleratorPool. Never raises: failures become conditions."""
    log = get_logger("fleetscale.acceleratorpool", pool=pool.name)
    stored, _ = parse_owned(AcceleratorPoolStatus, raw_status)
    try:
        spec = AcceleratorPoolSpec.model_validate(raw_spec)
    except ValidationError as error:
        message = f"The spec is invalid and the pool is skipped: {plain_validation_error(error)}"
        report = report_invalid(pool, stored, message, now)
        plan = None
    else:
        try:
            report, plan = await _plan_and_act(pool, spec, stored, deps, now)
        except CacheStale as stale:  # never plan nodes from a view that may be old
            log.warning("acceleratorpool_held", reason=CACHE_STALE, detail=stale.detail)
            message = f"Holding: {stale}; nothing is planned or changed until it recovers."
            report, plan = report_held(pool, stored, CACHE_STALE, message, now), None
    if plan is not None:
        log.info(
            "planned",
            reason=report.reason,
            desired_nodes=plan.desired_nodes,
            requested_nodes=plan.current_nodes,
            ready_nodes=plan.ready_nodes,
            release=list(plan.release_nodes),
            kept={k.name: k.reason for k in report.kept},
            provider_error=report.reason if report.reason != plan.reason else None,
            detail=report.status.last_decision_message,
        )
    for event in report.events:
        await deps.events.post(pool.involved, event.type, event.reason, event.message)
    wire = report.status.to_wire()
    return AcceleratorPoolTickResult(
        status=wire,
        patch=merge_patch(raw_status, wire, STATUS_FIELDS),
        reason=report.reason,
        plan=plan,
    )


async def _connect(
    pool: AcceleratorPoolRef, spec: AcceleratorPoolSpec, deps: AcceleratorPoolDependencies
) -> tuple[NodePoolProvider | None, int | None, ProviderError | None]:
    """The provider, the size it holds (None: it cannot say), or why it cannot be used."""
    try:
        provider = deps.provider(pool.name, spec)  # e.g. ProviderUnavailable: extra missing
        return provider, (await provider.current()).desired, None
    except ProviderError as error:
        return None, None, error


async def _plan_and_act(
    pool: AcceleratorPoolRef,
    spec: AcceleratorPoolSpec,
    stored: AcceleratorPoolStatus,
    deps: AcceleratorPoolDependencies,
    now: float,
) -> tuple[AcceleratorPoolReport, CapacityPlan]:
    # Every index first: a tick that cannot see every claim holds (CacheStale) before it
    # has read or changed anything.
    claims = await deps.demands.demands_for(pool.name)
    labels = await labels_for(spec.tenancy, claims, deps.namespaces)
    admission = admit(spec.tenancy, claims, labels, deps.watched_namespaces)
    nodes = await deps.cluster.nodes(spec.node_labels)
    names = [str((n.get("metadata") or {}).get("name", "")) for n in nodes]
    pods = await deps.cluster.pods_on(names)
    views, provider_ids = node_views(nodes, pods, spec.resource_name, now)
    provider, requested, problem = await _connect(pool, spec, deps)
    if requested is None:  # the backend cannot say: what we last asked for, else what exists
        requested = stored.desired_nodes if stored.desired_nodes is not None else len(views)
    state = state_from_status(stored)
    observation = CapacityObservation(views, requested)
    plan, planned = plan_capacity(spec, admission.admitted, observation, state, now)
    if provider is None or problem is not None:
        outcome = NodeOutcome(error=problem)
    else:
        todo = node_commands(plan, provider_ids, cordons(nodes), planned.releasing)
        outcome = await execute(todo, provider, deps.cluster, deps.cordoner, requested)
    committed = commit_node_actions(
        planned,
        plan,
        resized=outcome.resized,
        released=outcome.released,
        now=now,
        kept=[k.name for k in outcome.kept],
    )
    tick = NodeTick(
        pool, spec, stored, views, requested, plan, committed, outcome, now, admission.refused
    )
    return report_plan(tick), plan
