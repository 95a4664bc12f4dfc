"""The replica pipeline: ``plan(spec, observation, state, now) -> (decision, new_state)``.

Role: run the numbered steps in order, each returning (replicas, reason, message) as a ``Step``,
then derive the conditions, the shed flag, the decisive reason and the new planner state.
Callers: the controller's reconcile, the simulator, ``fleetscale explain``.

Steps (``Decision.steps``, by name):

1. ``metrics``   readings usable? Queue depth unusable -> hold (only ``bounds`` follows).
2. ``queue``     replicas the waiting requests ask for            (``signals``); while the
                 shed flag is on, waiting counts up to threshold x ready (``censor``)
3. ``gpu``       replicas GPU utilization asks for, if configured  (``signals``)
4. ``combine``   queue drives scale-up, GPU gates scale-down       (``signals``)
   ``shedding``  only for a reading sampled while shedding: hold the ask while replicas are
                 in flight, then grow by at most a quarter per round (``censor``)
5. ``stabilize`` stabilization windows over the history           (``behavior``)
6. ``rate``      rate policies over the scale events               (``behavior``)
7. ``capacity``  what the accelerator pool can hold                (``limits``)
8. ``bounds``    replicas.min / replicas.max                       (``limits``)

``Decision.unconstrained_replicas`` is the output of ``combine`` (of ``shedding`` when present;
the current size when metrics are unavailable). ``Decision.reason`` is ``ScaledUp`` /
``ScaledDown`` when the size changes; ``MetricsUnavailable`` while holding on missing queue
depth; otherwise the reason of the step that kept the size (``WithinTolerance``, ``GpuBusy``,
``ReplicasInFlight``, ``ScaleDownStabilized``, ``ScaleUpRateLimited``, ``AtMaxReplicas``,
``AtMinReplicas``, a capacity reason such as ``MaxNodes`` ...).

State: with usable metrics the raw ask (step 4, or ``shedding``) is recorded in
``recommendations``; missing metrics record none. A change of size is *not* recorded here: the
caller records it with ``commit.commit_scale`` once the target has actually been resized (as
the HPA stores a scale event only after its update succeeded), so a failed or skipped write
(DryRun) never counts against the rate policies. Histories are pruned every tick. The spec's
``mode`` is not read here: the controller does not act in DryRun and does not call the planner
when Paused.
"""

from __future__ import annotations

from dataclasses import replace

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import behavior, censor, limits, shed, signals
from fleetscale.planner.readings import ReadingCheck, check_reading
from fleetscale.planner.types import (
    ConditionVerdict,
    Decision,
    MetricProblem,
    Observation,
    PlannerState,
    ShedDecision,
    Step,
)

METRICS = "metrics"

VALID_METRICS_FOUND = "ValidMetricsFound"
METRICS_UNAVAILABLE = "MetricsUnavailable"
SCALED_UP = "ScaledUp"
SCALED_DOWN = "ScaledDown"
AT_MAX_REPLICAS = "AtMaxReplicas"
AT_MIN_REPLICAS = "AtMinReplicas"
SCALING_DISABLED = "ScalingDisabled"

# Hold reasons of the bounds step, renamed for the decision ("holding at the maximum").
_HOLD_REASONS = {limits.MAX_REPLICAS: AT_MAX_REPLICAS, limits.MIN_REPLICAS: AT_MIN_REPLICAS}


