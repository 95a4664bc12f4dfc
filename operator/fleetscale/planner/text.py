"""Number formatting for the planner's plain-words messages.

Role: one place that decides how a measurement reads in a condition message, an Event or
``fleetscale explain`` ("42", "8.4", "0.25"). Callers: every step module of the planner.
"""

from __future__ import annotations

import math


def number(value: float) -> str:
    """A short, stable rendering: integers without a point, others with at most two decimals."""
    if not math.isfinite(value):
        return str(value)
    if value == math.floor(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def seconds(value: float) -> str:
    """A duration in seconds, as messages print it ("15 s")."""
    return f"{number(value)} s"


def replicas(count: int) -> str:
    """ "1 replica", "3 replicas"."""
    return f"{count} replica" if count == 1 else f"{count} replicas"
