"""The report step of an InferencePool tick: status, Events and metrics, as plain data.

Role: from what the tick knew before (the stored status), what it decided, what executing it
did and the state committed after it, compute everything users see: the rendered status
(conditions whose transition times move only on flips), the Events to post (ScaledUp/Down,
WouldScale*, MetricsUnavailable/Available, ScalingLimited, ShedLoadStarted/Stopped, a Warning
when Ready turns False), the gauge values and the error counts. Pure: no I/O, no clock; the tick
publishes the ``Report``. Callers: ``tick``.

Ready is True in Active and DryRun; False with the reason when the tick could not act
(ScaleFailed, ShedFlagPublishFailed, ConfigMapNotOwned) or did not run (Paused, InvalidSpec,
TargetNotFound, ReconcileError). In DryRun the shed flag is never published: status.shedLoad
says off and the ShedLoad condition says what would happen (``DryRunWouldShed``, whose
transition time keeps the would-shed start so the planner's hysteresis survives a restart).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetscale.actuators.base import EventType
from fleetscale.api.base import Condition
from fleetscale.api.inferencepool import (
    InferencePoolSpec,
    InferencePoolStatus,
    ObservedMetrics,
    ShedLoadStatus,
)
from fleetscale.controller.conditions import (
    READY,
    EventRecord,
    find_condition,
    optional_datetime,
    set_condition,
    whole_seconds,
)
from fleetscale.controller.inferencepools.execute import (
    DRY_RUN,
    GATEWAY_POLICY_CONFLICT,
    GATEWAY_POLICY_FAILED,
    SCALE_FAILED,
    Outcome,
)
from fleetscale.controller.inferencepools.memory import (
    DRY_RUN_WOULD_SHED,
    GPU_PERCENT_DECIMALS,
    METRICS_AVAILABLE,
    QUEUE_DEPTH_DECIMALS,
    SCALING_LIMITED,
    SHED_LOAD,
    history_fields,
    release_candidate_time,
    rounded,
    shed_status,
    shed_was_on,
)
from fleetscale.controller.inferencepools.ports import InferencePoolRef
from fleetscale.gateways import target_of
from fleetscale.planner.observe import CLAIM_REFUSED, TargetSize
from fleetscale.planner.readings import check_reading
from fleetscale.planner.types import Decision, MetricReading, Observation, PlannerState

CONDITION_ORDER = (READY, METRICS_AVAILABLE, SCALING_LIMITED, SHED_LOAD)

PAUSED = "Paused"


@dataclass(frozen=True)
class DecisionGauges:
    """The per-pool gauges a decision sets."""

    desired_replicas: int
    current_replicas: int
    shed_active: bool
    retry_after_seconds: int
    shed_fraction: float = 0.0


@dataclass(frozen=True)
class Report:
    """What one tick shows: status, Events, metrics, and the decisive reason."""

    status: InferencePoolStatus
    reason: str
    events: tuple[EventRecord, ...] = ()
    decision: Decision | None = None
    gauges: DecisionGauges | None = None  # None: the tick decided nothing
    # The readings the planner could use (None: a gap in the observed gauges).
    observed_queue_depth: float | None = None
    observed_gpu_utilization_percent: float | None = None
    errors: tuple[str, ...] = ()  # reasons counted in fleetscale_reconcile_errors_total
    query_problems: tuple[str, ...] = ()  # counted in fleetscale_metric_query_errors_total
    shed_off: bool = False  # a tick that did not decide turned the flag off: gauges to 0
    intent: dict[str, Any] | None = None  # the status patch that recorded a change ahead


@dataclass(frozen=True)
class Tick:
    """Everything a decided tick knew, in the order it learned it."""

    pool: InferencePoolRef
    spec: InferencePoolSpec
    stored: InferencePoolStatus
    observation: Observation
    decision: Decision
    committed: PlannerState
    outcome: Outcome
    now: float


def _conditions(
    conditions: Iterable[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: float,
    generation: int | None,
) -> tuple[Condition, ...]:
    return set_condition(
        conditions, type_, status, reason, message, now, generation, CONDITION_ORDER
    )


def report_not_ready(
    pool: InferencePoolRef,
    stored: InferencePoolStatus,
    reason: str,
    message: str,
    now: float,
    outcome: Outcome | None = None,
) -> Report:
    """Ready=False with ``reason``; everything else in status stays as it was (the memory),
    except a shed flag that was on and is now withdrawn (``outcome``): it reads off, with the
    reason.

    Nothing was read, so the observed gauges go (a gap, not a stale value). The Event is posted
    once per reason and message.
    """
    previous = find_condition(stored.conditions, READY)
    conditions = _conditions(stored.conditions, READY, False, reason, message, now, pool.generation)
    update: dict[str, Any] = {"conditions": conditions, "observed_generation": pool.generation}
    unchanged = previous is not None and (previous.reason, previous.message) == (reason, message)
    events = [] if unchanged else [EventRecord(_not_ready_type(reason), reason, message)]
    withdrawn = shed_was_on(stored) and (
        outcome is None or (outcome.shed_error is None and not outcome.gateway_withdraw_failed)
    )
    if withdrawn:
        shed_message = f"The flag is off: the pool is not reconciled ({reason})."
        update["shed_load"] = ShedLoadStatus(active=False, reason=reason)
        update["conditions"] = _conditions(
            conditions, SHED_LOAD, False, reason, shed_message, now, pool.generation
        )
        events.append(EventRecord("Normal", "ShedLoadStopped", _stopped_words(reason)))
    return Report(
        status=stored.model_copy(update=update),
        reason=reason,
        events=tuple(events),
        errors=() if reason == PAUSED else (reason,),
        shed_off=withdrawn,
    )


def _stopped_words(reason: str) -> str:
    return f"Stopped shedding load ({reason}): gateways no longer refuse traffic for this pool"


def _not_ready_type(reason: str) -> EventType:
    return "Normal" if reason == PAUSED else "Warning"


def ready_verdict(spec: InferencePoolSpec, outcome: Outcome) -> tuple[str, str]:
    """Ready's reason and message after executing: the mode, or why the tick could not act."""
    if outcome.shed_error is not None:
        return outcome.shed_error_reason, outcome.shed_error
    if outcome.gateway_error is not None:
        return gateway_reason(outcome), outcome.gateway_error
    if outcome.scale_error is not None:
        return SCALE_FAILED, outcome.scale_error
    if spec.mode == "DryRun":
        return (
            spec.mode,
            "Deciding and reporting only (DryRun): the target and the shed flag are untouched.",
        )
    return spec.mode, "Observing, deciding and scaling the target."


