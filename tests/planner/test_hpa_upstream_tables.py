"""The HPA's own behavior tables, ported: a behavior block copied from an HPA gives its numbers.

Each table is one upstream test of kubernetes/kubernetes, cited by name; each row keeps its
upstream name as the id. Upstream runs them through ``HorizontalController`` methods; here the
same inputs go through ``behavior.rules``, ``behavior.stabilize``, ``behavior.rate_limit`` and
``limits.clamp_to_bounds``. Where fleetscale deliberately differs, the row says so and expects
fleetscale's number (docs/planner.md, "Behavior", lists every deviation).
"""

from __future__ import annotations

from typing import Any

import pytest
from planner_builders import NOW

from fleetscale.api.inferencepool import Behavior
from fleetscale.planner import behavior, limits
from fleetscale.planner.types import TimedDelta, TimedReplicas


def _rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window: int | None = None
) -> dict[str, Any]:
    """Upstream's ``generateScalingRules``: a Pods policy, then a Percent one, select Max."""
    policies = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "periodSeconds": percent_period})
    wire: dict[str, Any] = {"selectPolicy": "Max", "policies": policies}
    if window is not None:
        wire["stabilizationWindowSeconds"] = window
    return wire


def _uniform(changes: list[int], period_seconds: int, sign: int) -> tuple[TimedDelta, ...]:
    """Upstream's ``generateEventsUniformDistribution``: one event in the middle of each of
    ``len(changes)`` equal segments of the last ``period_seconds``."""
    segment = period_seconds / len(changes)
    return tuple(
        TimedDelta(
            time=NOW - (period_seconds - segment * (index + 1) + segment / 2), delta=sign * change
        )
        for index, change in enumerate(changes)
    )


def _behavior(up: dict[str, Any] | None, down: dict[str, Any] | None) -> Behavior:
    wire: dict[str, Any] = {}
    if up is not None:
        wire["scaleUp"] = up
    if down is not None:
        wire["scaleDown"] = down
    return Behavior.model_validate(wire)


def _bounds(min_replicas: int, max_replicas: int) -> Any:
    from fleetscale.api.inferencepool import ReplicaBounds

    return ReplicaBounds(min=min_replicas, max=max_replicas)


_UP_1_5_9 = _uniform([1, 5, 9], 120, +1)
_DOWN_1_5_9 = _uniform([1, 5, 9], 120, -1)
_UP_OUTDATED = _uniform([8, 12, 9, 11], 120, +1)
_DOWN_OUTDATED = _uniform([8, 12, 9, 11], 120, -1)


