"""The measure step of an InferencePool tick: read the target, Prometheus and the allocation.

Role: the only reads of a tick, all through the ports: the target's size (``/scale``), the
spec's PromQL queries through the signals adapter (credentials from Secrets or the operator's
files), and what the AcceleratorPool published for the pool. It decides nothing: the pure
``planner.observe.observe`` turns the result into the planner's ``Observation``. The operator's
tick and ``fleetscale explain`` both measure here, so they read the same things the same way.
Callers: ``tick``, ``fleetscale explain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleetscale.actuators.base import (
    ActuatorError,
    ScaleActuator,
    ScaleTargetRef,
    SecretNotFound,
    SecretReader,
)
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.controller.credentials import CredentialFileError, CredentialFiles
from fleetscale.controller.inferencepools.ports import AllocationSource
from fleetscale.planner.observe import PublishedAllocation, TargetSize, observe
from fleetscale.planner.types import MetricProblem, MetricReading, Observation
from fleetscale.settings import Settings
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint, Refusal, SignalSource
from fleetscale.signals.endpoints import allowed_base_url
from fleetscale.signals.presets import spec_promql
from fleetscale.signals.scoping import enforce_namespace


@dataclass(frozen=True)
class Sensors:
    """The read-only ports a measurement uses."""

    signals: SignalSource
    scaler: ScaleActuator
    secrets: SecretReader
    settings: Settings
    allocations: AllocationSource | None = None
    credential_files: CredentialFiles = field(default_factory=CredentialFiles)
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Measurements:
    """What one tick read about one pool."""

    target: TargetSize
    readings: Mapping[str, MetricReading]  # by signal name (``planner.observe``)
    allocation: PublishedAllocation | None
    prometheus_url: str | None  # None when no endpoint could be built
    queries: Mapping[str, str]  # the PromQL of each signal, as sent
    query_seconds: float | None = None  # how long the Prometheus reads took (None: none made)


def spec_queries(
    spec: InferencePoolSpec, namespace: str, settings: Settings
) -> dict[str, tuple[str, str]]:
    """The spec field and PromQL of each signal the planner reads: the engine preset's
    queries, scoped to the pool's namespace (``settings.namespace_label``) and model, with the
    spec's own queries in their place where it sets them (``signals.presets``)."""
    return spec_promql(spec, namespace, settings.namespace_label)


def pool_queries(
    namespace: str,
    spec: InferencePoolSpec,
    endpoint: PrometheusEndpoint | MetricReading,
    settings: Settings,
) -> dict[str, MetricQuery | MetricReading]:
    """The queries of a pool by signal, each a query to send or the reading saying why not.

    A reading stands for a query that cannot be sent: the endpoint's problem, or, with
    ``enforce_namespace`` on, a query that cannot be limited to the pool's namespace
    (QueryRefused). Sent queries are the limited ones. Pure.
    """
    promqls = spec_queries(spec, namespace, settings)
    if isinstance(endpoint, MetricReading):
        return dict.fromkeys(promqls, endpoint)
    queries: dict[str, MetricQuery | MetricReading] = {}
    for name, (field_name, promql) in promqls.items():
        if settings.enforce_namespace:
            scoped = enforce_namespace(promql, namespace, settings.namespace_label)
            if isinstance(scoped, Refusal):
                queries[name] = MetricReading.failed(
                    MetricProblem.QUERY_REFUSED,
                    f"spec.metrics.{field_name}.query is refused: {scoped.reason}",
                )
                continue
            promql = scoped
        queries[name] = MetricQuery(endpoint=endpoint, promql=promql)
    return queries


