"""An InferencePool's status as the planner's memory: read it back, write it out.

Role: pure conversions between ``InferencePoolStatus`` and ``PlannerState`` (so a restarted
operator continues exactly where the last one stopped), the shed flag's status form, readings
rounded for ``kubectl get`` columns, and the rule that a moved sample time alone is not worth a
write. Callers: the InferencePool tick (``tick``, ``report``), ``fleetscale explain``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fleetscale.api.inferencepool import (
    CapacityStatus,
    ForecastStatus,
    InferencePoolSpec,
    InferencePoolStatus,
    Recommendation,
    ScaleEvent,
    ShedLoadStatus,
)
from fleetscale.controller.conditions import (
    find_condition,
    merge_patch,
    optional_datetime,
    optional_epoch,
    owned_fields,
    parse_owned,
    to_datetime,
    to_epoch,
)
from fleetscale.planner.commit import settle_pending_scale
from fleetscale.planner.types import (
    CapacityEstimate,
    ForecastState,
    PlannerState,
    ShedState,
    TimedDelta,
    TimedReplicas,
)

METRICS_AVAILABLE = "MetricsAvailable"
SCALING_LIMITED = "ScalingLimited"
SHED_LOAD = "ShedLoad"

# The reason of the ShedLoad condition while a DryRun pool would shed: the flag itself stays
# off (gateways read it), so the planner's hysteresis is restored from this condition instead.
DRY_RUN_WOULD_SHED = "DryRunWouldShed"

# The observed readings are printed in `kubectl get` columns (Queue, GPU%): status shows them
# rounded. The planner and the gauges always use the unrounded readings.
QUEUE_DEPTH_DECIMALS = 2
GPU_PERCENT_DECIMALS = 2
# The learned capacity and the forecast are kept to this many significant digits: enough for
# the planner (a replica's worth is far coarser), and a status that is not rewritten for noise.
STATE_SIGNIFICANT_DIGITS = 6

STATUS_FIELDS = owned_fields(InferencePoolStatus)


def parse_status(raw: Mapping[str, Any] | None) -> tuple[InferencePoolStatus, str | None]:
    """The typed status (empty, with the problem, when it does not validate)."""
    return parse_owned(InferencePoolStatus, raw)


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch from the stored status to ``desired`` (our fields only)."""
    return merge_patch(current, desired, STATUS_FIELDS)


def rounded(value: float | None, decimals: int) -> float | None:
    """``value`` rounded for display in status; None stays None."""
    return None if value is None else round(value, decimals)


def planner_state_from_status(status: InferencePoolStatus, dry_run: bool) -> PlannerState:
    """What the planner remembered at the end of the last tick."""
    shed = ShedState()
    if dry_run:
        condition = find_condition(status.conditions, SHED_LOAD)
        if condition is not None and condition.reason == DRY_RUN_WOULD_SHED:
            shed = ShedState(
                active=True,
                since=to_epoch(condition.last_transition_time),
                reason=DRY_RUN_WOULD_SHED,
                release_candidate_since=_release_candidate_since(status.shed_load),
                published=False,
            )
    elif status.shed_load is not None:
        shed = ShedState(
            active=status.shed_load.active,
            since=optional_epoch(status.shed_load.since),
            reason=status.shed_load.reason or ShedState().reason,
            release_candidate_since=_release_candidate_since(status.shed_load),
            fraction=status.shed_load.fraction or 0.0,
        )
    return PlannerState(
        recommendations=tuple(
            TimedReplicas(
                time=to_epoch(entry.time), replicas=entry.replicas, lowest=entry.lowest_replicas
            )
            for entry in status.recommendations
        ),
        scale_events=tuple(
            TimedDelta(time=to_epoch(entry.time), delta=entry.delta)
            for entry in status.scale_events
        ),
        shed=shed,
        last_scale_time=optional_epoch(status.last_scale_time),
        last_scale_up_time=optional_epoch(status.last_scale_up_time),
        capacity=_capacity_estimate(status.capacity),
        forecast=_forecast_state(status.forecast),
    )


def _capacity_estimate(capacity: CapacityStatus | None) -> CapacityEstimate:
    if capacity is None:
        return CapacityEstimate()
    return CapacityEstimate(
        tokens_per_replica=capacity.tokens_per_second_per_replica,
        concurrency_per_replica=capacity.concurrency_per_replica,
        ceiling_tokens_per_replica=capacity.ceiling_tokens_per_second_per_replica,
        ceiling_since=optional_epoch(capacity.ceiling_since),
        reason=capacity.reason or "",
        updated_at=optional_epoch(capacity.updated_at),
    )


def _forecast_state(forecast: ForecastStatus | None) -> ForecastState | None:
    if forecast is None:
        return None
    return ForecastState(
        level=forecast.level,
        trend=forecast.trend,
        seasonal=tuple(forecast.seasonal),
        updated_at=to_epoch(forecast.updated_at),
    )


def _significant(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.{STATE_SIGNIFICANT_DIGITS}g}")


