"""One tick of one InferencePool: validate -> measure/observe -> plan -> execute -> commit ->
report.

Role: the control loop of a pool as a plain async function over its ports
(``InferencePoolDependencies``) with the clock passed in as ``now``, so it runs the same under
kopf and in tests with the in-package fakes. Each step is a function with plain-data inputs and
outputs:

1. validate: the spec, or Ready=False (InvalidSpec); Paused stops here (Ready=False, Paused).
2. measure (``measure``, I/O) and observe (``planner.observe``, pure): the planner's input.
3. plan (``planner.plan``, pure): the decision and the planner's next memory.
4. execute (``execute``): the writes the decision asks for, and what actually happened.
5. commit (``planner.commit``, pure): a change of size enters the rate policies' history only
   if the write succeeded.
6. report (``report``, pure) and publish: status, Events, metrics, one log line.

It never raises: any failure becomes a condition, an Event, a log line and a metric, and the next
tick retries. It returns the rendered status and the merge patch to get there; the caller writes
the patch (empty when nothing changed). Callers: ``controller.handlers`` (the kopf daemon),
tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fleetscale.actuators.base import TargetNotFound
from fleetscale.api.inferencepool import InferencePoolSpec, InferencePoolStatus
from fleetscale.caches import CacheStale
from fleetscale.controller.conditions import (
    READY,
    apply_merge_patch,
    find_condition,
    plain_validation_error,
)
from fleetscale.controller.inferencepools.conflicts import (
    CONFLICTING_AUTOSCALER,
    conflicting,
    target_key,
)
from fleetscale.controller.inferencepools.execute import commands, execute, withdrawal_commands
from fleetscale.controller.inferencepools.hold import CACHE_STALE, report_held
from fleetscale.controller.inferencepools.measure import Sensors, measure, observation_of
from fleetscale.controller.inferencepools.memory import (
    memory_at_tick,
    parse_status,
    status_patch,
    worth_writing,
)
from fleetscale.controller.inferencepools.ports import InferencePoolDependencies, InferencePoolRef
from fleetscale.controller.inferencepools.report import (
    PAUSED,
    ObservedReadings,
    Report,
    Tick,
    report_decision,
    report_not_ready,
)
from fleetscale.logs import get_logger
from fleetscale.planner.commit import commit_scale
from fleetscale.planner.types import Decision

INVALID_SPEC = "InvalidSpec"
TARGET_NOT_FOUND = "TargetNotFound"
RECONCILE_ERROR = "ReconcileError"
DELETED = "Deleted"


@dataclass(frozen=True)
class ReconcileResult:
    """What one tick produced."""

    status: dict[str, Any]  # the full rendered status (our fields)
    patch: dict[str, Any]  # merge patch from the stored status; empty = nothing to write
    reason: str  # the decisive reason of this tick (also the Ready/decision reason)
    decision: Decision | None = None
    # The status as stored once this tick recorded a change ahead of time (None: it did not):
    # what the patch applies to, and the truth until the patch is written.
    stored_before_patch: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NotReady:
    """Why a tick stops before deciding."""

    reason: str
    message: str


def validate(raw_spec: Mapping[str, Any]) -> InferencePoolSpec | NotReady:
    """The typed spec, or why the pool is not reconciled (invalid, Paused)."""
    try:
        spec = InferencePoolSpec.model_validate(raw_spec)
    except ValidationError as error:
        message = f"The spec is invalid and the pool is skipped: {plain_validation_error(error)}"
        return NotReady(INVALID_SPEC, message)
    if spec.mode == "Paused":
        return NotReady(PAUSED, "Paused by spec.mode: nothing is read, decided or changed.")
    return spec


async def refuse_to_fight(
    pool: InferencePoolRef, spec: InferencePoolSpec, deps: InferencePoolDependencies
) -> tuple[str, str] | None:
    """Why this pool must not act, if another controller sizes its workload (reason, message).
    A DryRun pool writes nothing: it may run beside another autoscaler. Raises CacheStale
    when the indexes cannot vouch for every controller."""
    if deps.controllers is None or spec.mode != "Active":
        return None
    target = spec.target_ref
    key = target_key(pool.namespace, target.api_version, target.kind, target.name)
    other = conflicting(pool.namespace, pool.name, await deps.controllers.controllers_of(key))
    if other is None:
        return None
    return CONFLICTING_AUTOSCALER, (
        f"{other} also sizes {target.kind} {target.name}: this pool does not act, so that the "
        "two do not fight over its replicas. Remove one of them, or set this pool to Paused."
    )


def sensors_of(deps: InferencePoolDependencies) -> Sensors:
    return Sensors(
        signals=deps.signals,
        scaler=deps.scaler,
        secrets=deps.secrets,
        settings=deps.settings,
        allocations=deps.allocations,
        credential_files=deps.credential_files,
        monotonic=deps.monotonic,
    )


async def reconcile(
    pool: InferencePoolRef,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any] | None,
    deps: InferencePoolDependencies,
    now: float,
    tick: float | None = None,
) -> ReconcileResult:
    """Run one tick for one pool. Never raises for anything that goes wrong inside.

    ``now`` is the decision time (epoch seconds); ``tick`` is the scheduled tick shared by
    pools with the same interval, used to share Prometheus queries (default: ``now``).
    """
    started = deps.monotonic()
    log = get_logger("fleetscale.reconcile", namespace=pool.namespace, pool=pool.name)
    stored, status_problem = parse_status(raw_status)
    if status_problem:
        log.warning("status_unreadable", reason="StatusUnreadable", detail=status_problem)
    try:
        report = await _decide_and_act(pool, raw_spec, stored, deps, now, tick or now)
    except Exception as error:  # a bad pool must never stop the others
        log.exception("reconcile_failed", reason=RECONCILE_ERROR)
        message = f"Reconcile failed, retrying at the next tick: {type(error).__name__}: {error}"
        report = report_not_ready(pool, stored, RECONCILE_ERROR, message, now)
    wire = report.status.to_wire()
    # A change recorded ahead of time is in the stored status now: the patch settles it.
    base = raw_status if report.intent is None else apply_merge_patch(raw_status, report.intent)
    patch = status_patch(base, wire)
    if report.decision is not None:
        patch = worth_writing(patch)
    try:
        await publish(pool, report, deps, log, changed=bool(patch))
    finally:
        deps.metrics.reconcile_duration_seconds.observe(deps.monotonic() - started)
    return ReconcileResult(
        status=wire,
        patch=patch,
        reason=report.reason,
        decision=report.decision,
        stored_before_patch=None if report.intent is None else base,
    )


async def _decide_and_act(
    pool: InferencePoolRef,
    raw_spec: Mapping[str, Any],
    stored: InferencePoolStatus,
    deps: InferencePoolDependencies,
    now: float,
    tick: float,
) -> Report:
    spec = validate(raw_spec)
    if isinstance(spec, NotReady):
        fallback = None if spec.reason == INVALID_SPEC else _config_map_of(raw_spec)
        return await _not_ready(pool, stored, spec.reason, spec.message, fallback, deps, now)
    try:
        refusal = await refuse_to_fight(pool, spec, deps)
        if refusal is not None:
            fallback = spec.shed_load.config_map_name
            return await _not_ready(pool, stored, *refusal, fallback, deps, now)
        measured = await measure(pool.namespace, pool.name, spec, sensors_of(deps), tick)
    except TargetNotFound as error:
        target = spec.target_ref
        message = f"Cannot scale {target.kind} {target.name}: {error}"
        fallback = spec.shed_load.config_map_name
        return await _not_ready(pool, stored, TARGET_NOT_FOUND, message, fallback, deps, now)
    except CacheStale as stale:  # never decide from a view that may be old or partial
        # The cache warned once; the first held tick of each pool logs at warning (publish).
        get_logger("fleetscale.reconcile", namespace=pool.namespace, pool=pool.name).debug(
            "held", reason=CACHE_STALE, detail=stale.detail
        )
        message = f"Holding: {stale}; nothing is read or changed until it recovers."
        return report_held(pool, stored, CACHE_STALE, message, now)
    if measured.query_seconds is not None:
        deps.metrics.metric_query_duration_seconds.observe(measured.query_seconds)
    observation = observation_of(spec, measured)
    state = memory_at_tick(stored, spec, measured.target.spec_replicas, now)
    decision, planned = deps.plan(spec, observation, state, now)
    outcome = await execute(pool, commands(pool, spec, decision, planned, stored), deps, now)
    committed = commit_scale(
        planned, outcome.applied_delta(decision.current_replicas), spec.behavior, now
    )
    facts = Tick(pool, spec, stored, observation, decision, committed, outcome, now)
    return report_decision(facts, measured.target, ObservedReadings.of(observation, spec, now))


def _config_map_of(raw_spec: Mapping[str, Any]) -> str | None:
    """The shed ConfigMap a valid spec names (for a Paused pool, whose spec validated)."""
    return InferencePoolSpec.model_validate(raw_spec).shed_load.config_map_name


async def _not_ready(
    pool: InferencePoolRef,
    stored: InferencePoolStatus,
    reason: str,
    message: str,
    fallback_config_map: str | None,
    deps: InferencePoolDependencies,
    now: float,
) -> Report:
    """A tick that does not decide: the shed flag, if it was on, goes off; then the report."""
    todo = withdrawal_commands(stored, reason, fallback_config_map, pool.namespace)
    outcome = await execute(pool, todo, deps, now) if todo.withdraws else None
    return report_not_ready(pool, stored, reason, message, now, outcome)


async def withdraw_shed_flag_of_deleted_pool(
    key: tuple[str, str], body: Mapping[str, Any], deps: InferencePoolDependencies
) -> None:
    """A deleted pool that was shedding turns its flag off before the garbage collector removes
    the ConfigMap (gateways that cached the flag see it go off, not vanish); its memory of
    published flags goes."""
    stored, _ = parse_status(body.get("status"))
    pool = InferencePoolRef(key[0], key[1], (body.get("metadata") or {}).get("uid"))
    todo = withdrawal_commands(stored, DELETED, None, key[0])
    if todo.withdraws:
        outcome = await execute(pool, todo, deps, time.time())
        problem = outcome.shed_error or outcome.gateway_error
        if problem is not None:  # the ConfigMap may be gone already: nothing to do
            get_logger("fleetscale.reconcile", namespace=key[0], pool=key[1]).info(
                "shed_flag_not_withdrawn", reason=DELETED, detail=problem
            )
    for published in [k for k in deps.published_flags if k[:2] == key]:
        del deps.published_flags[published]
    for written in [k for k in deps.gateway_orders if k[:2] == key]:
        del deps.gateway_orders[written]


async def publish(
    pool: InferencePoolRef,
    report: Report,
    deps: InferencePoolDependencies,
    log: Any,
    *,
    changed: bool,
) -> None:
    """Post the report's Events, set its metrics and log the tick.

    One line per change at info (warning when the pool is not reconciled); the unchanged ticks
    of a steady fleet (every pool, every poll) only at debug, where they cost nothing unless
    asked for.
    """
    for event in report.events:
        await deps.events.post(pool.involved, event.type, event.reason, event.message)
    metrics, labels = deps.metrics, (pool.namespace, pool.name)
    for reason in report.errors:
        metrics.reconcile_errors_total.labels(*labels, reason).inc()
    for problem in report.query_problems:
        metrics.metric_query_errors_total.labels(problem).inc()
    metrics.set_observed(
        pool.namespace,
        pool.name,
        report.observed_queue_depth,
        report.observed_gpu_utilization_percent,
    )
    if report.shed_off:
        metrics.shed_active.labels(*labels).set(0)
        metrics.shed_retry_after_seconds.labels(*labels).set(0)
        metrics.shed_fraction.labels(*labels).set(0)
    gauges, decision = report.gauges, report.decision
    if gauges is None or decision is None:
        ready = find_condition(report.status.conditions, READY)
        level = log.debug if not changed else log.info if report.reason == PAUSED else log.warning
        level("not_reconciled", reason=report.reason, detail=ready.message if ready else "")
        return
    metrics.decisions_total.labels(*labels, decision.reason).inc()
    metrics.desired_replicas.labels(*labels).set(gauges.desired_replicas)
    metrics.current_replicas.labels(*labels).set(gauges.current_replicas)
    metrics.shed_active.labels(*labels).set(1 if gauges.shed_active else 0)
    metrics.shed_retry_after_seconds.labels(*labels).set(gauges.retry_after_seconds)
    metrics.shed_fraction.labels(*labels).set(gauges.shed_fraction)
    queue = report.observed_queue_depth
    (log.info if changed else log.debug)(
        "decided",
        reason=decision.reason,
        current_replicas=decision.current_replicas,
        desired_replicas=decision.desired_replicas,
        ready_replicas=report.status.ready_replicas,
        queue_depth=queue,
        queue_problem=report.query_problems[0] if queue is None and report.query_problems else None,
        accelerators_per_replica=report.status.accelerators_per_replica,
        shed=decision.shed.active,
        detail=decision.message,
    )