# TestScalingWithRules (pkg/controller/podautoscaler/horizontal_test.go): rate limits and
# bounds, convertDesiredReplicasWithBehaviorRate. Columns: up rules, down rules, events,
# min, max, current, prenormalized desired, expected replicas, upstream condition.
@pytest.mark.parametrize(
    ("up", "down", "events", "low", "high", "current", "desired", "expected", "condition"),
    [
        pytest.param(None, None, (), 3, 8, 5, 7, 7, "DesiredWithinRange", id="within-range"),
        pytest.param(None, None, (), 2, 8, 3, 1, 2, "TooFewReplicas", id="below-min"),
        pytest.param(
            None, None, (), 0, 10, 1, 0, 0, "DesiredWithinRange", id="zero-within-range-min-0"
        ),
        pytest.param(
            None, None, (), 1, 10, 20, 1000, 10, "TooManyReplicas", id="max-below-scale-up-limit"
        ),
        pytest.param(
            None, None, (), 100, 150, 100, 1000, 150, "TooManyReplicas", id="more-than-max"
        ),
        pytest.param(
            _rules(0, 0, 1, 60, 0),
            None,
            (),
            1,
            2000,
            3,
            1000,
            4,
            "ScaleUpLimit",
            id="scale-up-limit-user-policies",
        ),
        pytest.param(
            None,
            _rules(20, 60, 0, 0, 0),
            (),
            3,
            2000,
            1000,
            3,
            980,
            "ScaleDownLimit",
            id="scale-down-limit-user-policies",
        ),
        pytest.param(
            None, None, (), 1, 1000, 10, 50, 20, "ScaleUpLimit", id="scale-up-default-behavior"
        ),
        pytest.param(
            _rules(100, 60, 100, 60, 0),
            None,
            (),
            1,
            1000,
            10,
            500,
            110,
            "ScaleUpLimit",
            id="pods-policy-larger-than-percent",
        ),
        pytest.param(
            _rules(2, 60, 100, 60, 0),
            None,
            (),
            1,
            1000,
            10,
            500,
            20,
            "ScaleUpLimit",
            id="percent-policy-larger-than-pods",
        ),
        pytest.param(
            _rules(100, 60, 0, 0, 0),
            None,
            (),
            1,
            1000,
            10,
            50,
            50,
            "DesiredWithinRange",
            id="max-with-large-pods-policy",
        ),
        pytest.param(
            _rules(10000, 60, 0, 0, 0),
            None,
            (),
            1,
            1000,
            10,
            50,
            50,
            "DesiredWithinRange",
            id="max-with-large-percent-policy",
        ),
        pytest.param(
            _rules(30, 60, 0, 0, 0),
            None,
            (),
            1,
            1000,
            10,
            50,
            40,
            "ScaleUpLimit",
            id="pod-policy-limitation",
        ),
        pytest.param(
            _rules(0, 0, 200, 60, 0),
            None,
            (),
            1,
            1000,
            10,
            50,
            30,
            "ScaleUpLimit",
            id="percent-policy-limitation",
        ),
        pytest.param(
            None,
            _rules(20, 60, 1, 60, 300),
            (),
            1,
            1000,
            100,
            2,
            80,
            "ScaleDownLimit",
            id="down-percent-larger-than-pods",
        ),
        pytest.param(
            None,
            _rules(2, 60, 1, 60, 300),
            (),
            1,
            1000,
            100,
            2,
            98,
            "ScaleDownLimit",
            id="down-pods-larger-than-percent",
        ),
        pytest.param(
            None,
            _rules(100, 60, 0, 0, 300),
            (),
            1,
            1000,
            10,
            0,
            1,
            "TooFewReplicas",
            id="down-min-with-large-pods-policy",
        ),
        pytest.param(
            None,
            _rules(0, 0, 100, 60, 300),
            (),
            5,
            1000,
            10,
            2,
            5,
            "TooFewReplicas",
            id="down-min-with-large-percent-policy",
        ),
        pytest.param(
            None,
            _rules(5, 60, 0, 0, 300),
            (),
            1,
            1000,
            10,
            2,
            5,
            "ScaleDownLimit",
            id="down-pod-policy-limitation",
        ),
        pytest.param(
            None,
            _rules(0, 0, 50, 60, 300),
            (),
            1,
            1000,
            10,
            5,
            5,
            "DesiredWithinRange",
            id="down-percent-policy-limitation",
        ),
        pytest.param(
            _rules(300, 60, 0, 0, 0),
            None,
            _UP_1_5_9,
            1,
            200,
            100,
            500,
            200,
            "TooManyReplicas",
            id="up-max-with-large-pods-policy-and-events",
        ),
        pytest.param(
            _rules(0, 0, 10000, 60, 0),
            None,
            _UP_1_5_9,
            1,
            200,
            100,
            500,
            200,
            "TooManyReplicas",
            id="up-max-with-large-percent-policy-and-events",
        ),
        pytest.param(
            _rules(5, 120, 0, 0, 0),
            None,
            _UP_1_5_9,
            1,
            1000,
            100,
            500,
            100,
            "ScaleUpLimit",
            id="up-current-limit-after-many-recent-events",
        ),
        pytest.param(
            _rules(150, 120, 0, 0, 0),
            None,
            _UP_1_5_9,
            1,
            1000,
            100,
            500,
            235,
            "ScaleUpLimit",
            id="up-pods-policy-after-events",
        ),
        pytest.param(
            _rules(0, 0, 200, 120, 0),
            None,
            _UP_1_5_9,
            1,
            1000,
            100,
            500,
            255,
            "ScaleUpLimit",
            id="up-percent-policy-after-events",
        ),
        pytest.param(
            _rules(0, 0, 300, 300, 0),
            None,
            _uniform([4], 120, +1) + _uniform([2], 120, -1),
            1,
            1000,
            6,
            24,
            16,
            "ScaleUpLimit",
            id="up-percent-policy-after-up-and-down-events",
        ),
        pytest.param(
            None,
            None,
            _DOWN_1_5_9,
            1,
            1000,
            10,
            5,
            5,
            "DesiredWithinRange",
            id="down-default-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(115, 120, 0, 0, 300),
            _DOWN_1_5_9,
            1,
            1000,
            100,
            0,
            1,
            "TooFewReplicas",
            id="down-min-1-large-pods-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(130, 120, 0, 0, 300),
            _DOWN_1_5_9,
            5,
            1000,
            100,
            0,
            5,
            "TooFewReplicas",
            id="down-min-5-large-pods-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(0, 0, 100, 120, 300),
            _DOWN_1_5_9,
            5,
            1000,
            100,
            2,
            5,
            "TooFewReplicas",
            id="down-min-large-percent-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(5, 120, 0, 0, 300),
            _DOWN_1_5_9,
            1,
            1000,
            100,
            2,
            100,
            "ScaleDownLimit",
            id="down-pod-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(0, 0, 50, 120, 300),
            _uniform([2, 4, 6], 120, -1),
            1,
            1000,
            100,
            0,
            56,
            "ScaleDownLimit",
            id="down-percent-policy-after-events",
        ),
        pytest.param(
            None,
            _rules(0, 0, 50, 180, 0),
            _uniform([2], 120, +1) + _uniform([4], 120, -1),
            1,
            1000,
            10,
            1,
            6,
            "ScaleDownLimit",
            id="down-percent-policy-after-up-and-down-events",
        ),
        pytest.param(
            None,
            _rules(0, 0, 10, 120, 300),
            _uniform([10, 10, 10], 120, -1),
            1,
            1000,
            100,
            0,
            100,
            "ScaleDownLimit",
            id="down-prevented-by-previous-events",
        ),
        pytest.param(
            None,
            _rules(0, 0, 1000, 120, 300),
            _uniform([10, 10, 10], 120, -1),
            1,
            1000,
            10,
            5,
            5,
            "DesiredWithinRange",
            id="down-still-allowed-after-events",
        ),
        pytest.param(
            _rules(1000, 60, 0, 0, 0),
            None,
            _UP_OUTDATED,
            1,
            1000,
            100,
            200,
            200,
            "DesiredWithinRange",
            id="outdated-events-one-policy-up",
        ),
        pytest.param(
            _rules(1000, 120, 100, 60, 0),
            None,
            _UP_OUTDATED,
            1,
            1000,
            100,
            200,
            200,
            "DesiredWithinRange",
            id="events-not-outdated-two-policies-up",
        ),
        pytest.param(
            _rules(1000, 30, 100, 60, 0),
            None,
            _UP_OUTDATED,
            1,
            1000,
            100,
            200,
            200,
            "DesiredWithinRange",
            id="events-outdated-two-policies-up",
        ),
        pytest.param(
            None,
            _rules(1000, 60, 0, 0, 300),
            _DOWN_OUTDATED,
            1,
            1000,
            100,
            5,
            5,
            "DesiredWithinRange",
            id="outdated-events-one-policy-down",
        ),
        pytest.param(
            None,
            _rules(1000, 120, 100, 60, 300),
            _DOWN_OUTDATED,
            1,
            1000,
            100,
            5,
            5,
            "DesiredWithinRange",
            id="events-not-outdated-two-policies-down",
        ),
        pytest.param(
            None,
            _rules(1000, 30, 100, 60, 300),
            _DOWN_OUTDATED,
            1,
            1000,
            100,
            5,
            5,
            "DesiredWithinRange",
            id="events-outdated-two-policies-down",
        ),
    ],
)
def test_scaling_with_rules(
    up: dict[str, Any] | None,
    down: dict[str, Any] | None,
    events: tuple[TimedDelta, ...],
    low: int,
    high: int,
    current: int,
    desired: int,
    expected: int,
    condition: str,
) -> None:
    """TestScalingWithRules: the rate step, then the bounds step, give upstream's number."""
    spec = _behavior(up, down)
    rated = behavior.rate_limit(desired, current, events, spec, NOW)
    bounded = limits.clamp_to_bounds(rated.replicas, _bounds(low, high))
    assert bounded.replicas == expected
    ours = {
        "ScaleUpLimit": ("ScaleUpRateLimited", "WithinBounds"),
        "ScaleDownLimit": ("ScaleDownRateLimited", "WithinBounds"),
        "TooManyReplicas": (None, "MaxReplicas"),
        "TooFewReplicas": (None, "MinReplicas"),
        "DesiredWithinRange": ("WithinRateLimits", "WithinBounds"),
    }[condition]
    rate_reason, bounds_reason = ours
    if rate_reason is not None:
        assert rated.reason == rate_reason
    assert bounded.reason == bounds_reason


