"""Shared pytest configuration for the unit and integration suites."""

from __future__ import annotations

import os
from collections.abc import Iterator

import kmock
import pytest
from hypothesis import HealthCheck, settings
from kubernetes.client import ApiClient

from support.kube_emulator import api_client_for
from support.logging_state import preserved_logging

# Property tests run on a shared 2-core CI machine: bound the work, not the wall clock. The
# default search is derandomized: every run (CI's included) tries the same examples, so a
# failure is reproducible and a green run stays green until the code changes. The random,
# deeper search runs with `make property-deep` (before a release, after touching the planner).
settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("FLEETSCALE_HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Every test ends with the logging setup it started with.

    `fleetscale run` (tests/controller/test_cli_run.py, the entry-point tests) and kopf's
    command line (KopfRunner) configure logging for the whole process; without this the tests
    after them log into a closed stream, in another format, or with asyncio's logger silenced.
    """
    with preserved_logging():
        yield


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    """kmock's emulator; a directory or module that needs resources declared overrides it."""
    return kmock


@pytest.fixture
def api_client(emulator: kmock.KubernetesEmulator) -> Iterator[ApiClient]:
    """The official client pointed at ``emulator`` over plain HTTP."""
    with api_client_for(emulator) as client:
        yield client
