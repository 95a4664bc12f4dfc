"""Queue depth while the pool sheds: bounded by what the gateway lets wait, no compounding."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from planner_builders import NOW, make_spec, observe, plan_and_commit
from test_plan_properties import specs

from fleetscale.api.inferencepool import ShedLoadSpec
from fleetscale.planner import censor
from fleetscale.planner.types import (
    MetricReading,
    PlannerState,
    ShedState,
    Step,
    TimedReplicas,
)

_SHEDDING = ShedState(active=True, since=NOW - 60, reason="NodesProvisioning")
_QUIET = ShedState(active=False, since=NOW - 600, reason="NotLimited")


def _spec(**shed_load: Any) -> Any:
    """The flash crowd's numbers: target 2 per replica, shed above 10 per ready replica."""
    return make_spec(
        max_replicas=64,
        target_per_replica=2,
        shed_load={"queuePerReplicaThreshold": 10, **shed_load},
    )


def _state(shed: ShedState, last_ask: int | None = None) -> PlannerState:
    history = () if last_ask is None else (TimedReplicas(time=NOW - 30, replicas=last_ask),)
    return PlannerState(recommendations=history, shed=shed)


def _reading(value: float, sampled_at: float) -> MetricReading:
    return MetricReading.ok(value, sampled_at=sampled_at)


@pytest.mark.parametrize(
    ("spec", "shed", "ready", "bound"),
    [
        pytest.param(ShedLoadSpec(queue_per_replica_threshold=10), _SHEDDING, 7, 70, id="on"),
        pytest.param(ShedLoadSpec(queue_per_replica_threshold=10), _QUIET, 7, None, id="off"),
        pytest.param(
            ShedLoadSpec(enabled=False, queue_per_replica_threshold=10),
            _SHEDDING,
            7,
            None,
            id="disabled",
        ),
        pytest.param(
            ShedLoadSpec(queue_per_replica_threshold=10), _SHEDDING, 0, 10, id="none-ready"
        ),
    ],
)
def test_queue_bound(spec: ShedLoadSpec, shed: ShedState, ready: int, bound: float | None) -> None:
    assert censor.queue_bound(spec, shed, ready) == bound


@pytest.mark.parametrize(
    ("shed", "sampled_at", "expected"),
    [
        pytest.param(_SHEDDING, NOW - 30, True, id="sampled-after-the-flag"),
        pytest.param(_SHEDDING, NOW - 60, False, id="sampled-as-the-flag-went-up"),
        pytest.param(_SHEDDING, NOW - 90, False, id="sampled-before-the-flag"),
        pytest.param(_QUIET, NOW - 30, False, id="flag-off"),
        pytest.param(
            ShedState(active=True, since=None, reason="MaxReplicas"),
            NOW - 30,
            False,
            id="no-since",
        ),
    ],
)
def test_censored(shed: ShedState, sampled_at: float, expected: bool) -> None:
    assert censor.censored(shed, _reading(50, sampled_at)) is expected


_ASK = Step("combine", 30, "QueueDepth", "queue 60 waiting")


@pytest.mark.parametrize(
    ("ask", "current", "ready", "last_ask", "replicas", "reason"),
    [
        pytest.param(_ASK, 14, 7, 35, 35, "ReplicasInFlight", id="in-flight-keeps-last-ask"),
        pytest.param(_ASK, 14, 7, 10, 14, "ReplicasInFlight", id="in-flight-never-below-current"),
        pytest.param(
            Step("combine", 60, "QueueDepth"),
            35,
            20,
            35,
            35,
            "ReplicasInFlight",
            id="in-flight-does-not-compound",
        ),
        pytest.param(
            Step("combine", 90, "QueueDepth"),
            30,
            30,
            30,
            37,
            "CensoredGrowthLimited",
            id="all-ready-grows-a-quarter",
        ),
        pytest.param(
            Step("combine", 9, "QueueDepth"),
            2,
            2,
            2,
            3,
            "CensoredGrowthLimited",
            id="all-ready-grows-at-least-one",
        ),
        pytest.param(
            Step("combine", 33, "QueueDepth"),
            30,
            30,
            30,
            33,
            "NotCensored",
            id="all-ready-small-ask-passes",
        ),
        pytest.param(
            Step("combine", 20, "GpuUtilization"),
            30,
            32,
            30,
            20,
            "NotCensored",
            id="all-ready-lower-ask-passes",
        ),
    ],
)
def test_shedding_step(
    ask: Step, current: int, ready: int, last_ask: int, replicas: int, reason: str
) -> None:
    step = censor.shedding_step(
        ask, current_replicas=current, ready_replicas=ready, last_ask=last_ask
    )
    assert (step.name, step.replicas, step.reason) == ("shedding", replicas, reason)


