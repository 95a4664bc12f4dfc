"""The commit step: record in the planners' memory only what was actually done.

Role: the planners decide (``plan``, ``plan_capacity``) without knowing whether the adapters
will manage to carry the decision out; their new state leaves every action out. Once the
controller has executed, these functions add what succeeded: a change of replicas to the rate
policies' history, a node request or release to the node planner's memory. A failed write, a
DryRun or a refused action therefore never counts (the HPA likewise stores a scale event only
after its update succeeded). Pure. Callers: the InferencePool and AcceleratorPool controllers,
the simulator (where every action succeeds).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from fleetscale.api.inferencepool import Behavior
from fleetscale.planner.behavior import record_scale_event
from fleetscale.planner.capacity import CapacityPlan, CapacityState
from fleetscale.planner.types import PlannerState, TimedDelta


def commit_scale(
    state: PlannerState, applied_delta: int, behavior: Behavior, now: float
) -> PlannerState:
    """``state`` with a change of ``applied_delta`` replicas made at ``now`` (0: none made)."""
    if applied_delta == 0:
        return state
    return replace(
        state,
        scale_events=record_scale_event(state.scale_events, applied_delta, behavior, now),
        last_scale_time=now,
        last_scale_up_time=now if applied_delta > 0 else state.last_scale_up_time,
    )


def settle_pending_scale(
    state: PlannerState,
    pending: TimedDelta | None,
    happened: bool,
    behavior: Behavior,
    now: float,
) -> PlannerState:
    """``state`` with a change that was recorded before it was made (``pending``) and whose
    tick did not get to record it: counted if it happened (the target has the size it set),
    dropped otherwise. A change already in the history is not counted twice."""
    if pending is None or not happened or pending in state.scale_events:
        return state
    events = record_scale_event((*state.scale_events, pending), 0, behavior, now)
    return replace(
        state,
        scale_events=events,
        last_scale_time=_latest(state.last_scale_time, pending.time),
        last_scale_up_time=(
            _latest(state.last_scale_up_time, pending.time)
            if pending.delta > 0
            else state.last_scale_up_time
        ),
    )


def _latest(known: float | None, candidate: float) -> float:
    return candidate if known is None else max(known, candidate)


def commit_node_actions(
    state: CapacityState,
    plan: CapacityPlan,
    *,
    resized: bool,
    released: Collection[str],
    now: float,
    kept: Collection[str] = (),
) -> CapacityState:
    """``state`` with the node actions that succeeded at ``now``.

    ``resized``: the provider's size changed (it grew, or released nodes). ``released``: the
    nodes the provider removed. ``kept``: nodes chosen for release that stayed (a pod arrived,
    or the provider cannot name them); their empty clock starts again, so one the provider can
    never remove is not chosen every tick ahead of nodes that have been empty longer.
    """
    requested_more = resized and plan.desired_nodes > plan.current_nodes
    return replace(
        state,
        scale_up_requested_at=now if requested_more else state.scale_up_requested_at,
        last_scale_time=now if resized else state.last_scale_time,
        empty_since={
            n: now if n in kept else t for n, t in state.empty_since.items() if n not in released
        },
        releasing={**state.releasing, **dict.fromkeys(released, now)},
    )
