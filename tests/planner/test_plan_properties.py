"""Properties of ``plan`` that must hold for every spec, observation and remembered state.

Bounds always hold; more load never gives fewer replicas; constant load converges and then
stays put without flapping; missing data never scales down; shed only when limited; the same
inputs give the same decision; every reason is CamelCase; the remembered history stays small.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from dataclasses import replace
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from planner_builders import NOW, load_spec, make_spec, plan_and_commit

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import behavior, learn
from fleetscale.planner.fraction import smoothing_weight
from fleetscale.planner.types import (
    CapacityEstimate,
    CapacityLimit,
    Decision,
    LoadReadings,
    MetricProblem,
    MetricReading,
    Observation,
    PlannerState,
    ShedState,
    TimedDelta,
    TimedReplicas,
)

CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z]*$")
CAPACITY_REASONS = ("MaxNodes", "NodesProvisioning", "Quota", "CapacityAvailable")


@functools.cache
def _policies(max_period: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    policy = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Pods", "Percent"]),
            "value": st.integers(1, 200),
            "periodSeconds": st.integers(1, max_period),
        }
    )
    return st.lists(policy, max_size=3)


@functools.cache
def _rules(max_window: int, max_period: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "stabilizationWindowSeconds": st.integers(0, max_window),
            "selectPolicy": st.sampled_from(["Max", "Max", "Min", "Disabled"]),
            "policies": _policies(max_period),
        }
    )


_RELEASE_SHARE = st.none() | st.floats(0, 0.99)


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    max_replicas: int = 40,
    max_window: int = 300,
    max_period: int = 120,
    gpu: bool | None = None,
) -> InferencePoolSpec:
    min_replicas = draw(st.integers(0, min(10, max_replicas)))
    with_gpu = draw(st.booleans()) if gpu is None else gpu
    threshold = draw(st.floats(1, 100))
    release_share = draw(_RELEASE_SHARE)
    shed_load: dict[str, Any] = {
        "enabled": draw(st.booleans()),
        "queuePerReplicaThreshold": threshold,
        "releaseAfterSeconds": draw(st.sampled_from([0, 30]) | st.integers(0, max_window)),
    }
    if release_share is not None:
        shed_load["releaseQueuePerReplica"] = threshold * release_share
    return make_spec(
        min_replicas=min_replicas,
        max_replicas=draw(st.integers(max(min_replicas, 1), max_replicas)),
        target_per_replica=draw(st.floats(0.5, 50)),
        gpu_target_percent=draw(st.floats(20, 100)) if with_gpu else None,
        tolerance=draw(st.sampled_from([0.0, 0.05, 0.1, 0.3])),
        max_staleness_seconds=draw(st.integers(1, 600)),
        scale_up=draw(_rules(max_window, max_period)),
        scale_down=draw(_rules(max_window, max_period)),
        shed_load=shed_load,
        poll_interval_seconds=draw(st.integers(5, 60)),
    )


def _fresh(values: st.SearchStrategy[float]) -> st.SearchStrategy[MetricReading]:
    return st.builds(lambda value, age: MetricReading.ok(value, NOW - age), values, st.floats(0, 1))


_PROBLEMS = st.sampled_from([p for p in MetricProblem if p is not MetricProblem.STALE]).map(
    MetricReading.failed
)
_UNUSABLE = st.one_of(
    _PROBLEMS,
    st.sampled_from([math.nan, math.inf, -math.inf, -1.0]).map(lambda v: MetricReading.ok(v, NOW)),
    st.floats(601, 10_000).map(lambda age: MetricReading.ok(10.0, NOW - age)),  # stale
    st.just(MetricReading(value=5.0, sampled_at=None)),
)
_QUEUE = st.floats(0, 2000)
_UTIL = st.floats(0, 100)
_CAPACITY = st.none() | st.builds(
    CapacityLimit,
    max_replicas=st.integers(0, 50),
    reason=st.sampled_from(CAPACITY_REASONS),
    seconds_until_more=st.none() | st.floats(0, 1000),
)


_CURRENT = st.integers(0, 50)
_ANY_QUEUE = _fresh(_QUEUE) | _UNUSABLE
_ANY_GPU = st.none() | _fresh(_UTIL) | _UNUSABLE
_STARTUP = st.none() | st.floats(0, 600)


@st.composite
def observations(
    draw: st.DrawFn,
    *,
    queue: st.SearchStrategy[MetricReading] | None = None,
    gpu: st.SearchStrategy[MetricReading | None] | None = None,
) -> Observation:
    current = draw(_CURRENT)
    return Observation(
        current_replicas=current,
        ready_replicas=draw(st.integers(0, current + 2)),
        queue_depth=draw(queue if queue is not None else _ANY_QUEUE),
        gpu_utilization_percent=draw(gpu if gpu is not None else _ANY_GPU),
        capacity=draw(_CAPACITY),
        replica_startup_seconds=draw(_STARTUP),
    )


_PAST = st.floats(0, 700).map(lambda age: NOW - age)

states = st.builds(
    PlannerState,
    recommendations=st.lists(
        st.builds(TimedReplicas, time=_PAST, replicas=st.integers(0, 60)), max_size=12
    ).map(tuple),
    scale_events=st.lists(
        st.builds(TimedDelta, time=_PAST, delta=st.integers(-20, 20).filter(bool)), max_size=6
    ).map(tuple),
    shed=st.builds(
        ShedState,
        active=st.booleans(),
        since=st.none() | _PAST,
        reason=st.sampled_from(["NotLimited", "MaxReplicas", "MaxNodes", "QueueBelowRelease"]),
        release_candidate_since=st.none() | _PAST,
    ),
    last_scale_time=st.none() | _PAST,
)


def _reasons(decision: Decision) -> list[str]:
    return [
        decision.reason,
        decision.metrics_available.reason,
        decision.scaling_limited.reason,
        decision.shed.reason,
        *(step.reason for step in decision.steps),
    ]


@given(spec=specs(), observation=observations(), state=states)
def test_bounds_always_hold(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, _ = plan_and_commit(spec, observation, state, NOW)
    assert decision.steps[-1].replicas == decision.desired_replicas
    if observation.current_replicas == 0 and spec.replicas.min >= 1:
        # A target scaled to zero disables scaling, as the HPA (ScalingDisabled).
        assert decision.desired_replicas == 0
        assert decision.reason == "ScalingDisabled"
        return
    assert spec.replicas.min <= decision.desired_replicas <= spec.replicas.max


@given(
    spec=specs(),
    observation=observations(queue=_fresh(_QUEUE), gpu=st.none() | _fresh(_UTIL) | _UNUSABLE),
    state=states,
    more_queue=st.floats(0, 2000),
    more_util=st.floats(0, 100),
)
def test_more_load_never_gives_fewer_replicas(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    more_queue: float,
    more_util: float,
) -> None:
    def heavier(reading: MetricReading | None, extra: float, cap: float) -> MetricReading | None:
        # A negative value is unusable to the planner (NegativeValue); adding load must not
        # turn it into a usable reading (that would compare "unknown" with "known").
        if reading is None or not reading.usable or reading.value is None or reading.value < 0:
            return reading
        # Same timestamp, so a stale sample stays stale (0.0 is a timestamp, not a missing one).
        sampled_at = NOW if reading.sampled_at is None else reading.sampled_at
        return MetricReading.ok(min(reading.value + extra, cap), sampled_at)

    busier = Observation(
        current_replicas=observation.current_replicas,
        ready_replicas=observation.ready_replicas,
        queue_depth=heavier(observation.queue_depth, more_queue, math.inf)
        or observation.queue_depth,
        gpu_utilization_percent=heavier(observation.gpu_utilization_percent, more_util, 100),
        capacity=observation.capacity,
        replica_startup_seconds=observation.replica_startup_seconds,
    )
    light, _ = plan_and_commit(spec, observation, state, NOW)
    heavy, _ = plan_and_commit(spec, busier, state, NOW)
    assert light.desired_replicas <= heavy.desired_replicas
    assert light.unconstrained_replicas <= heavy.unconstrained_replicas


@given(
    spec=specs(max_replicas=20, max_window=90, max_period=60),
    start=st.integers(0, 25),
    queue=st.floats(0, 300),
    util=st.none() | _UTIL,
    capacity=_CAPACITY,
)
def test_constant_load_converges_and_stays_put(
    spec: InferencePoolSpec,
    start: int,
    queue: float,
    util: float | None,
    capacity: CapacityLimit | None,
) -> None:
    """Replicas start serving at once and the load does not react: a fixed point must come."""
    poll = spec.poll_interval_seconds
    horizon = max(
        behavior.longest_window_seconds(spec.behavior),
        behavior.longest_period_seconds(spec.behavior),
        spec.shed_load.release_after_seconds,
    )
    # After this many unchanged ticks every window and period holds only the fixed point.
    settle_ticks = math.ceil(horizon / poll) + 2
    # While the flag is on, the published fraction has its own dynamics: it moves towards its
    # target by at least weight x deadband per tick (or a whole percent), so it stops moving
    # within this many ticks of a size change.
    shed = spec.shed_load
    step = smoothing_weight(poll, shed.fraction_smoothing_seconds) * shed.fraction_deadband
    fraction_ticks = math.ceil(1 / max(step, 0.01))
    # Sizes only move one way, by at least one replica, with fewer than that many ticks between.
    tick_limit = (max(start, spec.replicas.max) + 2) * (settle_ticks + fraction_ticks)

    def tick(state: PlannerState, current: int, index: int) -> tuple[Decision, PlannerState]:
        now = NOW + index * poll
        observation = Observation(
            current_replicas=current,
            ready_replicas=current,
            queue_depth=MetricReading.ok(queue, now),
            gpu_utilization_percent=None if util is None else MetricReading.ok(util, now),
            capacity=capacity,
        )
        return plan_and_commit(spec, observation, state, now)

    def outputs(decision: Decision) -> tuple[int, bool, float, str]:
        # What reaches the workload and the gateways, and the reason reported with it.
        shed = decision.shed
        return decision.desired_replicas, shed.active, shed.fraction, decision.reason

    state, current, sizes, unchanged, index = PlannerState(), start, [start], 0, 0
    previous: tuple[int, bool, float, str] | None = None
    while unchanged < settle_ticks:
        assert index < tick_limit, f"no fixed point after {index} ticks: {sizes}"
        decision, state = tick(state, current, index)
        now_out = outputs(decision)
        held = decision.desired_replicas == current and now_out == previous
        unchanged = unchanged + 1 if held else 0
        previous = now_out
        current = decision.desired_replicas
        sizes.append(current)
        index += 1
    assert sizes in (sorted(sizes), sorted(sizes, reverse=True)), f"flapped: {sizes}"

    settled = decision
    for _ in range(2 * settle_ticks):
        decision, state = tick(state, current, index)
        index += 1
        assert outputs(decision) == outputs(settled)
    # Once every window and period has passed, the memory (and so the status) stops changing.
    for _ in range(settle_ticks):
        decision, state = tick(state, current, index)
        index += 1
    remembered = state
    for _ in range(3):
        decision, state = tick(state, current, index)
        index += 1
        assert state == remembered


@given(
    spec=specs(),
    observation=observations(queue=_UNUSABLE),
    state=states,
)
def test_missing_queue_data_never_moves_the_fleet(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, new_state = plan_and_commit(spec, observation, state, NOW)
    current = observation.current_replicas
    within_bounds = spec.replicas.min <= current <= spec.replicas.max
    if within_bounds:
        assert decision.desired_replicas == current
        assert decision.reason == "MetricsUnavailable"
    assert not decision.metrics_available.status
    assert decision.unconstrained_replicas == current
    assert new_state.recommendations == state.recommendations
    assert not (decision.shed.active and decision.shed.changed)


@given(
    spec=specs(gpu=True),
    observation=observations(queue=_fresh(_QUEUE), gpu=_UNUSABLE),
    state=states,
)
def test_unknown_gpu_utilization_never_scales_down(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, _ = plan_and_commit(spec, observation, state, NOW)
    if spec.replicas.min <= observation.current_replicas <= spec.replicas.max:
        assert decision.desired_replicas >= observation.current_replicas


@given(spec=specs(), observation=observations(), state=states)
def test_shed_only_when_limited(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, new_state = plan_and_commit(spec, observation, state, NOW)
    shed = decision.shed
    if shed.active:
        assert decision.scaling_limited.status
        assert spec.shed_load.enabled
        assert shed.retry_after_seconds is not None
        assert 1 <= shed.retry_after_seconds <= spec.shed_load.max_retry_after_seconds
    else:
        assert shed.retry_after_seconds is None
    assert shed.changed == (shed.active != state.shed.active)
    assert new_state.shed.active == shed.active


@given(spec=specs(), observation=observations(), state=states)
def test_limited_flag_stops_only_after_release_after_seconds(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, new_state = plan_and_commit(spec, observation, state, NOW)
    hold = spec.shed_load.release_after_seconds
    released = state.shed.active and not decision.shed.active
    if released and decision.shed.reason == "QueueBelowRelease" and hold > 0:
        since = state.shed.release_candidate_since
        assert since is not None
        assert NOW - since >= hold
    if new_state.shed.release_candidate_since is not None:
        assert new_state.shed.active
        assert decision.scaling_limited.status
        assert new_state.shed.release_candidate_since <= NOW
    assert decision.shed.reason != "CapacityAvailable"
    assert decision.scaling_limited.reason != "CapacityAvailable"


def _replanned(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> tuple[Decision, PlannerState]:
    """The tick planned again on equal but distinct inputs, as a restarted operator rebuilds
    them from status."""
    return plan_and_commit(
        InferencePoolSpec.model_validate(spec.to_wire()),
        Observation(**vars(observation)),
        PlannerState(**vars(state)),
        NOW,
    )


@given(spec=specs(), observation=observations(), state=states)
def test_same_inputs_give_the_same_decision(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    assert _replanned(spec, observation, state) == plan_and_commit(spec, observation, state, NOW)


@given(spec=specs(), observation=observations(), state=states)
def test_every_reason_is_camel_case(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, _ = plan_and_commit(spec, observation, state, NOW)
    for reason in _reasons(decision):
        assert CAMEL_CASE.match(reason), reason
    assert decision.message


@given(spec=specs(), observation=observations(), state=states)
def test_remembered_history_stays_small(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    _, new_state = plan_and_commit(spec, observation, state, NOW)
    window = behavior.longest_window_seconds(spec.behavior)
    period = behavior.longest_period_seconds(spec.behavior)
    added = [r for r in new_state.recommendations if r not in state.recommendations]
    assert len(added) <= (2 if not state.recommendations else 1)  # first sight seeds current
    if new_state.recommendations != state.recommendations or added:
        # A tick with usable metrics prunes: every segment but the running one ends after the
        # window's start (the segment spanning it is kept), and the history is run-length.
        history = new_state.recommendations
        assert list(history) == sorted(history, key=lambda r: r.time)
        assert all(after.time > NOW - window for after in history[1:])
        assert all(a.replicas != b.replicas for a, b in itertools.pairwise(history))
    assert all(e.time > NOW - period for e in new_state.scale_events)
    assert len(new_state.scale_events) <= len(state.scale_events) + 1


# --- The same properties for a pool on the load model (the vLLM preset's readings) ------------

_RATE = st.floats(0, 50_000)
_ANY_RATE = _fresh(_RATE) | _UNUSABLE
_LATENCY = st.floats(0.01, 30)


@st.composite
def load_specs(draw: st.DrawFn, *, max_replicas: int = 40, max_window: int = 300) -> Any:
    base = draw(specs(max_replicas=max_replicas, max_window=max_window, gpu=False))
    wire = base.to_wire()
    wire["metrics"]["engine"] = "vllm"
    if draw(st.booleans()):
        wire["slo"] = {
            "ttftSeconds": draw(st.floats(0.1, 10)),
            "percentile": draw(st.sampled_from([90, 95, 99])),
            "scaleDownBelow": draw(st.floats(0.1, 0.9)),
        }
    capacity: dict[str, Any] = {"targetUtilization": draw(st.floats(0.3, 1.0))}
    if draw(st.booleans()):
        capacity["tokensPerSecondPerReplica"] = draw(st.floats(10, 20_000))
    capacity["learn"] = draw(st.booleans())
    wire["capacity"] = capacity
    return InferencePoolSpec.model_validate(wire)


def _load(draw: st.DrawFn, usable_only: bool) -> LoadReadings:
    rate = _fresh(_RATE) if usable_only else _ANY_RATE
    kv = _fresh(st.floats(0, 1)) if usable_only else (_fresh(st.floats(0, 1)) | _UNUSABLE)
    ttft = _fresh(_LATENCY) if usable_only else (_fresh(_LATENCY) | _UNUSABLE)
    growth = st.builds(
        lambda v, age: MetricReading.ok(v, NOW - age), st.floats(-500, 500), st.floats(0, 1)
    )
    return LoadReadings(
        running=draw(rate),
        kv_cache_usage=draw(kv),
        prompt_tokens=draw(rate),
        generation_tokens=draw(rate),
        request_rate=draw(_fresh(st.floats(0, 1000))),
        work_growth=draw(growth),
        ttft=draw(ttft),
    )


@st.composite
def load_observations(draw: st.DrawFn, *, usable_only: bool = False) -> Observation:
    current = draw(_CURRENT)
    return Observation(
        current_replicas=current,
        ready_replicas=draw(st.integers(0, current + 2)),
        queue_depth=draw(_fresh(_QUEUE)),
        load=_load(draw, usable_only),
        capacity=draw(_CAPACITY),
        replica_startup_seconds=draw(_STARTUP),
    )


load_states = st.builds(
    PlannerState,
    recommendations=states.map(lambda s: s.recommendations),  # type: ignore[attr-defined]
    scale_events=states.map(lambda s: s.scale_events),  # type: ignore[attr-defined]
    capacity=st.builds(
        CapacityEstimate,
        tokens_per_replica=st.none() | st.floats(1, 20_000),
        concurrency_per_replica=st.none() | st.floats(0.5, 500),
        ceiling_tokens_per_replica=st.none() | st.floats(1, 20_000),
        ceiling_since=st.none() | _PAST,
    ),
)


@given(spec=load_specs(), observation=load_observations(), state=load_states)
def test_load_model_bounds_always_hold(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, new_state = plan_and_commit(spec, observation, state, NOW)
    assert decision.steps[-1].replicas == decision.desired_replicas
    if observation.current_replicas == 0 and spec.replicas.min >= 1:
        assert decision.desired_replicas == 0
        return
    assert spec.replicas.min <= decision.desired_replicas <= spec.replicas.max
    for value in (
        new_state.capacity.tokens_per_replica,
        new_state.capacity.concurrency_per_replica,
    ):
        assert value is None or (math.isfinite(value) and value > 0)


def _heavier(reading: MetricReading | None, factor: float, cap: float) -> MetricReading | None:
    if reading is None or not reading.usable or reading.value is None:
        return reading
    assert reading.sampled_at is not None
    return MetricReading.ok(min(max(reading.value, 0) * factor + 1, cap), reading.sampled_at)


@given(
    spec=load_specs(),
    observation=load_observations(usable_only=True),
    state=load_states,
    factor=st.floats(1, 10),
)
def test_load_model_more_work_never_gives_fewer_replicas(
    spec: InferencePoolSpec,
    observation: Observation,
    state: PlannerState,
    factor: float,
) -> None:
    """More tokens, more requests in the system, more growth, fuller KV cache, longer latency:
    never fewer replicas."""
    load = observation.load
    busier = replace(
        observation,
        queue_depth=_heavier(observation.queue_depth, factor, math.inf) or observation.queue_depth,
        load=replace(
            load,
            running=_heavier(load.running, factor, math.inf),
            prompt_tokens=_heavier(load.prompt_tokens, factor, math.inf),
            generation_tokens=_heavier(load.generation_tokens, factor, math.inf),
            kv_cache_usage=_heavier(load.kv_cache_usage, factor, 1.0),
            ttft=_heavier(load.ttft, factor, 600),
            work_growth=_heavier(load.work_growth, factor, 1e6),
        ),
    )
    light, _ = plan_and_commit(spec, observation, state, NOW)
    heavy, _ = plan_and_commit(spec, busier, state, NOW)
    assert light.desired_replicas <= heavy.desired_replicas
    assert light.unconstrained_replicas <= heavy.unconstrained_replicas


@given(spec=load_specs(), observation=load_observations(), state=load_states)
def test_load_model_never_scales_down_on_a_missing_reading(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    decision, _ = plan_and_commit(spec, observation, state, NOW)
    load = observation.load
    readings = [load.running, load.prompt_tokens, load.generation_tokens, load.kv_cache_usage]
    if spec.slo is not None and (load.request_rate and (load.request_rate.value or 0) > 0.01):
        readings.append(load.ttft)
    missing = any(r is not None and not r.usable for r in readings)
    current = observation.current_replicas
    if (
        missing
        and observation.ready_replicas > 0
        and spec.replicas.min <= current <= spec.replicas.max
    ):
        assert decision.desired_replicas >= current
        assert not decision.metrics_available.status


@given(spec=load_specs(), observation=load_observations(), state=load_states)
def test_load_model_same_inputs_same_decision(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState
) -> None:
    assert _replanned(spec, observation, state) == plan_and_commit(spec, observation, state, NOW)


@example(  # an estimate from the spec found too low: up to max, then probed back down
    spec=load_spec(
        max_replicas=5,
        capacity={"tokensPerSecondPerReplica": 100, "targetUtilization": 1.0, "learn": True},
        scale_down={"stabilizationWindowSeconds": 60},
    ),
    start=1,
    tokens=1000.0,
    running=0.0,
    ttft_share=0.2,
)
@given(
    spec=load_specs(max_replicas=20, max_window=90),
    start=st.integers(1, 25),
    tokens=st.floats(100, 100_000),
    running=st.floats(0, 5000),
    ttft_share=st.floats(0.05, 3),
)
def test_load_model_constant_load_converges_and_stays_put(
    spec: InferencePoolSpec, start: int, tokens: float, running: float, ttft_share: float
) -> None:
    """Replicas start serving at once; the fleet's totals and its latency do not react to its
    size (the harshest case for learning). A fixed point comes, with no flapping, and a rise is
    not undone by learning within the capacity probe's hold after it."""
    poll = spec.poll_interval_seconds
    target = spec.slo.ttft_seconds if spec.slo is not None and spec.slo.ttft_seconds else 1.0
    ttft = target * ttft_share
    horizon = max(
        behavior.longest_window_seconds(spec.behavior),
        behavior.longest_period_seconds(spec.behavior),
        spec.shed_load.release_after_seconds,
    )
    settle_ticks = math.ceil(horizon / poll) + 2

    def tick(state: PlannerState, current: int, index: int) -> tuple[Decision, PlannerState]:
        now = NOW + index * poll
        reading = lambda v: MetricReading.ok(v, now)  # noqa: E731
        observation = Observation(
            current_replicas=current,
            ready_replicas=current,
            queue_depth=reading(0.0),
            load=LoadReadings(
                running=reading(running),
                kv_cache_usage=reading(0.2),
                prompt_tokens=reading(tokens * 0.8),
                generation_tokens=reading(tokens * 0.2),
                request_rate=reading(10.0),
                work_growth=reading(0.0),
                ttft=reading(ttft),
            ),
        )
        return plan_and_commit(spec, observation, state, now)

    def estimates(state: PlannerState) -> tuple[float | None, float | None]:
        return state.capacity.tokens_per_replica, state.capacity.concurrency_per_replica

    state, current, sizes, unchanged, index = PlannerState(), start, [start], 0, 0
    while unchanged < settle_ticks:
        assert index < 4000, f"no fixed point after {index} ticks: {sizes}"
        before = estimates(state)
        decision, state = tick(state, current, index)
        # A probe moves an estimate a little every tick until the ask leaves the band: the
        # size holding meanwhile is not a fixed point yet.
        held = decision.desired_replicas == current and estimates(state) == before
        unchanged = unchanged + 1 if held else 0
        current = decision.desired_replicas
        sizes.append(current)
        index += 1
    assert sizes in (sorted(sizes), sorted(sizes, reverse=True)), f"flapped: {sizes}"
    for _ in range(2 * settle_ticks):
        decision, state = tick(state, current, index)
        index += 1
        assert decision.desired_replicas == current
    if state.last_scale_up_time is None:
        return
    # The estimate may keep learning (a probe after the hold), but not before the hold is out.
    hold_ends = state.last_scale_up_time + learn.PROBE_HOLD_SECONDS
    while NOW + (index + 1) * poll < hold_ends:
        decision, state = tick(state, current, index)
        index += 1
        assert decision.desired_replicas == current, f"a rise undone within the hold: {sizes}"
