"""Shared pytest configuration for the unit and integration suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from support.logging_state import preserved_logging

# Property tests run on a shared 2-core CI machine: bound the work, not the wall clock.
settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Every test ends with the logging setup it started with.

    `fleetscale run` (tests/controller/test_cli_run.py, the entry-point tests) and kopf's
    command line (KopfRunner) configure logging for the whole process; without this the tests
    after them log into a closed stream, in another format, or with asyncio's logger silenced.
    """
    with preserved_logging():
        yield