@pytest.mark.parametrize(
    ("shed", "last_ask", "current", "ready", "queue", "sampled_at", "ask", "steps"),
    [
        pytest.param(
            _QUIET, None, 14, 7, 447, NOW - 15, 224, "queue", id="flag-off-whole-backlog-counts"
        ),
        pytest.param(
            _SHEDDING,
            None,
            14,
            7,
            447,
            NOW - 60,
            35,
            "queue",
            id="flag-on-backlog-counted-up-to-threshold",
        ),
        pytest.param(
            _SHEDDING, 35, 14, 7, 52, NOW - 15, 35, "shedding", id="censored-in-flight-holds"
        ),
        pytest.param(
            _SHEDDING,
            35,
            35,
            20,
            173,
            NOW - 15,
            35,
            "shedding",
            id="censored-new-replicas-prefill-spike-holds",
        ),
        pytest.param(
            _SHEDDING, 30, 30, 30, 180, NOW - 15, 37, "shedding", id="censored-all-ready-grows"
        ),
        pytest.param(
            _SHEDDING, 30, 30, 30, 40, NOW - 15, 20, "shedding", id="censored-low-queue-passes"
        ),
    ],
)
def test_plan_while_shedding(
    shed: ShedState,
    last_ask: int | None,
    current: int,
    ready: int,
    queue: float,
    sampled_at: float,
    ask: int,
    steps: str,
) -> None:
    observation = observe(current, ready=ready, queue=_reading(queue, sampled_at))
    decision, _ = plan_and_commit(_spec(), observation, _state(shed, last_ask), NOW)
    assert decision.unconstrained_replicas == ask
    names = [step.name for step in decision.steps]
    assert ("shedding" in names) is (steps == "shedding")


def test_a_flag_that_is_not_published_censors_nothing() -> None:
    # DryRun decides and reports the flag but never sends it to the gateways: the queue they
    # let wait is the whole demand, and a pool that never grows must not shrink its ask.
    dry_run = ShedState(active=True, since=NOW - 60, reason="DryRunWouldShed", published=False)
    observation = observe(1, ready=1, queue=_reading(26, NOW - 15))
    decision, _ = plan_and_commit(_spec(), observation, _state(dry_run, 6), NOW)
    assert decision.unconstrained_replicas == 13  # 26 waiting / target 2, not grown by a quarter
    assert "shedding" not in [step.name for step in decision.steps]


@pytest.mark.parametrize(
    ("shed", "queue", "sampled_at", "ready", "expected"),
    [
        pytest.param(_SHEDDING, 300, NOW - 15, 7, False, id="near-the-cap-is-censored"),
        pytest.param(_SHEDDING, 351, NOW - 15, 7, True, id="over-five-times-the-cap"),
        pytest.param(_SHEDDING, 447, NOW - 60, 7, False, id="sampled-before-the-flag"),
        pytest.param(_QUIET, 447, NOW - 15, 7, False, id="flag-off"),
    ],
)
def test_gateway_not_capping(
    shed: ShedState, queue: float, sampled_at: float, ready: int, expected: bool
) -> None:
    spec = ShedLoadSpec(queue_per_replica_threshold=10)
    reading = _reading(queue, sampled_at)
    assert censor.gateway_not_capping(spec, shed, reading, ready) is expected


def test_queue_far_over_the_cap_counts_in_full() -> None:
    """200 waiting on 2 ready replicas while shedding at 10 each: the gateways do not cap."""
    observation = observe(2, ready=2, queue=_reading(200, NOW - 15))
    decision, _ = plan_and_commit(_spec(), observation, _state(_SHEDDING, last_ask=6), NOW)
    assert decision.unconstrained_replicas == 100
    shedding = next(step for step in decision.steps if step.name == "shedding")
    assert (shedding.replicas, shedding.reason) == (100, censor.NOT_CENSORED)