def gateway_reason(outcome: Outcome) -> str:
    """The reason of a failed gateway write: someone else's object, or the API."""
    return GATEWAY_POLICY_CONFLICT if outcome.gateway_conflict else GATEWAY_POLICY_FAILED


def report_decision(tick: Tick, target: TargetSize, readings: ObservedReadings) -> Report:
    """The report of a tick that decided (Active or DryRun)."""
    spec, decision, outcome = tick.spec, tick.decision, tick.outcome
    ready_reason, ready_message = ready_verdict(spec, outcome)
    conditions = decision_conditions(tick, ready_reason, ready_message)
    shed_load = _shed_load(tick)
    after = outcome.target_after or target
    status = InferencePoolStatus(
        observed_generation=tick.pool.generation,
        replicas=after.spec_replicas,
        ready_replicas=after.ready_replicas,
        desired_replicas=decision.desired_replicas,
        demand_replicas=decision.unconstrained_replicas,
        max_replicas_by_capacity=(
            tick.observation.capacity.max_replicas
            if tick.observation.capacity is not None
            else None
        ),
        accelerators_per_replica=tick.observation.accelerators_per_replica,
        observed=readings.status(),
        shed_load=shed_load,
        last_decision_reason=decision.reason,
        last_decision_message=decision.message,
        conditions=conditions,
        **history_fields(tick.committed),
    )
    return Report(
        status=status,
        reason=decision.reason if ready_reason == spec.mode else ready_reason,
        events=decision_events(tick, conditions, shed_load),
        decision=decision,
        gauges=DecisionGauges(
            desired_replicas=decision.desired_replicas,
            current_replicas=after.spec_replicas,
            shed_active=shed_load is not None and bool(shed_load.active),
            retry_after_seconds=(
                (shed_load.retry_after_seconds or 0)
                if shed_load is not None and shed_load.active
                else 0
            ),
            shed_fraction=(
                (shed_load.fraction or 0.0) if shed_load is not None and shed_load.active else 0.0
            ),
        ),
        observed_queue_depth=readings.usable_queue_depth,
        observed_gpu_utilization_percent=readings.usable_gpu_percent,
        errors=tuple(
            reason
            for reason, error in (
                (SCALE_FAILED, outcome.scale_error),
                (outcome.shed_error_reason, outcome.shed_error),
                (gateway_reason(outcome), outcome.gateway_error),
            )
            if error is not None
        ),
        query_problems=readings.problems,
        intent=None if outcome.intent is None else {"pendingScale": outcome.intent},
    )


