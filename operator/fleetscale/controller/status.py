"""InferencePool status: the operator's memory between ticks and its report to users.

Role: pure conversions, no I/O. Restore the planner's state from ``.status`` (so a restarted
operator continues exactly where the last one stopped), keep condition transition times honest
(``lastTransitionTime`` moves only when the status flips), round the observed readings for
display, and compute the merge patch between the stored status and the freshly rendered one
(empty when nothing changed, so nothing is written). Times on the wire are RFC3339 UTC.
Callers: ``controller.reconcile``, tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from fleetscale.api.base import Condition, ConditionStatus
from fleetscale.api.inferencepool import (
    InferencePoolStatus,
    Recommendation,
    ScaleEvent,
    ShedLoadStatus,
)
from fleetscale.planner.types import PlannerState, ShedState, TimedDelta, TimedReplicas

READY = "Ready"
METRICS_AVAILABLE = "MetricsAvailable"
SCALING_LIMITED = "ScalingLimited"
SHED_LOAD = "ShedLoad"
CONDITION_ORDER = (READY, METRICS_AVAILABLE, SCALING_LIMITED, SHED_LOAD)

# The reason of the ShedLoad condition while a DryRun pool would shed: the flag itself stays
# off (gateways read it), so the planner's hysteresis is restored from this condition instead.
DRY_RUN_WOULD_SHED = "DryRunWouldShed"

# The observed readings are printed in `kubectl get` columns (Queue, GPU%): status shows them
# rounded. The planner and the gauges always use the unrounded readings.
QUEUE_DEPTH_DECIMALS = 2
GPU_PERCENT_DECIMALS = 2

_STATUS_FIELDS = frozenset(
    field.alias or name for name, field in InferencePoolStatus.model_fields.items()
)


def rounded(value: float | None, decimals: int) -> float | None:
    """``value`` rounded for display in status; None stays None."""
    return None if value is None else round(value, decimals)


def to_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def to_epoch(moment: datetime) -> float:
    if moment.tzinfo is None:  # the API server always sends UTC; be lenient with hand edits
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def whole_seconds(epoch_seconds: float) -> datetime:
    """metav1.Time has one-second precision; conditions use it so they compare stably."""
    return to_datetime(float(int(epoch_seconds)))


def parse_status(raw: Mapping[str, Any] | None) -> tuple[InferencePoolStatus, str | None]:
    """The typed status, ignoring fields that are not ours (kopf's, older versions').

    A status that does not validate (hand-edited, written by a newer version) is not fatal:
    the pool starts from an empty memory and the problem is returned for logging.
    """
    known = {key: value for key, value in (raw or {}).items() if key in _STATUS_FIELDS}
    try:
        return InferencePoolStatus.model_validate(known), None
    except ValidationError as error:
        return InferencePoolStatus(), plain_validation_error(error)


def plain_validation_error(error: ValidationError) -> str:
    """A pydantic error as one line of plain words: ``field.path: problem; ...``."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(object)"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


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
            since=to_epoch(status.shed_load.since) if status.shed_load.since else None,
            reason=status.shed_load.reason or ShedState().reason,
            release_candidate_since=_release_candidate_since(status.shed_load),
        )
    return PlannerState(
        recommendations=tuple(
            TimedReplicas(time=to_epoch(entry.time), replicas=entry.replicas)
            for entry in status.recommendations
        ),
        scale_events=tuple(
            TimedDelta(time=to_epoch(entry.time), delta=entry.delta)
            for entry in status.scale_events
        ),
        shed=shed,
        last_scale_time=to_epoch(status.last_scale_time) if status.last_scale_time else None,
    )


def _release_candidate_since(shed_load: ShedLoadStatus | None) -> float | None:
    if shed_load is None or shed_load.release_candidate_since is None:
        return None
    return to_epoch(shed_load.release_candidate_since)


def history_fields(state: PlannerState) -> dict[str, Any]:
    """The planner's histories in status form."""
    return {
        "recommendations": tuple(
            Recommendation(time=to_datetime(entry.time), replicas=entry.replicas)
            for entry in state.recommendations
        ),
        "scale_events": tuple(
            ScaleEvent(time=to_datetime(entry.time), delta=entry.delta)
            for entry in state.scale_events
        ),
        "last_scale_time": (
            to_datetime(state.last_scale_time) if state.last_scale_time is not None else None
        ),
    }


def shed_status(state: ShedState, retry_after_seconds: int | None) -> ShedLoadStatus:
    return ShedLoadStatus(
        active=state.active,
        reason=state.reason,
        since=to_datetime(state.since) if state.since is not None else None,
        retry_after_seconds=retry_after_seconds if state.active else None,
        release_candidate_since=release_candidate_time(state),
    )


def release_candidate_time(state: ShedState) -> datetime | None:
    """``ShedState.release_candidate_since`` in status form (also kept in DryRun's status)."""
    since = state.release_candidate_since
    return to_datetime(since) if state.active and since is not None else None


def find_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((condition for condition in conditions if condition.type == type_), None)


def set_condition(
    conditions: Iterable[Condition],
    type_: str,
    status: bool | ConditionStatus,
    reason: str,
    message: str,
    now: float,
    generation: int | None,
) -> tuple[Condition, ...]:
    """Conditions with ``type_`` set; its lastTransitionTime moves only if the status flips."""
    wire_status: ConditionStatus = (
        ("True" if status else "False") if isinstance(status, bool) else status
    )
    existing = {condition.type: condition for condition in conditions}
    previous = existing.get(type_)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == wire_status
        else whole_seconds(now)
    )
    existing[type_] = Condition(
        type=type_,
        status=wire_status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    ordered = [existing.pop(name) for name in CONDITION_ORDER if name in existing]
    return (*ordered, *existing.values())


def merge_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning our part of ``current`` into ``desired``.

    Only our own status fields are compared: keys we do not own (kopf's) are left alone.
    Empty when equal, which is how "no write when nothing changed" is decided.
    """
    current = {key: value for key, value in (current or {}).items() if key in _STATUS_FIELDS}
    return _diff(current, desired)


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


def _diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = _diff(old, value)
            if nested:
                patch[key] = nested
        elif old != value or key not in current:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