def _recs(*entries: tuple[float, int]) -> tuple[TimedReplicas, ...]:
    return tuple(TimedReplicas(time=NOW - age, replicas=n) for age, n in entries)


# TestNormalizeDesiredReplicasWithBehavior (horizontal_test.go): stabilizeRecommendation-
# WithBehaviors. Columns: history, current, prenormalized desired, up and down windows,
# expected replicas.
@pytest.mark.parametrize(
    ("history", "current", "desired", "up_window", "down_window", "expected"),
    [
        pytest.param((), 100, 5, 0, 0, 5, id="empty-recommendations-for-scaling-down"),
        pytest.param(
            _recs((120, 4), (60, 5)), 100, 3, 0, 180, 5, id="simple-scale-down-stabilization"
        ),
        pytest.param(_recs((120, 4), (60, 5)), 1, 7, 300, 0, 4, id="simple-scale-up-stabilization"),
        pytest.param(_recs((120, 1), (60, 2)), 100, 3, 300, 0, 3, id="no-scale-down-stabilization"),
        pytest.param(_recs((120, 4), (60, 5)), 1, 3, 0, 300, 3, id="no-scale-up-stabilization"),
        pytest.param(
            _recs((600, 10), (540, 9)), 100, 3, 0, 0, 3, id="no-scale-down-stabilization-reuse"
        ),
        pytest.param(
            _recs((600, 10), (540, 9)), 1, 100, 0, 0, 100, id="no-scale-up-stabilization-reuse"
        ),
        # Deliberate deviation: upstream expects 5. Its table holds no sample between 540 s and
        # 120 s ago, so the ask of 9 counts for upstream only at its last sample (540 s ago,
        # outside the 180 s window). fleetscale keeps run-length segments: the ask was 9 until
        # 120 s ago (when 5 replaced it), so it is still within the window. On a live pool the
        # HPA samples every sync period, and the two agree to within one poll interval.
        pytest.param(
            _recs((600, 10), (60, 4), (120, 5), (540, 9)),
            100,
            3,
            0,
            180,
            9,
            id="scale-down-stabilization-reuse-obsolete-segment-deviation",
        ),
        pytest.param(
            _recs((6000, 10), (60, 6), (120, 5), (180, 9)),
            1,
            100,
            300,
            0,
            5,
            id="scale-up-stabilization-reuse-obsolete",
        ),
        pytest.param(
            _recs((6000, 2), (180, 3)),
            2,
            1,
            300,
            300,
            2,
            id="no-scale-up-when-prenormalized-goes-down",
        ),
        pytest.param(
            _recs((6000, 2), (180, 1)),
            2,
            3,
            300,
            300,
            2,
            id="no-scale-down-when-prenormalized-goes-up",
        ),
    ],
)
def test_normalize_desired_replicas_with_behavior(
    history: tuple[TimedReplicas, ...],
    current: int,
    desired: int,
    up_window: int,
    down_window: int,
    expected: int,
) -> None:
    """TestNormalizeDesiredReplicasWithBehavior: the stabilize step gives upstream's number."""
    spec = _behavior(
        {"stabilizationWindowSeconds": up_window}, {"stabilizationWindowSeconds": down_window}
    )
    assert behavior.stabilize(desired, current, history, spec, NOW).replicas == expected


