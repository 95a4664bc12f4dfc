"""The planner's memory stays small whatever the poll interval and the noise.

The histories live in the InferencePool's status: a 1 s poll with hour-long windows and a noisy
signal must not grow a status without bound. They are kept by count as well as by window, and
compacting them may only make the planner more cautious (hold longer, move slower), never less.
"""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st
from planner_builders import make_spec

from fleetscale.controller.inferencepools.memory import history_fields
from fleetscale.planner import behavior
from fleetscale.planner.types import PlannerState, TimedDelta, TimedReplicas

HOUR = 3600
LONG = {"stabilizationWindowSeconds": HOUR, "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 1800}]}  # fmt: skip
SPEC = make_spec(scale_up=LONG, scale_down=LONG, poll_interval_seconds=1)


def noisy_hour(seed: int) -> PlannerState:
    """Two hours of a 1 s poll: a new ask every tick, a change of size every other tick."""
    rng = random.Random(seed)
    recommendations: tuple[TimedReplicas, ...] = ()
    events: tuple[TimedDelta, ...] = ()
    for second in range(2 * HOUR):
        now = 1_800_000_000.0 + second
        recommendations = behavior.record_recommendation(
            recommendations, rng.randint(1, 64), SPEC.behavior, now
        )
        delta = rng.choice((-2, -1, 1, 2)) if second % 2 else 0
        events = behavior.record_scale_event(events, delta, SPEC.behavior, now)
    return PlannerState(recommendations=recommendations, scale_events=events)


def test_a_noisy_one_second_poll_with_hour_windows_keeps_status_small() -> None:
    state = noisy_hour(seed=1)
    assert len(state.recommendations) <= behavior.MAX_RECOMMENDATIONS
    assert len(state.scale_events) <= behavior.MAX_SCALE_EVENTS
    fields = history_fields(state)
    wire = {
        "recommendations": [r.model_dump(mode="json", by_alias=True, exclude_none=True)
                            for r in fields["recommendations"]],
        "scaleEvents": [e.model_dump(mode="json", by_alias=True) for e in fields["scale_events"]],
    }  # fmt: skip
    size = len(json.dumps(wire))
    assert size < 12_000, f"{size} bytes of history"


@given(
    asks=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=300),
    gaps=st.lists(st.integers(min_value=1, max_value=30), min_size=300, max_size=300),
)
def test_compacting_the_history_only_makes_stabilization_more_cautious(
    asks: list[int], gaps: list[int]
) -> None:
    """With the history compacted to its bound, the stabilized size is never further from the
    current size than with the full history: the planner holds at least as long."""
    full: list[TimedReplicas] = []
    kept: tuple[TimedReplicas, ...] = ()
    now = 1_800_000_000.0
    for ask, gap in zip(asks, gaps, strict=False):
        now += gap
        full.append(TimedReplicas(now, ask))
        kept = behavior.record_recommendation(kept, ask, SPEC.behavior, now)
    for current in (0, 5, 20, 40):
        exact = behavior.stabilize(asks[-1], current, full, SPEC.behavior, now).replicas
        bounded = behavior.stabilize(asks[-1], current, kept, SPEC.behavior, now).replicas
        assert min(current, exact) <= bounded <= max(current, exact)
