"""Shared pytest configuration for the unit and integration suites."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests run on a shared 2-core CI machine: bound the work, not the wall clock.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")