async def measure(
    namespace: str, name: str, spec: InferencePoolSpec, sensors: Sensors, tick: float
) -> Measurements:
    """Read everything one tick needs. Raises TargetNotFound or ActuatorError for the target;
    a failed or refused metric read is a reading with a problem, never an exception."""
    scale = await sensors.scaler.read(ScaleTargetRef.of(namespace, spec.target_ref))
    target = TargetSize(scale.spec_replicas, scale.ready_replicas, scale.accelerators_per_replica)
    endpoint = await prometheus_endpoint(
        namespace, spec, sensors.secrets, sensors.settings, sensors.credential_files
    )
    wanted = pool_queries(namespace, spec, endpoint, sensors.settings)
    promqls = spec_queries(spec, namespace, sensors.settings)
    to_read = {name: q for name, q in wanted.items() if isinstance(q, MetricQuery)}
    readings = {name: r for name, r in wanted.items() if isinstance(r, MetricReading)}
    query_seconds: float | None = None
    if to_read:
        started = sensors.monotonic()
        readings |= await _read(to_read, sensors.signals, tick)
        query_seconds = sensors.monotonic() - started
    allocation = None
    if spec.accelerator_pool_ref is not None and sensors.allocations is not None:
        allocation = await sensors.allocations.published_allocation(
            spec.accelerator_pool_ref.name, namespace, name
        )
    return Measurements(
        target=target,
        readings=readings,
        allocation=allocation,
        prometheus_url=None if isinstance(endpoint, MetricReading) else endpoint.url,
        # What is sent (the namespace-limited query when the operator enforces it).
        queries={
            name: query.promql if isinstance(query, MetricQuery) else promqls[name][1]
            for name, query in wanted.items()
        },
        query_seconds=query_seconds,
    )


def observation_of(spec: InferencePoolSpec, measured: Measurements) -> Observation:
    """The planner's view of what was measured (``planner.observe``, with the pool's interval
    as the wait while its allocation is pending)."""
    return observe(
        spec,
        measured.target,
        measured.readings,
        measured.allocation,
        pending_seconds=float(spec.poll_interval_seconds),
    )


async def _read(
    queries: Mapping[str, MetricQuery], signals: SignalSource, tick: float
) -> dict[str, MetricReading]:
    results = await signals.read(list(queries.values()), tick)
    missing = MetricReading.failed(
        MetricProblem.QUERY_FAILED, "the signal source returned no reading"
    )
    return {name: results.get(query) or missing for name, query in queries.items()}


async def prometheus_endpoint(
    namespace: str,
    spec: InferencePoolSpec,
    secrets: SecretReader,
    settings: Settings,
    credential_files: CredentialFiles,
) -> PrometheusEndpoint | MetricReading:
    """The Prometheus endpoint of a pool, or, when none can be built, the reading saying why.

    A pool that names its own URL uses it with its own Secrets only. A pool without a URL uses
    the operator's default URL; its token and CA come from the pool's Secret refs when set,
    else from the operator's credential files. A missing URL, Secret or file is treated as
    metrics being unavailable: the planner then holds the size (never scales down blind) and
    MetricsAvailable=False says why. A URL outside the operator's allow-list (or not a plain
    base URL) is refused before anything is read (QueryRefused).
    """
    source = spec.metrics.prometheus
    url = (source.url if source is not None else None) or settings.prometheus_url
    if url is None:
        return MetricReading.failed(
            MetricProblem.QUERY_FAILED,
            "no Prometheus URL: set spec.metrics.prometheus.url or FLEETSCALE_PROMETHEUS_URL",
        )
    allowed_url = allowed_base_url(url, settings.allowed_prometheus_urls)
    if isinstance(allowed_url, Refusal):
        return MetricReading.failed(
            MetricProblem.QUERY_REFUSED, f"spec.metrics.prometheus.url: {allowed_url.reason}"
        )
    # The operator's own credential files go only to the operator's default URL: a pool that
    # names its own Prometheus authenticates with its own Secrets, never with ours.
    uses_default_url = source is None or source.url is None
    token_ref = source.bearer_token_secret_ref if source is not None else None
    ca_ref = source.ca_secret_ref if source is not None else None
    token: str | None = None
    ca_pem: str | None = None
    try:
        if token_ref is not None:
            token = (await secrets.read_key(namespace, token_ref.name, token_ref.key)).strip()
        elif uses_default_url and settings.prometheus_bearer_token_file is not None:
            token = credential_files.read(settings.prometheus_bearer_token_file).strip()
        if ca_ref is not None:
            ca_pem = await secrets.read_key(namespace, ca_ref.name, ca_ref.key)
        elif uses_default_url and settings.prometheus_ca_file is not None:
            ca_pem = credential_files.read(settings.prometheus_ca_file)
    except (SecretNotFound, ActuatorError, CredentialFileError) as error:
        return MetricReading.failed(
            MetricProblem.QUERY_FAILED, f"cannot read Prometheus credentials: {error}"
        )
    return PrometheusEndpoint(
        url=allowed_url,
        bearer_token=token,
        ca_pem=ca_pem,
        timeout_seconds=source.timeout_seconds if source is not None else 5.0,
    )
