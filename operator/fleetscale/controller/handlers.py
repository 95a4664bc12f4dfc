"""The kopf side of the operator: login, startup/cleanup, and one daemon per InferencePool.

Role: wire kopf to ``reconcile``. Handlers here only parse what kopf hands over, call
``reconcile``, write the status patch it returns and keep the loop going; every decision,
Event and metric is made in ``controller.reconcile``. Callers: ``fleetscale run`` (through
``run_operator``) and the integration tests (through kopf's ``KopfRunner`` with
``build_registry``'s registry).

Why a daemon per pool, not ``kopf.timer``: a timer's interval is fixed when the handler is
registered, but ``spec.pollIntervalSeconds`` is per object and may change at any time. A
daemon is started once per object and sees the live body, so each loop iteration re-reads
the interval, and a spec change (mode, metrics, bounds) applies at the next tick without a
restart and without losing the in-flight tick. Ticks are aligned to wall-clock multiples of
the interval (``next_tick``), and every pool's reconcile of one tick reads the signals under
that tick, so the signals adapter answers each PromQL once per tick for all of them. Within
the tick each pool runs at its own stable offset (``tick_offset_seconds``): a thousand pools
waking at the same instant would queue their Kubernetes reads behind each other and each
reconcile would take as long as the whole burst. The spread grows with the number of pools
(``SPREAD_PER_POOL_SECONDS``) up to half the interval, so a small fleet still acts on fresh
readings. Each daemon reconciles at once when it starts (a new pool or a restarted operator
does not wait a whole interval).

kopf's daemons require a finalizer (kopf adds ``kopf.zalando.org/KopfFinalizerMarker``) so
that a deleted pool's daemon is stopped before the object goes; its series are then removed
from /metrics. With peering enabled (the default), only the active replica runs daemons; a
standby replica's daemons start when the active one's lease lapses.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
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
from fleetscale.api.inferencepool import PLURAL, InferencePoolSpec
from fleetscale.controller import acceleratorpools
from fleetscale.controller.kube import (
    KubernetesStatusWriter,
    PoolGone,
    StatusWriter,
    connection_info,
    io_executor,
    load_configuration,
    missing_peerings,
)
from fleetscale.controller.reconcile import Dependencies, PoolRef, reconcile
from fleetscale.kubeapi import describe
from fleetscale.logs import get_logger
from fleetscale.metrics import HealthServer, OperatorMetrics
from fleetscale.settings import Settings

DependenciesFactory = Callable[
    [kubernetes.client.ApiClient, Settings, OperatorMetrics], Dependencies
]

_GRACEFUL_STOP_SECONDS = 15.0
# How long a replica's peering record stays valid without a keep-alive (kopf renews it 5-10 s
# before): a standby takes over from a crashed or partitioned leader after at most this long,
# instead of kopf's default 60 s. A clean stop hands over at once either way.
PEERING_LIFETIME_SECONDS = 20
_DEFAULT_POLL_INTERVAL_SECONDS = InferencePoolSpec.model_fields["poll_interval_seconds"].default


# Spread the pools of one tick over this much time per pool, up to MAX_SPREAD_FRACTION of
# the interval: at 1,000 pools a 15 s tick spreads over 7.5 s (about 130 reconciles a second).
SPREAD_PER_POOL_SECONDS = 0.01
MAX_SPREAD_FRACTION = 0.5


def next_tick(now: float, interval_seconds: float) -> float:
    """The next wall-clock multiple of the interval strictly after ``now``."""
    return (math.floor(now / interval_seconds) + 1) * interval_seconds


def current_tick(now: float, interval_seconds: float) -> float:
    """The wall-clock multiple of the interval at or before ``now``."""
    return math.floor(now / interval_seconds) * interval_seconds


def tick_offset_seconds(uid: str, interval_seconds: float, pools: int) -> float:
    """How long after each tick this pool reconciles: a stable share of the tick's spread.

    The share comes from a hash of the pool's uid, so it is the same on every tick and on
    every operator replica, and the pools fall evenly over the spread.
    """
    spread_seconds = min(interval_seconds * MAX_SPREAD_FRACTION, pools * SPREAD_PER_POOL_SECONDS)
    digest = hashlib.blake2b(uid.encode(), digest_size=8).digest()
    return spread_seconds * int.from_bytes(digest, "big") / 2**64


def poll_interval_seconds(raw_spec: Mapping[str, Any] | None) -> int:
    """The interval from a raw spec; the default when absent or invalid (reconcile says why)."""
    value = (raw_spec or {}).get("pollIntervalSeconds", _DEFAULT_POLL_INTERVAL_SECONDS)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3600:
        return value
    return int(_DEFAULT_POLL_INTERVAL_SECONDS)


@dataclass
class OperatorRuntime:
    """What the handlers share: built before kopf starts, completed by the startup handler."""

    settings: Settings
    dependencies_factory: DependenciesFactory
    configuration_factory: Callable[[], kubernetes.client.Configuration] = load_configuration
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Callable[[], float] = time.time
    status_writer_factory: Callable[[kubernetes.client.ApiClient], StatusWriter] = (
        KubernetesStatusWriter
    )
    deps: Dependencies | None = None
    status_writer: StatusWriter | None = None
    api_client: kubernetes.client.ApiClient | None = None
    health_server: HealthServer | None = None
    accelerator_pools: (
        tuple[acceleratorpools.PoolDependencies, acceleratorpools.StatusPatcher] | None
    ) = None
    started: bool = False
    running_pools: int = 0  # pool daemons now running; sizes the spread of each tick
    _configuration: kubernetes.client.Configuration | None = None

    def configuration(self) -> kubernetes.client.Configuration:
        if self._configuration is None:
            self._configuration = self.configuration_factory()
        return self._configuration

    async def start(self) -> None:
        self.api_client = kubernetes.client.ApiClient(self.configuration())
        self.deps = self.dependencies_factory(self.api_client, self.settings, self.metrics)
        self.status_writer = self.status_writer_factory(self.api_client)
        self.health_server = HealthServer(
            self.metrics,
            self.settings.http_port,
            is_alive=lambda: True,  # answering at all proves the event loop is not stuck
            is_ready=lambda: self.started,
        )
        await self.health_server.start()
        self.started = True

    def accelerator_pool_dependencies(
        self,
    ) -> tuple[acceleratorpools.PoolDependencies, acceleratorpools.StatusPatcher] | None:
        """The AcceleratorPool loop's dependencies, built once startup made the shared ones."""
        if self.api_client is None or self.deps is None:
            return None
        if self.accelerator_pools is None:
            self.accelerator_pools = (
                acceleratorpools.kubernetes_pool_dependencies(
                    self.api_client, self.deps.events, self.deps.scaler
                ),
                acceleratorpools.AcceleratorPoolStatusWriter(self.api_client),
            )
        return self.accelerator_pools

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
        **_: Any,
    ) -> None:
        # InferencePools are namespaced; the API server never sends one without a namespace.
        await run_pool_loop(runtime, namespace or "", name, body, stopped)

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
        stopped: kopf.DaemonStopped, name: str, body: kopf.Body, **_: Any
    ) -> None:
        await acceleratorpools.run_accelerator_pool_loop(
            name, body, stopped, runtime.accelerator_pool_dependencies, runtime.clock
        )

    return registry


