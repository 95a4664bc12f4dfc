"""The replica pipeline: ``plan(spec, observation, state, now) -> (decision, new_state)``.

Role: run the numbered steps in order, each returning (replicas, reason, message) as a ``Step``,
then derive the conditions, the shed flag, the decisive reason and the new planner state.
Callers: the controller's reconcile, the simulator, ``fleetscale explain``.

Steps (``Decision.steps``, by name), for a pool that reads load signals (an engine preset, or
``custom`` queries for token rates or running requests; ``load`` has the model):

1. ``metrics``     queue depth usable? If not -> hold (only ``bounds`` follows)
2. ``learn``       the capacity per replica, learned from the latency targets  (``learn``)
3. ``tokens``      replicas the served token rate needs (or ``concurrency``, the
                   requests in the system, when token rates are not read)       (``load``)
4. ``queue``       raised by a growing queue and a backlog                      (``load``)
   ``offered``     raised to what the gateway was offered (``metrics.offeredLoad``)
5. ``load``        the HPA's tolerance band on the fractional ask               (``load``)
   ``concurrency`` never below what the requests in the system need (a guard)
   ``kvcache``     KV-cache saturation guard                                    (``load``)
   ``latency``     the latency targets (``spec.slo``)                  (``latency``, ``load``)
   ``gpu``         GPU utilization gate (``metrics.gpuUtilization``)           (``signals``)
6. ``combine``     the signals' ask and the step that decided it
   ``shedding``    only for a reading sampled while shedding with no usable gateway offered
                   load: hold the ask while replicas are in flight, then grow by at most a
                   quarter per round                                            (``censor``)
   ``forecast``    with ``spec.forecast``: the demand one horizon ahead, for nodes only
7. ``stabilize``   stabilization windows over the history                      (``behavior``)
8. ``rate``        rate policies over the scale events                         (``behavior``)
9. ``capacity``    what the accelerator pool can hold                          (``limits``)
10. ``bounds``     replicas.min / replicas.max                                  (``limits``)

A pool that reads only the queue (``engine: custom`` with ``queueDepth.query``) runs the queue
rule of ``signals`` in place of steps 2-5: ``ceil(queue / targetPerReplica)``, bounded while
shedding (``censor``), with the GPU gate.

``Decision.unconstrained_replicas`` is the ask of ``combine`` (of ``shedding`` when present,
or the forecast's when larger; the current size when metrics are unavailable).
``Decision.reason`` is ``ScaledUp`` / ``ScaledDown`` when the size changes;
``MetricsUnavailable`` while holding on missing queue depth; ``ScalingDisabled`` for a target
at zero with ``replicas.min >= 1``; otherwise the reason of the step that kept the size.

State: with usable metrics the ask (``combine``, or ``shedding``) is recorded in
``recommendations``, the learned capacity in ``capacity`` and the forecast in ``forecast``;
missing metrics record none. A change of size is *not* recorded here: the caller records it
with ``commit.commit_scale`` once the target has actually been resized (as the HPA stores a
scale event only after its update succeeded), so a failed or skipped write (DryRun) never
counts against the rate policies. Histories are pruned every tick. The spec's ``mode`` is not
read here: the controller does not act in DryRun and does not call the planner when Paused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import (
    behavior,
    censor,
    forecast,
    fraction,
    latency,
    learn,
    limits,
    load,
    shed,
    signals,
)
from fleetscale.planner.behavior import Tolerances
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
COMBINE = signals.COMBINE

VALID_METRICS_FOUND = "ValidMetricsFound"
METRICS_UNAVAILABLE = "MetricsUnavailable"
SCALED_UP = "ScaledUp"
SCALED_DOWN = "ScaledDown"
AT_MAX_REPLICAS = "AtMaxReplicas"
AT_MIN_REPLICAS = "AtMinReplicas"
SCALING_DISABLED = "ScalingDisabled"

# Hold reasons of the bounds step, renamed for the decision ("holding at the maximum").
_HOLD_REASONS = {limits.MAX_REPLICAS: AT_MAX_REPLICAS, limits.MIN_REPLICAS: AT_MIN_REPLICAS}


@dataclass
class _Signals:
    """What the signal steps decided, before behavior."""

    steps: list[Step]
    ask: Step  # the last signal step's ask (before the GPU gate and combine)
    problems: list[load.Problem] = field(default_factory=list)
    censorable: bool = True  # the censored-queue rule applies while shedding
    # The queue step on the whole reading, with the gateways' refusals added back, when it
    # differs from the ask (the queue-only rule while shedding).
    raw_ask: Step | None = None
    fraction: float | None = None  # the load's fractional replicas (for the forecast)
    capacity: PlannerState | None = None  # state with the learned capacity, in load mode
    # Requests running beyond what the ready replicas carry within the latency targets: vLLM
    # admits into the running batch until memory runs out, so a backlog hides there. While the
    # pool sheds, the flag counts it with the waiting ones (see ``_shed_queue``).
    running_backlog: float = 0.0


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

    tolerances = behavior.tolerances(spec.behavior, metrics_spec.tolerance)
    readings = load.judge_readings(
        observation.load, now=now, max_staleness_seconds=metrics_spec.max_staleness_seconds
    )
    verdict = latency.judge(
        spec.slo,
        observation.load,
        request_rate=readings.started,
        ready_replicas=observation.ready_replicas,
        now=now,
        max_staleness_seconds=metrics_spec.max_staleness_seconds,
    )
    if readings.tokens_read or readings.running is not None:
        planned = _load_signals(
            spec, observation, state, now, queue_depth, readings, verdict, tolerances
        )
    else:
        planned = _queue_signals(spec, observation, state, queue_depth, tolerances)
    _guards(spec, observation, planned, readings, verdict)

    gpu_check: ReadingCheck | None = None
    gpu_step: Step | None = None
    if metrics_spec.gpu_utilization is not None:
        gpu_check = check_reading(
            observation.gpu_utilization_percent,
            signal="GPU utilization",
            now=now,
            max_staleness_seconds=metrics_spec.max_staleness_seconds,
            unit="%",
        )
        gpu_step = signals.gpu_signal(
            gpu_check,
            current,
            observation.ready_replicas,
            metrics_spec.gpu_utilization,
            tolerances,
        )
        planned.steps.append(gpu_step)
    combined = _combine(planned, gpu_step, current)
    # Whether the fleet can serve the demand is judged on the whole reading: the censor rules
    # only decide how many replicas to add, and must not drop the flag that caused them. While
    # gateways refuse a fraction of the requests, the reading is what they let through: the
    # refused share is added back (``fraction.offered_queue``), or the fleet would read as
    # not limited as soon as the gateways shed enough, and the flag would flap.
    demand = (
        combined.replicas
        if planned.raw_ask is None
        else signals.combine(planned.raw_ask, gpu_step, current).replicas
    )
    metrics_available = _metrics_verdict(gpu_step, queue_check, gpu_check, planned.problems)
    signal_steps = [
        Step(METRICS, current, metrics_available.reason, metrics_available.message),
        *planned.steps,
        combined,
    ]
    queue_uncapped = censor.gateway_not_capping(
        spec.shed_load, state.shed, observation.queue_depth, observation.ready_replicas
    )
    if planned.censorable and censor.censored(state.shed, observation.queue_depth):
        held = censor.shedding_step(
            combined,
            current_replicas=current,
            ready_replicas=observation.ready_replicas,
            last_ask=(
                _ask_since(state, now)
                if planned.capacity is not None
                else (state.recommendations[-1].replicas if state.recommendations else current)
            ),
        )
        combined = censor.uncapped_step(combined, held) if queue_uncapped else held
        signal_steps.append(combined)
    learned = planned.capacity or state
    predicted = forecast.update(spec, learned.forecast, planned.fraction, now)
    node_ask = combined.replicas
    if spec.forecast.enabled:
        ahead = forecast.forecast_step(spec, predicted, combined.replicas, now)
        signal_steps.append(ahead)
        node_ask = max(node_ask, ahead.replicas)

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
    shed_decision = _shed(
        spec, observation, state, now, limited, _shed_queue(state, queue_depth, planned)
    )
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
        unconstrained_replicas=node_ask,
    )
    new_state = replace(
        _after_tick(learned, spec, now, shed_decision),
        recommendations=behavior.record_recommendation(
            history, combined.replicas, spec.behavior, now
        ),
        forecast=predicted,
    )
    return decision, new_state


def _offered_queue_step(
    raw: Step,
    queue_depth: float,
    state: PlannerState,
    current: int,
    spec: InferencePoolSpec,
    tolerances: Tolerances,
) -> Step:
    """The queue step on the queue with the refused share added back; ``raw`` when the
    gateways refuse nothing (the flag is off, unpublished, or its fraction is 0)."""
    shed_state = state.shed
    if not (shed_state.active and shed_state.published and shed_state.fraction > 0):
        return raw
    offered = fraction.offered_queue(queue_depth, shed_state.fraction)
    return signals.queue_signal(offered, current, spec.metrics.queue_depth, tolerances)


def _ask_since(state: PlannerState, now: float) -> int:
    """The largest ask recorded since the shed flag went up (the last one before it
    included): while the gateway caps the queue, no later reading can show more. (A pool that
    reads only the queue holds its last ask instead: its first reading after a backlog counts
    the whole backlog once, ``censor``.)"""
    since = state.shed.since
    segments = behavior.segments(state.recommendations, now)
    asks = [entry.replicas for entry, end in segments if since is None or end >= since]
    return max(asks, default=0)


def _queue_signals(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    queue_depth: float,
    tolerances: Tolerances,
) -> _Signals:
    """A pool that reads only the queue: ``ceil(queue / targetPerReplica)`` (``signals``),
    counted up to the shed bound while the gateway sheds (``censor``)."""
    current = observation.current_replicas
    queue_metric = spec.metrics.queue_depth
    raw_queue_step = signals.queue_signal(queue_depth, current, queue_metric, tolerances)
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
        bounded_step = signals.queue_signal(queue_bound, current, queue_metric, tolerances)
        queue_step = censor.bounded_queue_step(
            raw_queue_step, bounded_step, current, queue_depth, queue_bound
        )
    # Whether the fleet can serve the demand is judged on the whole reading, with the
    # gateways' refusals added back (see ``plan``).
    demand_step = _offered_queue_step(raw_queue_step, queue_depth, state, current, spec, tolerances)
    return _Signals(
        steps=[queue_step],
        ask=queue_step,
        raw_ask=None if queue_step is demand_step else demand_step,
    )


def _load_signals(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    now: float,
    queue_depth: float,
    readings: load.Readings,
    verdict: latency.LatencyVerdict | None,
    tolerances: Tolerances,
) -> _Signals:
    """The load model (``load``): learn the capacity, then size on the work in the system."""
    current, ready = observation.current_replicas, observation.ready_replicas
    rho = spec.capacity.target_utilization
    work, _ = load.concurrency_fraction(readings, queue_depth, None, rho)
    tokens = readings.tokens
    per_token = tokens / ready if tokens is not None and ready > 0 else None
    per_work = work / ready if work is not None and ready > 0 else None
    known = state.capacity
    kv = readings.kv_cache.value if readings.kv_cache is not None else None
    # Evidence that the fleet carries more than it can, whatever the capacity estimate: a
    # backlog beyond the queue's target, a saturated KV cache, a gateway shedding.
    saturated = (
        queue_depth > spec.metrics.queue_depth.target_per_replica * ready
        or (kv is not None and kv * 100 >= spec.capacity.kv_cache_saturation_percent)
        or state.shed.active
    )
    overloaded = saturated or (verdict is not None and verdict.over)
    loads = learn.Loads(
        tokens=per_token,
        concurrency=per_work,
        tokens_at_plan=learn.at_plan(
            per_token, known.tokens_per_replica, rho, ready, current, tolerances
        ),
        concurrency_at_plan=learn.at_plan(
            per_work, known.concurrency_per_replica, rho, ready, current, tolerances
        ),
        saturated=saturated,
    )
    estimate, sizing, learn_step = learn.learn(
        spec, state.capacity, loads, verdict, tolerances, current, now, state.last_scale_up_time
    )
    if readings.tokens_read:
        primary = load.tokens_step(readings, sizing.tokens_per_replica, rho, current, ready)
        kappa = sizing.tokens_per_replica
    else:
        primary = load.concurrency_step(
            readings, queue_depth, sizing.concurrency_per_replica, rho, current, ready
        )
        kappa = sizing.concurrency_per_replica
    queued = load.queue_step(
        primary,
        readings,
        queue_depth,
        spec=spec,
        kappa=kappa,
        tokens_primary=readings.tokens_read,
        overloaded=overloaded,
        current=current,
        ready=ready,
    )
    steps = [learn_step, primary.step, queued.step]
    problems = [d.problem for d in (primary, queued) if d.problem is not None]
    demand = queued
    censorable = True
    if readings.offered is not None:
        demand, usable = load.offered_step(queued, readings)
        steps.append(demand.step)
        censorable = not usable
    last = state.recommendations[-1].replicas if state.recommendations else current
    ask = load.load_step(demand, current, last, tolerances)
    if demand.fraction is not None:
        ask = replace(ask, message=f"{primary.step.message}; {queued.step.message}; {ask.message}")
    steps.append(ask)
    if readings.tokens_read and readings.running is not None:
        guard = load.concurrency_guard(
            ask,
            readings,
            queue_depth,
            kappa=sizing.concurrency_per_replica,
            rho=rho,
            tolerances=tolerances,
            current=current,
            ready=ready,
        )
        steps.append(guard.step)
        ask = guard.step
        if guard.problem is not None:
            problems.append(guard.problem)
    backlog = 0.0
    running = readings.running.value if readings.running is not None else None
    if running is not None and sizing.concurrency_per_replica is not None:
        backlog = max(0.0, running - sizing.concurrency_per_replica * rho * ready)
    return _Signals(
        steps=steps,
        ask=ask,
        problems=problems,
        censorable=censorable,
        fraction=demand.fraction,
        capacity=replace(state, capacity=estimate),
        running_backlog=backlog,
    )


def _guards(
    spec: InferencePoolSpec,
    observation: Observation,
    planned: _Signals,
    readings: load.Readings,
    verdict: latency.LatencyVerdict | None,
) -> None:
    """The KV-cache saturation guard and the latency targets, on whatever the signals ask."""
    current, ready = observation.current_replicas, observation.ready_replicas
    guarded: list[load.Demand] = []
    if readings.kv_cache is not None:
        guarded.append(
            load.kv_cache_step(
                planned.ask, readings, spec.capacity.kv_cache_saturation_percent, current, ready
            )
        )
        planned.ask = guarded[-1].step
    if verdict is not None:
        guarded.append(load.latency_step(planned.ask, verdict, current, ready))
        planned.ask = guarded[-1].step
    for demand in guarded:
        planned.steps.append(demand.step)
        if demand.problem is not None:
            planned.problems.append(demand.problem)


def _combine(planned: _Signals, gpu_step: Step | None, current: int) -> Step:
    """The signals' ask (step "combine"), with the reason and words of the step that decided
    it: the GPU gate when it holds replicas; else the last guard that moved the ask (the
    concurrency, KV-cache and latency steps); else the load step (the queue step for a pool
    that reads only the queue)."""
    steps = [s for s in planned.steps if s.name != signals.GPU]
    names = [s.name for s in steps]
    base = names.index(load.LOAD) if load.LOAD in names else names.index(signals.QUEUE)
    decisive = steps[base]
    running = decisive.replicas
    for guard in steps[base + 1 :]:
        if guard.replicas != running:
            decisive, running = guard, guard.replicas
    ask = planned.ask
    if decisive.name == signals.QUEUE:
        # Only the queue: its own rule and reasons (QueueDepth, GpuBusy, ...).
        return signals.combine(replace(decisive, replicas=ask.replicas), gpu_step, current)
    if gpu_step is not None:
        gated = signals.combine(replace(decisive, replicas=ask.replicas), gpu_step, current)
        if gated.replicas != ask.replicas:
            return gated
    return Step(COMBINE, ask.replicas, decisive.reason, decisive.message)


def _metrics_verdict(
    gpu_step: Step | None,
    queue_check: ReadingCheck,
    gpu_check: ReadingCheck | None,
    problems: list[load.Problem],
) -> ConditionVerdict:
    if problems:
        first = problems[0]
        others = "; ".join(p.message for p in problems[1:])
        more = f"; {others}" if others else ""
        return ConditionVerdict(
            False,
            first.reason,
            f"{first.message}{more}; no scale-down until it is back ({queue_check.message})",
        )
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


def _shed_queue(state: PlannerState, queue_depth: float, planned: _Signals) -> float:
    """The queue the shed flag reads.

    Raising the flag reads the waiting requests alone. Once it is up, the queue stays short
    (the gateway turns arrivals away) while the running batch, which vLLM fills until memory
    runs out, still holds more than the ready replicas serve within the targets; releasing on
    the waiting requests alone would let the next arrivals in before the replicas asked for
    are ready (on the simulator's flash crowd: 0.2% of requests timed out after such a
    release). So while it is up, the backlog in the running batch counts with the queue.
    """
    if not state.shed.active:
        return queue_depth
    return queue_depth + planned.running_backlog


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
    return replace(
        state,
        scale_events=behavior.record_scale_event(state.scale_events, 0, spec.behavior, now),
        shed=shed.next_shed_state(state.shed, shed_decision, now),
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