def plan(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState, now: float
) -> tuple[Decision, PlannerState]:
    """Decide one tick for one InferencePool. Pure: same inputs, same outputs."""
    observation = replace(observation, capacity=limits.binding_capacity(observation.capacity))
    current = observation.current_replicas
    metrics_spec = spec.metrics
    queue_check = check_reading(
        observation.queue_depth,
        signal="queue depth",
        now=now,
        max_staleness_seconds=metrics_spec.max_staleness_seconds,
    )
    queue_depth = queue_check.value
    if current == 0 and spec.replicas.min >= 1:
        return _scaling_disabled(spec, observation, state, now, queue_check)
    if queue_depth is None:
        return _hold_without_metrics(spec, observation, state, now, queue_check)

    gpu_check: ReadingCheck | None = None
    if metrics_spec.gpu_utilization is not None:
        gpu_check = check_reading(
            observation.gpu_utilization_percent,
            signal="GPU utilization",
            now=now,
            max_staleness_seconds=metrics_spec.max_staleness_seconds,
            unit="%",
        )

    tolerances = behavior.tolerances(spec.behavior, metrics_spec.tolerance)
    raw_queue_step = signals.queue_signal(
        queue_depth, current, metrics_spec.queue_depth, tolerances
    )
    queue_step = raw_queue_step
    queue_uncapped = censor.gateway_not_capping(
        spec.shed_load, state.shed, observation.queue_depth, observation.ready_replicas
    )
    queue_bound = (
        None
        if queue_uncapped
        else censor.queue_bound(spec.shed_load, state.shed, observation.ready_replicas)
    )
    if queue_bound is not None and queue_depth > queue_bound and raw_queue_step.replicas > current:
        bounded_step = signals.queue_signal(
            queue_bound, current, metrics_spec.queue_depth, tolerances
        )
        queue_step = censor.bounded_queue_step(
            raw_queue_step, bounded_step, current, queue_depth, queue_bound
        )
    gpu_step: Step | None = None
    if gpu_check is not None and metrics_spec.gpu_utilization is not None:
        gpu_step = signals.gpu_signal(
            gpu_check,
            current,
            observation.ready_replicas,
            metrics_spec.gpu_utilization,
            tolerances,
        )
    metrics_available = _metrics_verdict(gpu_step, queue_check, gpu_check)
    combined = signals.combine(queue_step, gpu_step, current)
    # Whether the fleet can serve the demand is judged on the whole reading: the censor rules
    # only decide how many replicas to add, and must not drop the flag that caused them.
    demand = (
        combined.replicas
        if queue_step is raw_queue_step
        else signals.combine(raw_queue_step, gpu_step, current).replicas
    )
    signal_steps = [
        Step(METRICS, current, metrics_available.reason, metrics_available.message),
        queue_step,
        *([gpu_step] if gpu_step is not None else []),
        combined,
    ]
    if not queue_uncapped and censor.censored(state.shed, observation.queue_depth):
        combined = censor.shedding_step(
            combined,
            current_replicas=current,
            ready_replicas=observation.ready_replicas,
            last_ask=state.recommendations[-1].replicas if state.recommendations else current,
        )
        signal_steps.append(combined)

    history = behavior.seeded(state.recommendations, current, now)
    stabilized = behavior.stabilize(combined.replicas, current, history, spec.behavior, now)
    rated = behavior.rate_limit(
        stabilized.replicas, current, state.scale_events, spec.behavior, now
    )
    capped = limits.cap_to_capacity(rated.replicas, current, observation.capacity)
    bounded = limits.clamp_to_bounds(capped.replicas, spec.replicas)
    constraint_steps = [stabilized, rated, capped, bounded]
    desired = bounded.replicas

    limited = limits.scaling_limited(
        demand=demand,
        desired_replicas=desired,
        current_replicas=current,
        ready_replicas=observation.ready_replicas,
        bounds=spec.replicas,
        capacity=observation.capacity,
    )
    shed_decision = _shed(spec, observation, state, now, limited, queue_depth)
    reason, message = _summarize(current, desired, combined, constraint_steps)
    decision = Decision(
        current_replicas=current,
        desired_replicas=desired,
        reason=reason,
        message=message,
        steps=(*signal_steps, *constraint_steps),
        metrics_available=metrics_available,
        scaling_limited=limited,
        shed=shed_decision,
        unconstrained_replicas=combined.replicas,
    )
    new_state = replace(
        _after_tick(state, spec, now, shed_decision),
        recommendations=behavior.record_recommendation(
            history, combined.replicas, spec.behavior, now
        ),
    )
    return decision, new_state


def _metrics_verdict(
    gpu_step: Step | None, queue_check: ReadingCheck, gpu_check: ReadingCheck | None
) -> ConditionVerdict:
    if gpu_step is not None and gpu_step.reason == signals.GPU_UNAVAILABLE:
        return ConditionVerdict(
            False,
            signals.GPU_UNAVAILABLE,
            f"{gpu_step.message}; queue depth still drives scale-up ({queue_check.message})",
        )
    message = queue_check.message
    if gpu_check is not None:
        message += f"; {gpu_check.message}"
    return ConditionVerdict(True, VALID_METRICS_FOUND, message)


