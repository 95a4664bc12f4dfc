"""Step ``forecast`` (``spec.forecast``, off by default): demand one horizon ahead, for nodes.

Role: keep an online Holt-Winters estimate (additive: level, trend, and one offset per slot of
the season) of the load's fractional replicas, and report what it forecasts
``forecast.horizonSeconds`` ahead. The forecast never sizes replicas: it only raises
``Decision.unconstrained_replicas``, which the AcceleratorPool plans nodes for, so nodes (the
slow part: minutes to provision) are requested one lead time before the load arrives, and the
replicas follow the measured load. Callers: ``pipeline.plan``.

Update, each tick with usable metrics, for an observation ``y`` at time ``t`` (``dt`` since the
last update, ``s`` the offset of ``t``'s slot)::

    level'  = alpha * (y - s) + (1 - alpha) * (level + trend * dt)
    trend'  = beta * (level' - level) / dt + (1 - beta) * trend
    s'      = gamma * (y - level') + (1 - gamma) * s
    ahead   = level' + trend' * horizon + offset of the slot of t + horizon

With ``seasonSeconds: 0`` there are no slots (Holt's linear method). The season has
``SLOTS`` slots, so the state (``status.forecast``) has a fixed size. The forecast is at least 0
and at most ``MAX_AHEAD`` times the current ask, so one wild trend cannot buy a pool's worth
of nodes. Why no library: the usual implementations (statsmodels' ``ExponentialSmoothing``)
fit the whole series at once; an operator that keeps its memory in a status needs the online
update of a fixed-size state, which is these few lines.
"""

from __future__ import annotations

import math

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.planner.signals import ceil_replicas
from fleetscale.planner.text import number, seconds
from fleetscale.planner.types import ForecastState, Step

FORECAST = "forecast"

FORECAST_AHEAD = "ForecastAhead"
FORECAST_WITHIN_ASK = "ForecastWithinAsk"
FORECAST_WARMING_UP = "ForecastWarmingUp"

SLOTS = 24
MAX_AHEAD = 2.0


def _slot(season_seconds: int, at: float) -> int | None:
    if season_seconds <= 0:
        return None
    return int((at % season_seconds) / season_seconds * SLOTS) % SLOTS


def update(
    spec: InferencePoolSpec, state: ForecastState | None, observed: float | None, now: float
) -> ForecastState | None:
    """The state after this tick's observation (fractional replicas the load needs)."""
    settings = spec.forecast
    if not settings.enabled or observed is None or not math.isfinite(observed):
        return state
    season = settings.season_seconds
    slots = SLOTS if season > 0 else 0
    if state is None or len(state.seasonal) != slots:
        return ForecastState(level=observed, trend=0.0, seasonal=(0.0,) * slots, updated_at=now)
    elapsed = now - state.updated_at
    if elapsed <= 0:
        return state
    slot = _slot(season, now)
    offset = state.seasonal[slot] if slot is not None else 0.0
    alpha, beta, gamma = (
        settings.level_smoothing,
        settings.trend_smoothing,
        settings.season_smoothing,
    )
    level = alpha * (observed - offset) + (1 - alpha) * (state.level + state.trend * elapsed)
    level = max(level, 0.0)
    trend = beta * (level - state.level) / elapsed + (1 - beta) * state.trend
    seasonal = state.seasonal
    if slot is not None:
        updated = gamma * (observed - level) + (1 - gamma) * offset
        seasonal = (*seasonal[:slot], updated, *seasonal[slot + 1 :])
    return ForecastState(level=level, trend=trend, seasonal=seasonal, updated_at=now)


def ahead(spec: InferencePoolSpec, state: ForecastState, now: float) -> float:
    """Fractional replicas forecast ``horizonSeconds`` after ``now``."""
    horizon = spec.forecast.horizon_seconds
    slot = _slot(spec.forecast.season_seconds, now + horizon)
    offset = state.seasonal[slot] if slot is not None and state.seasonal else 0.0
    return max(0.0, state.level + state.trend * horizon + offset)


def forecast_step(
    spec: InferencePoolSpec, state: ForecastState | None, ask: int, now: float
) -> Step:
    """What the forecast asks of the nodes (its replicas feed only node planning)."""
    horizon = seconds(spec.forecast.horizon_seconds)
    if state is None:
        return Step(FORECAST, ask, FORECAST_WARMING_UP, "no load observed yet")
    predicted = ahead(spec, state, now)
    replicas = min(ceil_replicas(predicted), math.floor(max(ask, 1) * MAX_AHEAD))
    words = (
        f"{number(predicted)} replicas forecast in {horizon} (level {number(state.level)}, "
        f"trend {number(state.trend * 60)}/min)"
    )
    if replicas > ask:
        return Step(
            FORECAST, replicas, FORECAST_AHEAD, f"{words}: nodes are planned for {replicas}"
        )
    return Step(FORECAST, ask, FORECAST_WITHIN_ASK, f"{words}: within the ask")
