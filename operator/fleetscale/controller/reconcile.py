"""One tick of one InferencePool: observe -> plan -> act -> report.

Role: the whole control loop of a pool as a plain async function. Everything it touches comes
in through ``Dependencies`` (signals, actuators, Events, the shed-flag publisher, Secrets,
settings, metrics, the planner) and the clock comes in as ``now``, so it runs the same under
kopf, in unit tests with the in-package fakes, and in the simulator. It never raises: any
failure becomes a condition, an Event, a log line and a metric, and the next tick retries.
It returns the rendered status and the merge patch to get there; the caller writes the patch
(empty when nothing changed). Callers: ``controller.handlers`` (the kopf daemon), tests.

Modes: Active acts. DryRun plans and reports (status, conditions, "would scale" Events) but
never calls the actuator and never publishes the shed flag: status.shedLoad and the
``fleetscale_shed_active`` gauge stay off because gateways act on them; the ShedLoad
condition says what would happen. Paused reads nothing and sets Ready=False (Paused).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fleetscale.actuators.base import (
    ActuatorError,
    EventSink,
    EventType,
    InvolvedObject,
    ScaleActuator,
    ScaleStatus,
    ScaleTargetRef,
    SecretNotFound,
    SecretReader,
    ShedFlag,
    ShedFlagPublisher,
    TargetNotFound,
)
from fleetscale.api.base import API_VERSION
from fleetscale.api.inferencepool import (
    KIND,
    InferencePoolSpec,
    InferencePoolStatus,
    ObservedMetrics,
    ShedLoadStatus,
)
from fleetscale.controller import status as st
from fleetscale.controller.acceleratorpools import CapacityReader
from fleetscale.controller.credentials import CredentialFileError, CredentialFiles
from fleetscale.logs import get_logger
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner.readings import check_reading
from fleetscale.planner.types import (
    Decision,
    MetricProblem,
    MetricReading,
    Observation,
    PlannerState,
)
from fleetscale.settings import Settings
from fleetscale.signals.base import MetricQuery, PrometheusEndpoint, Refusal, SignalSource
from fleetscale.signals.endpoints import allowed_base_url
from fleetscale.signals.scoping import enforce_namespace

PlanFn = Callable[
    [InferencePoolSpec, Observation, PlannerState, float], tuple[Decision, PlannerState]
]

# Ready=False reasons that the controller (not the planner) decides.
PAUSED = "Paused"
INVALID_SPEC = "InvalidSpec"
TARGET_NOT_FOUND = "TargetNotFound"
SCALE_FAILED = "ScaleFailed"
RECONCILE_ERROR = "ReconcileError"


@dataclass(frozen=True)
class PoolRef:
    """Identity of one InferencePool object, as kopf hands it over."""

    namespace: str
    name: str
    uid: str | None = None
    generation: int | None = None

    @property
    def involved(self) -> InvolvedObject:
        return InvolvedObject(
            api_version=API_VERSION,
            kind=KIND,
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
        )


@dataclass
class Dependencies:
    """Everything reconcile needs from the outside world; fakes in tests, real ones in kopf."""

    signals: SignalSource
    scaler: ScaleActuator
    events: EventSink
    shed_publisher: ShedFlagPublisher
    secrets: SecretReader
    settings: Settings
    metrics: OperatorMetrics
    plan: PlanFn
    # The cap each InferencePool's AcceleratorPool allocated to it (None: no AcceleratorPools).
    capacity: CapacityReader | None = None
    # Shed flags already in each pool's ConfigMap, so an unchanged flag is not re-written
    # every tick. Lost on restart, which costs one idempotent write per pool.
    published_flags: dict[tuple[str, str], ShedFlag] = field(default_factory=dict)
    # The default Prometheus' token and CA files, re-read when they change (rotation).
    credential_files: CredentialFiles = field(default_factory=CredentialFiles)
    # Wall time, for measuring durations only (decisions use ``now``).
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class ReconcileResult:
    """What one tick produced."""

    status: dict[str, Any]  # the full rendered status (our fields)
    patch: dict[str, Any]  # merge patch from the stored status; empty = nothing to write
    reason: str  # the decisive reason of this tick (also the Ready/decision reason)
    decision: Decision | None = None


async def reconcile(
    pool: PoolRef,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any] | None,
    deps: Dependencies,
    now: float,
    tick: float | None = None,
) -> ReconcileResult:
    """Run one tick for one pool. Never raises for anything that goes wrong inside.

    ``now`` is the decision time (epoch seconds); ``tick`` is the scheduled tick shared by
    pools with the same interval, used to share Prometheus queries (default: ``now``).
    """
    started = deps.monotonic()
    log = get_logger("fleetscale.reconcile", namespace=pool.namespace, pool=pool.name)
    stored, status_problem = st.parse_status(raw_status)
    if status_problem:
        log.warning("status_unreadable", reason="StatusUnreadable", detail=status_problem)
    try:
        return await _reconcile(pool, raw_spec, raw_status, stored, deps, now, tick or now, log)
    except Exception as error:  # a bad pool must never stop the others
        log.exception("reconcile_failed", reason=RECONCILE_ERROR)
        deps.metrics.reconcile_errors_total.labels(pool.namespace, pool.name, RECONCILE_ERROR).inc()
        message = f"Reconcile failed, retrying at the next tick: {type(error).__name__}: {error}"
        return await _not_ready(pool, raw_status, stored, deps, now, RECONCILE_ERROR, message)
    finally:
        deps.metrics.reconcile_duration_seconds.observe(deps.monotonic() - started)


async def _reconcile(
    pool: PoolRef,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any] | None,
    stored: InferencePoolStatus,
    deps: Dependencies,
    now: float,
    tick: float,
    log: Any,
) -> ReconcileResult:
    try:
        spec = InferencePoolSpec.model_validate(raw_spec)
    except ValidationError as error:
        message = f"The spec is invalid and the pool is skipped: {st.plain_validation_error(error)}"
        log.warning("invalid_spec", reason=INVALID_SPEC, detail=message)
        deps.metrics.reconcile_errors_total.labels(pool.namespace, pool.name, INVALID_SPEC).inc()
        return await _not_ready(pool, raw_status, stored, deps, now, INVALID_SPEC, message)

    if spec.mode == "Paused":
        message = "Paused by spec.mode: nothing is read, decided or changed."
        return await _not_ready(pool, raw_status, stored, deps, now, PAUSED, message)

    # Observe: the target's size.
    target = ScaleTargetRef.of(pool.namespace, spec.target_ref)
    try:
        scale = await deps.scaler.read(target)
    except TargetNotFound as error:
        message = f"Cannot scale {target.kind} {target.name}: {error}"
        log.warning("target_not_found", reason=TARGET_NOT_FOUND, detail=str(error))
        deps.metrics.reconcile_errors_total.labels(
            pool.namespace, pool.name, TARGET_NOT_FOUND
        ).inc()
        return await _not_ready(pool, raw_status, stored, deps, now, TARGET_NOT_FOUND, message)

    # Observe: the signals.
    queries = await _queries(pool, spec, deps)
    readings = await _read_signals(queries, tick, deps)
    queue_reading = readings["queue"]
    gpu_reading = readings.get("gpu")

    accelerators = (
        spec.accelerators_per_replica
        if spec.accelerators_per_replica is not None
        else scale.accelerators_per_replica
    )
    capacity = None
    if spec.accelerator_pool_ref is not None and deps.capacity is not None:
        capacity = await deps.capacity.limit_for(
            spec.accelerator_pool_ref.name, pool.namespace, pool.name
        )
    observation = Observation(
        current_replicas=scale.spec_replicas,
        ready_replicas=scale.ready_replicas,
        queue_depth=queue_reading,
        gpu_utilization_percent=gpu_reading,
        capacity=capacity,
    )

    # Plan.
    dry_run = spec.mode == "DryRun"
    state = st.planner_state_from_status(stored, dry_run=dry_run)
    decision, new_state = deps.plan(spec, observation, state, now)

    # Act.
    ready_reason: str = spec.mode
    ready_message = _ready_message(spec)
    scaled_to: int | None = None
    if not dry_run and decision.desired_replicas != scale.spec_replicas:
        try:
            scale = await deps.scaler.set_replicas(target, decision.desired_replicas)
            scaled_to = decision.desired_replicas
        except (TargetNotFound, ActuatorError) as error:
            ready_reason = SCALE_FAILED
            ready_message = (
                f"Could not scale {target.kind} {target.name} from {observation.current_replicas}"
                f" to {decision.desired_replicas} replicas: {error}"
            )
            log.warning("scale_failed", reason=SCALE_FAILED, detail=str(error))
            deps.metrics.reconcile_errors_total.labels(
                pool.namespace, pool.name, SCALE_FAILED
            ).inc()
    if scaled_to is None:
        # Nothing changed on the target: rate policies must not count a change that did not
        # happen (DryRun, or a failed write), so the old scale history is kept.
        new_state = PlannerState(
            recommendations=new_state.recommendations,
            scale_events=state.scale_events,
            shed=new_state.shed,
            last_scale_time=state.last_scale_time,
        )

    shed_flag = ShedFlag(
        active=decision.shed.active,
        reason=decision.shed.reason,
        since=st.to_datetime(new_state.shed.since) if new_state.shed.since is not None else None,
        retry_after_seconds=decision.shed.retry_after_seconds if decision.shed.active else None,
    )
    if not dry_run and spec.shed_load.config_map_name:
        ready_reason, ready_message = await _publish_shed(
            pool, spec.shed_load.config_map_name, shed_flag, deps, log, ready_reason, ready_message
        )

    # Report.
    previous_conditions = stored.conditions
    conditions = _conditions(
        stored, decision, new_state, dry_run, ready_reason, ready_message, now, pool.generation
    )
    shed_load = (
        ShedLoadStatus(
            active=False,
            reason="DryRun",
            release_candidate_since=st.release_candidate_time(new_state.shed),
        )
        if dry_run
        else st.shed_status(new_state.shed, shed_flag.retry_after_seconds)
    )
    queue_depth = queue_reading.value if queue_reading.usable else None
    gpu_percent = gpu_reading.value if gpu_reading is not None and gpu_reading.usable else None
    rendered = InferencePoolStatus(
        observed_generation=pool.generation,
        replicas=scale.spec_replicas,
        ready_replicas=scale.ready_replicas,
        desired_replicas=decision.desired_replicas,
        demand_replicas=decision.unconstrained_replicas,
        max_replicas_by_capacity=capacity.max_replicas if capacity is not None else None,
        observed=ObservedMetrics(
            # Rounded for `kubectl get` columns; the planner got the unrounded readings.
            queue_depth=st.rounded(queue_depth, st.QUEUE_DEPTH_DECIMALS),
            gpu_utilization_percent=st.rounded(gpu_percent, st.GPU_PERCENT_DECIMALS),
            sampled_at=(
                st.to_datetime(queue_reading.sampled_at)
                if queue_reading.sampled_at is not None
                else None
            ),
        ),
        shed_load=shed_load,
        last_decision_reason=decision.reason,
        last_decision_message=decision.message,
        conditions=conditions,
        **st.history_fields(new_state),
    )
    await _post_decision_events(
        pool,
        spec,
        stored,
        decision,
        scaled_to,
        shed_flag,
        previous_conditions,
        conditions,
        deps,
    )
    _record_metrics(pool, decision, scale, shed_load, deps)
    # The gauges carry only what the planner could use: a stale or negative sample is a gap.
    deps.metrics.set_observed(
        pool.namespace,
        pool.name,
        _usable_value(queue_reading, spec, now),
        _usable_value(gpu_reading, spec, now),
    )
    wire = rendered.to_wire()
    patch = st.worth_writing(st.merge_patch(raw_status, wire))
    # One line per change at info; the unchanged ticks of a steady fleet (every pool, every
    # poll) only at debug, where they cost nothing unless asked for.
    (log.info if patch else log.debug)(
        "decided",
        reason=decision.reason,
        mode=spec.mode,
        current_replicas=observation.current_replicas,
        desired_replicas=decision.desired_replicas,
        ready_replicas=scale.ready_replicas,
        queue_depth=queue_reading.value,
        queue_problem=queue_reading.problem.value if queue_reading.problem else None,
        accelerators_per_replica=accelerators,
        shed=decision.shed.active,
        detail=decision.message,
    )
    return ReconcileResult(
        status=wire,
        patch=patch,
        reason=decision.reason if ready_reason == spec.mode else ready_reason,
        decision=decision,
    )


def _usable_value(
    reading: MetricReading | None, spec: InferencePoolSpec, now: float
) -> float | None:
    """The reading's value if the planner may use it at ``now`` (same rules), else None."""
    if reading is None:
        return None
    return check_reading(
        reading,
        signal="",
        now=now,
        max_staleness_seconds=spec.metrics.max_staleness_seconds,
    ).value


