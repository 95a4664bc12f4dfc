"""The execute step of an InferencePool tick: turn a decision into writes, report what happened.

Role: ``commands`` (pure) says what a decision asks the world to change, as plain data: the
target's new size, the shed flag to publish. ``execute`` carries the commands out through the
ports and returns an ``Outcome`` that says what actually happened (the size set, or why not; the
flag published, or why not). Nothing here records history: ``planner.commit`` does that from the
outcome. DryRun produces no commands. Callers: ``tick``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetscale.actuators.base import (
    ActuatorError,
    ScaleTargetRef,
    ShedFlag,
    TargetNotFound,
)
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.controller.conditions import optional_datetime
from fleetscale.controller.inferencepools.ports import InferencePoolDependencies, InferencePoolRef
from fleetscale.planner.observe import TargetSize
from fleetscale.planner.types import Decision, PlannerState

SCALE_FAILED = "ScaleFailed"
SHED_FLAG_PUBLISH_FAILED = "ShedFlagPublishFailed"


@dataclass(frozen=True)
class Commands:
    """What one decision asks to change; None fields change nothing."""

    target: ScaleTargetRef
    current_replicas: int
    scale_to: int | None  # the target's new spec.replicas
    shed_flag: ShedFlag | None  # the flag to publish in ``config_map_name``
    config_map_name: str | None


@dataclass(frozen=True)
class Outcome:
    """What executing the commands actually did."""

    scaled_to: int | None = None  # the size now set; None when the target was left alone
    target_after: TargetSize | None = None  # the target as the write left it
    scale_error: str | None = None  # why the scale write failed
    shed_error: str | None = None  # why the flag could not be published

    def applied_delta(self, current_replicas: int) -> int:
        """The change of size that happened (0: none)."""
        return 0 if self.scaled_to is None else self.scaled_to - current_replicas


def shed_flag_of(decision: Decision, state: PlannerState) -> ShedFlag:
    """The flag as gateways read it, from a decision and the state after it."""
    return ShedFlag(
        active=decision.shed.active,
        reason=decision.shed.reason,
        since=optional_datetime(state.shed.since),
        retry_after_seconds=decision.shed.retry_after_seconds if decision.shed.active else None,
    )


def commands(
    pool: InferencePoolRef,
    spec: InferencePoolSpec,
    decision: Decision,
    planned_state: PlannerState,
) -> Commands:
    """The writes a decision asks for: none in DryRun (it only reports)."""
    active = spec.mode == "Active"
    resize = active and decision.desired_replicas != decision.current_replicas
    config_map = spec.shed_load.config_map_name if active else None
    return Commands(
        target=ScaleTargetRef.of(pool.namespace, spec.target_ref),
        current_replicas=decision.current_replicas,
        scale_to=decision.desired_replicas if resize else None,
        shed_flag=shed_flag_of(decision, planned_state) if config_map else None,
        config_map_name=config_map,
    )


async def execute(
    pool: InferencePoolRef, todo: Commands, deps: InferencePoolDependencies
) -> Outcome:
    """Carry out ``todo``; never raises for a failed write (the outcome says why)."""
    scaled_to: int | None = None
    target_after: TargetSize | None = None
    scale_error: str | None = None
    if todo.scale_to is not None:
        try:
            scale = await deps.scaler.set_replicas(todo.target, todo.scale_to)
        except (TargetNotFound, ActuatorError) as error:
            scale_error = (
                f"Could not scale {todo.target.kind} {todo.target.name} from "
                f"{todo.current_replicas} to {todo.scale_to} replicas: {error}"
            )
        else:
            scaled_to = todo.scale_to
            target_after = TargetSize(
                scale.spec_replicas, scale.ready_replicas, scale.accelerators_per_replica
            )
    shed_error = await _publish_shed(pool, todo, deps)
    return Outcome(scaled_to, target_after, scale_error, shed_error)


async def _publish_shed(
    pool: InferencePoolRef, todo: Commands, deps: InferencePoolDependencies
) -> str | None:
    """Publish the flag unless it is already there; the error in words, or None."""
    if todo.shed_flag is None or todo.config_map_name is None:
        return None
    if deps.published_flags.get(pool.key) == todo.shed_flag:
        return None
    try:
        await deps.shed_publisher.publish(pool.involved, todo.config_map_name, todo.shed_flag)
    except ActuatorError as error:
        return f"Could not publish the shed flag in ConfigMap {todo.config_map_name}: {error}"
    deps.published_flags[pool.key] = todo.shed_flag
    return None
