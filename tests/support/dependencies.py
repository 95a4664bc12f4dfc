"""An InferencePool tick's dependencies on the in-package fakes, for tests that wire a tick or
a runtime: every port a fake, the settings pointing at a Prometheus nobody reaches, and the real
planner. A test names only what it looks at (``signals=``, ``scaler=``, ``settings=``, ...)."""

from __future__ import annotations

from typing import Any

from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
    FakeSecretReader,
    FakeShedFlagPublisher,
)
from fleetscale.controller.inferencepools import InferencePoolDependencies
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource


def fake_pool_dependencies(**given: Any) -> InferencePoolDependencies:
    """``InferencePoolDependencies`` with a fresh fake for every port not ``given``."""
    defaults: dict[str, Any] = {
        "signals": FakeSignalSource(),
        "scaler": FakeScaleActuator(),
        "events": FakeEventSink(),
        "shed_publisher": FakeShedFlagPublisher(),
        "secrets": FakeSecretReader(),
        "settings": Settings(prometheus_url="http://prom:9090"),
        "metrics": OperatorMetrics(),
        "plan": plan,
    }
    return InferencePoolDependencies(**{**defaults, **given})
