"""`fleetscale explain -n NS POOL`: what the operator would decide for one pool now, and why.

Role: read one InferencePool (its spec and the status the operator wrote), measure and observe
it live with the controller's own steps (``inferencepools.measure``: the target's /scale,
Prometheus through the signals adapter with Secrets for credentials, the allocation its
AcceleratorPool published; ``planner.observe``), run the pure planner from the memory kept in
the status, and print the last observation, the plan and the reason for each number. It never
acts: nothing is scaled, written, published or posted; the only calls are reads. Useful to
answer "why does it not scale?" with the very code that decides, from a laptop, with the user's
own credentials.

``explain_pool`` is the I/O-free core (adapters passed in, clock passed in, tested with the
in-package fakes); ``run_explain`` wires the real adapters for the CLI. Caller: ``cli.py``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import ValidationError

from fleetscale.actuators.base import (
    ActuatorError,
    ScaleActuator,
    ScaleTargetRef,
    SecretReader,
    TargetNotFound,
)
from fleetscale.api.base import GROUP, VERSION, Condition
from fleetscale.api.inferencepool import PLURAL, InferencePoolSpec, InferencePoolStatus
from fleetscale.controller.conditions import plain_validation_error
from fleetscale.controller.inferencepools.measure import Sensors, measure, observation_of
from fleetscale.controller.inferencepools.memory import memory_at_tick, parse_status
from fleetscale.controller.inferencepools.ports import AllocationSource
from fleetscale.planner import plan
from fleetscale.planner.explain import explain_decision
from fleetscale.planner.observe import GPU, QUEUE, TargetSize
from fleetscale.planner.types import Decision, MetricReading
from fleetscale.settings import Settings
from fleetscale.signals.base import SignalSource


class ExplainError(Exception):
    """The pool cannot be explained (not found, invalid spec); the message says why."""


@dataclass(frozen=True)
class Live:
    """What was observed now."""

    target: TargetSize
    queue: MetricReading
    gpu: MetricReading | None
    queue_query: str
    gpu_query: str | None
    prometheus_url: str | None
    # The load model's readings and their queries, by signal name (planner.observe).
    load: Mapping[str, MetricReading] = field(default_factory=dict)
    load_queries: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    """Everything ``explain`` prints for one pool."""

    namespace: str
    name: str
    spec: InferencePoolSpec
    status: InferencePoolStatus
    status_problem: str | None
    live: Live
    decision: Decision
    now: float


async def explain_pool(
    namespace: str,
    name: str,
    body: Mapping[str, Any],
    *,
    scaler: ScaleActuator,
    signals: SignalSource,
    secrets: SecretReader,
    settings: Settings,
    now: float,
    allocations: AllocationSource | None = None,
) -> Explanation:
    """Measure and observe the pool now, as the operator's tick does, and plan it from its
    stored memory, without acting.

    ``settings`` carries what the operator would use for a pool that names no Prometheus: its
    default URL and credential files. ``allocations`` reads what the pool's AcceleratorPool
    published for it (None: plan without a capacity cap).
    """
    try:
        spec = InferencePoolSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        raise ExplainError(
            f"InferencePool {namespace}/{name} has an invalid spec: {plain_validation_error(error)}"
        ) from None
    status, status_problem = parse_status(body.get("status"))
    sensors = Sensors(signals, scaler, secrets, settings, allocations)
    try:
        measured = await measure(namespace, name, spec, sensors, now)
    except (TargetNotFound, ActuatorError) as error:
        target = ScaleTargetRef.of(namespace, spec.target_ref)
        raise ExplainError(f"cannot read the target {target}: {error}") from None
    observation = observation_of(spec, measured)
    state = memory_at_tick(status, spec, measured.target.spec_replicas, now)
    decision, _ = plan(spec, observation, state, now)
    load_names = [name for name in measured.queries if name not in (QUEUE, GPU)]
    live = Live(
        target=measured.target,
        queue=observation.queue_depth,
        gpu=observation.gpu_utilization_percent,
        queue_query=measured.queries[QUEUE],
        gpu_query=measured.queries.get(GPU),
        prometheus_url=measured.prometheus_url,
        load={name: measured.readings[name] for name in load_names if name in measured.readings},
        load_queries={name: measured.queries[name] for name in load_names},
    )
    return Explanation(namespace, name, spec, status, status_problem, live, decision, now)


# ---------------------------------------------------------------------------------------------
# Rendering


def _when(moment: datetime | None, now: float) -> str:
    if moment is None:
        return "never"
    ago = now - moment.timestamp()
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} ({_ago(ago)})"


def _ago(seconds: float) -> str:
    # A sample can carry a timestamp a moment after our clock (Prometheus evaluates "now").
    if seconds < 1:
        return "just now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _number(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"
    return text + unit


def _reading(reading: MetricReading, now: float, unit: str = "") -> str:
    if reading.problem is not None or reading.value is None:
        problem = reading.problem.value if reading.problem is not None else "NoData"
        return f"unavailable ({problem}: {reading.detail})"
    sampled = f", sampled {_ago(now - reading.sampled_at)}" if reading.sampled_at else ""
    return f"{_number(reading.value, unit)}{sampled}"


# How each load signal reads in the text output: its label and unit.
_LOAD_LABELS = {
    "running": ("running requests", ""),
    "kv_cache": ("KV-cache usage (fraction)", ""),
    "prompt_tokens": ("prompt tokens/s", ""),
    "generation_tokens": ("generated tokens/s", ""),
    "request_rate": ("requests started/s", ""),
    "work_growth": ("requests added/s", ""),
    "ttft": ("TTFT at the SLO percentile", " s"),
    "itl": ("ITL at the SLO percentile", " s"),
    "offered": ("gateway offered requests/s", ""),
    "refused": ("gateway refused requests/s", ""),
}


def _condition(condition: Condition, now: float) -> str:
    message = f": {condition.message}" if condition.message else ""
    since = _ago(now - condition.last_transition_time.timestamp())
    return f"{condition.type}={condition.status} ({condition.reason}, since {since}){message}"


def _consequence(mode: str, decision: Decision) -> str:
    desired, current = decision.desired_replicas, decision.current_replicas
    action = f"hold {desired}" if desired == current else f"go {current} -> {desired}"
    if mode == "Paused":
        return f"the pool is Paused, so the operator does nothing; if Active it would {action}:"
    if mode == "DryRun":
        return f"in DryRun the operator only reports that it would {action}:"
    return f"the operator would {action} at its next tick:"


def render_text(explanation: Explanation) -> str:
    """The explanation as plain text for a terminal."""
    e = explanation
    spec, status, live, now = e.spec, e.status, e.live, e.now
    model = f" (model {spec.model})" if spec.model else ""
    lines = [
        f"InferencePool {e.namespace}/{e.name}{model}",
        f"  target: {spec.target_ref.kind} {spec.target_ref.name} ({spec.target_ref.api_version}),"
        f" replicas {spec.replicas.min}..{spec.replicas.max}, mode {spec.mode},"
        f" every {spec.poll_interval_seconds}s",
        "",
        "Last decision by the operator (from .status):",
    ]
    if e.status_problem:
        lines.append(f"  the status could not be read, planning from an empty memory: "
                     f"{e.status_problem}")  # fmt: skip
    if status.last_decision_reason is None:
        lines.append("  none yet: the operator has not reconciled this pool")
    else:
        lines.append(f"  {status.last_decision_reason}: {status.last_decision_message or ''}")
        lines.append(
            f"  replicas {_number(status.replicas)}, ready {_number(status.ready_replicas)}, "
            f"desired {_number(status.desired_replicas)}; last scaled "
            f"{_when(status.last_scale_time, now)}, last raised "
            f"{_when(status.last_scale_up_time, now)}"
        )
    observed = status.observed
    if observed is not None:
        lines.append(
            f"  observed: queue {_number(observed.queue_depth)}, GPU "
            f"{_number(observed.gpu_utilization_percent, '%')}, sampled "
            f"{_when(observed.sampled_at, now)}"
        )
    if status.shed_load is not None:
        shed = status.shed_load
        retry = f", Retry-After {shed.retry_after_seconds}s" if shed.active else ""
        lines.append(f"  shed load: {shed.active} ({shed.reason or '-'}{retry}), "
                     f"since {_when(shed.since, now)}")  # fmt: skip
    lines.extend(f"  {_condition(c, now)}" for c in status.conditions)
    lines += [
        "",
        f"Observed now ({datetime.fromtimestamp(now, UTC):%Y-%m-%dT%H:%M:%SZ}):",
        f"  target: {_count(live.target.spec_replicas, 'replica')}, "
        f"{live.target.ready_replicas} ready"
        + (
            f", {live.target.accelerators_per_replica} accelerators per replica"
            if live.target.accelerators_per_replica is not None
            else ""
        ),
        f"  Prometheus: {live.prometheus_url or '-'}",
        f"  queue depth: {_reading(live.queue, now)}",
        f"    query: {live.queue_query}",
    ]
    if live.gpu is not None:
        lines += [
            f"  GPU utilization: {_reading(live.gpu, now, '%')}",
            f"    query: {live.gpu_query}",
        ]
    for name, reading in live.load.items():
        label, unit = _LOAD_LABELS.get(name, (name, ""))
        lines += [
            f"  {label}: {_reading(reading, now, unit)}",
            f"    query: {live.load_queries.get(name, '-')}",
        ]
    capacity = status.capacity
    if capacity is not None:
        lines.append(
            f"  learned capacity per replica: {_number(capacity.tokens_per_second_per_replica)}"
            f" tokens/s, {_number(capacity.concurrency_per_replica)} requests "
            f"({capacity.reason or '-'}, changed {_when(capacity.updated_at, now)})"
        )
    lines += ["", f"Plan now (nothing is changed here): {_consequence(spec.mode, e.decision)}"]
    lines += [f"  {line}" for line in explain_decision(e.decision).splitlines()]
    return "\n".join(lines) + "\n"


def render_json(explanation: Explanation) -> str:
    """The explanation as JSON (for scripts)."""
    e = explanation
    d = e.decision

    def reading(r: MetricReading | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {
            "value": r.value,
            "sampledAt": r.sampled_at,
            "problem": r.problem.value if r.problem else None,
            "detail": r.detail,
        }

    document = {
        "namespace": e.namespace,
        "name": e.name,
        "now": e.now,
        "status": e.status.to_wire(),
        "observed": {
            "replicas": e.live.target.spec_replicas,
            "readyReplicas": e.live.target.ready_replicas,
            "acceleratorsPerReplica": e.live.target.accelerators_per_replica,
            "queueDepth": reading(e.live.queue),
            "gpuUtilizationPercent": reading(e.live.gpu),
            "load": {name: reading(r) for name, r in e.live.load.items()},
            "queries": {"queueDepth": e.live.queue_query, **e.live.load_queries},
        },
        "plan": {
            "currentReplicas": d.current_replicas,
            "desiredReplicas": d.desired_replicas,
            "reason": d.reason,
            "message": d.message,
            "steps": [
                {"name": s.name, "replicas": s.replicas, "reason": s.reason, "message": s.message}
                for s in d.steps
            ],
            "metricsAvailable": vars(d.metrics_available),
            "scalingLimited": vars(d.scaling_limited),
            "shedLoad": vars(d.shed),
        },
    }
    return json.dumps(document, indent=2, default=str) + "\n"


# ---------------------------------------------------------------------------------------------
# The command


def _load_api_client(kubeconfig: str | None, context: str | None) -> Any:
    import kubernetes.client
    import kubernetes.config

    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return kubernetes.client.ApiClient(configuration)


async def explain_live(
    namespace: str,
    name: str,
    settings: Settings,
    kubeconfig: str | None,
    context: str | None,
) -> Explanation:
    import kubernetes.client
    from kubernetes.client.exceptions import ApiException

    from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
    from fleetscale.actuators.secrets import KubernetesSecretReader
    from fleetscale.controller.allocations import ApiAllocations
    from fleetscale.signals.prometheus import PrometheusSignalSource

    api_client = await asyncio.to_thread(_load_api_client, kubeconfig, context)
    signals = PrometheusSignalSource()
    try:
        custom = kubernetes.client.CustomObjectsApi(api_client)
        try:
            fetched = await asyncio.to_thread(
                custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                raise ExplainError(
                    f"InferencePool {namespace}/{name} not found "
                    f"(kubectl get inferencepools.{GROUP} -n {namespace})"
                ) from None
            raise ExplainError(f"cannot read InferencePool {namespace}/{name}: "
                               f"{error.status} {error.reason}") from None  # fmt: skip
        if not isinstance(fetched, Mapping):
            raise ExplainError(f"unexpected answer for InferencePool {namespace}/{name}")
        return await explain_pool(
            namespace,
            name,
            fetched,
            scaler=KubernetesScaleActuator(api_client),
            signals=signals,
            secrets=KubernetesSecretReader(api_client),
            settings=settings,
            now=time.time(),
            allocations=ApiAllocations(api_client),
        )
    finally:
        await signals.close()
        await asyncio.to_thread(api_client.close)


def run_explain(
    namespace: str,
    name: str,
    *,
    settings: Settings,
    kubeconfig: str | None = None,
    context: str | None = None,
    output: str = "text",
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The `fleetscale explain` command: 0 when explained, 1 when it could not be."""
    try:
        explanation = asyncio.run(explain_live(namespace, name, settings, kubeconfig, context))
    except ExplainError as error:
        print(f"fleetscale explain: {error}", file=err)
        return 1
    out.write(render_json(explanation) if output == "json" else render_text(explanation))
    return 0
