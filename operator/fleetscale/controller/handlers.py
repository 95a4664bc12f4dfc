"""The kopf side of the operator: login, startup/cleanup, and the watch events.

Role: wire kopf to the two controllers. kopf watches InferencePools and AcceleratorPools and
hands every event to the kind's ``Workers``, which run one ``loop.run_ticks`` per object with
the kind's tick (``inferencepools.reconcile``, ``acceleratorpools.reconcile_accelerator_pool``).
The indexes the two kinds meet through (demand by AcceleratorPool, allocations, the controllers
of each workload, the Namespaces' labels) are not kopf's: the operator keeps them from its own
watches (``controller.caches``, registered in ``controller.wiring``), because kopf holds every
handler until its indexes are filled, at a cost that grows with the square of the objects.
Every decision, Event and metric is made in the controllers. kopf itself writes nothing to the
objects it watches (no finalizers, no annotations), so a standby replica writes nothing.
Callers: ``fleetscale run`` (through ``run_operator``) and the integration tests (through
kopf's ``KopfRunner`` with ``build_registry``'s registry).

High availability and shards: every replica watches (its indexes and loops stay warm); a pool
ticks only on the replica that holds its shard's ``coordination.k8s.io`` Lease (with one shard,
the leader Lease; ``leadership.ShardGate``), an AcceleratorPool only on the holder of shard 0,
and every write the adapters send passes the same check at the last moment, for the shard the
writing task acts for (``leadership.fence``, ``kubeapi.FencedApiClient``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

import kopf
import kubernetes.config

from fleetscale.api import acceleratorpool as apool
from fleetscale.api.base import GROUP, VERSION
from fleetscale.api.inferencepool import PLURAL
from fleetscale.controller.acceleratorpools import AcceleratorPoolRef, reconcile_accelerator_pool
from fleetscale.controller.inferencepools import InferencePoolRef, reconcile
from fleetscale.controller.inferencepools.tick import withdraw_shed_flag_of_deleted_pool
from fleetscale.controller.kube import connection_info, io_executor, load_configuration
from fleetscale.controller.leadership import ACTING_SHARD, PLANNER_SHARD
from fleetscale.controller.loop import (
    Schedule,
    Stopped,
    TickOutcome,
    run_ticks,
    tick_offset_seconds,
)
from fleetscale.controller.runtime import (
    GRACEFUL_STOP_SECONDS,
    AcceleratorPoolDependenciesFactory,
    DependenciesFactory,
    OperatorRuntime,
)
from fleetscale.controller.workers import ObjectKey, StopFlag, Workers
from fleetscale.logs import get_logger
from fleetscale.settings import Settings

__all__ = [
    "OperatorRuntime",
    "build_registry",
    "kopf_settings",
    "run_accelerator_pool_loop",
    "run_inference_pool_loop",
    "run_operator",
]


KOPF_LIST_PAGE_SIZE = 500


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings for fleetscale: standalone (fleetscale elects its own leader)."""
    operator_settings = kopf.OperatorSettings()
    # fleetscale posts its own Events with plain-words messages; kopf posts none (a standby
    # must not write, and kopf's would duplicate ours).
    operator_settings.posting.enabled = False
    operator_settings.posting.level = logging.WARNING
    operator_settings.peering.standalone = True
    # Leave room for the loops' graceful stop before kopf gives up on exiting.
    operator_settings.process.ultimate_exiting_timeout = GRACEFUL_STOP_SECONDS + 15
    # List the pools page by page: one response of 10,000 InferencePools with their status
    # is tens of megabytes, which the API server and kopf's request timeout did not see
    # through on a loaded machine (kopf retried it for minutes).
    operator_settings.watching.chunk_size = KOPF_LIST_PAGE_SIZE
    return operator_settings


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    """A kopf registry with fleetscale's handlers bound to ``runtime`` (no global state)."""
    registry = kopf.OperatorRegistry()
    _lifecycle_handlers(registry, runtime)
    _event_handlers(registry, runtime)
    return registry