async def run_pool_loop(
    runtime: OperatorRuntime,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    stopped: Any,
) -> None:
    """Reconcile one pool at every tick until kopf stops the daemon."""
    log = get_logger("fleetscale.daemon", namespace=namespace, pool=name)
    # The status we last wrote, and the resourceVersion the live body had just before the
    # write: until the watch delivers a newer body, ours is the truth (no stale re-reads).
    written_status: Mapping[str, Any] | None = None
    version_before_write: str | None = None
    tick = current_tick(runtime.clock(), poll_interval_seconds(body.get("spec")))
    runtime.running_pools += 1
    try:
        while not stopped:
            deps, writer = runtime.deps, runtime.status_writer
            if deps is None or writer is None:  # startup has not finished; kopf orders it first
                await stopped.wait(0.1)
                continue
            metadata = body.get("metadata", {})
            live_version = metadata.get("resourceVersion")
            raw_status = body.get("status")
            if written_status is not None and live_version == version_before_write:
                raw_status = written_status
            pool = PoolRef(
                namespace=namespace,
                name=name,
                uid=metadata.get("uid"),
                generation=metadata.get("generation"),
            )
            result = await reconcile(
                pool, dict(body.get("spec") or {}), raw_status, deps, runtime.clock(), tick
            )
            if result.patch:
                try:
                    await writer.patch_status(namespace, name, result.patch)
                    written_status, version_before_write = result.status, live_version
                except PoolGone:
                    break
                except Exception as error:  # retried at the next tick with the same diff
                    log.warning(
                        "status_write_failed", reason="StatusWriteFailed", detail=describe(error)
                    )
                    deps.metrics.reconcile_errors_total.labels(
                        namespace, name, "StatusWriteFailed"
                    ).inc()
            now = runtime.clock()
            interval_seconds = poll_interval_seconds(body.get("spec"))
            offset_seconds = tick_offset_seconds(
                str(pool.uid or f"{namespace}/{name}"), interval_seconds, runtime.running_pools
            )
            # The next tick whose turn for this pool (tick + offset) is still ahead; never the
            # tick just run again, whatever the float arithmetic of now - offset gives.
            tick = next_tick(max(now - offset_seconds, tick), interval_seconds)
            await stopped.wait(max(0.0, tick + offset_seconds - now))
    finally:
        runtime.running_pools -= 1
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            runtime.metrics.forget_pool(namespace, name)
            if runtime.deps is not None:
                runtime.deps.published_flags.pop((namespace, name), None)
            log.info("pool_forgotten", reason="Deleted")


def run_operator(settings: Settings, dependencies_factory: DependenciesFactory) -> int:
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
