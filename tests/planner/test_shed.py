"""The shed-load flag: only at a limit, with hysteresis, and an honest Retry-After."""

from __future__ import annotations

from typing import Any

import pytest
from planner_builders import NOW

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.planner import shed
from fleetscale.planner.types import CapacityLimit, ConditionVerdict, ShedDecision, ShedState

_AT_MAX = ConditionVerdict(True, "MaxReplicas", "replicas.max is 8")
_FREE = ConditionVerdict(False, "DesiredWithinRange", "fits")
_LOADING = ConditionVerdict(True, "ReplicasNotReady", "2 of 6 ready")
_ON = ShedState(active=True, since=NOW - 100, reason="MaxReplicas")
_OFF = ShedState(active=False, since=NOW - 100, reason="NotLimited")
_RETRY = shed.RetryInputs(
    capacity=None,
    replica_startup_seconds=None,
    last_scale_time=None,
    poll_interval_seconds=15,
    now=NOW,
)


def _spec(**fields: Any) -> ShedLoadSpec:
    """The tables' numbers are written for a threshold of 20 (release below 10)."""
    return ShedLoadSpec(**{"queue_per_replica_threshold": 20, **fields})


@pytest.mark.parametrize(
    ("spec", "limit", "queue", "ready", "previous", "active", "reason"),
    [
        pytest.param(
            _spec(enabled=False),
            _AT_MAX,
            500,
            2,
            _ON,
            False,
            "ShedLoadDisabled",
            id="disabled-turns-off",
        ),
        pytest.param(_spec(), _FREE, 500, 2, _ON, False, "NotLimited", id="not-limited"),
        pytest.param(_spec(), _AT_MAX, 210, 10, _OFF, True, "MaxReplicas", id="starts"),
        pytest.param(
            _spec(),
            _AT_MAX,
            200,
            10,
            _OFF,
            False,
            "QueueBelowThreshold",
            id="at-threshold-does-not-start",
        ),
        pytest.param(_spec(), _AT_MAX, 150, 10, _ON, True, "MaxReplicas", id="hysteresis-keeps-on"),
        pytest.param(_spec(), _AT_MAX, 100, 10, _ON, True, "MaxReplicas", id="at-release-keeps-on"),
        pytest.param(
            _spec(release_after_seconds=0),
            _AT_MAX,
            99,
            10,
            _ON,
            False,
            "QueueBelowRelease",
            id="releases",
        ),
        pytest.param(
            _spec(release_queue_per_replica=5),
            _AT_MAX,
            60,
            10,
            _ON,
            True,
            "MaxReplicas",
            id="explicit-release-keeps-on",
        ),
        pytest.param(
            _spec(),
            _LOADING,
            25,
            0,
            _OFF,
            True,
            "ReplicasNotReady",
            id="no-ready-replica-counts-as-one",
        ),
        pytest.param(
            _spec(),
            _AT_MAX,
            None,
            10,
            _ON,
            True,
            "MaxReplicas",
            id="missing-metrics-keep-on",
        ),
        pytest.param(
            _spec(),
            _AT_MAX,
            None,
            10,
            _OFF,
            False,
            "MetricsUnavailable",
            id="missing-metrics-never-start",
        ),
        pytest.param(
            _spec(),
            _FREE,
            None,
            10,
            _ON,
            False,
            "NotLimited",
            id="missing-metrics-not-limited-off",
        ),
    ],
)
def test_decide_shed(
    spec: ShedLoadSpec,
    limit: ConditionVerdict,
    queue: float | None,
    ready: int,
    previous: ShedState,
    active: bool,
    reason: str,
) -> None:
    decision = shed.decide_shed(
        spec=spec,
        limit=limit,
        queue_depth=queue,
        ready_replicas=ready,
        previous=previous,
        retry=_RETRY,
    )
    assert (decision.active, decision.reason) == (active, reason)
    assert decision.changed == (active != previous.active)
    assert (decision.retry_after_seconds is not None) == active
    assert decision.message


_HOLD = 30  # shedLoad.releaseAfterSeconds in the table below


def _below_since(age: float | None) -> ShedState:
    """An active flag whose queue has been below the release threshold for ``age`` seconds."""
    return ShedState(
        active=True,
        since=NOW - 300,
        reason="MaxReplicas",
        release_candidate_since=None if age is None else NOW - age,
    )


@pytest.mark.parametrize(
    ("limit", "queue", "previous", "active", "reason", "candidate"),
    [
        pytest.param(_AT_MAX, 10, _below_since(None), True, "MaxReplicas", NOW, id="first-sample"),
        pytest.param(
            _AT_MAX, 10, _below_since(15), True, "MaxReplicas", NOW - 15, id="still-counting"
        ),
        pytest.param(
            _AT_MAX, 10, _below_since(29.9), True, "MaxReplicas", NOW - 29.9, id="just-short"
        ),
        pytest.param(_AT_MAX, 10, _below_since(30), False, "QueueBelowRelease", None, id="held"),
        pytest.param(
            _AT_MAX, 0, _below_since(600), False, "QueueBelowRelease", None, id="long-held"
        ),
        pytest.param(
            _AT_MAX, 150, _below_since(20), True, "MaxReplicas", None, id="back-above-resets"
        ),
        pytest.param(_AT_MAX, 300, _below_since(20), True, "MaxReplicas", None, id="over-resets"),
        pytest.param(
            _AT_MAX, None, _below_since(20), True, "MaxReplicas", None, id="no-metrics-resets"
        ),
        pytest.param(
            _LOADING, 10, _below_since(5), True, "ReplicasNotReady", NOW - 5, id="limit-changes"
        ),
        pytest.param(_FREE, 10, _below_since(5), False, "NotLimited", None, id="unlimited-at-once"),
        pytest.param(_FREE, 150, _below_since(None), False, "NotLimited", None, id="unlimited"),
        pytest.param(
            _AT_MAX, 10, _below_since(-5), True, "MaxReplicas", NOW, id="future-mark-restarts"
        ),
        pytest.param(_AT_MAX, 10, _OFF, False, "QueueBelowRelease", None, id="off-stays-off"),
    ],
)
def test_release_waits_for_release_after_seconds(
    limit: ConditionVerdict,
    queue: float | None,
    previous: ShedState,
    active: bool,
    reason: str,
    candidate: float | None,
) -> None:
    """While limited, the flag stops only after the queue stayed low for releaseAfterSeconds."""
    decision = shed.decide_shed(
        spec=_spec(release_after_seconds=_HOLD),
        limit=limit,
        queue_depth=queue,
        ready_replicas=10,
        previous=previous,
        retry=_RETRY,
    )
    assert (decision.active, decision.reason) == (active, reason)
    assert decision.release_candidate_since == candidate
    assert decision.message
    state = shed.next_shed_state(previous, decision, NOW)
    assert state.release_candidate_since == candidate