_MAX = "Max"
_MIN = "Min"


# TestGenerateScaleUpRules and TestGenerateScaleDownRules (pkg/apis/autoscaling/v2/
# defaults_test.go): what an omitted field becomes. Columns: direction, the given rules,
# expected (window, select policy, policies as (type, value, period)).
@pytest.mark.parametrize(
    ("direction", "given", "window", "select", "policies"),
    [
        pytest.param(
            "up",
            None,
            0,
            _MAX,
            (("Pods", 4, 15), ("Percent", 100, 15)),
            id="TestGenerateScaleUpRules-default-values",
        ),
        pytest.param(
            "up",
            {**_rules(1, 2, 3, 4, 25), "selectPolicy": _MAX},
            25,
            _MAX,
            (("Pods", 1, 2), ("Percent", 3, 4)),
            id="TestGenerateScaleUpRules-all-parameters",
        ),
        pytest.param(
            "up",
            {**_rules(1, 2, 0, 0), "selectPolicy": _MIN},
            0,
            _MIN,
            (("Pods", 1, 2),),
            id="TestGenerateScaleUpRules-pod-policy",
        ),
        pytest.param(
            "up",
            _rules(0, 0, 7, 10),
            0,
            _MAX,
            (("Percent", 7, 10),),
            id="TestGenerateScaleUpRules-percent-policy",
        ),
        pytest.param(
            "up",
            _rules(4, 2, 0, 0, 25),
            25,
            _MAX,
            (("Pods", 4, 2),),
            id="TestGenerateScaleUpRules-pod-policy-and-window",
        ),
        pytest.param(
            "up",
            _rules(0, 0, 7, 60, 25),
            25,
            _MAX,
            (("Percent", 7, 60),),
            id="TestGenerateScaleUpRules-percent-policy-and-window",
        ),
        # Upstream leaves the scale-down window nil here; the controller then applies its
        # --horizontal-pod-autoscaler-downscale-stabilization default of 300 s.
        pytest.param(
            "down",
            None,
            300,
            _MAX,
            (("Percent", 100, 15),),
            id="TestGenerateScaleDownRules-default-values",
        ),
        pytest.param(
            "down",
            {**_rules(1, 2, 3, 4, 25), "selectPolicy": _MAX},
            25,
            _MAX,
            (("Pods", 1, 2), ("Percent", 3, 4)),
            id="TestGenerateScaleDownRules-all-parameters",
        ),
        pytest.param(
            "down",
            {**_rules(0, 0, 1, 2), "selectPolicy": _MIN},
            300,
            _MIN,
            (("Percent", 1, 2),),
            id="TestGenerateScaleDownRules-percent-policy",
        ),
        pytest.param(
            "down",
            _rules(3, 4, 0, 0),
            300,
            _MAX,
            (("Pods", 3, 4),),
            id="TestGenerateScaleDownRules-pods-policy",
        ),
    ],
)
def test_generate_scale_rules(
    direction: str,
    given: dict[str, Any] | None,
    window: int,
    select: str,
    policies: tuple[tuple[str, int, int], ...],
) -> None:
    spec = _behavior(given, None) if direction == "up" else _behavior(None, given)
    resolved = behavior.rules(spec, direction)
    assert resolved.window_seconds == window
    assert resolved.select_policy == select
    assert tuple((p.type, p.value, p.period_seconds) for p in resolved.policies) == policies


