"""The kopf side of the operator: login, startup/cleanup, indexes, and one daemon per object.

Role: wire kopf to the two controllers. Handlers here only hand what kopf delivers to
``loop.run_ticks`` with the kind's tick (``inferencepools.reconcile``,
``acceleratorpools.reconcile_accelerator_pool``) and the kind's status writer; every decision,
Event and metric is made in the controllers. Callers: ``fleetscale run`` (through
``run_operator``) and the integration tests (through kopf's ``KopfRunner`` with
``build_registry``'s registry).

Why a daemon per object, not ``kopf.timer``: a timer's interval is fixed when the handler is
registered, but ``spec.pollIntervalSeconds`` is per object and may change at any time; a daemon
sees the live body (``loop``). kopf's daemons require a finalizer (kopf adds
``kopf.zalando.org/KopfFinalizerMarker``) so that a deleted pool's daemon is stopped before the
object goes; its series are then removed from /metrics.

Two watch-fed indexes replace per-tick lists: InferencePool demand by the AcceleratorPool it
names (``acceleratorpools.demand``), and each AcceleratorPool's published allocations by name
(``controller.allocations``). kopf fills them from its watches before any daemon starts and
keeps them current, so neither kind reads the other through the API server.

With peering enabled (the default), only the active replica runs daemons; a standby replica's
daemons start when the active one's lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config

from fleetscale.api import acceleratorpool as apool
from fleetscale.api.base import GROUP, VERSION
from fleetscale.api.inferencepool import PLURAL
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolDependencies,
    AcceleratorPoolRef,
    reconcile_accelerator_pool,
)
from fleetscale.controller.acceleratorpools.demand import demand_of
from fleetscale.controller.allocations import allocations_index_entry
from fleetscale.controller.indexes import ALLOCATIONS_INDEX, DEMAND_INDEX, Indexes
from fleetscale.controller.inferencepools import (
    InferencePoolDependencies,
    InferencePoolRef,
    reconcile,
)
from fleetscale.controller.kube import (
    KubernetesStatusWriter,
    StatusWriter,
    connection_info,
    io_executor,
    load_configuration,
    missing_peerings,
)
from fleetscale.controller.loop import (
    Schedule,
    Stopped,
    TickOutcome,
    run_ticks,
    tick_offset_seconds,
)
from fleetscale.logs import get_logger
from fleetscale.metrics import HealthServer, OperatorMetrics
from fleetscale.settings import Settings

_GRACEFUL_STOP_SECONDS = 15.0
# How long a replica's peering record stays valid without a keep-alive (kopf renews it 5-10 s
# before): a standby takes over from a crashed or partitioned leader after at most this long,
# instead of kopf's default 60 s. A clean stop hands over at once either way.
PEERING_LIFETIME_SECONDS = 20

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
    deps: InferencePoolDependencies | None = None
    accelerator_pool_deps: AcceleratorPoolDependencies | None = None
    status_writer: StatusWriter | None = None
    accelerator_pool_status_writer: StatusWriter | None = None
    api_client: kubernetes.client.ApiClient | None = None
    health_server: HealthServer | None = None
    started: bool = False
    running_pools: int = 0  # InferencePool daemons now running; sizes the spread of each tick
    _configuration: kubernetes.client.Configuration | None = None

    def configuration(self) -> kubernetes.client.Configuration:
        if self._configuration is None:
            self._configuration = self.configuration_factory()
        return self._configuration

    async def start(self) -> None:
        self.api_client = kubernetes.client.ApiClient(self.configuration())
        self.deps = self.dependencies_factory(
            self.api_client, self.settings, self.metrics, self.indexes
        )
        if self.accelerator_pool_dependencies_factory is not None:
            self.accelerator_pool_deps = self.accelerator_pool_dependencies_factory(
                self.api_client, self.deps, self.indexes
            )
        self.status_writer = KubernetesStatusWriter(self.api_client, PLURAL)
        self.accelerator_pool_status_writer = KubernetesStatusWriter(self.api_client, apool.PLURAL)
        self.health_server = HealthServer(
            self.metrics,
            self.settings.http_port,
            is_alive=lambda: True,  # answering at all proves the event loop is not stuck
            is_ready=lambda: self.started,
        )
        await self.health_server.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self.deps is not None:
            await self.deps.signals.close()
        if self.health_server is not None:
            await self.health_server.stop()
        if self.api_client is not None:
            await asyncio.to_thread(self.api_client.close)


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings for fleetscale."""
    operator_settings = kopf.OperatorSettings()
    # fleetscale posts its own Events with plain-words messages; kopf's would duplicate them.
    operator_settings.posting.level = logging.WARNING
    if settings.peering:
        operator_settings.peering.name = settings.peering
        operator_settings.peering.standalone = False
        operator_settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    else:
        operator_settings.peering.standalone = True
    # Leave room for the daemons' graceful stop before kopf gives up on exiting.
    operator_settings.process.ultimate_exiting_timeout = _GRACEFUL_STOP_SECONDS + 15
    return operator_settings


