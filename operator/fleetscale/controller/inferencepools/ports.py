"""What one InferencePool tick needs from the outside world, and the identity of the pool.

Role: the ports of the InferencePool controller: the adapters (signals, ``/scale``, Events, the
shed-flag publisher, Secrets), the AcceleratorPool allocations (``AllocationSource``), settings,
metrics and the planner, gathered in ``InferencePoolDependencies``. Real adapters are wired in
``controller.wiring``; tests pass the in-package fakes. Callers: ``tick``, ``measure``,
``execute``, ``controller.handlers``, ``fleetscale explain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fleetscale.actuators.base import (
    EventSink,
    InvolvedObject,
    ScaleActuator,
    SecretReader,
    ShedFlag,
    ShedFlagPublisher,
)
from fleetscale.api.base import API_VERSION
from fleetscale.api.inferencepool import KIND, InferencePoolSpec
from fleetscale.controller.credentials import CredentialFiles
from fleetscale.controller.inferencepools.conflicts import ControllerSource
from fleetscale.controller.kube import StatusWriter
from fleetscale.gateways.base import GatewayWriter, ShedOrder
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner.observe import PublishedAllocation
from fleetscale.planner.types import Decision, Observation, PlannerState
from fleetscale.settings import Settings
from fleetscale.signals.base import SignalSource

PlanFn = Callable[
    [InferencePoolSpec, Observation, PlannerState, float], tuple[Decision, PlannerState]
]


@dataclass(frozen=True)
class InferencePoolRef:
    """Identity of one InferencePool object, as kopf hands it over."""

    namespace: str
    name: str
    uid: str | None = None
    generation: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def involved(self) -> InvolvedObject:
        return InvolvedObject(
            api_version=API_VERSION,
            kind=KIND,
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
        )


class AllocationSource(Protocol):
    """What an AcceleratorPool's status says about one InferencePool."""

    async def published_allocation(
        self, accelerator_pool: str, namespace: str, name: str
    ) -> PublishedAllocation | None:
        """The allocation as published; None when it cannot be known (plan without a cap).

        Raises nothing but ``CacheStale``, when a watch-fed index cannot vouch for what the
        AcceleratorPool published (the tick holds).
        """
        ...


@dataclass
class InferencePoolDependencies:
    """Everything an InferencePool tick needs; fakes in tests, real adapters under kopf."""

    signals: SignalSource
    scaler: ScaleActuator
    events: EventSink
    shed_publisher: ShedFlagPublisher
    secrets: SecretReader
    settings: Settings
    metrics: OperatorMetrics
    plan: PlanFn
    # The allocations AcceleratorPools publish (None: the operator runs without them).
    allocations: AllocationSource | None = None
    # Writes the pool's status; a change of size is recorded through it before it is made
    # (None: not recorded ahead, as in tests that do not exercise it).
    status_writer: StatusWriter | None = None
    # Every InferencePool and HPA by the workload it sizes (None: not checked).
    controllers: ControllerSource | None = None
    # Shed flags already in each pool's ConfigMaps, by (namespace, pool, ConfigMap), so an
    # unchanged flag is not re-written every tick. Lost on restart or on losing leadership,
    # which costs one idempotent write per pool.
    published_flags: dict[tuple[str, str, str], ShedFlag] = field(default_factory=dict)
    # The writer of gateway policies (``spec.shedLoad.gateway``); None: no writer is wired.
    gateway: GatewayWriter | None = None
    # Orders already in each pool's gateway policy, by (namespace, pool, "<writer>/<name>"), so
    # an unchanged order is not re-written every tick (lost on restart, like published_flags).
    gateway_orders: dict[tuple[str, str, str], ShedOrder] = field(default_factory=dict)
    # The default Prometheus' token and CA files, re-read when they change (rotation).
    credential_files: CredentialFiles = field(default_factory=CredentialFiles)
    # Wall time, for measuring durations only (decisions use ``now``).
    monotonic: Callable[[], float] = time.monotonic
