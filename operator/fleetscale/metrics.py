"""The operator's own Prometheus metrics, and the HTTP server that exposes them with probes.

Role: one ``OperatorMetrics`` object owns a private ``CollectorRegistry`` (never the global one,
so tests and several operators in one process do not collide) and every series fleetscale
exports. ``fleetscale_shed_active`` is the gauge gateways and alerts read. The observed queue
depth and GPU utilization are set each tick and removed while a reading is unusable, so a
dashboard shows a gap rather than a stale value. Series of a deleted
pool are removed with ``forget_pool``. ``HealthServer`` serves ``/metrics``, ``/healthz``
(liveness: the event loop answers and the operator has not failed) and ``/readyz`` (startup
done). Callers: the controller (records), ``fleetscale run`` (starts the server), tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

# Prometheus queries and reconciles take milliseconds to seconds; timeouts are ~5 s.
_LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OperatorMetrics:
    """Every metric fleetscale exports, registered in one private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        pool_labels = ("namespace", "pool")
        self.decisions_total = Counter(
            "fleetscale_decisions_total",
            "Planner decisions, by the decisive reason (ScaledUp, ScaledDown, Holding, ...).",
            (*pool_labels, "reason"),
            registry=self.registry,
        )
        self.desired_replicas = Gauge(
            "fleetscale_desired_replicas",
            "Replicas the operator wants for the pool's target (set, or would set in DryRun).",
            pool_labels,
            registry=self.registry,
        )
        self.current_replicas = Gauge(
            "fleetscale_current_replicas",
            "Replicas of the pool's target as read from its /scale subresource.",
            pool_labels,
            registry=self.registry,
        )
        self.shed_active = Gauge(
            "fleetscale_shed_active",
            "1 while gateways should answer 429 for this pool, else 0.",
            pool_labels,
            registry=self.registry,
        )
        self.shed_retry_after_seconds = Gauge(
            "fleetscale_shed_retry_after_seconds",
            "Retry-After the gateways should send while shedding (0 when not shedding).",
            pool_labels,
            registry=self.registry,
        )
        self.shed_fraction = Gauge(
            "fleetscale_shed_fraction",
            "Share of requests (0-1) the gateways should refuse while shedding, lower-priority "
            "requests first (0 when not shedding).",
            pool_labels,
            registry=self.registry,
        )
        self.observed_queue_depth = Gauge(
            "fleetscale_observed_queue_depth",
            "Queue depth (waiting requests) of the pool as last read from Prometheus; absent "
            "while the reading is unusable.",
            pool_labels,
            registry=self.registry,
        )
        self.observed_gpu_utilization_percent = Gauge(
            "fleetscale_observed_gpu_utilization_percent",
            "GPU utilization (percent) of the pool as last read from Prometheus; absent while "
            "the reading is unusable or the pool reads none.",
            pool_labels,
            registry=self.registry,
        )
        self.metric_query_duration_seconds = Histogram(
            "fleetscale_metric_query_duration_seconds",
            "Time to read one tick's Prometheus queries of a pool.",
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.metric_query_errors_total = Counter(
            "fleetscale_metric_query_errors_total",
            "Metric readings that could not be used, by problem (QueryFailed, NoData, Stale...).",
            ("reason",),
            registry=self.registry,
        )
        self.reconcile_duration_seconds = Histogram(
            "fleetscale_reconcile_duration_seconds",
            "Time of one observe-plan-act-report cycle of one pool.",
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.reconcile_errors_total = Counter(
            "fleetscale_reconcile_errors_total",
            "Reconcile cycles that failed (target missing, invalid spec, API errors...).",
            (*pool_labels, "reason"),
            registry=self.registry,
        )
        self.leader = Gauge(
            "fleetscale_leader",
            "1 while this replica holds the leader Lease and acts, else 0 (a standby).",
            registry=self.registry,
        )
        self._per_pool = (
            self.desired_replicas,
            self.current_replicas,
            self.shed_active,
            self.shed_retry_after_seconds,
            self.shed_fraction,
            self.observed_queue_depth,
            self.observed_gpu_utilization_percent,
        )
        self._per_pool_and_reason = (self.decisions_total, self.reconcile_errors_total)

    def forget_pool(self, namespace: str, pool: str) -> None:
        """Drop every series of a deleted pool, so dashboards do not show ghosts."""
        for gauge in self._per_pool:
            with contextlib.suppress(KeyError):  # the pool never got this series
                gauge.remove(namespace, pool)
        for counter in self._per_pool_and_reason:
            for labels in _label_sets(counter):
                if labels[:2] == (namespace, pool):
                    counter.remove(*labels)

    def forget_all_pools(self) -> None:
        """Drop every pool's gauges: a replica that stops acting (lost its lease) no longer
        knows them, and a stale 1 in ``fleetscale_shed_active`` would keep gateways
        shedding. The new leader publishes them from its first tick."""
        for gauge in self._per_pool:
            gauge.clear()

    def set_observed(
        self, namespace: str, pool: str, queue_depth: float | None, gpu_percent: float | None
    ) -> None:
        """Publish this tick's readings; None removes the series (a gap, never a stale value)."""
        for gauge, value in (
            (self.observed_queue_depth, queue_depth),
            (self.observed_gpu_utilization_percent, gpu_percent),
        ):
            if value is None:
                with contextlib.suppress(KeyError):  # no series yet: nothing to remove
                    gauge.remove(namespace, pool)
            else:
                gauge.labels(namespace, pool).set(value)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


def _label_sets(metric: Counter) -> list[tuple[str, ...]]:
    # prometheus-client has no public listing of a metric's children; collect() yields the
    # samples, whose labels are the children's label sets.
    names = metric._labelnames
    found: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            found.add(tuple(sample.labels[name] for name in names))
    return sorted(found)


class HealthServer:
    """aiohttp server for /metrics, /healthz and /readyz on one port.

    ``is_alive``/``is_ready`` are asked on every probe, so the answer is always current.
    """

    def __init__(
        self,
        metrics: OperatorMetrics,
        port: int,
        is_alive: Callable[[], bool],
        is_ready: Callable[[], bool],
        host: str = "0.0.0.0",  # probes and scrapes come from outside the pod
    ) -> None:
        self._metrics = metrics
        self._port = port
        self._host = host
        self._is_alive = is_alive
        self._is_ready = is_ready
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_healthz)
        app.router.add_get("/readyz", self._serve_readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # With port 0 the OS picks one; read it back so tests (and logs) know where we listen.
        addresses = self._runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve_metrics(self, _: web.Request) -> web.Response:
        # Thousands of pools make a large page: render it off the event loop, so the ticks
        # and the probes go on meanwhile (the registry locks its own state).
        body = await asyncio.to_thread(self._metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def _serve_healthz(self, _: web.Request) -> web.Response:
        if self._is_alive():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not alive\n")

    async def _serve_readyz(self, _: web.Request) -> web.Response:
        if self._is_ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
