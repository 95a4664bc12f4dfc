"""Steps 5-6, ``stabilize`` and ``rate``, and the pruned histories they read (HPA behavior)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from planner_builders import NOW, rules

from fleetscale.api.inferencepool import Behavior
from fleetscale.planner import behavior
from fleetscale.planner.types import TimedDelta, TimedReplicas


def _behavior(up: dict[str, Any] | None = None, down: dict[str, Any] | None = None) -> Behavior:
    wire: dict[str, Any] = {}
    if up is not None:
        wire["scaleUp"] = up
    if down is not None:
        wire["scaleDown"] = down
    return Behavior.model_validate(wire)


def _recs(*entries: tuple[float, int]) -> tuple[TimedReplicas, ...]:
    return tuple(TimedReplicas(time=NOW - age, replicas=n) for age, n in entries)


def _events(*entries: tuple[float, int]) -> tuple[TimedDelta, ...]:
    return tuple(TimedDelta(time=NOW - age, delta=d) for age, d in entries)


@pytest.mark.parametrize(
    ("history", "desired", "current", "up_window", "replicas", "reason"),
    [
        pytest.param((), 3, 5, 0, 3, "RecommendationStable", id="no-history"),
        pytest.param(_recs((100, 8)), 3, 5, 0, 5, "ScaleDownStabilized", id="recent-high-holds"),
        pytest.param(_recs((100, 4)), 3, 5, 0, 4, "ScaleDownStabilized", id="partial-shrink"),
        pytest.param(
            _recs((400, 8), (300, 3)), 3, 5, 0, 3, "RecommendationStable", id="window-edge-out"
        ),
        pytest.param(
            _recs((400, 8), (299, 3)), 3, 5, 0, 5, "ScaleDownStabilized", id="window-edge-in"
        ),
        pytest.param(
            _recs((1000, 8)), 3, 5, 0, 5, "ScaleDownStabilized", id="running-segment-counts"
        ),
        pytest.param(
            _recs((1000, 8), (400, 6), (10, 3)),
            3,
            8,
            0,
            6,
            "ScaleDownStabilized",
            id="segment-spanning-window-start-counts",
        ),
        pytest.param(
            _recs((20, 4), (10, 9)),
            9,
            5,
            0,
            9,
            "RecommendationStable",
            id="zero-window-current-only",
        ),
        pytest.param(
            _recs((10, 9), (20, 4)), 3, 5, 0, 5, "ScaleDownStabilized", id="unordered-is-sorted"
        ),
        pytest.param(_recs((20, 4)), 9, 5, 60, 5, "ScaleUpStabilized", id="recent-low-holds"),
        pytest.param(_recs((20, 7)), 9, 5, 60, 7, "ScaleUpStabilized", id="partial-growth"),
        pytest.param(_recs((0, 4)), 9, 5, 0, 9, "RecommendationStable", id="zero-up-window"),
        pytest.param(_recs((20, 4)), 9, 5, 0, 9, "RecommendationStable", id="up-ignores-down"),
        pytest.param(_recs((10, 1), (20, 9)), 5, 5, 60, 5, "RecommendationStable", id="hold"),
    ],
)
def test_stabilize(
    history: tuple[TimedReplicas, ...],
    desired: int,
    current: int,
    up_window: int,
    replicas: int,
    reason: str,
) -> None:
    spec = _behavior(up=rules(up_window), down=rules(300))
    step = behavior.stabilize(desired, current, history, spec, NOW)
    assert (step.name, step.replicas, step.reason) == ("stabilize", replicas, reason)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param((), _recs((0, 5)), id="first-sight-seeds-current"),
        pytest.param(_recs((30, 2)), _recs((30, 2)), id="history-kept"),
    ],
)
def test_seeded(history: tuple[TimedReplicas, ...], expected: tuple[TimedReplicas, ...]) -> None:
    """As the HPA's recordInitialRecommendation: seeded whatever the windows."""
    assert behavior.seeded(history, 5, NOW) == expected


_DEFAULT_UP = rules(0, ("Percent", 100, 15), ("Pods", 4, 15))


