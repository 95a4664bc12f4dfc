"""``plan``: the whole pipeline, its decisive reasons, conditions, shed flag and new state."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from planner_builders import NOW, fresh, make_spec, observe, plan_and_commit

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import explain_decision
from fleetscale.planner.types import (
    CapacityLimit,
    MetricProblem,
    MetricReading,
    Observation,
    PlannerState,
    TimedReplicas,
)

# A pool that has run for a while with nothing to do: its signals have asked for 0 replicas
# for 1000 s (a running segment never holds a scale-up back nor a scale-down below 0).
QUIET = PlannerState(recommendations=(TimedReplicas(time=NOW - 1000, replicas=0),))
GPU_SPEC = make_spec(gpu_target_percent=85)


@dataclass(frozen=True)
class Expect:
    desired: int
    reason: str
    metrics: str = "ValidMetricsFound"
    limited: str = "DesiredWithinRange"
    shed: str | None = None  # the shed reason when the flag is raised
    extra: dict[str, object] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("spec", "observation", "state", "expect"),
    [
        pytest.param(
            make_spec(),
            observe(4, queue=40),
            QUIET,
            Expect(8, "ScaledUp", limited="ReplicasNotReady"),
            id="queue-scales-up",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=20),
            QUIET,
            Expect(4, "WithinTolerance"),
            id="within-tolerance-holds",
        ),
        pytest.param(
            GPU_SPEC,
            observe(4, queue=0, gpu=95),
            QUIET,
            Expect(4, "GpuBusy"),
            id="busy-gpus-hold-with-empty-queue",
        ),
        pytest.param(
            GPU_SPEC,
            observe(4, queue=0, gpu=10),
            QUIET,
            Expect(1, "ScaledDown"),  # the HPA's default policy removes up to 100% per 15 s
            id="idle-gpus-scale-down",
        ),
        pytest.param(
            GPU_SPEC,
            observe(4, queue=0, gpu=10),
            PlannerState(),
            Expect(4, "ScaleDownStabilized"),
            id="new-pool-waits-one-window",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=MetricProblem.QUERY_FAILED),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="QueryFailed"),
            id="query-failed-holds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=MetricReading.ok(1000, NOW - 120)),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="Stale"),
            id="stale-holds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=MetricProblem.MULTIPLE_SERIES),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="MultipleSeries"),
            id="multiple-series-holds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=float("nan")),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="NotANumber"),
            id="nan-holds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=MetricProblem.NO_DATA),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="NoData"),
            id="no-data-holds",
        ),
        pytest.param(
            GPU_SPEC,
            observe(4, queue=0, gpu=MetricProblem.NO_DATA),
            QUIET,
            Expect(4, "GpuUtilizationUnavailable", metrics="GpuUtilizationUnavailable"),
            id="unknown-gpu-blocks-shrink",
        ),
        pytest.param(
            GPU_SPEC,
            observe(4, queue=40, gpu=MetricProblem.QUERY_FAILED),
            QUIET,
            Expect(8, "ScaledUp", metrics="GpuUtilizationUnavailable", limited="ReplicasNotReady"),
            id="unknown-gpu-queue-still-grows",
        ),
        pytest.param(
            GPU_SPEC,
            observe(1, ready=0, queue=10, gpu=MetricProblem.NO_DATA),
            QUIET,
            Expect(2, "ScaledUp", limited="ReplicasNotReady"),
            id="no-gpu-series-before-first-ready-is-fine",
        ),
        pytest.param(
            make_spec(),
            observe(8, queue=400),
            QUIET,
            Expect(8, "AtMaxReplicas", limited="MaxReplicas", shed="MaxReplicas"),
            id="at-max-sheds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=200, capacity=CapacityLimit(4, "MaxNodes", "2 of 2 nodes")),
            QUIET,
            Expect(4, "MaxNodes", limited="MaxNodes", shed="MaxNodes"),
            id="capacity-holds-and-sheds",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=40, capacity=CapacityLimit(4, "CapacityAvailable", "all fit")),
            QUIET,
            Expect(8, "ScaledUp", limited="ReplicasNotReady"),
            id="capacity-available-is-no-limit",
        ),
        pytest.param(
            make_spec(max_replicas=40),
            observe(4, queue=100, capacity=CapacityLimit(4, "CapacityAvailable", "all fit")),
            QUIET,
            Expect(8, "ScaledUp", limited="ReplicasNotReady", shed="ReplicasNotReady"),
            id="capacity-available-neither-holds-nor-names-the-shed",
        ),
        pytest.param(
            make_spec(max_replicas=40),
            observe(4, queue=100, capacity=CapacityLimit(4, "MaxNodes", "2 of 2 nodes")),
            QUIET,
            Expect(4, "MaxNodes", limited="MaxNodes", shed="MaxNodes"),
            id="same-cap-as-max-nodes-holds-and-sheds",
        ),
        pytest.param(
            make_spec(),
            observe(
                4, queue=MetricProblem.QUERY_FAILED, capacity=CapacityLimit(2, "CapacityAvailable")
            ),
            QUIET,
            Expect(4, "MetricsUnavailable", metrics="QueryFailed"),
            id="capacity-available-is-no-limit-without-metrics",
        ),
        pytest.param(
            make_spec(max_replicas=4),
            observe(6, queue=MetricProblem.QUERY_FAILED),
            QUIET,
            Expect(4, "ScaledDown", metrics="QueryFailed", limited="MaxReplicas"),
            id="lowered-max-applies-without-metrics",
        ),
        pytest.param(
            make_spec(min_replicas=3),
            observe(1, queue=5),
            QUIET,
            Expect(3, "ScaledUp"),
            id="below-min-scales-up",
        ),
        pytest.param(
            make_spec(min_replicas=0),
            observe(0, queue=3),
            QUIET,
            Expect(1, "ScaledUp", limited="ReplicasNotReady"),
            id="scale-from-zero",
        ),
        pytest.param(
            make_spec(min_replicas=0),
            observe(0, queue=0),
            QUIET,
            Expect(0, "WithinTolerance"),
            id="zero-stays-zero",
        ),
        pytest.param(
            make_spec(min_replicas=0),
            observe(1, queue=0),
            QUIET,
            Expect(0, "ScaledDown"),
            id="scale-to-zero",
        ),
        pytest.param(
            make_spec(shed_load={"enabled": False}),
            observe(8, queue=400),
            QUIET,
            Expect(8, "AtMaxReplicas", limited="MaxReplicas"),
            id="shed-disabled",
        ),
        pytest.param(
            make_spec(max_replicas=32),
            observe(8, ready=2, queue=100, startup_seconds=180),
            PlannerState(last_scale_time=NOW - 60),
            Expect(
                16,
                "ScaledUp",
                limited="ReplicasNotReady",
                shed="ReplicasNotReady",
                extra={"retry": 120},
            ),
            id="loading-replicas-shed-until-loaded",
        ),
        pytest.param(
            make_spec(
                max_replicas=32,
                scale_up={"stabilizationWindowSeconds": 0, "selectPolicy": "Disabled"},
            ),
            observe(8, queue=100),
            QUIET,
            Expect(8, "ScaleUpDisabled", limited="DesiredWithinRange"),
            id="scale-up-disabled-is-not-a-limit",
        ),
    ],
)
def test_plan(
    spec: InferencePoolSpec, observation: Observation, state: PlannerState, expect: Expect
) -> None:
    decision, _ = plan_and_commit(spec, observation, state, NOW)
    assert decision.desired_replicas == expect.desired
    assert decision.reason == expect.reason
    assert decision.metrics_available.reason == expect.metrics
    assert decision.metrics_available.status == (expect.metrics == "ValidMetricsFound")
    assert decision.steps[0].reason == decision.metrics_available.reason
    assert decision.scaling_limited.reason == expect.limited
    assert decision.shed.active == (expect.shed is not None)
    if expect.shed is not None:
        assert decision.shed.reason == expect.shed
    if "retry" in expect.extra:
        assert decision.shed.retry_after_seconds == expect.extra["retry"]
    assert decision.message


@pytest.mark.parametrize(
    ("spec", "observation", "message"),
    [
        pytest.param(
            make_spec(),
            observe(4, queue=40),
            "4 -> 8 replicas: queue 40 waiting, 10 per replica over target 5",
            id="scale-up",
        ),
        pytest.param(
            make_spec(),
            observe(3, queue=42),
            "3 -> 7 replicas: queue 42 waiting, 14 per replica over target 5 (asks for 9); "
            "scale-up limited to 7 replicas by 4 pods per 15 s, 100% per 15 s (Max)",
            id="rate-limited-scale-up",
        ),
        pytest.param(
            make_spec(),
            observe(8, queue=400),
            "holding 8 replicas: queue 400 waiting, 50 per replica over target 5 (asks for 80); "
            "replicas.max is 8",
            id="at-max",
        ),
        pytest.param(
            make_spec(),
            observe(4, queue=MetricProblem.QUERY_FAILED),
            "holding 4 replicas: queue depth: QueryFailed (injected)",
            id="metrics-unavailable",
        ),
    ],
)
def test_decision_message(spec: InferencePoolSpec, observation: Observation, message: str) -> None:
    decision, _ = plan_and_commit(spec, observation, QUIET, NOW)
    assert decision.message == message


def test_steps_are_the_numbered_pipeline() -> None:
    decision, _ = plan_and_commit(GPU_SPEC, observe(4, queue=40, gpu=90), QUIET, NOW)
    names = [step.name for step in decision.steps]
    assert names == [
        "metrics",
        "queue",
        "gpu",
        "combine",
        "stabilize",
        "rate",
        "capacity",
        "bounds",
    ]
    assert decision.steps[-1].replicas == decision.desired_replicas
    assert decision.unconstrained_replicas == 8


def test_steps_without_gpu_signal_skip_gpu() -> None:
    decision, _ = plan_and_commit(make_spec(), observe(4, queue=40), QUIET, NOW)
    assert "gpu" not in [step.name for step in decision.steps]


def test_steps_on_missing_metrics_stop_after_the_check() -> None:
    decision, _ = plan_and_commit(make_spec(), observe(4, queue=MetricProblem.STALE), QUIET, NOW)
    assert [step.name for step in decision.steps] == ["metrics", "bounds"]
    assert decision.unconstrained_replicas == 4


def test_scaling_records_event_recommendation_and_time() -> None:
    _, state = plan_and_commit(make_spec(), observe(4, queue=40), QUIET, NOW)
    assert state.scale_events[-1].delta == 4
    assert state.scale_events[-1].time == NOW
    assert state.last_scale_time == NOW
    # The ask of 0 ran until now and stays until it leaves the 300 s scale-down window.
    assert state.recommendations == (
        TimedReplicas(time=NOW - 1000, replicas=0),
        TimedReplicas(time=NOW, replicas=8),
    )
    _, later = plan_and_commit(make_spec(), observe(8, queue=40, now=NOW + 300), state, NOW + 300)
    assert later.recommendations == (TimedReplicas(time=NOW, replicas=8),)


def test_holding_keeps_last_scale_time() -> None:
    before = PlannerState(last_scale_time=NOW - 500)
    _, state = plan_and_commit(make_spec(), observe(4, queue=20), before, NOW)
    assert state.last_scale_time == NOW - 500
    assert state.scale_events == ()


def test_missing_metrics_record_no_recommendation() -> None:
    before = PlannerState(recommendations=(TimedReplicas(time=NOW - 30, replicas=6),))
    _, state = plan_and_commit(make_spec(), observe(4, queue=MetricProblem.NO_DATA), before, NOW)
    assert state.recommendations == before.recommendations
    assert state.last_scale_time is None


def test_shed_state_remembers_when_it_started() -> None:
    spec = make_spec()
    first, state = plan_and_commit(spec, observe(8, queue=400), QUIET, NOW)
    assert first.shed.changed
    assert (state.shed.active, state.shed.since, state.shed.reason) == (True, NOW, "MaxReplicas")
    second, state = plan_and_commit(spec, observe(8, queue=120, now=NOW + 15), state, NOW + 15)
    assert second.shed.active  # 15 per replica: between release (10) and threshold (20)
    assert not second.shed.changed
    assert state.shed.since == NOW
    # The queue is empty, so the refused share added back is nothing: demand fits, the flag
    # goes off at once (NotLimited).
    third, state = plan_and_commit(spec, observe(8, queue=0, now=NOW + 30), state, NOW + 30)
    assert not third.shed.active
    assert third.shed.changed
    assert state.shed.since == NOW + 30


def test_a_queue_held_low_by_the_gateway_still_reads_as_limited() -> None:
    """While gateways refuse a share of the requests, the queue shows only what they let
    through: 40 waiting with 80% refused is 200 offered, 40 replicas' worth at a target of 5,
    more than replicas.max 8. Judged on the 40 alone the fleet would read as not limited, the
    flag would drop at once and the refused load would flood back (a flapping flag)."""
    spec = make_spec()
    _, state = plan_and_commit(spec, observe(8, queue=400), QUIET, NOW)
    assert state.shed.fraction == 0.8  # 8 ready x 10 = 80 servable of 400
    decision, state = plan_and_commit(spec, observe(8, queue=40, now=NOW + 15), state, NOW + 15)
    assert decision.scaling_limited.status
    assert decision.shed.active
    assert decision.shed.reason == "MaxReplicas"


def test_spike_scales_up_at_once_and_down_after_the_window() -> None:
    """The HPA default behavior end to end: fast up, down only after 300 s of low asks.

    Shedding is off: while the flag is on, a censored queue grows the fleet by rounds instead
    (tests/planner/test_censor.py)."""
    spec = make_spec(max_replicas=16, gpu_target_percent=85, shed_load={"enabled": False})
    state, current, now = QUIET, 2, NOW
    sizes: list[int] = []
    for tick in range(40):
        now = NOW + 15 * tick
        spike = tick < 4
        observation = observe(
            current,
            queue=60 if spike else 0,
            gpu=fresh(95 if spike else 20, now=now),
            now=now,
        )
        decision, state = plan_and_commit(spec, observation, state, now)
        current = decision.desired_replicas
        sizes.append(current)
    assert sizes[:3] == [6, 12, 12]  # +4 then +100%; 12 = ceil(60 / 5)
    first_drop = next(i for i in range(3, len(sizes)) if sizes[i] < 12)
    assert 15 * (first_drop - 3) >= 300  # the last high ask was at tick 3
    assert sizes[-1] < 12
    assert sizes == sorted(sizes[:3]) + sorted(sizes[3:], reverse=True)
    assert len(state.recommendations) <= 3


def test_explain_decision_lists_every_step() -> None:
    decision, _ = plan_and_commit(make_spec(), observe(8, queue=400), QUIET, NOW)
    text = explain_decision(decision)
    lines = text.splitlines()
    assert lines[0] == f"AtMaxReplicas: {decision.message}"
    assert lines[1] == "replicas: current 8, desired 8, signals ask for 80"
    assert lines[2].split() == [
        "1.",
        "metrics",
        "8",
        "ValidMetricsFound",
        "queue",
        "depth",
        "400",
    ]
    assert any(line.split()[:4] == ["7.", "bounds", "8", "MaxReplicas"] for line in lines)
    assert "ScalingLimited=True (MaxReplicas)" in text
    assert "ShedLoad=True (changed) (MaxReplicas, retryAfterSeconds=15)" in text
