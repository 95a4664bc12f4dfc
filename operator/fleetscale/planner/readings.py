"""Step 1 of the replica pipeline: decide whether a metric reading may be used at ``now``.

Role: the adapters report what Prometheus answered (a value with its timestamp, or a
``MetricProblem``); only the planner owns the clock, so only it decides staleness. A reading is
usable when it has no problem, a finite, non-negative value no larger than
``MAX_PLAUSIBLE_VALUE`` and a timestamp no older than ``maxStalenessSeconds``. A sample stamped
slightly in the future (clock skew between Prometheus and the operator, up to
``MAX_CLOCK_SKEW_SECONDS``) counts as fresh; one stamped further ahead is refused, because it
would count as fresh for as long as the clocks disagree. Callers: ``pipeline.plan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetscale.planner.text import number, seconds
from fleetscale.planner.types import MetricProblem, MetricReading

# No fleet has a trillion requests waiting, tokens per second or percent: such a value is a
# broken query or exporter, and the arithmetic on it would overflow.
MAX_PLAUSIBLE_VALUE = 1e12
# Prometheus stamps an instant query with its own clock; NTP keeps clocks well within this.
MAX_CLOCK_SKEW_SECONDS = 10.0


@dataclass(frozen=True)
class ReadingCheck:
    """A reading judged at one instant: its value when usable, else the problem and why."""

    value: float | None
    problem: MetricProblem | None
    message: str

    @property
    def usable(self) -> bool:
        return self.problem is None


def check_reading(
    reading: MetricReading | None,
    *,
    signal: str,
    now: float,
    max_staleness_seconds: float,
    unit: str = "",
    allow_negative: bool = False,
) -> ReadingCheck:
    """Judge one reading; ``signal`` names it in the message ("queue depth").

    ``allow_negative``: the value is a rate of change (a queue that shrinks), not a count."""

    def bad(problem: MetricProblem, why: str) -> ReadingCheck:
        return ReadingCheck(value=None, problem=problem, message=f"{signal}: {why}")

    if reading is None:
        return bad(MetricProblem.NO_DATA, "no reading was taken")
    if reading.problem is not None:
        detail = f" ({reading.detail})" if reading.detail else ""
        return bad(reading.problem, f"{reading.problem.value}{detail}")
    if reading.value is None:
        return bad(MetricProblem.NO_DATA, "the query returned no value")
    if not math.isfinite(reading.value):
        return bad(MetricProblem.NOT_A_NUMBER, f"the value is {reading.value}")
    if reading.value < 0 and not allow_negative:
        return bad(MetricProblem.NEGATIVE, f"the value {number(reading.value)} is below zero")
    if abs(reading.value) > MAX_PLAUSIBLE_VALUE:
        return bad(
            MetricProblem.OUT_OF_RANGE, f"the value {reading.value:g} is not a plausible reading"
        )
    if reading.sampled_at is None:
        # Without a timestamp the age is unknown; an unknown age cannot be trusted as fresh.
        return bad(MetricProblem.STALE, "the sample has no timestamp")
    age_seconds = now - reading.sampled_at
    if -age_seconds > MAX_CLOCK_SKEW_SECONDS:
        return bad(
            MetricProblem.FROM_THE_FUTURE,
            f"the sample is stamped {seconds(-age_seconds)} ahead of the operator's clock",
        )
    if age_seconds > max_staleness_seconds:
        return bad(
            MetricProblem.STALE,
            f"the newest sample is {seconds(age_seconds)} old, older than "
            f"maxStalenessSeconds {seconds(max_staleness_seconds)}",
        )
    # The age stays out of the message: it lands in a condition, and a message that moved with
    # every tick's timing would make the status change (and be written) when nothing did.
    return ReadingCheck(
        value=reading.value, problem=None, message=f"{signal} {number(reading.value)}{unit}"
    )