@pytest.mark.parametrize(
    ("up", "down", "events", "desired", "current", "replicas", "reason"),
    [
        pytest.param(_DEFAULT_UP, None, (), 10, 3, 7, "ScaleUpRateLimited", id="up-max-of-pods"),
        pytest.param(_DEFAULT_UP, None, (), 6, 3, 6, "WithinRateLimits", id="up-within"),
        pytest.param(
            rules(0, ("Percent", 100, 15), ("Pods", 4, 15), select="Min"),
            None,
            (),
            10,
            3,
            6,
            "ScaleUpRateLimited",
            id="up-select-min",
        ),
        pytest.param(_DEFAULT_UP, None, (), 5, 0, 4, "ScaleUpRateLimited", id="up-from-zero"),
        pytest.param(
            rules(0, ("Percent", 100, 15)),
            None,
            (),
            5,
            0,
            0,
            "ScaleUpRateLimited",
            id="percent-alone-never-starts-from-zero",
        ),
        pytest.param(
            _DEFAULT_UP,
            None,
            _events((10, 4)),
            20,
            7,
            7,
            "ScaleUpRateLimited",
            id="budget-spent-in-period",
        ),
        pytest.param(
            _DEFAULT_UP,
            None,
            _events((15, 4)),
            20,
            7,
            14,
            "ScaleUpRateLimited",
            id="period-edge-forgotten",
        ),
        pytest.param(
            rules(0, ("Pods", 1, 15), select="Disabled"),
            None,
            (),
            9,
            3,
            3,
            "ScaleUpDisabled",
            id="up-disabled",
        ),
        pytest.param(rules(0), None, (), 90, 3, 90, "WithinRateLimits", id="up-no-policies"),
        pytest.param(
            None,
            rules(0, ("Percent", 50, 60)),
            (),
            2,
            10,
            5,
            "ScaleDownRateLimited",
            id="down-percent",
        ),
        pytest.param(
            None, rules(0, ("Pods", 2, 60)), (), 2, 10, 8, "ScaleDownRateLimited", id="down-pods"
        ),
        pytest.param(
            None,
            rules(0, ("Pods", 2, 60)),
            _events((30, -2)),
            2,
            8,
            8,
            "ScaleDownRateLimited",
            id="down-budget-spent",
        ),
        pytest.param(
            None,
            rules(0, ("Pods", 2, 60)),
            _events((30, 3)),
            2,
            10,
            5,
            "ScaleDownRateLimited",
            id="down-counts-from-period-start",
        ),
        pytest.param(
            None,
            rules(0, ("Pods", 1, 60), ("Percent", 50, 60)),
            (),
            2,
            10,
            5,
            "ScaleDownRateLimited",
            id="down-max-is-most-change",
        ),
        pytest.param(
            None,
            rules(0, ("Pods", 1, 60), ("Percent", 50, 60), select="Min"),
            (),
            2,
            10,
            9,
            "ScaleDownRateLimited",
            id="down-min-is-least-change",
        ),
        pytest.param(
            None,
            rules(0, ("Percent", 10, 60)),
            (),
            2,
            10,
            9,
            "ScaleDownRateLimited",
            id="down-percent-exact-integer",
        ),
        pytest.param(
            None,
            rules(0, ("Percent", 100, 15)),
            (),
            0,
            10,
            0,
            "WithinRateLimits",
            id="down-percent-100-to-zero",
        ),
        pytest.param(
            None,
            rules(0, ("Pods", 1, 60), select="Disabled"),
            (),
            2,
            10,
            10,
            "ScaleDownDisabled",
            id="down-disabled",
        ),
        pytest.param(None, None, (), 5, 5, 5, "WithinRateLimits", id="no-change"),
    ],
)
def test_rate_limit(
    up: dict[str, Any] | None,
    down: dict[str, Any] | None,
    events: tuple[TimedDelta, ...],
    desired: int,
    current: int,
    replicas: int,
    reason: str,
) -> None:
    step = behavior.rate_limit(desired, current, events, _behavior(up, down), NOW)
    assert (step.name, step.replicas, step.reason) == ("rate", replicas, reason)


def test_rate_limit_message_names_the_policies() -> None:
    step = behavior.rate_limit(10, 3, (), _behavior(up=_DEFAULT_UP), NOW)
    assert step.message == "scale-up limited to 7 replicas by 100% per 15 s, 4 pods per 15 s (Max)"


