"""What one operator process shares between its handlers, and its start and stop.

Role: build, at kopf's startup, the objects every loop uses: one ``ApiClient`` for the adapters
that is fenced (it refuses a write unless this replica holds the shard the writing task acts
for), the watch-fed caches of targets, nodes and indexes (``controller.caches``, read-only,
over their own aiohttp client with the same credentials and User-Agent), the dependencies of
both kinds, their status writers, the tick loops of each kind (``workers``), the shard manager
(one Lease per shard, the leader Lease itself with one shard, and a members Lease with more;
with its own unfenced client: it must write the Leases while the fence is down), the gate of
each shard and the health server; and stop them in order at exit: the loops first (an
in-flight tick may finish), then the Leases are released so the other replicas take over at
once.
Callers: ``controller.handlers``, tests.
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
from fleetscale.controller import heap
from fleetscale.controller.acceleratorpools import AcceleratorPoolDependencies
from fleetscale.controller.caches import ClusterCaches
from fleetscale.controller.inferencepools import InferencePoolDependencies
from fleetscale.controller.kube import KubernetesStatusWriter, StatusWriter, load_configuration
from fleetscale.controller.leadership import (
    InFlight,
    PoolFilter,
    ShardGate,
    fence,
    on_shard_change,
    publish_shards_held,
)
from fleetscale.controller.loop import AlwaysAdmitted, Gate
from fleetscale.controller.workers import Workers
from fleetscale.election import Timing
from fleetscale.election.shard_manager import ShardManager
from fleetscale.election.shards import members_lease_name, shard_lease_names, shard_of
from fleetscale.election.store import KubernetesLeaseStore, KubernetesMembersStore
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
    [kubernetes.client.ApiClient, Settings, OperatorMetrics, ClusterCaches],
    InferencePoolDependencies,
]
AcceleratorPoolDependenciesFactory = Callable[
    [kubernetes.client.ApiClient, InferencePoolDependencies, ClusterCaches],
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
    # Shard 0's gate (the leader's: AcceleratorPools, and every pool when there is one shard);
    # the other shards' gates, when there are more.
    gate: Gate = field(default_factory=AlwaysAdmitted)
    shard_gates: dict[int, Gate] = field(default_factory=dict)
    shard_manager: ShardManager | None = None
    in_flight: InFlight = field(default_factory=InFlight)
    deps: InferencePoolDependencies | None = None
    accelerator_pool_deps: AcceleratorPoolDependencies | None = None
    status_writer: StatusWriter | None = None
    accelerator_pool_status_writer: StatusWriter | None = None
    inference_pools: Workers | None = None
    accelerator_pools: Workers | None = None
    api_client: kubernetes.client.ApiClient | None = None
    health_server: HealthServer | None = None
    caches: ClusterCaches | None = None
    # The garbage collector to keep off the ticks (``heap``): ``fleetscale run`` passes
    # ``gc``; None leaves the process's collector as it is (tests, embedding).
    collector: heap.Collector | None = None
    started: bool = False
    running_pools: int = 0  # InferencePool loops now running; sizes the spread of each tick
    _configuration: kubernetes.client.Configuration | None = None
    _lease_client: kubernetes.client.ApiClient | None = None
    _election: asyncio.Task[None] | None = None
    _stop_election: asyncio.Event = field(default_factory=asyncio.Event)
    _compaction: asyncio.Task[None] | None = None
    _stop_compaction: asyncio.Event = field(default_factory=asyncio.Event)

    def shard_of(self, namespace: str, name: str) -> int:
        """The shard of the pool ``namespace/name``."""
        return shard_of(namespace, name, self.settings.shards)

    def gate_for(self, shard: int) -> Gate:
        """Whether this replica acts on the pools of ``shard`` (and when it may again)."""
        return self.gate if shard == 0 else self.shard_gates.get(shard, self.gate)

    def configuration(self) -> kubernetes.client.Configuration:
        if self._configuration is None:
            self._configuration = self.configuration_factory()
        return self._configuration

    async def start(self) -> None:
        """Build the shared objects and start the elector and the health server."""
        identity = self.settings.resolved_identity()
        if self.settings.leader_election:
            self._build_shards(identity)
        may_write = fence(self.shard_manager) if self.shard_manager else self.gate.admits
        self.api_client = FencedApiClient(self.configuration(), may_write=may_write)
        # Each replica names itself to the API server, so audit logs say which one wrote.
        self.api_client.user_agent = user_agent(identity)
        # Targets, nodes and the indexes are read from watch-fed caches (each started when
        # first read); the factories register the indexes before any tick reads one.
        self.caches = ClusterCaches(
            KubeWatchClient(self.configuration(), user_agent(identity)), self.settings.namespaces
        )
        self.deps = self.dependencies_factory(
            self.api_client, self.settings, self.metrics, self.caches
        )
        if self.accelerator_pool_dependencies_factory is not None:
            self.accelerator_pool_deps = self.accelerator_pool_dependencies_factory(
                self.api_client, self.deps, self.caches
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
        if self.shard_manager is not None:
            self._election = asyncio.create_task(self.shard_manager.run(self._stop_election))
        else:  # acting alone: every shard is this process's
            self.metrics.leader.set(1)
            self.metrics.shards_held.set(self.settings.shards)
        if self.collector is not None:
            heap.tune(self.collector)
            self._compaction = asyncio.create_task(
                heap.keep_compacted(
                    self._stop_compaction, collector=self.collector, on_compacted=_compacted
                ),
                name="fleetscale-heap",
            )
        self.started = True

    def _build_shards(self, identity: str) -> None:
        """One Lease per shard (the leader Lease itself with one shard), the members Lease
        (heartbeats, written with more than one shard), and the gates and the fence."""
        settings = self.settings
        timing = Timing(
            settings.lease_duration_seconds,
            settings.renew_deadline_seconds,
            settings.retry_period_seconds,
        )
        self._lease_client = kubernetes.client.ApiClient(self.configuration())
        self._lease_client.user_agent = user_agent(identity)
        namespace = settings.resolved_lease_namespace()
        names = shard_lease_names(settings.lease_name, settings.shards)

        def store(name: str) -> KubernetesLeaseStore:
            assert self._lease_client is not None
            return KubernetesLeaseStore(
                self._lease_client, namespace, name, timing.retry_period_seconds
            )

        members = KubernetesMembersStore(
            self._lease_client,
            namespace,
            members_lease_name(settings.lease_name),
            timing.retry_period_seconds,
        )
        manager = ShardManager(
            [store(name) for name in names],
            identity,
            timing,
            members=members,  # written with more than one shard, only read with one
            leader_lease=store(settings.lease_name),  # watched with more than one shard
            lease_names=names,
            on_change=on_shard_change(
                self.metrics,
                settings.shards,
                self._forget_published_flags,
                lambda: len(manager.held()),
            ),
            drain=self.in_flight.drained,
        )
        self.shard_manager = manager
        publish_shards_held(self.metrics, manager)
        self.gate = ShardGate(manager, 0)
        self.shard_gates = {shard: ShardGate(manager, shard) for shard in range(1, settings.shards)}
        self.metrics.leader.set(0)

    def _forget_published_flags(self, selected: PoolFilter) -> None:
        if self.deps is not None:
            flags = self.deps.published_flags
            for key in [key for key in flags if selected(key[0], key[1])]:
                del flags[key]
            orders = self.deps.gateway_orders
            for order in [order for order in orders if selected(order[0], order[1])]:
                del orders[order]

    async def stop(self) -> None:
        """Stop the loops, release the Lease, close the clients."""
        self.started = False
        log = get_logger("fleetscale.operator")
        for workers in (self.inference_pools, self.accelerator_pools):
            if workers is not None:
                await workers.stop_all(GRACEFUL_STOP_SECONDS)
        if self._compaction is not None:
            self._stop_compaction.set()
            await self._compaction
        if self._election is not None:
            self._stop_election.set()
            await self._election  # releases the Leases held
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


def _compacted(frozen_objects: int, seconds: float) -> None:
    get_logger("fleetscale.operator").info(
        "heap_compacted", frozen_objects=frozen_objects, seconds=round(seconds, 3)
    )