@pytest.mark.parametrize("waiting", [0, 250, 251, 500], ids=lambda w: f"waiting-{w}")
def test_a_reading_over_the_cap_never_asks_for_less_than_one_under_it(waiting: int) -> None:
    """200 replicas, 5 ready, shedding at 10 per ready replica: up to 5 x 50 waiting the
    reading is capped and the ask holds at 200 while replicas are in flight; past that it
    counts in full, but 251 waiting (126 replicas' worth) must not ask for fewer than 250
    held."""
    observation = observe(200, ready=5, queue=_reading(waiting, NOW - 15))
    decision, _ = plan_and_commit(_spec(), observation, _state(_SHEDDING, last_ask=200), NOW)
    assert decision.unconstrained_replicas == max(200, math.ceil(waiting / 2))


def test_bounded_queue_says_why() -> None:
    observation = observe(14, ready=7, queue=_reading(447, NOW - 60))
    decision, _ = plan_and_commit(_spec(), observation, _state(_SHEDDING), NOW)
    queue = next(step for step in decision.steps if step.name == "queue")
    assert "counted up to 70 while shedding" in queue.message
    assert "447 waiting, which alone asks for 224" in queue.message


def test_flag_is_judged_on_the_whole_reading() -> None:
    """The bound only decides how many replicas to add: it must not drop the flag.

    At replicas.max 1 a queue of 2 asks for 2; bounded to 1 per ready replica it would ask
    for 1, the pool would look unlimited and the flag would flap off and on.
    """
    spec = make_spec(
        max_replicas=1, target_per_replica=1, shed_load={"queuePerReplicaThreshold": 1}
    )
    observation = observe(1, ready=1, queue=_reading(2, NOW - 5))
    decision, _ = plan_and_commit(spec, observation, _state(_SHEDDING, last_ask=2), NOW)
    assert decision.scaling_limited.reason == "MaxReplicas"
    assert decision.shed.active


def test_flash_crowd_grows_by_rounds() -> None:
    """The gateway pins the queue at its threshold per ready replica whatever the demand:
    the ask grows only once every replica asked for is ready, by a quarter at most."""
    spec = _spec(releaseQueuePerReplica=0)
    state = PlannerState()
    current, ready = 7, 7
    asks: list[tuple[int, int, int]] = []  # (ask, current, ready) per tick
    for tick in range(40):
        now = NOW + 15 * tick
        # Before the flag the backlog grows; after it the gateway keeps 10 per ready replica.
        queue = 447.0 if tick == 0 else 10.0 * ready
        observation = observe(current, ready=ready, queue=_reading(queue, now - 15), now=now)
        decision, state = plan_and_commit(spec, observation, state, now)
        asks.append((decision.unconstrained_replicas, current, ready))
        current = decision.desired_replicas
        ready = min(current, ready + 2)  # two replicas become ready per poll
    assert asks[0][0] == 224  # the flag was off: the whole backlog counts (once)
    assert asks[1][0] == 45  # flag on: 10 per ready replica (9) count, at 2 per replica
    for (before, _, _), (ask, current, ready) in itertools.pairwise(asks[1:]):
        if ask > before:
            assert ready == current
            assert ask <= current + max(1, math.floor(current * censor.CENSORED_GROWTH))
    assert [ask for ask, _, _ in asks[2:]] != [45] * 38  # rounds do happen


@given(
    spec=specs(),
    current=st.integers(0, 40),
    ready=st.integers(0, 40),
    queue=st.floats(0, 2000),
    last_ask=st.integers(0, 60),
)
def test_shedding_never_shrinks_and_grows_by_rounds(
    spec: Any, current: int, ready: int, queue: float, last_ask: int
) -> None:
    """While the flag is on and the queue alone asks for more, the ask is never below the
    current size; with every replica ready it grows by at most a quarter (at least one)."""
    observation = observe(current, ready=ready, queue=_reading(queue, NOW - 1))
    decision, _ = plan_and_commit(spec, observation, _state(_SHEDDING, last_ask), NOW)
    if not spec.shed_load.enabled:
        return
    if queue > censor.CAP_SLACK * spec.shed_load.queue_per_replica_threshold * max(ready, 1):
        return  # the gateways are not capping the queue: the reading counts in full
    raw = math.ceil(queue / spec.metrics.queue_depth.target_per_replica - 1e-9)
    if raw > current:
        assert decision.unconstrained_replicas >= current
    if ready >= current:
        growth = max(1, math.floor(current * censor.CENSORED_GROWTH))
        assert decision.unconstrained_replicas <= max(current + growth, min(raw, current))