@pytest.mark.parametrize(
    ("history", "replicas", "expected"),
    [
        pytest.param(
            _recs((700, 4), (400, 5), (200, 6)),
            7,
            _recs((400, 5), (200, 6), (0, 7)),
            id="keeps-the-segment-spanning-the-window-start",
        ),
        pytest.param(
            _recs((700, 4), (300, 5), (200, 6)),
            7,
            _recs((300, 5), (200, 6), (0, 7)),
            id="drops-segments-ended-at-the-cutoff",
        ),
        pytest.param(
            _recs((100, 5), (50, 6), (20, 5)),
            6,
            _recs((100, 5), (50, 6), (20, 5), (0, 6)),
            id="a-change-starts-a-segment",
        ),
        pytest.param(_recs((30, 5)), 5, _recs((30, 5)), id="equal-ask-adds-nothing"),
        pytest.param(_recs((900, 5)), 5, _recs((900, 5)), id="running-segment-never-dropped"),
        pytest.param((), 5, _recs((0, 5)), id="first-entry"),
        pytest.param(_recs((10, 6), (30, 5)), 6, _recs((30, 5), (10, 6)), id="sorted-by-time"),
    ],
)
def test_record_recommendation(
    history: tuple[TimedReplicas, ...], replicas: int, expected: tuple[TimedReplicas, ...]
) -> None:
    spec = _behavior(up=rules(60), down=rules(300))
    assert behavior.record_recommendation(history, replicas, spec, NOW) == expected


def test_record_recommendation_keeps_only_the_running_segment_without_windows() -> None:
    spec = _behavior(up=rules(0), down=rules(0))
    assert behavior.record_recommendation(_recs((5, 3)), 4, spec, NOW) == _recs((0, 4))
    assert behavior.record_recommendation(_recs((5, 3)), 3, spec, NOW) == _recs((5, 3))


def test_constant_ask_leaves_the_history_unchanged() -> None:
    spec = _behavior(up=rules(60), down=rules(300))
    start = _recs((500, 9), (100, 4))
    assert behavior.record_recommendation(start, 4, spec, NOW) == start
    for tick in range(1, 60):
        history = behavior.record_recommendation(start, 4, spec, NOW + 15 * tick)
        # The 9 segment ended at NOW - 100: kept until it is out of the 300 s window.
        assert history == (start if tick * 15 < 200 else _recs((100, 4)))


@pytest.mark.parametrize(
    ("events", "delta", "expected"),
    [
        pytest.param(_events((10, 2)), 3, _events((10, 2), (0, 3)), id="appends-change"),
        pytest.param(_events((10, 2)), 0, _events((10, 2)), id="no-change-no-entry"),
        pytest.param(_events((60, 2), (59, -1)), 0, _events((59, -1)), id="drops-past-period"),
    ],
)
def test_record_scale_event(
    events: tuple[TimedDelta, ...], delta: int, expected: tuple[TimedDelta, ...]
) -> None:
    spec = _behavior(up=rules(0, ("Pods", 4, 15)), down=rules(0, ("Pods", 1, 60)))
    assert behavior.record_scale_event(events, delta, spec, NOW) == expected


_times = st.floats(min_value=NOW - 400, max_value=NOW, allow_nan=False)


@given(
    raw=st.lists(st.tuples(_times, st.integers(0, 12)), max_size=25),
    up_window=st.integers(0, 120),
    down_window=st.integers(0, 300),
    later_seconds=st.floats(min_value=0, max_value=400),
    desired=st.integers(0, 12),
    current=st.integers(0, 12),
)
def test_pruned_history_stabilizes_like_the_full_one(
    raw: list[tuple[float, int]],
    up_window: int,
    down_window: int,
    later_seconds: float,
    desired: int,
    current: int,
) -> None:
    """Recording tick by tick (run-length, pruned) never changes a later stabilization.

    ``full`` keeps every sample with no pruning; ``pruned`` is what the planner remembers.
    """
    spec = _behavior(up=rules(up_window), down=rules(down_window))
    full = [TimedReplicas(time=t, replicas=n) for t, n in sorted(raw)]
    pruned: tuple[TimedReplicas, ...] = ()
    for index, sample in enumerate(full):
        pruned = behavior.record_recommendation(pruned, sample.replicas, spec, sample.time)
        for moment in (sample.time, sample.time + later_seconds / 2):
            expected = behavior.stabilize(desired, current, full[: index + 1], spec, moment)
            assert behavior.stabilize(desired, current, pruned, spec, moment) == expected
    later = (full[-1].time if full else NOW) + later_seconds
    expected = behavior.stabilize(desired, current, full, spec, later)
    assert behavior.stabilize(desired, current, pruned, spec, later) == expected