def _hold_without_metrics(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    now: float,
    queue_check: ReadingCheck,
) -> tuple[Decision, PlannerState]:
    """Never move on missing data; only the user's bounds may still change the size."""
    current = observation.current_replicas
    problem = (queue_check.problem or MetricProblem.NO_DATA).value
    held = Step(METRICS, current, problem, queue_check.message)
    bounded = limits.clamp_to_bounds(current, spec.replicas)
    desired = bounded.replicas
    limited = limits.scaling_limited(
        demand=None,
        desired_replicas=desired,
        current_replicas=current,
        ready_replicas=observation.ready_replicas,
        bounds=spec.replicas,
        capacity=observation.capacity,
    )
    shed_decision = _shed(spec, observation, state, now, limited, None)
    if desired == current:
        reason, message = METRICS_UNAVAILABLE, f"holding {current} replicas: {held.message}"
    else:
        reason = SCALED_UP if desired > current else SCALED_DOWN
        message = f"{current} -> {desired} replicas: {bounded.message} ({queue_check.message})"
    decision = Decision(
        current_replicas=current,
        desired_replicas=desired,
        reason=reason,
        message=message,
        steps=(held, bounded),
        metrics_available=ConditionVerdict(False, problem, queue_check.message),
        scaling_limited=limited,
        shed=shed_decision,
        unconstrained_replicas=current,
    )
    return decision, _after_tick(state, spec, now, shed_decision)


def _scaling_disabled(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    now: float,
    queue_check: ReadingCheck,
) -> tuple[Decision, PlannerState]:
    """A target scaled to zero while replicas.min is at least one: the autoscaler stands aside,
    as the HPA does (``ScalingDisabled``), until someone scales the target up again."""
    message = (
        f"scaling is disabled since the replica count of the target is zero and replicas.min "
        f"is {spec.replicas.min}; scale the target to one replica or more to resume"
    )
    disabled = ConditionVerdict(False, SCALING_DISABLED, message)
    shed_decision = _shed(spec, observation, state, now, disabled, queue_check.value)
    metrics_available = (
        ConditionVerdict(True, VALID_METRICS_FOUND, queue_check.message)
        if queue_check.usable
        else ConditionVerdict(
            False, (queue_check.problem or MetricProblem.NO_DATA).value, queue_check.message
        )
    )
    decision = Decision(
        current_replicas=0,
        desired_replicas=0,
        reason=SCALING_DISABLED,
        message=f"holding 0 replicas: {message}",
        steps=(Step(limits.BOUNDS, 0, SCALING_DISABLED, message),),
        metrics_available=metrics_available,
        scaling_limited=disabled,
        shed=shed_decision,
        unconstrained_replicas=0,
    )
    return decision, _after_tick(state, spec, now, shed_decision)


def _shed(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    now: float,
    limited: ConditionVerdict,
    queue_depth: float | None,
) -> ShedDecision:
    return shed.decide_shed(
        spec=spec.shed_load,
        limit=limited,
        queue_depth=queue_depth,
        ready_replicas=observation.ready_replicas,
        previous=state.shed,
        retry=shed.RetryInputs(
            capacity=observation.capacity,
            replica_startup_seconds=observation.replica_startup_seconds,
            last_scale_time=state.last_scale_time,
            poll_interval_seconds=spec.poll_interval_seconds,
            now=now,
        ),
    )


def _after_tick(
    state: PlannerState, spec: InferencePoolSpec, now: float, shed_decision: ShedDecision
) -> PlannerState:
    """The state after this tick's shed decision, with the scale history pruned (a change of
    size is recorded by ``commit.commit_scale`` once it happened)."""
    return PlannerState(
        recommendations=state.recommendations,
        scale_events=behavior.record_scale_event(state.scale_events, 0, spec.behavior, now),
        shed=shed.next_shed_state(state.shed, shed_decision, now),
        last_scale_time=state.last_scale_time,
    )


def _summarize(current: int, desired: int, ask: Step, constraints: list[Step]) -> tuple[str, str]:
    """The decisive reason and a one-line message.

    ``ask`` is the "combine" step (what the signals want); ``constraints`` are the steps after
    it, in order. The decisive constraint is the last one that changed the number.
    """
    limiting = [
        after
        for before, after in zip([ask, *constraints], constraints, strict=False)
        if after.replicas != before.replicas
    ]
    if desired != current:
        reason = SCALED_UP if desired > current else SCALED_DOWN
        message = f"{current} -> {desired} replicas: {ask.message}"
        if ask.replicas != desired:
            message += f" (asks for {ask.replicas})"
        if limiting:
            message += f"; {limiting[-1].message}"
        return reason, message
    if not limiting:
        return ask.reason, f"holding {current} replicas: {ask.message}"
    decisive = limiting[-1]
    return (
        _HOLD_REASONS.get(decisive.reason, decisive.reason),
        f"holding {current} replicas: {ask.message} (asks for {ask.replicas}); {decisive.message}",
    )