def _ready_message(spec: InferencePoolSpec) -> str:
    if spec.mode == "DryRun":
        return "Deciding and reporting only (DryRun): the target and the shed flag are untouched."
    return "Observing, deciding and scaling the target."


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
    base URL) is refused before anything is read (QueryRefused). Callers: reconcile, and
    ``fleetscale explain``.
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


async def _queries(
    pool: PoolRef, spec: InferencePoolSpec, deps: Dependencies
) -> dict[str, MetricQuery | MetricReading]:
    """The queries of this pool, or, for each that cannot be sent, the reading explaining why."""
    endpoint = await prometheus_endpoint(
        pool.namespace, spec, deps.secrets, deps.settings, deps.credential_files
    )
    return pool_queries(pool.namespace, spec, endpoint, deps.settings)


def pool_queries(
    namespace: str,
    spec: InferencePoolSpec,
    endpoint: PrometheusEndpoint | MetricReading,
    settings: Settings,
) -> dict[str, MetricQuery | MetricReading]:
    """The queries of a pool by signal ("queue", "gpu"), each a query to send or a reading.

    A reading stands for a query that cannot be sent: the endpoint's problem, or, with
    ``enforce_namespace`` on, a query that cannot be limited to the pool's namespace
    (QueryRefused). Sent queries are the limited ones. Pure. Callers: reconcile, and
    ``fleetscale explain`` (so it shows what the operator sends).
    """
    promqls = {"queue": ("queueDepth", spec.metrics.queue_depth.query)}
    if spec.metrics.gpu_utilization is not None:
        promqls["gpu"] = ("gpuUtilization", spec.metrics.gpu_utilization.query)
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


