"""What one operator process shares between its handlers, and its start and stop.

Role: build, at kopf's startup, the objects every loop uses: one ``ApiClient`` for the adapters
that is fenced (it refuses writes unless this replica leads), the watch-fed caches of targets
and nodes (``controller.caches``, read-only, over their own aiohttp client with the same
credentials and User-Agent), the dependencies of both kinds,
their status writers, the tick loops of each kind (``workers``), the leader elector (with its
own unfenced client: it must write the Lease while the fence is down) and the health server;
and stop them in order at exit: the loops first (an in-flight tick may finish), then the Lease
is released so a standby takes over at once. Callers: ``controller.handlers``, tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import kubernetes.client

from fleetscale import __version__
from fleetscale.api import acceleratorpool as apool
from fleetscale.api.inferencepool import PLURAL
from fleetscale.caches.http import KubeWatchClient
from fleetscale.controller.acceleratorpools import AcceleratorPoolDependencies
from fleetscale.controller.caches import ClusterCaches
from fleetscale.controller.indexes import Indexes
from fleetscale.controller.inferencepools import InferencePoolDependencies
from fleetscale.controller.kube import KubernetesStatusWriter, StatusWriter, load_configuration
from fleetscale.controller.leadership import LeadershipGate, on_leadership_change
from fleetscale.controller.loop import AlwaysAdmitted, Gate
from fleetscale.controller.workers import Workers
from fleetscale.election import LeaderElector, Timing
from fleetscale.election.store import KubernetesLeaseStore
from fleetscale.kubeapi import FencedApiClient
from fleetscale.logs import get_logger
from fleetscale.metrics import HealthServer, OperatorMetrics
from fleetscale.settings import Settings

# How long, at exit, an in-flight tick may run on before it is cancelled: its Prometheus reads
# time out in seconds, and a scale write should not be left without its status and Event.
GRACEFUL_STOP_SECONDS = 15.0


def user_agent(identity: str) -> str:
    """What this replica's requests say they come from."""
    return f"fleetscale/{__version__} ({identity})"


DependenciesFactory = Callable[
    [kubernetes.client.ApiClient, Settings, OperatorMetrics, Indexes],
    InferencePoolDependencies,
]
AcceleratorPoolDependenciesFactory = Callable[
    [kubernetes.client.ApiClient, InferencePoolDependencies, Indexes],
    AcceleratorPoolDependencies,
]


@dataclass
class OperatorRuntime:
    """What the handlers share: built before kopf starts, completed by the startup handler."""

    settings: Settings
    dependencies_factory: DependenciesFactory
    accelerator_pool_dependencies_factory: AcceleratorPoolDependenciesFactory | None = None
    configuration_factory: Callable[[], kubernetes.client.Configuration] = load_configuration
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Callable[[], float] = time.time
    indexes: Indexes = field(default_factory=Indexes)
    gate: Gate = field(default_factory=AlwaysAdmitted)
    elector: LeaderElector | None = None
    deps: InferencePoolDependencies | None = None
    accelerator_pool_deps: AcceleratorPoolDependencies | None = None
    status_writer: StatusWriter | None = None
    accelerator_pool_status_writer: StatusWriter | None = None
    inference_pools: Workers | None = None
    accelerator_pools: Workers | None = None
    api_client: kubernetes.client.ApiClient | None = None
    health_server: HealthServer | None = None
    caches: ClusterCaches | None = None
    started: bool = False
    running_pools: int = 0  # InferencePool loops now running; sizes the spread of each tick
    _configuration: kubernetes.client.Configuration | None = None
    _lease_client: kubernetes.client.ApiClient | None = None
    _election: asyncio.Task[None] | None = None
    _stop_election: asyncio.Event = field(default_factory=asyncio.Event)

    def configuration(self) -> kubernetes.client.Configuration:
        if self._configuration is None:
            self._configuration = self.configuration_factory()
        return self._configuration

    async def start(self) -> None:
        """Build the shared objects and start the elector and the health server."""
        identity = self.settings.resolved_identity()
        if self.settings.leader_election:
            self._build_elector(identity)
        self.api_client = FencedApiClient(self.configuration(), may_write=self.gate.admits)
        # Each replica names itself to the API server, so audit logs say which one wrote.
        self.api_client.user_agent = user_agent(identity)
        # Targets and nodes are read from watch-fed caches (each started when first read).
        self.caches = ClusterCaches(
            KubeWatchClient(self.configuration(), user_agent(identity)), self.settings.namespaces
        )
        self.indexes.caches = self.caches
        self.deps = self.dependencies_factory(
            self.api_client, self.settings, self.metrics, self.indexes
        )
        if self.accelerator_pool_dependencies_factory is not None:
            self.accelerator_pool_deps = self.accelerator_pool_dependencies_factory(
                self.api_client, self.deps, self.indexes
            )
        self.status_writer = self.deps.status_writer or KubernetesStatusWriter(
            self.api_client, PLURAL
        )
        self.accelerator_pool_status_writer = KubernetesStatusWriter(self.api_client, apool.PLURAL)
        self.health_server = HealthServer(
            self.metrics,
            self.settings.http_port,
            is_alive=lambda: True,  # answering at all proves the event loop is not stuck
            # A standby is ready too: it stays in the Service and takes over without a restart.
            is_ready=lambda: self.started,
        )
        await self.health_server.start()
        if self.elector is not None:
            self._election = asyncio.create_task(self.elector.run(self._stop_election))
        else:
            self.metrics.leader.set(1)
        self.started = True

    def _build_elector(self, identity: str) -> None:
        settings = self.settings
        timing = Timing(
            settings.lease_duration_seconds,
            settings.renew_deadline_seconds,
            settings.retry_period_seconds,
        )
        self._lease_client = kubernetes.client.ApiClient(self.configuration())
        self._lease_client.user_agent = user_agent(identity)
        store = KubernetesLeaseStore(
            self._lease_client,
            settings.resolved_lease_namespace(),
            settings.lease_name,
            request_timeout_seconds=timing.retry_period_seconds,
        )
        changed = on_leadership_change(self.metrics, self._forget_published_flags)

        def on_change(leading: bool) -> None:
            gate.notify(leading)
            changed(leading)

        self.elector = LeaderElector(store, identity, timing, on_change=on_change)
        gate = LeadershipGate(self.elector)
        self.gate = gate
        self.metrics.leader.set(0)

    def _forget_published_flags(self) -> None:
        if self.deps is not None:
            self.deps.published_flags.clear()

    async def stop(self) -> None:
        """Stop the loops, release the Lease, close the clients."""
        self.started = False
        log = get_logger("fleetscale.operator")
        for workers in (self.inference_pools, self.accelerator_pools):
            if workers is not None:
                await workers.stop_all(GRACEFUL_STOP_SECONDS)
        if self._election is not None:
            self._stop_election.set()
            await self._election  # releases the Lease if held
            log.info("election_stopped")
        if self.caches is not None:
            await self.caches.stop()
        if self.deps is not None:
            await self.deps.signals.close()
        if self.health_server is not None:
            await self.health_server.stop()
        for client in (self.api_client, self._lease_client):
            if client is not None:
                await asyncio.to_thread(client.close)