async def _warn_about_missing_peering(runtime: OperatorRuntime) -> None:
    settings = runtime.settings
    if not settings.peering or runtime.api_client is None:
        return
    missing = await missing_peerings(runtime.api_client, settings.peering, settings.namespaces)
    if missing:
        get_logger("fleetscale.operator").warning(
            "peering_missing",
            reason="PeeringMissing",
            detail=(
                f"{', '.join(missing)} not found: kopf keeps the operator paused until it exists. "
                "Install the chart's kopf.dev CRDs and peering object, or set "
                "FLEETSCALE_PEERING= (empty) to run a single replica standalone."
            ),
        )


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    """A kopf registry with fleetscale's handlers bound to ``runtime`` (no global state)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(runtime.configuration())

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        asyncio.get_running_loop().set_default_executor(io_executor())
        try:
            await runtime.start()
        except OSError as error:  # e.g. the port is taken: retrying will not help
            raise kopf.PermanentError(
                f"cannot serve /metrics and probes on port {runtime.settings.http_port}: {error}"
            ) from error
        port = runtime.health_server.bound_port if runtime.health_server else None
        get_logger("fleetscale.operator").info(
            "operator_started",
            http_port=port,
            namespaces=list(runtime.settings.namespaces) or "all",
            peering=runtime.settings.peering or "standalone",
        )
        await _warn_about_missing_peering(runtime)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.stop()

    @kopf.index(GROUP, VERSION, PLURAL, id=DEMAND_INDEX, registry=registry)
    def demand_by_accelerator_pool(body: kopf.Body, **_: Any) -> dict[str, Any] | None:
        entry = demand_of(body)
        return None if entry is None else {entry[0]: entry[1]}

    @kopf.index(GROUP, VERSION, apool.PLURAL, id=ALLOCATIONS_INDEX, registry=registry)
    def allocations_by_accelerator_pool(name: str, status: kopf.Status, **_: Any) -> dict[str, Any]:
        return {name: allocations_index_entry(status)}

    @kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        id="pool",
        registry=registry,
        # On exit or pause, let an in-flight tick finish (its Prometheus reads time out in
        # seconds) so a scale write is never left without its status and Event; then cancel.
        cancellation_backoff=_GRACEFUL_STOP_SECONDS,
        cancellation_timeout=5.0,
    )
    async def pool_daemon(
        stopped: kopf.DaemonStopped,
        namespace: str | None,
        name: str,
        body: kopf.Body,
        **kwargs: Any,
    ) -> None:
        runtime.indexes.bind(kwargs)
        # InferencePools are namespaced; the API server never sends one without a namespace.
        await run_inference_pool_loop(runtime, namespace or "", name, body, stopped)

    @kopf.daemon(
        GROUP,
        VERSION,
        apool.PLURAL,
        id="acceleratorpool",
        registry=registry,
        cancellation_backoff=_GRACEFUL_STOP_SECONDS,
        cancellation_timeout=5.0,
    )
    async def accelerator_pool_daemon(
        stopped: kopf.DaemonStopped, name: str, body: kopf.Body, **kwargs: Any
    ) -> None:
        runtime.indexes.bind(kwargs)
        await run_accelerator_pool_loop(runtime, name, body, stopped)

    return registry


def _failure_reporter(
    runtime: OperatorRuntime, namespace: str, name: str, log: Any
) -> Callable[[str, str], None]:
    def report(reason: str, detail: str) -> None:
        log.warning("tick_failed", reason=reason, detail=detail)
        runtime.metrics.reconcile_errors_total.labels(namespace, name, reason).inc()

    return report


async def run_inference_pool_loop(
    runtime: OperatorRuntime,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    stopped: Stopped,
) -> None:
    """Reconcile one InferencePool at every tick until kopf stops the daemon."""
    log = get_logger("fleetscale.daemon", namespace=namespace, pool=name)
    metadata = body.get("metadata") or {}
    uid = str(metadata.get("uid") or f"{namespace}/{name}")

    async def tick_once(
        stored: Mapping[str, Any] | None, now: float, tick: float
    ) -> TickOutcome | None:
        if runtime.deps is None:
            return None
        meta = body.get("metadata") or {}
        pool = InferencePoolRef(namespace, name, meta.get("uid"), meta.get("generation"))
        result = await reconcile(
            pool, dict(body.get("spec") or {}), stored, runtime.deps, now, tick
        )
        return TickOutcome(result.status, result.patch)

    async def write(patch: Mapping[str, Any]) -> None:
        assert runtime.status_writer is not None  # set with deps, before any tick ran
        await runtime.status_writer.patch_status(namespace, name, patch)

    schedule = Schedule(
        clock=runtime.clock,
        offset_seconds=lambda interval: tick_offset_seconds(uid, interval, runtime.running_pools),
    )
    runtime.running_pools += 1
    try:
        await run_ticks(
            body,
            stopped,
            tick_once,
            write,
            schedule,
            _failure_reporter(runtime, namespace, name, log),
        )
    finally:
        runtime.running_pools -= 1
        reason = getattr(stopped, "reason", None)
        if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            runtime.metrics.forget_pool(namespace, name)
            if runtime.deps is not None:
                runtime.deps.published_flags.pop((namespace, name), None)
            log.info("pool_forgotten", reason="Deleted")


async def run_accelerator_pool_loop(
    runtime: OperatorRuntime, name: str, body: Mapping[str, Any], stopped: Stopped
) -> None:
    """Reconcile one AcceleratorPool at every tick until kopf stops the daemon.

    Ticks are aligned to wall-clock multiples of the interval, like the InferencePool daemons,
    so a pool plans right after the InferencePools on it have reported their demand.
    """
    log = get_logger("fleetscale.acceleratorpool", pool=name)

    async def tick_once(
        stored: Mapping[str, Any] | None, now: float, _tick: float
    ) -> TickOutcome | None:
        if runtime.accelerator_pool_deps is None:
            return None
        meta = body.get("metadata") or {}
        pool = AcceleratorPoolRef(name, meta.get("uid"), meta.get("generation"))
        result = await reconcile_accelerator_pool(
            pool, body.get("spec") or {}, stored, runtime.accelerator_pool_deps, now
        )
        return TickOutcome(result.status, result.patch)

    async def write(patch: Mapping[str, Any]) -> None:
        assert runtime.accelerator_pool_status_writer is not None
        await runtime.accelerator_pool_status_writer.patch_status(None, name, patch)

    def failed(reason: str, detail: str) -> None:
        log.warning("acceleratorpool_tick_failed", reason=reason, detail=detail)

    await run_ticks(body, stopped, tick_once, write, Schedule(clock=runtime.clock), failed)


def run_operator(
    settings: Settings,
    dependencies_factory: DependenciesFactory,
    accelerator_pool_dependencies_factory: AcceleratorPoolDependenciesFactory,
) -> int:
    """Run the operator until SIGINT/SIGTERM (``fleetscale run``).

    Returns 1 at once, with one line on stderr, when no cluster credentials can be loaded
    (kopf would otherwise retry its startup every minute and never say so on the console).
    """
    try:
        configuration = load_configuration()
    except kubernetes.config.ConfigException as error:
        print(
            "fleetscale run: no cluster credentials: not in a pod (no ServiceAccount) and "
            f"no usable kubeconfig (KUBECONFIG or ~/.kube/config): {error}",
            file=sys.stderr,
        )
        return 1
    runtime = OperatorRuntime(
        settings=settings,
        dependencies_factory=dependencies_factory,
        accelerator_pool_dependencies_factory=accelerator_pool_dependencies_factory,
        configuration_factory=lambda: configuration,
    )
    registry = build_registry(runtime)
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(settings),
            standalone=settings.standalone,
            peering_name=settings.peering or None,
            namespaces=list(settings.namespaces),
            clusterwide=settings.clusterwide,
        )
    except Exception as error:  # kopf has logged the failing handler and its cause
        print(f"fleetscale run: the operator stopped: {error}", file=sys.stderr)
        return 1
    return 0