def _lifecycle_handlers(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
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
        runtime.inference_pools = Workers(
            "InferencePool", _inference_pool_loop(runtime), _inference_pool_deleted(runtime)
        )
        runtime.accelerator_pools = Workers("AcceleratorPool", _accelerator_pool_loop(runtime))
        settings = runtime.settings
        get_logger("fleetscale.operator").info(
            "operator_started",
            http_port=runtime.health_server.bound_port if runtime.health_server else None,
            namespaces=list(settings.namespaces) or "all",
            leader_election=(
                f"Lease {settings.resolved_lease_namespace()}/{settings.lease_name} as "
                f"{runtime.shard_manager.identity}"
                if runtime.shard_manager is not None
                else "off"
            ),
            shards=settings.shards,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.stop()


def _event_handlers(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def inference_pool_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if runtime.inference_pools is not None:
            await runtime.inference_pools.observe(type, _plain(body))

    @kopf.on.event(GROUP, VERSION, apool.PLURAL, registry=registry)
    async def accelerator_pool_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if runtime.accelerator_pools is not None:
            await runtime.accelerator_pools.observe(type, _plain(body))


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in body}


def _failure_reporter(
    runtime: OperatorRuntime, namespace: str, name: str, log: Any
) -> Callable[[str, str], None]:
    def report(reason: str, detail: str) -> None:
        log.warning("tick_failed", reason=reason, detail=detail)
        runtime.metrics.reconcile_errors_total.labels(namespace, name, reason).inc()

    return report


def _inference_pool_loop(
    runtime: OperatorRuntime,
) -> Callable[[ObjectKey, dict[str, Any], StopFlag], Any]:
    def loop(key: ObjectKey, body: dict[str, Any], stopped: StopFlag) -> Any:
        return run_inference_pool_loop(runtime, key[0], key[1], body, stopped)

    return loop


def _inference_pool_deleted(
    runtime: OperatorRuntime,
) -> Callable[[ObjectKey, Mapping[str, Any]], Any]:
    async def deleted(key: ObjectKey, body: Mapping[str, Any]) -> None:
        runtime.metrics.forget_pool(*key)
        shard = runtime.shard_of(*key)
        if runtime.deps is not None and runtime.gate_for(shard).admits():
            acting = ACTING_SHARD.set(shard)  # what the write fence checks
            try:
                await withdraw_shed_flag_of_deleted_pool(key, body, runtime.deps)
            finally:
                ACTING_SHARD.reset(acting)
        get_logger("fleetscale.daemon", namespace=key[0], pool=key[1]).info(
            "pool_forgotten", reason="Deleted"
        )

    return deleted


def _accelerator_pool_loop(
    runtime: OperatorRuntime,
) -> Callable[[ObjectKey, dict[str, Any], StopFlag], Any]:
    def loop(key: ObjectKey, body: dict[str, Any], stopped: StopFlag) -> Any:
        return run_accelerator_pool_loop(runtime, key[1], body, stopped)

    return loop


async def run_inference_pool_loop(
    runtime: OperatorRuntime,
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    stopped: Stopped,
) -> None:
    """Reconcile one InferencePool at every tick until it is deleted or the operator exits."""
    log = get_logger("fleetscale.daemon", namespace=namespace, pool=name)
    metadata = body.get("metadata") or {}
    uid = str(metadata.get("uid") or f"{namespace}/{name}")
    shard = runtime.shard_of(namespace, name)

    async def tick_once(
        stored: Mapping[str, Any] | None, now: float, tick: float
    ) -> TickOutcome | None:
        if runtime.deps is None:
            return None
        meta = body.get("metadata") or {}
        pool = InferencePoolRef(namespace, name, meta.get("uid"), meta.get("generation"))
        spec = dict(body.get("spec") or {})
        async with runtime.in_flight.acting(shard):  # a shard is released once none runs
            result = await reconcile(pool, spec, stored, runtime.deps, now, tick)
        return TickOutcome(result.status, result.patch, result.stored_before_patch)

    async def write(patch: Mapping[str, Any]) -> None:
        assert runtime.status_writer is not None  # set with deps, before any tick ran
        async with runtime.in_flight.acting(shard):
            await runtime.status_writer.patch_status(namespace, name, patch)

    schedule = Schedule(
        clock=runtime.clock,
        offset_seconds=lambda interval: tick_offset_seconds(uid, interval, runtime.running_pools),
        gate=runtime.gate_for(shard),
    )
    failed = _failure_reporter(runtime, namespace, name, log)
    runtime.running_pools += 1
    acting = ACTING_SHARD.set(shard)  # this task's writes are checked against its shard
    try:
        await run_ticks(body, stopped, tick_once, write, schedule, failed)
    finally:
        ACTING_SHARD.reset(acting)
        runtime.running_pools -= 1


async def run_accelerator_pool_loop(
    runtime: OperatorRuntime, name: str, body: Mapping[str, Any], stopped: Stopped
) -> None:
    """Reconcile one AcceleratorPool at every tick until it is deleted or the operator exits.

    Ticks are aligned to wall-clock multiples of the interval, like the InferencePool loops,
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
        async with runtime.in_flight.acting(PLANNER_SHARD):
            result = await reconcile_accelerator_pool(
                pool, body.get("spec") or {}, stored, runtime.accelerator_pool_deps, now
            )
        return TickOutcome(result.status, result.patch)

    async def write(patch: Mapping[str, Any]) -> None:
        assert runtime.accelerator_pool_status_writer is not None
        async with runtime.in_flight.acting(PLANNER_SHARD):
            await runtime.accelerator_pool_status_writer.patch_status(None, name, patch)

    def failed(reason: str, detail: str) -> None:
        log.warning("acceleratorpool_tick_failed", reason=reason, detail=detail)

    schedule = Schedule(clock=runtime.clock, gate=runtime.gate_for(PLANNER_SHARD))
    acting = ACTING_SHARD.set(PLANNER_SHARD)
    try:
        await run_ticks(body, stopped, tick_once, write, schedule, failed)
    finally:
        ACTING_SHARD.reset(acting)


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
        collector=gc,  # a process of its own: its collector is the operator's to tune
    )
    registry = build_registry(runtime)
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(settings),
            standalone=True,
            namespaces=list(settings.namespaces),
            clusterwide=settings.clusterwide,
        )
    except Exception as error:  # kopf has logged the failing handler and its cause
        print(f"fleetscale run: the operator stopped: {error}", file=sys.stderr)
        return 1
    return 0
