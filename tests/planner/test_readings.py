"""Step 1, ``metrics``: when a reading may be used, and the reason when it may not."""

from __future__ import annotations

import math

import pytest
from planner_builders import NOW

from fleetscale.planner.readings import check_reading
from fleetscale.planner.types import MetricProblem, MetricReading


@pytest.mark.parametrize(
    ("reading", "problem", "words"),
    [
        pytest.param(MetricReading.ok(7, NOW - 5), None, "queue depth 7", id="fresh"),
        pytest.param(MetricReading.ok(0, NOW - 60), None, "queue depth 0", id="exactly-max-age"),
        pytest.param(
            MetricReading.ok(3, NOW + 2), None, "queue depth 3", id="future-skew-is-fresh"
        ),
        pytest.param(None, MetricProblem.NO_DATA, "no reading", id="not-read"),
        pytest.param(
            MetricReading.failed(MetricProblem.QUERY_FAILED, "timed out after 5 s"),
            MetricProblem.QUERY_FAILED,
            "QueryFailed (timed out after 5 s)",
            id="query-failed-keeps-detail",
        ),
        pytest.param(
            MetricReading.failed(MetricProblem.MULTIPLE_SERIES),
            MetricProblem.MULTIPLE_SERIES,
            "MultipleSeries",
            id="multiple-series",
        ),
        pytest.param(
            MetricReading(value=None, sampled_at=NOW),
            MetricProblem.NO_DATA,
            "no value",
            id="no-value",
        ),
        pytest.param(MetricReading.ok(math.nan, NOW), MetricProblem.NOT_A_NUMBER, "nan", id="nan"),
        pytest.param(
            MetricReading.ok(math.inf, NOW), MetricProblem.NOT_A_NUMBER, "inf", id="infinite"
        ),
        pytest.param(
            MetricReading.ok(-1, NOW), MetricProblem.NEGATIVE, "below zero", id="negative"
        ),
        pytest.param(
            MetricReading(value=4, sampled_at=None),
            MetricProblem.STALE,
            "no timestamp",
            id="no-timestamp",
        ),
        pytest.param(
            MetricReading.ok(4, NOW - 61),
            MetricProblem.STALE,
            "61 s old, older than maxStalenessSeconds 60 s",
            id="stale",
        ),
        pytest.param(
            MetricReading.ok(4, NOW + 365 * 86400),
            MetricProblem.FROM_THE_FUTURE,
            "31536000 s ahead of the operator's clock",
            id="a-year-ahead",
        ),
        pytest.param(
            MetricReading.ok(4, NOW + 11),
            MetricProblem.FROM_THE_FUTURE,
            "11 s ahead",
            id="past-the-clock-skew",
        ),
        pytest.param(
            MetricReading.ok(1e300, NOW),
            MetricProblem.OUT_OF_RANGE,
            "1e+300 is not a plausible reading",
            id="huge",
        ),
    ],
)
def test_check_reading(
    reading: MetricReading | None, problem: MetricProblem | None, words: str
) -> None:
    check = check_reading(reading, signal="queue depth", now=NOW, max_staleness_seconds=60)
    assert check.problem == problem
    assert check.usable == (problem is None)
    assert (check.value is None) == (problem is not None)
    assert words in check.message
    assert check.message.startswith("queue depth")