async def _read_signals(
    queries: Mapping[str, MetricQuery | MetricReading], tick: float, deps: Dependencies
) -> dict[str, MetricReading]:
    to_read = {name: query for name, query in queries.items() if isinstance(query, MetricQuery)}
    readings: dict[str, MetricReading] = {
        name: reading for name, reading in queries.items() if isinstance(reading, MetricReading)
    }
    if to_read:
        started = deps.monotonic()
        try:
            results = await deps.signals.read(list(to_read.values()), tick)
        finally:
            deps.metrics.metric_query_duration_seconds.observe(deps.monotonic() - started)
        for name, query in to_read.items():
            readings[name] = results.get(query) or MetricReading.failed(
                MetricProblem.QUERY_FAILED, "the signal source returned no reading"
            )
    for reading in readings.values():
        if reading.problem is not None:
            deps.metrics.metric_query_errors_total.labels(reading.problem.value).inc()
    return readings


async def _publish_shed(
    pool: PoolRef,
    config_map_name: str,
    flag: ShedFlag,
    deps: Dependencies,
    log: Any,
    ready_reason: str,
    ready_message: str,
) -> tuple[str, str]:
    key = (pool.namespace, pool.name)
    if deps.published_flags.get(key) == flag:
        return ready_reason, ready_message
    try:
        await deps.shed_publisher.publish(pool.involved, config_map_name, flag)
    except ActuatorError as error:
        log.warning("shed_flag_publish_failed", reason="ShedFlagPublishFailed", detail=str(error))
        deps.metrics.reconcile_errors_total.labels(
            pool.namespace, pool.name, "ShedFlagPublishFailed"
        ).inc()
        return "ShedFlagPublishFailed", (
            f"Could not publish the shed flag in ConfigMap {config_map_name}: {error}"
        )
    deps.published_flags[key] = flag
    return ready_reason, ready_message


