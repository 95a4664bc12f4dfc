"""The operator's own Prometheus metrics, and the HTTP server that exposes them with probes.

Role: one ``OperatorMetrics`` object owns a private ``CollectorRegistry`` (never the global one,
so tests and several operators in one process do not collide) and every series fleetscale
exports. ``fleetscale_shed_active`` is the gauge gateways and alerts read. The observed queue
depth and GPU utilization are set each tick and removed while a reading is unusable, so a
dashboard shows a gap rather than a stale value. Series of a deleted
pool are removed with ``forget_pool``; those of a shard this replica no longer holds with
``forget_pools``. ``HealthServer`` serves ``/metrics``, ``/healthz``
(liveness: the event loop answers and the operator has not failed) and ``/readyz`` (startup
done). Callers: the controller (records), ``fleetscale run`` (starts the server), tests.

The per-pool series (eight families, one series or more per pool: 80,000 lines at 10,000
pools) are plain dicts (``PoolSeries``) rendered straight into the exposition text, which
takes a tenth of the time prometheus-client's generic path does and no lock per update; the
registry still answers for them (``registry.get_sample_value``). The per-pool counters carry
no ``_created`` series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, cast

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.utils import floatToGoString

# Prometheus queries and reconciles take milliseconds to seconds; timeouts are ~5 s.
_LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PoolKey = tuple[str, str]  # (namespace, pool)
# Go's float formatting, as prometheus-client renders every sample.
_go_float = cast(Callable[[float], str], floatToGoString)
PoolFilter = Callable[[str, str], bool]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Child:
    """One series of a ``PoolSeries``, as prometheus-client's ``labels()`` returns it."""

    __slots__ = ("_key", "_values")

    def __init__(self, values: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self._values, self._key = values, key
        values.setdefault(key, 0.0)

    def set(self, value: float) -> None:
        self._values[self._key] = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self._values[self._key] = self._values.get(self._key, 0.0) + amount


class PoolSeries:
    """A per-pool family (labels namespace, pool, and optionally reason), kept in a dict.

    The subset of prometheus-client's ``Gauge``/``Counter`` the controller uses (``labels``,
    ``remove``, ``clear``), a ``collect`` for the registry, and a fast ``render``.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        kind: Literal["gauge", "counter"],
        extra_label: str | None = None,
    ) -> None:
        self.name, self.documentation, self.kind = name, documentation, kind
        self.label_names = ("namespace", "pool", *((extra_label,) if extra_label else ()))
        self.values: dict[tuple[str, ...], float] = {}

    def labels(self, *values: str) -> _Child:
        return _Child(self.values, tuple(values))

    def remove(self, *values: str) -> None:
        """Drop one series; KeyError when there is none (as prometheus-client)."""
        del self.values[tuple(values)]

    def clear(self) -> None:
        self.values.clear()

    def forget(self, keep: Callable[[tuple[str, ...]], bool]) -> None:
        for key in [key for key in list(self.values) if not keep(key)]:
            self.values.pop(key, None)

    def collect(self) -> Iterable[Metric]:
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(
                self.name.removesuffix("_total"), self.documentation, labels=self.label_names
            )
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.label_names)
        for key, value in list(self.values.items()):
            family.add_metric(list(key), value)
        return [family]

    def render(self, label_text: Callable[[tuple[str, ...]], str]) -> Iterator[str]:
        """The family in the text exposition format, line by line."""
        yield f"# HELP {self.name} {self.documentation}\n# TYPE {self.name} {self.kind}\n"
        name = self.name
        for key, value in list(self.values.items()):  # a copy: ticks go on meanwhile
            yield f"{name}{{{label_text(key)}}} {_go_float(value)}\n"


class OperatorMetrics:
    """Every metric fleetscale exports, registered in one private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # What prometheus-client renders itself; the per-pool families are rendered here.
        self._standard = CollectorRegistry(auto_describe=True)
        self._label_text: dict[tuple[str, ...], str] = {}
        self.decisions_total = PoolSeries(
            "fleetscale_decisions_total",
            "Planner decisions, by the decisive reason (ScaledUp, ScaledDown, Holding, ...).",
            "counter",
            "reason",
        )
        self.desired_replicas = PoolSeries(
            "fleetscale_desired_replicas",
            "Replicas the operator wants for the pool's target (set, or would set in DryRun).",
            "gauge",
        )
        self.current_replicas = PoolSeries(
            "fleetscale_current_replicas",
            "Replicas of the pool's target as read from its /scale subresource.",
            "gauge",
        )
        self.shed_active = PoolSeries(
            "fleetscale_shed_active",
            "1 while gateways should answer 429 for this pool, else 0.",
            "gauge",
        )
        self.shed_retry_after_seconds = PoolSeries(
            "fleetscale_shed_retry_after_seconds",
            "Retry-After the gateways should send while shedding (0 when not shedding).",
            "gauge",
        )
        self.shed_fraction = PoolSeries(
            "fleetscale_shed_fraction",
            "Share of requests (0-1) the gateways should refuse while shedding, lower-priority "
            "requests first (0 when not shedding).",
            "gauge",
        )
        self.observed_queue_depth = PoolSeries(
            "fleetscale_observed_queue_depth",
            "Queue depth (waiting requests) of the pool as last read from Prometheus; absent "
            "while the reading is unusable.",
            "gauge",
        )
        self.observed_gpu_utilization_percent = PoolSeries(
            "fleetscale_observed_gpu_utilization_percent",
            "GPU utilization (percent) of the pool as last read from Prometheus; absent while "
            "the reading is unusable or the pool reads none.",
            "gauge",
        )
        self.metric_query_duration_seconds = Histogram(
            "fleetscale_metric_query_duration_seconds",
            "Time to read one tick's Prometheus queries of a pool.",
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self._standard,
        )
        self.metric_query_errors_total = Counter(
            "fleetscale_metric_query_errors_total",
            "Metric readings that could not be used, by problem (QueryFailed, NoData, Stale...).",
            ("reason",),
            registry=self._standard,
        )
        self.reconcile_duration_seconds = Histogram(
            "fleetscale_reconcile_duration_seconds",
            "Time of one observe-plan-act-report cycle of one pool.",
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self._standard,
        )
        self.reconcile_errors_total = PoolSeries(
            "fleetscale_reconcile_errors_total",
            "Reconcile cycles that failed (target missing, invalid spec, API errors...).",
            "counter",
            "reason",
        )
        self.leader = Gauge(
            "fleetscale_leader",
            "1 while this replica holds the leader Lease (shard 0: it runs the AcceleratorPool "
            "planner), else 0.",
            registry=self._standard,
        )
        self.shards_held = Gauge(
            "fleetscale_shards_held",
            "Shards whose Lease this replica holds, whose pools it acts on.",
            registry=self._standard,
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
        for collector in self._standard._collector_to_names:
            self.registry.register(collector)
        for family in (*self._per_pool, *self._per_pool_and_reason):
            self.registry.register(family)

    def forget_pool(self, namespace: str, pool: str) -> None:
        """Drop every series of a deleted pool, so dashboards do not show ghosts."""
        for gauge in self._per_pool:
            gauge.values.pop((namespace, pool), None)
        for counter in self._per_pool_and_reason:
            counter.forget(lambda key: key[:2] != (namespace, pool))

    def forget_pools(self, selected: PoolFilter) -> None:
        """Drop the gauges of the pools ``selected`` picks (a shard this replica no longer
        holds): it no longer knows them, and a stale 1 in ``fleetscale_shed_active`` would keep
        gateways shedding. The shard's new holder publishes them from its first tick."""
        for gauge in self._per_pool:
            gauge.forget(lambda key: not selected(key[0], key[1]))

    def forget_all_pools(self) -> None:
        """Drop every pool's gauges (this replica acts on no pool any more)."""
        for gauge in self._per_pool:
            gauge.clear()

    def set_observed(
        self, namespace: str, pool: str, queue_depth: float | None, gpu_percent: float | None
    ) -> None:
        """Publish this tick's readings; None removes the series (a gap, never a stale value)."""
        key = (namespace, pool)
        for gauge, value in (
            (self.observed_queue_depth, queue_depth),
            (self.observed_gpu_utilization_percent, gpu_percent),
        ):
            if value is None:
                gauge.values.pop(key, None)
            else:
                gauge.values[key] = float(value)

    def render(self) -> bytes:
        """Every metric in the Prometheus text exposition format."""
        parts = [generate_latest(self._standard).decode()]
        for family in (*self._per_pool_and_reason, *self._per_pool):
            parts.extend(family.render(self._labels_of))
        return "".join(parts).encode()

    def _labels_of(self, key: tuple[str, ...]) -> str:
        text = self._label_text.get(key)
        if text is None:
            names = ("namespace", "pool", "reason")
            text = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, key, strict=False))
            if len(self._label_text) > 100_000:  # pools come and go: never grow without end
                self._label_text.clear()
            self._label_text[key] = text
        return text


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