def test_calculate_scale_up_limit_with_scaling_rules() -> None:
    """TestCalculateScaleUpLimitWithScalingRules: Min of Pods 2 and Percent 50 from 1 is 2."""
    spec = _behavior({**_rules(2, 60, 50, 60, 300), "selectPolicy": _MIN}, None)
    assert behavior.scale_up_limit(1, (), behavior.rules(spec, "up"), NOW) == 2


def test_calculate_scale_down_limit_with_behaviors() -> None:
    """TestCalculateScaleDownLimitWithBehaviors: Min of Pods 2 and Percent 50 from 5 is 3."""
    spec = _behavior(None, {**_rules(2, 60, 50, 60, 300), "selectPolicy": _MIN})
    assert behavior.scale_down_limit(5, (), behavior.rules(spec, "down"), NOW) == 3


@pytest.mark.parametrize(
    ("current", "percent", "limit"),
    [
        # upstream computes ceil(float64(start) * (1 + float64(value)/100)): 25 * 1.12 is
        # 28.000000000000004 in floating point, so +12% of 25 allows 29, not 28.
        pytest.param(25, 12, 29, id="float-rounding-as-upstream"),
        pytest.param(0, 100, 0, id="percent-from-zero-is-zero"),
        pytest.param(3, 50, 5, id="ceil-of-4.5"),
    ],
)
def test_percent_scale_up_uses_upstream_arithmetic(current: int, percent: int, limit: int) -> None:
    spec = _behavior(_rules(0, 0, percent, 60), None)
    assert behavior.scale_up_limit(current, (), behavior.rules(spec, "up"), NOW) == limit