def capacity_status(estimate: CapacityEstimate) -> CapacityStatus | None:
    """The learned capacity in status form (None while nothing is known)."""
    if estimate == CapacityEstimate():
        return None
    return CapacityStatus(
        tokens_per_second_per_replica=_significant(estimate.tokens_per_replica),
        concurrency_per_replica=_significant(estimate.concurrency_per_replica),
        ceiling_tokens_per_second_per_replica=_significant(estimate.ceiling_tokens_per_replica),
        ceiling_since=optional_datetime(estimate.ceiling_since),
        reason=estimate.reason or None,
        updated_at=optional_datetime(estimate.updated_at),
    )


def forecast_status(forecast: ForecastState | None) -> ForecastStatus | None:
    if forecast is None:
        return None
    return ForecastStatus(
        level=max(0.0, _significant(forecast.level) or 0.0),
        trend=_significant(forecast.trend) or 0.0,
        seasonal=tuple(_significant(v) or 0.0 for v in forecast.seasonal),
        updated_at=to_datetime(forecast.updated_at),
    )


def _release_candidate_since(shed_load: ShedLoadStatus | None) -> float | None:
    if shed_load is None:
        return None
    return optional_epoch(shed_load.release_candidate_since)


def history_fields(state: PlannerState) -> dict[str, Any]:
    """The planner's memory in status form: the histories, the learned capacity and the
    forecast (each of fixed or pruned size)."""
    return {
        "capacity": capacity_status(state.capacity),
        "forecast": forecast_status(state.forecast),
        "recommendations": tuple(
            Recommendation(
                time=to_datetime(entry.time),
                replicas=entry.replicas,
                lowest_replicas=entry.lowest,
            )
            for entry in state.recommendations
        ),
        "scale_events": tuple(
            ScaleEvent(time=to_datetime(entry.time), delta=entry.delta)
            for entry in state.scale_events
        ),
        "last_scale_time": optional_datetime(state.last_scale_time),
        "last_scale_up_time": optional_datetime(state.last_scale_up_time),
    }


def shed_status(
    state: ShedState,
    retry_after_seconds: int | None,
    config_map_name: str | None,
    gateway_policy: str | None = None,
) -> ShedLoadStatus:
    return ShedLoadStatus(
        active=state.active,
        reason=state.reason,
        since=optional_datetime(state.since),
        retry_after_seconds=retry_after_seconds if state.active else None,
        fraction=state.fraction if state.active else None,
        release_candidate_since=release_candidate_time(state),
        config_map_name=config_map_name if state.active else None,
        gateway_policy=gateway_policy if state.active else None,
    )


def published_gateway_policy(status: InferencePoolStatus) -> str | None:
    """The gateway policy (``<writer>/<name>``) the flag was written in while on."""
    shed = status.shed_load
    return shed.gateway_policy if shed is not None and shed.active else None


def published_shed_config_map(status: InferencePoolStatus) -> str | None:
    """Where the flag was last published while on (None: it is off, or it was published by a
    release that did not record where)."""
    shed = status.shed_load
    return shed.config_map_name if shed is not None and shed.active else None


def memory_at_tick(
    status: InferencePoolStatus, spec: InferencePoolSpec, target_replicas: int, now: float
) -> PlannerState:
    """What the planner remembers at the start of a tick: the state kept in status, with a
    change recorded ahead of time settled against the target's size (``target_replicas``)."""
    return settle_pending_scale(
        planner_state_from_status(status, dry_run=spec.mode == "DryRun"),
        pending_scale_of(status),
        happened=pending_scale_happened(status, target_replicas),
        behavior=spec.behavior,
        now=now,
    )


def pending_scale_of(status: InferencePoolStatus) -> TimedDelta | None:
    """A change of size recorded ahead of time and not yet settled, as a scale event."""
    pending = status.pending_scale
    if pending is None:
        return None
    return TimedDelta(to_epoch(pending.time), pending.to_replicas - pending.from_replicas)


def pending_scale_happened(status: InferencePoolStatus, target_replicas: int) -> bool:
    """Whether the recorded change was made: the target has the size it was to set."""
    pending = status.pending_scale
    return pending is not None and pending.to_replicas == target_replicas


def shed_was_on(status: InferencePoolStatus) -> bool:
    return status.shed_load is not None and bool(status.shed_load.active)


def release_candidate_time(state: ShedState) -> datetime | None:
    """``ShedState.release_candidate_since`` in status form (also kept in DryRun's status)."""
    since = state.release_candidate_since
    return to_datetime(since) if state.active and since is not None else None


def worth_writing(patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch``, or nothing when all it would do is move ``observed.sampledAt``.

    Every tick samples Prometheus anew, so the sample time alone changes every tick; writing it
    would re-write every pool's status every poll (API load that grows with the number of
    pools) while telling nobody anything new. Staleness is reported by the MetricsAvailable
    condition, which changes when it matters.
    """
    if set(patch) == {"observed"} and set(patch["observed"]) == {"sampledAt"}:
        return {}
    return dict(patch)