@dataclass(frozen=True)
class ObservedReadings:
    """The readings of a tick as status and the gauges show them."""

    queue: MetricReading
    gpu: MetricReading | None
    usable_queue_depth: float | None
    usable_gpu_percent: float | None
    problems: tuple[str, ...]

    @classmethod
    def of(cls, observation: Observation, spec: InferencePoolSpec, now: float) -> ObservedReadings:
        """The gauges carry only what the planner could use (same rules): a stale or negative
        sample is a gap."""

        def usable(reading: MetricReading | None) -> float | None:
            if reading is None:
                return None
            return check_reading(
                reading,
                signal="",
                now=now,
                max_staleness_seconds=spec.metrics.max_staleness_seconds,
            ).value

        queue, gpu = observation.queue_depth, observation.gpu_utilization_percent
        problems = tuple(
            reading.problem.value
            for reading in (queue, gpu)
            if reading is not None and reading.problem is not None
        )
        return cls(queue, gpu, usable(queue), usable(gpu), problems)

    def status(self) -> ObservedMetrics:
        queue = self.queue.value if self.queue.usable else None
        gpu = self.gpu.value if self.gpu is not None and self.gpu.usable else None
        return ObservedMetrics(
            # Rounded for `kubectl get` columns; the planner got the unrounded readings.
            queue_depth=rounded(queue, QUEUE_DEPTH_DECIMALS),
            gpu_utilization_percent=rounded(gpu, GPU_PERCENT_DECIMALS),
            sampled_at=optional_datetime(self.queue.sampled_at),
        )


def _shed_load(tick: Tick) -> ShedLoadStatus | None:
    """The flag as published after this tick. A failed publish leaves the status as stored:
    it says what gateways read, and the next tick tries again from it."""
    if tick.outcome.shed_error is not None or tick.outcome.gateway_withdraw_failed:
        return tick.stored.shed_load
    shed = tick.committed.shed
    if tick.spec.mode == "DryRun":
        return ShedLoadStatus(
            active=False, reason=DRY_RUN, release_candidate_since=release_candidate_time(shed)
        )
    retry = tick.decision.shed.retry_after_seconds if tick.decision.shed.active else None
    gateway = target_of(tick.pool.namespace, tick.pool.name, tick.spec.shed_load)
    return shed_status(
        shed, retry, tick.spec.shed_load.config_map_name, gateway.key if gateway else None
    )


def decision_conditions(tick: Tick, ready_reason: str, ready_message: str) -> tuple[Condition, ...]:
    """Ready, MetricsAvailable, ScalingLimited and ShedLoad after a decision."""
    now, generation, decision = tick.now, tick.pool.generation, tick.decision
    conditions = _conditions(
        tick.stored.conditions,
        READY,
        ready_reason in ("Active", "DryRun"),
        ready_reason,
        ready_message,
        now,
        generation,
    )
    for type_, verdict in (
        (METRICS_AVAILABLE, decision.metrics_available),
        (SCALING_LIMITED, decision.scaling_limited),
    ):
        conditions = _conditions(
            conditions, type_, verdict.status, verdict.reason, verdict.message, now, generation
        )
    return _shed_condition(conditions, tick)


def _shed_condition(conditions: tuple[Condition, ...], tick: Tick) -> tuple[Condition, ...]:
    shed, now, generation = tick.decision.shed, tick.now, tick.pool.generation
    if tick.spec.mode != "DryRun":
        return _conditions(
            conditions, SHED_LOAD, shed.active, shed.reason, shed.message, now, generation
        )
    reason = DRY_RUN_WOULD_SHED if shed.active else shed.reason
    message = (
        f"DryRun, the flag stays off; would shed: {shed.message}" if shed.active else shed.message
    )
    conditions = _conditions(conditions, SHED_LOAD, False, reason, message, now, generation)
    since = tick.committed.shed.since
    if not shed.active or since is None:
        return conditions
    # Keep the would-shed start time as the transition time; the planner's hysteresis is
    # restored from it on the next tick.
    return tuple(
        c.model_copy(update={"last_transition_time": whole_seconds(since)})
        if c.type == SHED_LOAD
        else c
        for c in conditions
    )


def decision_events(
    tick: Tick, conditions: tuple[Condition, ...], shed_load: ShedLoadStatus | None
) -> tuple[EventRecord, ...]:
    """The Events a decided tick posts, in order."""
    return (
        *_external_scale_events(tick),
        *_scale_events(tick),
        *_metrics_events(tick, conditions),
        *_limited_events(tick, conditions),
        *_shed_events(tick, shed_load),
        *_ready_events(tick, conditions),
    )


def _target_words(spec: InferencePoolSpec) -> str:
    return f"{spec.target_ref.kind} {spec.target_ref.name}"


