"""The shed fraction: bounded, smoothed, with hysteresis, published with the flag."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from planner_builders import NOW

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.planner import fraction, shed
from fleetscale.planner.fraction import LoadEstimate
from fleetscale.planner.types import ConditionVerdict, ShedState


def _spec(**fields: Any) -> ShedLoadSpec:
    return ShedLoadSpec(**{"queue_per_replica_threshold": 10, **fields})


@pytest.mark.parametrize(
    ("queue", "ready", "threshold", "previous", "servable", "offered"),
    [
        pytest.param(40, 2, 10, 0.0, 20, 40, id="no-refusals-yet"),
        pytest.param(40, 2, 10, 0.5, 20, 80, id="refusals-added-back"),
        pytest.param(40, 2, 10, 1.0, 20, 800, id="all-refused-undoes-at-most-95-percent"),
        pytest.param(40, 0, 10, 0.0, 0, 40, id="no-ready-replica-serves-nothing"),
        pytest.param(-3, 2, 10, 0.0, 20, 0, id="negative-queue-counts-as-empty"),
    ],
)
def test_load_estimate_from_the_queue_and_ready_replicas(
    queue: float, ready: int, threshold: float, previous: float, servable: float, offered: float
) -> None:
    estimate = fraction.load_estimate(queue, ready, threshold, previous)
    assert estimate == LoadEstimate(servable=servable, offered=pytest.approx(offered))


def test_load_estimate_without_a_queue_is_none() -> None:
    assert fraction.load_estimate(None, 2, 10, 0.3) is None
    assert fraction.load_estimate(float("nan"), 2, 10, 0.3) is None


@pytest.mark.parametrize(
    ("active", "estimate", "previous", "spec", "expected", "reason"),
    [
        pytest.param(
            False, LoadEstimate(20, 80), 0.4, _spec(), 0.0, "NotShedding", id="off-is-zero"
        ),
        pytest.param(
            True, LoadEstimate(20, 80), 0.0, _spec(), 0.75, "OverCapacity", id="onset-unsmoothed"
        ),
        pytest.param(
            True, LoadEstimate(20, 21), 0.0, _spec(), 0.05, "MinFraction", id="raised-to-min"
        ),
        pytest.param(
            True,
            LoadEstimate(0, 80),
            0.0,
            _spec(max_fraction=0.9),
            0.9,
            "MaxFraction",
            id="capped-at-max",
        ),
        pytest.param(
            True,
            LoadEstimate(20, 80),
            0.0,
            _spec(min_fraction=1.0),
            1.0,
            "MinFraction",
            id="all-or-nothing-when-min-is-1",
        ),
        pytest.param(
            True, LoadEstimate(20, 80), 0.73, _spec(), 0.73, "FractionHeld", id="within-deadband"
        ),
        pytest.param(
            True,
            LoadEstimate(20, 80),
            0.25,
            _spec(fraction_smoothing_seconds=0),
            0.75,
            "OverCapacity",
            id="no-smoothing-follows",
        ),
        pytest.param(True, None, 0.4, _spec(), 0.4, "FractionHeld", id="no-estimate-holds"),
        pytest.param(
            True, None, 0.0, _spec(max_fraction=0.8), 0.8, "FractionHeld", id="no-estimate-no-past"
        ),
    ],
)
def test_shed_fraction_rules(
    active: bool,
    estimate: LoadEstimate | None,
    previous: float,
    spec: ShedLoadSpec,
    expected: float,
    reason: str,
) -> None:
    decided = fraction.shed_fraction(
        active=active, estimate=estimate, previous=previous, spec=spec, poll_interval_seconds=2
    )
    assert (decided.fraction, decided.reason) == (expected, reason)


def test_smoothing_moves_part_of_the_way() -> None:
    # tau 10 s, poll 10 s: weight 1 - 1/e = 0.632; from 0.25 towards 0.75 -> 0.566.
    decided = fraction.shed_fraction(
        active=True,
        estimate=LoadEstimate(20, 80),
        previous=0.25,
        spec=_spec(fraction_smoothing_seconds=10),
        poll_interval_seconds=10,
    )
    assert decided.fraction == 0.57
    assert decided.reason == "OverCapacity"


def test_the_fraction_settles_where_the_queue_holds_at_the_threshold() -> None:
    """A fleet whose queue is what the gateway lets through: offered 100 waiting without
    shedding, 2 ready replicas at a threshold of 10 -> the queue holds at 20 when 80% pass."""
    spec = _spec(fraction_smoothing_seconds=4, fraction_deadband=0.01)
    previous = 0.0
    for _ in range(40):
        queue = 100 * (1 - previous)
        estimate = fraction.load_estimate(queue, 2, 10, previous)
        previous = fraction.shed_fraction(
            active=True, estimate=estimate, previous=previous, spec=spec, poll_interval_seconds=2
        ).fraction
    assert previous == pytest.approx(0.8, abs=0.01)


@given(
    servable=st.floats(0, 1e6),
    offered=st.floats(0, 1e6),
    previous=st.floats(0, 1),
    low=st.floats(0.01, 1),
    span=st.floats(0, 1),
)
def test_bounds_always_hold_while_active(
    servable: float, offered: float, previous: float, low: float, span: float
) -> None:
    high = min(1.0, low + span)
    spec = _spec(min_fraction=low, max_fraction=high)
    decided = fraction.shed_fraction(
        active=True,
        estimate=LoadEstimate(servable, offered),
        previous=previous,
        spec=spec,
        poll_interval_seconds=2,
    )
    assert round(low, 2) - 1e-9 <= decided.fraction <= round(high, 2) + 1e-9


_AT_MAX = ConditionVerdict(True, "MaxReplicas", "replicas.max is 2")
_RETRY = shed.RetryInputs(
    capacity=None,
    replica_startup_seconds=None,
    last_scale_time=None,
    poll_interval_seconds=2,
    now=NOW,
)


def _on(share: float) -> ShedState:
    return ShedState(active=True, since=NOW - 100, reason="MaxReplicas", fraction=share)


@pytest.mark.parametrize(
    ("queue", "previous", "active", "expected"),
    [
        # 2 ready replicas at a threshold of 10: 20 waiting are servable; tau 10 s, poll 2 s.
        pytest.param(80, ShedState(), True, 0.75, id="raised-with-its-fraction"),
        # 80 waiting with 60% refused: 200 offered, raw 0.9; 0.6 + 0.3 x 0.181 = 0.654.
        pytest.param(80, _on(0.6), True, 0.65, id="smoothed-towards-more"),
        # 21 waiting with 60% refused: 52.5 offered, raw 0.619: within the deadband of 0.6.
        pytest.param(21, _on(0.6), True, 0.6, id="held-within-deadband"),
        # 2 waiting (release pending, the flag stays on): raw 0, bounded to 0.05; 0.6 - 0.1.
        pytest.param(2, _on(0.6), True, 0.5, id="draining-queue-lowers-it"),
        pytest.param(10, ShedState(), False, 0.0, id="off-publishes-zero"),
    ],
)
def test_the_flag_and_its_fraction_are_decided_together(
    queue: float, previous: ShedState, active: bool, expected: float
) -> None:
    decided = shed.decide_shed(
        spec=_spec(),
        limit=_AT_MAX,
        queue_depth=queue,
        ready_replicas=2,
        previous=previous,
        retry=_RETRY,
    )
    assert (decided.active, decided.fraction) == (active, expected)
    assert shed.next_shed_state(previous, decided, NOW).fraction == expected
