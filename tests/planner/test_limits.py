"""Steps 7-8, ``capacity`` and ``bounds``, and the ScalingLimited verdict."""

from __future__ import annotations

import pytest

from fleetscale.api.inferencepool import ReplicaBounds
from fleetscale.planner import limits
from fleetscale.planner.types import CapacityLimit

_BOUNDS = ReplicaBounds(min=1, max=8)


def _capacity(max_replicas: int, reason: str = "MaxNodes") -> CapacityLimit:
    return CapacityLimit(max_replicas=max_replicas, reason=reason, message="2 of 2 nodes")


@pytest.mark.parametrize(
    ("desired", "current", "capacity", "replicas", "reason"),
    [
        pytest.param(8, 4, None, 8, "NoCapacityLimit", id="no-accelerator-pool"),
        pytest.param(8, 4, _capacity(6), 6, "MaxNodes", id="growth-capped"),
        pytest.param(5, 4, _capacity(6), 5, "WithinCapacity", id="growth-fits"),
        pytest.param(8, 5, _capacity(3), 5, "MaxNodes", id="never-forces-shrink"),
        pytest.param(4, 5, _capacity(3), 4, "WithinCapacity", id="shrink-untouched"),
        pytest.param(
            9, 4, _capacity(6, "NodesProvisioning"), 6, "NodesProvisioning", id="reason-passed-on"
        ),
    ],
)
def test_cap_to_capacity(
    desired: int, current: int, capacity: CapacityLimit | None, replicas: int, reason: str
) -> None:
    step = limits.cap_to_capacity(desired, current, capacity)
    assert (step.name, step.replicas, step.reason) == ("capacity", replicas, reason)


@pytest.mark.parametrize(
    ("desired", "replicas", "reason"),
    [
        pytest.param(9, 8, "MaxReplicas", id="above-max"),
        pytest.param(0, 1, "MinReplicas", id="below-min"),
        pytest.param(8, 8, "WithinBounds", id="at-max"),
        pytest.param(1, 1, "WithinBounds", id="at-min"),
    ],
)
def test_clamp_to_bounds(desired: int, replicas: int, reason: str) -> None:
    step = limits.clamp_to_bounds(desired, _BOUNDS)
    assert (step.name, step.replicas, step.reason) == ("bounds", replicas, reason)


@pytest.mark.parametrize(
    ("demand", "desired", "current", "ready", "capacity", "status", "reason"),
    [
        pytest.param(4, 4, 4, 4, None, False, "DesiredWithinRange", id="fits"),
        pytest.param(10, 8, 8, 8, None, True, "MaxReplicas", id="above-max"),
        pytest.param(10, 6, 4, 4, None, True, "MaxReplicas", id="above-max-while-ramping"),
        pytest.param(6, 5, 5, 5, _capacity(5), True, "MaxNodes", id="capacity"),
        pytest.param(10, 8, 8, 8, _capacity(9), True, "MaxReplicas", id="max-tighter"),
        pytest.param(10, 5, 5, 5, _capacity(5), True, "MaxNodes", id="capacity-tighter"),
        pytest.param(5, 5, 5, 5, _capacity(5), False, "DesiredWithinRange", id="capacity-fits"),
        pytest.param(6, 6, 6, 3, None, True, "ReplicasNotReady", id="replicas-loading"),
        pytest.param(3, 6, 6, 3, None, False, "DesiredWithinRange", id="ready-cover-demand"),
        pytest.param(None, 8, 8, 8, None, True, "MaxReplicas", id="no-metrics-at-max"),
        pytest.param(None, 4, 4, 4, _capacity(4), True, "MaxNodes", id="no-metrics-no-room"),
        pytest.param(None, 4, 4, 4, None, False, "DesiredWithinRange", id="no-metrics-room"),
        pytest.param(None, 4, 4, 2, None, True, "ReplicasNotReady", id="no-metrics-loading"),
    ],
)
def test_scaling_limited(
    demand: int | None,
    desired: int,
    current: int,
    ready: int,
    capacity: CapacityLimit | None,
    status: bool,
    reason: str,
) -> None:
    verdict = limits.scaling_limited(
        demand=demand,
        desired_replicas=desired,
        current_replicas=current,
        ready_replicas=ready,
        bounds=_BOUNDS,
        capacity=capacity,
    )
    assert (verdict.status, verdict.reason) == (status, reason)
    assert verdict.message


def test_scaling_limited_message_explains_the_capacity() -> None:
    verdict = limits.scaling_limited(
        demand=6,
        desired_replicas=5,
        current_replicas=5,
        ready_replicas=5,
        bounds=_BOUNDS,
        capacity=_capacity(5),
    )
    assert verdict.message == (
        "the signals ask for 6 replicas and the accelerator pool holds 5 replicas "
        "(MaxNodes: 2 of 2 nodes)"
    )


@pytest.mark.parametrize(
    ("capacity", "binds"),
    [
        pytest.param(None, False, id="no-accelerator-pool"),
        pytest.param(_capacity(4, "CapacityAvailable"), False, id="all-demand-fits"),
        pytest.param(_capacity(4, "MaxNodes"), True, id="max-nodes"),
        pytest.param(_capacity(4, "NodesProvisioning"), True, id="provisioning"),
    ],
)
def test_binding_capacity(capacity: CapacityLimit | None, binds: bool) -> None:
    assert limits.binding_capacity(capacity) == (capacity if binds else None)