def _external_scale_events(tick: Tick) -> tuple[EventRecord, ...]:
    """A size this operator did not set: someone scaled the workload (`kubectl scale`). It is
    followed as the HPA does (the next decisions start from it), and said once."""
    last_seen, now_seen = tick.stored.replicas, tick.observation.current_replicas
    pending = tick.stored.pending_scale
    ours = pending is not None and pending.to_replicas == now_seen
    if last_seen is None or last_seen == now_seen or ours:
        return ()
    message = (
        f"{_target_words(tick.spec)} was scaled from {last_seen} to {now_seen} replicas by "
        f"someone else; fleetscale continues from {now_seen} (its next decisions may change it)"
    )
    return (EventRecord("Normal", "ScaledExternally", message),)


def _scale_events(tick: Tick) -> tuple[EventRecord, ...]:
    decision, spec = tick.decision, tick.spec
    current, desired = decision.current_replicas, decision.desired_replicas
    target = _target_words(spec)
    # The planner's message starts with "2 -> 8 replicas: "; the Event says it in words.
    why = decision.message.removeprefix(f"{current} -> {desired} replicas: ")
    if tick.outcome.scaled_to is not None:
        reason = "ScaledUp" if desired > current else "ScaledDown"
        message = f"Scaled {target} from {current} to {desired} replicas: {why}"
        return (EventRecord("Normal", reason, message),)
    if spec.mode == "DryRun" and desired != current and tick.stored.desired_replicas != desired:
        reason = "WouldScaleUp" if desired > current else "WouldScaleDown"
        message = f"DryRun: would scale {target} from {current} to {desired} replicas: {why}"
        return (EventRecord("Normal", reason, message),)
    return ()


def _changed(
    tick: Tick, conditions: tuple[Condition, ...], type_: str
) -> tuple[Condition | None, Condition | None]:
    return find_condition(tick.stored.conditions, type_), find_condition(conditions, type_)


def _metrics_events(tick: Tick, conditions: tuple[Condition, ...]) -> tuple[EventRecord, ...]:
    before, after = _changed(tick, conditions, METRICS_AVAILABLE)
    if after is None:
        return ()
    if after.status == "False":
        if before is not None and before.status == "False" and before.reason == after.reason:
            return ()
        message = (
            f"Holding {_target_words(tick.spec)} at {tick.decision.current_replicas} replicas, "
            f"metrics are unavailable ({after.reason}): {after.message}"
        )
        return (EventRecord("Warning", "MetricsUnavailable", message),)
    if before is not None and before.status == "False":
        message = f"Metrics are available again: {after.message}"
        return (EventRecord("Normal", "MetricsAvailable", message),)
    return ()


def _limited_events(tick: Tick, conditions: tuple[Condition, ...]) -> tuple[EventRecord, ...]:
    before, after = _changed(tick, conditions, SCALING_LIMITED)
    if after is not None and after.status == "True" and after.reason == CLAIM_REFUSED:
        # Said as what it is, once: the AcceleratorPool refuses this pool (spec.tenancy).
        if before is not None and (before.status, before.reason) == ("True", CLAIM_REFUSED):
            return ()
        return (EventRecord("Warning", CLAIM_REFUSED, after.message),)
    if after is None or after.status != "True" or (before is not None and before.status == "True"):
        return ()
    message = (
        f"{_target_words(tick.spec)} cannot grow past {tick.decision.desired_replicas} replicas "
        f"({after.reason}): {after.message}"
    )
    return (EventRecord("Warning", "ScalingLimited", message),)


def _shed_events(tick: Tick, shed_load: ShedLoadStatus | None) -> tuple[EventRecord, ...]:
    """ShedLoadStarted / ShedLoadStopped when what gateways read changed."""
    before = shed_was_on(tick.stored)
    after = shed_load is not None and bool(shed_load.active)
    if before == after:
        return ()
    shed = tick.decision.shed
    if after:
        message = (
            f"Shedding load: gateways should answer 429 with Retry-After "
            f"{shed.retry_after_seconds} s to {round(shed.fraction * 100)}% of requests, lower "
            f"priority first ({shed.reason}): {shed.message}; {shed.fraction_message}"
        )
        return (EventRecord("Warning", "ShedLoadStarted", message),)
    if tick.spec.mode == "DryRun":
        return (EventRecord("Normal", "ShedLoadStopped", _stopped_words(DRY_RUN)),)
    message = f"Stopped shedding load ({shed.reason}): {shed.message}"
    return (EventRecord("Normal", "ShedLoadStopped", message),)


def _ready_events(tick: Tick, conditions: tuple[Condition, ...]) -> tuple[EventRecord, ...]:
    before, after = _changed(tick, conditions, READY)
    if after is None or after.status != "False":
        return ()
    if before is not None and (before.reason, before.message) == (after.reason, after.message):
        return ()
    return (EventRecord("Warning", after.reason, after.message),)