def test_release_after_zero_releases_on_the_first_low_sample() -> None:
    decision = shed.decide_shed(
        spec=_spec(release_after_seconds=0),
        limit=_AT_MAX,
        queue_depth=10,
        ready_replicas=10,
        previous=_below_since(None),
        retry=_RETRY,
    )
    assert (decision.active, decision.reason) == (False, "QueueBelowRelease")


def test_release_timer_through_ticks() -> None:
    """A replica becoming Ready empties the queue for a moment: the flag stays up through it."""
    spec = _spec(release_after_seconds=_HOLD)
    state = _below_since(None)
    flags = []
    for tick, queue in enumerate([10, 0, 150, 0, 0, 0, 0]):
        now = NOW + 15 * tick
        decision = shed.decide_shed(
            spec=spec,
            limit=_AT_MAX,
            queue_depth=queue,
            ready_replicas=10,
            previous=state,
            retry=shed.RetryInputs(None, None, None, 15, now),
        )
        state = shed.next_shed_state(state, decision, now)
        flags.append(decision.active)
    # The sample at 150 (between the thresholds) restarts the timer at tick 3; 30 s later: off.
    assert flags == [True, True, True, True, True, False, False]


def _capacity(seconds_until_more: float | None, reason: str = "NodesProvisioning") -> CapacityLimit:
    return CapacityLimit(max_replicas=4, reason=reason, seconds_until_more=seconds_until_more)


def _retry(
    capacity: CapacityLimit | None = None,
    startup: float | None = None,
    last_scale_age: float | None = None,
) -> shed.RetryInputs:
    return shed.RetryInputs(
        capacity=capacity,
        replica_startup_seconds=startup,
        last_scale_time=None if last_scale_age is None else NOW - last_scale_age,
        poll_interval_seconds=15,
        now=NOW,
    )


_PROVISIONING = ConditionVerdict(True, "NodesProvisioning", "nodes coming")


@pytest.mark.parametrize(
    ("limit", "inputs", "ceiling", "seconds"),
    [
        pytest.param(_AT_MAX, _retry(), 300, 15, id="max-replicas-poll-interval"),
        pytest.param(
            _PROVISIONING,
            _retry(_capacity(120), startup=180),
            600,
            300,
            id="nodes-then-model-load",
        ),
        pytest.param(
            _PROVISIONING, _retry(_capacity(120), startup=180), 200, 200, id="clamped-to-max"
        ),
        pytest.param(_PROVISIONING, _retry(_capacity(90)), 300, 90, id="nodes-only"),
        pytest.param(_PROVISIONING, _retry(_capacity(None)), 300, 15, id="unknown-eta"),
        pytest.param(_AT_MAX, _retry(_capacity(120)), 300, 15, id="capacity-not-the-limit"),
        pytest.param(_PROVISIONING, _retry(_capacity(0)), 300, 1, id="at-least-one-second"),
        pytest.param(_PROVISIONING, _retry(_capacity(12.2)), 300, 13, id="rounded-up"),
        pytest.param(_LOADING, _retry(startup=180, last_scale_age=60), 300, 120, id="load-left"),
        pytest.param(_LOADING, _retry(startup=180), 300, 180, id="load-never-scaled"),
        pytest.param(_LOADING, _retry(startup=180, last_scale_age=500), 300, 15, id="load-overdue"),
        pytest.param(_LOADING, _retry(), 300, 15, id="load-time-unknown"),
    ],
)
def test_retry_after_seconds(
    limit: ConditionVerdict, inputs: shed.RetryInputs, ceiling: int, seconds: int
) -> None:
    assert shed.retry_after_seconds(limit, inputs, ceiling) == seconds


@pytest.mark.parametrize(
    ("previous", "decision", "since"),
    [
        pytest.param(_OFF, ShedDecision(True, "MaxReplicas", changed=True), NOW, id="flip-on"),
        pytest.param(_ON, ShedDecision(True, "MaxNodes"), NOW - 100, id="stays-on"),
        pytest.param(_ON, ShedDecision(False, "QueueBelowRelease", changed=True), NOW, id="off"),
        pytest.param(ShedState(), ShedDecision(False, "NotLimited"), NOW, id="first-tick"),
    ],
)
def test_next_shed_state(previous: ShedState, decision: ShedDecision, since: float) -> None:
    state = shed.next_shed_state(previous, decision, NOW)
    assert state == ShedState(active=decision.active, since=since, reason=decision.reason)
