"""``forecast``: an online Holt-Winters of the load, used only for nodes one horizon ahead."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from planner_builders import NOW, load_spec, observe_load, plan_and_commit

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner import forecast
from fleetscale.planner.types import CapacityEstimate, ForecastState, PlannerState


def _spec(**fields: Any) -> InferencePoolSpec:
    spec = load_spec()
    return spec.model_copy(
        update={"forecast": spec.forecast.model_copy(update={"enabled": True, **fields})}
    )


def test_disabled_keeps_no_state() -> None:
    assert forecast.update(load_spec(), None, 10.0, NOW) is None


def test_first_observation_is_the_level() -> None:
    state = forecast.update(_spec(season_seconds=0), None, 10.0, NOW)
    assert state == ForecastState(level=10.0, trend=0.0, seasonal=(), updated_at=NOW)


def test_a_steady_ramp_is_extrapolated_one_horizon_ahead() -> None:
    spec = _spec(season_seconds=0, horizon_seconds=600, trend_smoothing=0.3)
    state = None
    for tick in range(400):
        state = forecast.update(spec, state, 10.0 + 0.01 * 15 * tick, NOW + 15 * tick)
    assert state is not None
    now = NOW + 15 * 399
    expected = 10.0 + 0.01 * 15 * 399 + 0.01 * 600  # the ramp, 600 s further
    assert forecast.ahead(spec, state, now) == pytest.approx(expected, rel=0.05)


def test_a_season_is_learned_slot_by_slot() -> None:
    season = 2400  # 24 slots of 100 s
    spec = _spec(season_seconds=season, trend_smoothing=0.0, season_smoothing=0.3)
    state = None
    for tick in range(2400):
        at = NOW - NOW % season + 15 * tick
        high = (at % season) < season / 2
        state = forecast.update(spec, state, 20.0 if high else 10.0, at)
    assert state is not None
    assert len(state.seasonal) == forecast.SLOTS
    assert max(state.seasonal) > 2
    assert min(state.seasonal) < -2


def test_the_step_plans_nodes_ahead_within_twice_the_ask() -> None:
    spec = _spec(season_seconds=0)
    rising = ForecastState(level=10.0, trend=0.05, seasonal=(), updated_at=NOW)
    step = forecast.forecast_step(spec, rising, 10, NOW)
    assert (step.reason, step.replicas) == (forecast.FORECAST_AHEAD, 20)  # 40 capped at 2x
    flat = ForecastState(level=8.0, trend=0.0, seasonal=(), updated_at=NOW)
    assert forecast.forecast_step(spec, flat, 10, NOW).reason == forecast.FORECAST_WITHIN_ASK


def test_the_forecast_moves_node_demand_only() -> None:
    spec = _spec(season_seconds=0)
    state = PlannerState(
        capacity=CapacityEstimate(tokens_per_replica=1250.0),
        forecast=ForecastState(level=10.0, trend=0.02, seasonal=(), updated_at=NOW - 15),
    )
    decision, new_state = plan_and_commit(spec, observe_load(10), state, NOW)
    assert decision.desired_replicas == 10
    assert decision.unconstrained_replicas > 10
    assert new_state.forecast is not None
    assert new_state.forecast.updated_at == NOW


@given(observed=st.lists(st.floats(0, 1000), min_size=1, max_size=50))
def test_the_state_stays_the_same_size_and_the_forecast_is_never_negative(
    observed: list[float],
) -> None:
    spec = _spec(season_seconds=3600)
    state = None
    for tick, value in enumerate(observed):
        state = forecast.update(spec, state, value, NOW + 15 * tick)
        assert state is not None
        assert len(state.seasonal) == forecast.SLOTS
        assert forecast.ahead(spec, state, NOW + 15 * tick) >= 0
