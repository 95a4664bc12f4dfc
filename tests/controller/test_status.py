"""Status as memory: the planner's state survives a round trip, conditions move honestly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st_

from fleetscale.api.inferencepool import InferencePoolStatus, ShedLoadStatus
from fleetscale.controller import conditions as cond
from fleetscale.controller.inferencepools import memory as st
from fleetscale.controller.inferencepools.report import CONDITION_ORDER
from fleetscale.planner.types import (
    CapacityEstimate,
    ForecastState,
    PlannerState,
    ShedState,
    TimedDelta,
    TimedReplicas,
)

NOW = 1_800_000_000.0

epochs = st_.floats(min_value=1_600_000_000, max_value=2_000_000_000).map(
    lambda value: round(value, 3)  # the precision ticks have in practice
)


@given(
    recommendations=st_.lists(
        st_.builds(TimedReplicas, time=epochs, replicas=st_.integers(0, 10_000)), max_size=20
    ),
    scale_events=st_.lists(
        st_.builds(TimedDelta, time=epochs, delta=st_.integers(-100, 100)), max_size=10
    ),
    last_scale_time=st_.none() | epochs,
    shed_since=epochs,
    shed_active=st_.booleans(),
    release_candidate_since=st_.none() | epochs,
)
def test_planner_state_round_trips_through_the_wire(
    recommendations: list[TimedReplicas],
    scale_events: list[TimedDelta],
    last_scale_time: float | None,
    shed_since: float,
    shed_active: bool,
    release_candidate_since: float | None,
) -> None:
    state = PlannerState(
        recommendations=tuple(recommendations),
        scale_events=tuple(scale_events),
        shed=ShedState(
            active=shed_active,
            since=shed_since,
            reason="QueueOverThreshold",
            release_candidate_since=release_candidate_since if shed_active else None,
        ),
        last_scale_time=last_scale_time,
    )
    status = InferencePoolStatus(
        shed_load=st.shed_status(state.shed, 30, "llama-shed"), **st.history_fields(state)
    )
    # Through JSON, as the API server stores it.
    restored_status, problem = st.parse_status(status.to_wire())
    assert problem is None
    restored = st.planner_state_from_status(restored_status, dry_run=False)

    assert [entry.replicas for entry in restored.recommendations] == [
        entry.replicas for entry in state.recommendations
    ]
    for before, after in zip(state.recommendations, restored.recommendations, strict=True):
        assert after.time == pytest.approx(before.time, abs=1e-6)
    for before_delta, after_delta in zip(state.scale_events, restored.scale_events, strict=True):
        assert after_delta.delta == before_delta.delta
        assert after_delta.time == pytest.approx(before_delta.time, abs=1e-6)
    assert (restored.last_scale_time is None) == (last_scale_time is None)
    assert restored.shed.active == shed_active
    assert restored.shed.since == pytest.approx(shed_since, abs=1e-6)
    if state.shed.release_candidate_since is None:
        assert restored.shed.release_candidate_since is None
    else:
        assert restored.shed.release_candidate_since == pytest.approx(
            state.shed.release_candidate_since, abs=1e-6
        )


_positive = st_.floats(min_value=1e-3, max_value=1e7)


@given(
    tokens=st_.none() | _positive,
    concurrency=st_.none() | _positive,
    ceiling=st_.none() | _positive,
    updated=st_.none() | epochs,
    level=st_.floats(min_value=0, max_value=1e4),
    trend=st_.floats(min_value=-10, max_value=10),
    seasonal=st_.lists(st_.floats(min_value=-1e3, max_value=1e3), max_size=24),
)
def test_learned_capacity_and_forecast_survive_a_restart(
    tokens: float | None,
    concurrency: float | None,
    ceiling: float | None,
    updated: float | None,
    level: float,
    trend: float,
    seasonal: list[float],
) -> None:
    """A restarted operator keeps what it learned, to six significant digits."""
    state = PlannerState(
        capacity=CapacityEstimate(
            tokens_per_replica=tokens,
            concurrency_per_replica=concurrency,
            ceiling_tokens_per_replica=ceiling,
            ceiling_since=updated if ceiling is not None else None,
            reason="CapacityProbed",
            updated_at=updated,
        ),
        forecast=ForecastState(level=level, trend=trend, seasonal=tuple(seasonal), updated_at=NOW),
    )
    status = InferencePoolStatus(**st.history_fields(state))
    restored_status, problem = st.parse_status(status.to_wire())
    assert problem is None
    restored = st.planner_state_from_status(restored_status, dry_run=False)
    for before, after in (
        (tokens, restored.capacity.tokens_per_replica),
        (concurrency, restored.capacity.concurrency_per_replica),
        (ceiling, restored.capacity.ceiling_tokens_per_replica),
    ):
        assert (after is None) == (before is None)
        if before is not None:
            assert after == pytest.approx(before, rel=1e-5)
    assert restored.capacity.reason == "CapacityProbed"
    assert restored.forecast is not None
    assert restored.forecast.level == pytest.approx(level, rel=1e-5, abs=1e-9)
    assert len(restored.forecast.seasonal) == len(seasonal)


def test_an_empty_memory_writes_no_capacity() -> None:
    fields = st.history_fields(PlannerState())
    assert fields["capacity"] is None
    assert fields["forecast"] is None


def test_dry_run_keeps_the_release_timer() -> None:
    """DryRun publishes no flag, yet its would-shed release timer survives a restart."""
    would_shed = ShedState(
        active=True, since=NOW - 300, reason="MaxReplicas", release_candidate_since=NOW - 20
    )
    status = InferencePoolStatus(
        shed_load=ShedLoadStatus(
            active=False,
            reason="DryRun",
            release_candidate_since=st.release_candidate_time(would_shed),
        ),
        conditions=cond.set_condition(
            (),
            st.SHED_LOAD,
            True,
            st.DRY_RUN_WOULD_SHED,
            "would shed",
            NOW - 300,
            1,
            order=CONDITION_ORDER,
        ),
    )
    restored_status, _ = st.parse_status(status.to_wire())
    restored = st.planner_state_from_status(restored_status, dry_run=True)
    assert restored.shed.active
    assert restored.shed.release_candidate_since == pytest.approx(NOW - 20)


def test_foreign_status_fields_are_ignored_and_garbage_starts_fresh() -> None:
    status, problem = st.parse_status({"kopf": {"progress": {}}, "desiredReplicas": 3})
    assert problem is None
    assert status.desired_replicas == 3

    status, problem = st.parse_status({"recommendations": [{"time": "yesterday"}]})
    assert status == InferencePoolStatus()
    assert problem is not None
    assert "recommendations.0" in problem


def test_transition_time_moves_only_when_status_flips() -> None:
    conditions = cond.set_condition(
        (), "Ready", True, "Active", "ok", NOW, 1, order=CONDITION_ORDER
    )
    first = conditions[0].last_transition_time
    assert first == datetime.fromtimestamp(NOW, tz=UTC)

    conditions = cond.set_condition(
        conditions, "Ready", True, "Active", "still ok", NOW + 60, 2, order=CONDITION_ORDER
    )
    assert conditions[0].last_transition_time == first
    assert (conditions[0].message, conditions[0].observed_generation) == ("still ok", 2)

    conditions = cond.set_condition(
        conditions, "Ready", False, "TargetNotFound", "x", NOW + 90, 2, order=CONDITION_ORDER
    )
    assert conditions[0].last_transition_time == datetime.fromtimestamp(NOW + 90, tz=UTC)


def test_conditions_keep_a_stable_order() -> None:
    conditions = cond.set_condition(
        (), "ShedLoad", False, "NotLimited", "", NOW, 1, order=CONDITION_ORDER
    )
    conditions = cond.set_condition(
        conditions, "Ready", True, "Active", "", NOW, 1, order=CONDITION_ORDER
    )
    conditions = cond.set_condition(
        conditions, "Custom", True, "Other", "", NOW, 1, order=CONDITION_ORDER
    )
    assert [condition.type for condition in conditions] == ["Ready", "ShedLoad", "Custom"]


@pytest.mark.parametrize(
    ("current", "desired", "patch"),
    [
        pytest.param({"replicas": 1}, {"replicas": 1}, {}, id="equal"),
        pytest.param({"replicas": 1}, {"replicas": 2}, {"replicas": 2}, id="changed"),
        pytest.param(
            {"observed": {"queueDepth": 1, "sampledAt": 2}},
            {"observed": {"queueDepth": 1}},
            {"observed": {"sampledAt": None}},
            id="nested-removed",
        ),
        pytest.param({"desiredReplicas": 3}, {}, {"desiredReplicas": None}, id="removed"),
        pytest.param({"kopf": {"x": 1}}, {}, {}, id="foreign-left-alone"),
        pytest.param(None, {"replicas": 2}, {"replicas": 2}, id="no-status-yet"),
        pytest.param(
            {"conditions": [1, 2]}, {"conditions": [1]}, {"conditions": [1]}, id="list-replaced"
        ),
    ],
)
def test_merge_patch(current: dict | None, desired: dict, patch: dict) -> None:
    assert st.status_patch(current, desired) == patch


@pytest.mark.parametrize(
    ("patch", "written"),
    [
        pytest.param({"observed": {"sampledAt": "t2"}}, {}, id="sample-time-only"),
        pytest.param(
            {"observed": {"sampledAt": "t2", "queueDepth": 3.0}},
            {"observed": {"sampledAt": "t2", "queueDepth": 3.0}},
            id="value-changed-too",
        ),
        pytest.param(
            {"observed": {"sampledAt": "t2"}, "desiredReplicas": 4},
            {"observed": {"sampledAt": "t2"}, "desiredReplicas": 4},
            id="with-a-decision",
        ),
        pytest.param({}, {}, id="nothing"),
    ],
)
def test_a_moved_sample_time_alone_is_not_written(
    patch: dict[str, Any], written: dict[str, Any]
) -> None:
    assert st.worth_writing(patch) == written


@pytest.mark.parametrize(
    ("value", "decimals", "shown"),
    [
        pytest.param(71.2857142857143, st.GPU_PERCENT_DECIMALS, 71.29, id="gpu"),
        pytest.param(12.0, st.QUEUE_DEPTH_DECIMALS, 12.0, id="whole-queue"),
        pytest.param(3.14159, st.QUEUE_DEPTH_DECIMALS, 3.14, id="fractional-queue"),
        pytest.param(None, st.GPU_PERCENT_DECIMALS, None, id="no-reading"),
    ],
)
def test_observed_readings_are_rounded_for_display(
    value: float | None, decimals: int, shown: float | None
) -> None:
    assert st.rounded(value, decimals) == shown