def _conditions(
    stored: InferencePoolStatus,
    decision: Decision,
    new_state: PlannerState,
    dry_run: bool,
    ready_reason: str,
    ready_message: str,
    now: float,
    generation: int | None,
) -> tuple[Any, ...]:
    conditions = st.set_condition(
        stored.conditions,
        st.READY,
        ready_reason in ("Active", "DryRun"),
        ready_reason,
        ready_message,
        now,
        generation,
    )
    verdict = decision.metrics_available
    conditions = st.set_condition(
        conditions,
        st.METRICS_AVAILABLE,
        verdict.status,
        verdict.reason,
        verdict.message,
        now,
        generation,
    )
    verdict = decision.scaling_limited
    conditions = st.set_condition(
        conditions,
        st.SCALING_LIMITED,
        verdict.status,
        verdict.reason,
        verdict.message,
        now,
        generation,
    )
    shed = decision.shed
    if dry_run:
        reason = st.DRY_RUN_WOULD_SHED if shed.active else shed.reason
        message = (
            f"DryRun, the flag stays off; would shed: {shed.message}"
            if shed.active
            else (shed.message)
        )
        conditions = st.set_condition(
            conditions, st.SHED_LOAD, False, reason, message, now, generation
        )
        if shed.active:
            # Keep the would-shed start time as the transition time; the planner's hysteresis
            # is restored from it on the next tick.
            since = new_state.shed.since
            conditions = tuple(
                condition.model_copy(update={"last_transition_time": st.whole_seconds(since)})
                if condition.type == st.SHED_LOAD and since is not None
                else condition
                for condition in conditions
            )
    else:
        conditions = st.set_condition(
            conditions, st.SHED_LOAD, shed.active, shed.reason, shed.message, now, generation
        )
    return conditions


