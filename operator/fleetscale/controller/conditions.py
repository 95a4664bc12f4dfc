"""Report plumbing shared by both kinds: times, conditions, Events, merge patches.

Role: pure helpers the InferencePool and AcceleratorPool controllers both need to turn a
decision into a ``.status`` and Events: wire times (RFC3339 UTC, whole seconds for conditions),
conditions whose ``lastTransitionTime`` moves only when their status flips, an Event to post as
plain data (``EventRecord``), a pydantic error in one line of plain words, a typed status read
from the wire leniently, and the JSON merge patch between the stored status and the rendered
one (empty when nothing changed, so nothing is written).
Callers: ``controller.inferencepools``, ``controller.acceleratorpools``, ``fleetscale explain``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fleetscale.actuators.base import EventType
from fleetscale.api.base import Condition, ConditionStatus

READY = "Ready"

StatusModel = TypeVar("StatusModel", bound=BaseModel)


@dataclass(frozen=True)
class EventRecord:
    """One Event to post about the object a tick reconciled."""

    type: EventType
    reason: str
    message: str


def to_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def to_epoch(moment: datetime) -> float:
    if moment.tzinfo is None:  # the API server always sends UTC; be lenient with hand edits
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def optional_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else to_epoch(moment)


def optional_datetime(epoch_seconds: float | None) -> datetime | None:
    return None if epoch_seconds is None else to_datetime(epoch_seconds)


def whole_seconds(epoch_seconds: float) -> datetime:
    """metav1.Time has one-second precision; conditions use it so they compare stably."""
    return to_datetime(float(int(epoch_seconds)))


def plain_validation_error(error: ValidationError) -> str:
    """A pydantic error as one line of plain words: ``field.path: problem; ...``."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(object)"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


def owned_fields(model: type[BaseModel]) -> frozenset[str]:
    """The wire names of a status model's fields: what the operator owns in ``.status``."""
    return frozenset(info.alias or name for name, info in model.model_fields.items())


def parse_owned(
    model: type[StatusModel], raw: Mapping[str, Any] | None
) -> tuple[StatusModel, str | None]:
    """The typed status, ignoring fields that are not ours (kopf's, older versions').

    A status that does not validate (hand-edited, written by a newer version) is not fatal:
    the object starts from an empty memory and the problem is returned for logging.
    """
    fields = owned_fields(model)
    known = {key: value for key, value in (raw or {}).items() if key in fields}
    try:
        return model.model_validate(known), None
    except ValidationError as error:
        return model(), plain_validation_error(error)


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
    order: Sequence[str] = (),
) -> tuple[Condition, ...]:
    """Conditions with ``type_`` set; its lastTransitionTime moves only if the status flips.

    ``order`` lists the types that come first, in that order; the rest keep theirs.
    """
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
    ordered = [existing.pop(name) for name in order if name in existing]
    return (*ordered, *existing.values())


def merge_patch(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any], owned: frozenset[str]
) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning our part of ``current`` into ``desired``.

    Only the ``owned`` top-level fields are compared: keys we do not own (kopf's) are left
    alone. Empty when equal, which is how "no write when nothing changed" is decided.
    """
    ours = {key: value for key, value in (current or {}).items() if key in owned}
    return _diff(ours, desired)


def apply_merge_patch(
    current: Mapping[str, Any] | None, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """``current`` with a JSON merge patch (RFC 7386) applied, as the API server applies it."""
    merged = dict(current or {})
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = apply_merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


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