@pytest.mark.parametrize(
    ("current", "percent", "limit"),
    [
        # int32(float64(start) * (1 - float64(value)/100)) truncates: 10 * (1 - 0.9) is
        # 0.9999999999999998, so -90% of 10 allows 0, not 1.
        pytest.param(10, 90, 0, id="float-truncation-as-upstream"),
        pytest.param(10, 50, 5, id="exact-half"),
        pytest.param(3, 50, 1, id="truncates-1.5"),
    ],
)
def test_percent_scale_down_uses_upstream_arithmetic(
    current: int, percent: int, limit: int
) -> None:
    spec = _behavior(None, _rules(0, 0, percent, 60))
    assert behavior.scale_down_limit(current, (), behavior.rules(spec, "down"), NOW) == limit


@pytest.mark.parametrize(
    ("down", "up", "within"),
    [
        pytest.param(None, None, (0.9, 1.1), id="hpa-default-0.1"),
        pytest.param(0.3, 0.05, (0.7, 1.05), id="per-direction"),
    ],
)
def test_tolerances_resolve_per_direction(
    down: float | None, up: float | None, within: tuple[float, float]
) -> None:
    wire: dict[str, Any] = {}
    if down is not None:
        wire["scaleDown"] = {"tolerance": down}
    if up is not None:
        wire["scaleUp"] = {"tolerance": up}
    resolved = behavior.tolerances(Behavior.model_validate(wire), None)
    assert resolved.within(within[0])
    assert resolved.within(within[1])
    assert not resolved.within(within[0] - 0.001)
    assert not resolved.within(within[1] + 0.001)


def test_deprecated_metrics_tolerance_fills_both_directions() -> None:
    resolved = behavior.tolerances(Behavior.model_validate({"scaleUp": {"tolerance": 0.2}}), 0.05)
    assert (resolved.down, resolved.up) == (0.05, 0.2)