async def _not_ready(
    pool: PoolRef,
    raw_status: Mapping[str, Any] | None,
    stored: InferencePoolStatus,
    deps: Dependencies,
    now: float,
    reason: str,
    message: str,
) -> ReconcileResult:
    """Ready=False with ``reason``; everything else in status stays as it was (the memory).

    Nothing was read this tick, so the observed gauges go (a gap, not a stale value).
    """
    deps.metrics.set_observed(pool.namespace, pool.name, None, None)
    previous = st.find_condition(stored.conditions, st.READY)
    conditions = st.set_condition(
        stored.conditions, st.READY, False, reason, message, now, pool.generation
    )
    rendered = stored.model_copy(
        update={"conditions": conditions, "observed_generation": pool.generation}
    )
    unchanged = previous is not None and previous.reason == reason and previous.message == message
    if not unchanged:
        event_type: EventType = "Normal" if reason == PAUSED else "Warning"
        await deps.events.post(pool.involved, event_type, reason, message)
    wire = rendered.to_wire()
    return ReconcileResult(status=wire, patch=st.merge_patch(raw_status, wire), reason=reason)


async def _post_decision_events(
    pool: PoolRef,
    spec: InferencePoolSpec,
    stored: InferencePoolStatus,
    decision: Decision,
    scaled_to: int | None,
    shed_flag: ShedFlag,
    previous_conditions: tuple[Any, ...],
    conditions: tuple[Any, ...],
    deps: Dependencies,
) -> None:
    involved = pool.involved
    target = f"{spec.target_ref.kind} {spec.target_ref.name}"
    current, desired = decision.current_replicas, decision.desired_replicas
    # The planner's message starts with "2 -> 8 replicas: "; the Event says it in words.
    why = decision.message.removeprefix(f"{current} -> {desired} replicas: ")
    if scaled_to is not None:
        reason = "ScaledUp" if desired > current else "ScaledDown"
        await deps.events.post(
            involved,
            "Normal",
            reason,
            f"Scaled {target} from {current} to {desired} replicas: {why}",
        )
    elif spec.mode == "DryRun" and desired != current and stored.desired_replicas != desired:
        reason = "WouldScaleUp" if desired > current else "WouldScaleDown"
        await deps.events.post(
            involved,
            "Normal",
            reason,
            f"DryRun: would scale {target} from {current} to {desired} replicas: {why}",
        )

    def changed(type_: str) -> tuple[Any, Any]:
        return st.find_condition(previous_conditions, type_), st.find_condition(conditions, type_)

    before, after = changed(st.METRICS_AVAILABLE)
    if after is not None and after.status == "False":
        if before is None or before.status != "False" or before.reason != after.reason:
            await deps.events.post(
                involved,
                "Warning",
                "MetricsUnavailable",
                f"Holding {target} at {current} replicas, metrics are unavailable "
                f"({after.reason}): {after.message}",
            )
    elif after is not None and before is not None and before.status == "False":
        await deps.events.post(
            involved, "Normal", "MetricsAvailable", f"Metrics are available again: {after.message}"
        )

    before, after = changed(st.SCALING_LIMITED)
    if after is not None and after.status == "True" and (before is None or before.status != "True"):
        await deps.events.post(
            involved,
            "Warning",
            "ScalingLimited",
            f"{target} cannot grow past {desired} replicas ({after.reason}): {after.message}",
        )

    if spec.mode == "Active" and decision.shed.changed:
        retry = shed_flag.retry_after_seconds
        if decision.shed.active:
            await deps.events.post(
                involved,
                "Warning",
                "ShedLoadStarted",
                f"Shedding load: gateways should answer 429 with Retry-After {retry} s "
                f"({decision.shed.reason}): {decision.shed.message}",
            )
        else:
            await deps.events.post(
                involved,
                "Normal",
                "ShedLoadStopped",
                f"Stopped shedding load ({decision.shed.reason}): {decision.shed.message}",
            )
    before, after = changed(st.READY)
    if (
        after is not None
        and after.status == "False"
        and (before is None or (before.reason, before.message) != (after.reason, after.message))
    ):
        await deps.events.post(involved, "Warning", after.reason, after.message)


def _record_metrics(
    pool: PoolRef,
    decision: Decision,
    scale: ScaleStatus,
    shed_load: ShedLoadStatus,
    deps: Dependencies,
) -> None:
    labels = (pool.namespace, pool.name)
    deps.metrics.decisions_total.labels(*labels, decision.reason).inc()
    deps.metrics.desired_replicas.labels(*labels).set(decision.desired_replicas)
    deps.metrics.current_replicas.labels(*labels).set(scale.spec_replicas)
    deps.metrics.shed_active.labels(*labels).set(1 if shed_load.active else 0)
    deps.metrics.shed_retry_after_seconds.labels(*labels).set(
        shed_load.retry_after_seconds or 0 if shed_load.active else 0
    )
