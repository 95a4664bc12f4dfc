"""fleetscale itself under simulation: the production planners, unchanged, on simulated data.

Role: feed ``fleetscale.planner.plan`` (replicas, shed flag) and
``fleetscale.planner.capacity.plan_capacity`` (nodes, the capacity cap) exactly what the
controllers feed them in a cluster, from what Prometheus and the API server would show, and turn
their decisions into simulator actions. Nothing here decides; it only translates. Callers:
``fleetscale.sim.runner``.

Order inside one poll, as in the operator (two controllers): the InferencePool is planned with
the capacity cap the AcceleratorPool published last time; then the AcceleratorPool is planned
from the fresh demand, so nodes are requested in the same poll that demand appears (before any
pod goes Pending), and its cap applies from the next poll.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleetscale.api.acceleratorpool import (
    AcceleratorPoolSpec,
    KwokProvider,
    NodeBounds,
    ProviderSpec,
)
from fleetscale.api.base import LocalObjectRef
from fleetscale.api.inferencepool import (
    ForecastSpec,
    GpuUtilizationMetric,
    InferencePoolSpec,
    MetricsSpec,
    OfferedLoadMetric,
    ReplicaBounds,
    SloSpec,
    TargetRef,
)
from fleetscale.planner import plan
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityState,
    NodeView,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions, commit_scale
from fleetscale.planner.demand import inference_pool_demand
from fleetscale.planner.observe import (
    GENERATION_TOKENS,
    GPU,
    ITL,
    KV_CACHE,
    OFFERED,
    PROMPT_TOKENS,
    QUEUE,
    REFUSED,
    REQUEST_RATE,
    RUNNING,
    TTFT,
    WORK_GROWTH,
    PublishedAllocation,
    TargetSize,
    observe,
)
from fleetscale.planner.types import (
    MetricProblem,
    MetricReading,
    PlannerState,
)
from fleetscale.sim.model import SimConfig
from fleetscale.sim.policy import Action, FleetView, Histogram, MetricsSample, NodeMode

UtilizationMetric = Literal["dcgm", "kv-cache"]

NAMESPACE = "sim"
POOL_NAME = "model"
ACCELERATOR_POOL_NAME = "gpus"

# The windows of the presets' rate() and histogram_quantile(), and of the queue's deriv()
# (signals.presets).
RATE_WINDOW_SECONDS = 60.0
GROWTH_WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class FleetscaleSettings:
    """What the benchmark sets on the InferencePool and the AcceleratorPool.

    ``defaults()`` is what a user gets without tuning: every field at the API's default (the
    vLLM preset), with the pool's latency target declared in ``spec.slo`` (the scenario's TTFT
    target, the same for every policy), as a user declares the SLO they hold. The variants add
    one documented feature each: the gateway's offered load (``metrics.offeredLoad``) or the
    forecast (``spec.forecast``); neither is tuned per scenario.
    """

    label: str = "fleetscale"
    declare_slo: bool = True
    offered_load: bool = False
    forecast: bool = False
    forecast_season_seconds: int = ForecastSpec.model_fields["season_seconds"].default
    # The legacy GPU gate (metrics.gpuUtilization), for comparisons only.
    utilization_metric: UtilizationMetric | None = None
    utilization_target_percent: float = GpuUtilizationMetric.model_fields["target_percent"].default

    @classmethod
    def defaults(cls) -> FleetscaleSettings:
        return cls()

    def inference_pool_spec(self, config: SimConfig) -> InferencePoolSpec:
        utilization = None
        if self.utilization_metric is not None:
            query = (
                "avg(DCGM_FI_DEV_GPU_UTIL)"
                if self.utilization_metric == "dcgm"
                else "100 * avg(vllm:kv_cache_usage_perc)"
            )
            utilization = GpuUtilizationMetric(
                query=query, target_percent=self.utilization_target_percent
            )
        offered = None
        if self.offered_load:
            offered = OfferedLoadMetric(
                query="sum(rate(gateway_requests_total[1m]))",
                refused_query='sum(rate(gateway_requests_total{code="429"}[1m]))',
            )
        return InferencePoolSpec(
            model=config.model.name,
            target_ref=TargetRef(name="vllm"),
            replicas=ReplicaBounds(min=config.min_replicas, max=config.max_replicas),
            accelerators_per_replica=config.model.accelerators_per_replica,
            accelerator_pool_ref=LocalObjectRef(name=ACCELERATOR_POOL_NAME),
            metrics=MetricsSpec(gpu_utilization=utilization, offered_load=offered),
            slo=SloSpec(ttft_seconds=config.ttft_target_seconds) if self.declare_slo else None,
            forecast=ForecastSpec(
                enabled=self.forecast, season_seconds=self.forecast_season_seconds
            ),
        )

    def accelerator_pool_spec(self, config: SimConfig) -> AcceleratorPoolSpec:
        return AcceleratorPoolSpec(
            provider=ProviderSpec(kwok=KwokProvider()),
            node_labels={"fleetscale.io/pool": "gpus"},
            accelerators_per_node=config.nodes.accelerators_per_node,
            nodes=NodeBounds(min=0, max=config.nodes.max_nodes),
        )


def _window_start(history: Sequence[MetricsSample]) -> MetricsSample | None:
    """The oldest sample within one rate window of the newest (None: only one sample)."""
    newest = history[-1]
    for sample in history[:-1]:
        if sample.sampled_at >= newest.sampled_at - RATE_WINDOW_SECONDS:
            return sample
    return None


def _slope(history: Sequence[MetricsSample]) -> float | None:
    """``deriv()``: the least-squares slope of the requests in the system (running plus
    waiting) over the growth window."""
    newest = history[-1].sampled_at
    points = [
        (s.sampled_at, s.running + s.waiting)
        for s in history
        if s.sampled_at > newest - GROWTH_WINDOW_SECONDS
    ]
    if len(points) < 2:
        return None
    mean_t = sum(t for t, _ in points) / len(points)
    mean_w = sum(w for _, w in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return sum((t - mean_t) * (w - mean_w) for t, w in points) / spread


def _quantile(histogram: Histogram | None, earlier: Histogram | None, fraction: float) -> float:
    """``histogram_quantile()`` over the window: NaN when no request fell in it."""
    if histogram is None:
        return math.nan
    value = histogram.quantile(fraction, earlier)
    return math.nan if value is None else value


def readings(
    history: Sequence[MetricsSample],
    utilization_metric: UtilizationMetric | None = None,
    percentile: float = 99.0,
) -> dict[str, MetricReading]:
    """What the vLLM preset's queries (``signals.presets``) would read from the scrapes of the
    last window, by signal name, plus the gateway's rates and the legacy GPU gate: the one
    place samples become readings; ``planner.observe`` keeps the ones the spec reads.

    Gauges come from the newest sample; ``rate()`` is the difference of the cumulative
    counters over the window divided by its length, ``deriv()`` the least-squares slope of the
    waiting requests, ``histogram_quantile()`` the quantile of the histogram's increase over
    the window (NaN when empty, as PromQL's).
    """
    if not history:
        missing = MetricReading.failed(MetricProblem.NO_DATA, "no sample yet")
        return dict.fromkeys(
            (QUEUE, GPU, RUNNING, KV_CACHE, PROMPT_TOKENS, GENERATION_TOKENS, REQUEST_RATE),
            missing,
        ) | dict.fromkeys((WORK_GROWTH, TTFT, ITL, OFFERED, REFUSED), missing)
    sample = history[-1]
    at = sample.sampled_at

    def ok(value: float) -> MetricReading:
        return MetricReading.ok(value, at)

    found = {QUEUE: ok(sample.waiting), RUNNING: ok(sample.running)}
    found[KV_CACHE] = (
        MetricReading.failed(MetricProblem.NO_DATA, "no Ready replica")
        if sample.kv_cache_usage is None
        else ok(sample.kv_cache_usage)
    )
    if utilization_metric is not None:
        value = (
            sample.gpu_utilization_percent
            if utilization_metric == "dcgm"
            else sample.kv_cache_usage_percent
        )
        found[GPU] = (
            MetricReading.failed(MetricProblem.NO_DATA, "no Ready replica")
            if value is None
            else ok(value)
        )
    earlier = _window_start(history)
    growth = _slope(history)
    found[WORK_GROWTH] = (
        MetricReading.failed(MetricProblem.NO_DATA, "one sample in the window")
        if growth is None
        else ok(growth)
    )
    if earlier is None:
        one = MetricReading.failed(MetricProblem.NO_DATA, "one sample in the window")
        for name in (PROMPT_TOKENS, GENERATION_TOKENS, REQUEST_RATE, TTFT, ITL, OFFERED, REFUSED):
            found[name] = one
        return found
    span = at - earlier.sampled_at
    fraction = percentile / 100
    counts = (sample.ttft.count if sample.ttft else 0) - (earlier.ttft.count if earlier.ttft else 0)
    found |= {
        PROMPT_TOKENS: ok((sample.prompt_tokens_total - earlier.prompt_tokens_total) / span),
        GENERATION_TOKENS: ok(
            (sample.generation_tokens_total - earlier.generation_tokens_total) / span
        ),
        REQUEST_RATE: ok(counts / span),
        TTFT: ok(_quantile(sample.ttft, earlier.ttft, fraction)),
        ITL: ok(_quantile(sample.itl, earlier.itl, fraction)),
        OFFERED: ok((sample.arrivals_total - earlier.arrivals_total) / span),
        REFUSED: ok((sample.refused_total - earlier.refused_total) / span),
    }
    return found


class FleetscalePolicy:
    """The InferencePool and AcceleratorPool controllers' planning, in simulated time."""

    node_mode: NodeMode = "ahead"

    def __init__(self, config: SimConfig, settings: FleetscaleSettings | None = None) -> None:
        self.settings = settings or FleetscaleSettings.defaults()
        self.name = self.settings.label
        self.spec = self.settings.inference_pool_spec(config)
        self.pool_spec = self.settings.accelerator_pool_spec(config)
        self.interval_seconds = self.spec.poll_interval_seconds
        self.node_scale_down_delay_seconds = float(self.pool_spec.scale_down_delay_seconds)
        self.shed_queue_per_replica = self.spec.shed_load.queue_per_replica_threshold
        self.state = PlannerState()
        self.capacity_state = CapacityState()
        # No allocation before the first AcceleratorPool tick: the first poll runs uncapped,
        # as the simulated fleet starts with its nodes already planned.
        self.allocation: PublishedAllocation | None = None
        self.decisions = 0

    def decide(self, view: FleetView) -> Action:
        # The same observe -> plan -> commit as the InferencePool controller; every action
        # succeeds in the simulator, so every decision is committed.
        observation = observe(
            self.spec,
            TargetSize(view.desired_replicas, view.ready_replicas),
            readings(
                view.history or ((view.sample,) if view.sample is not None else ()),
                self.settings.utilization_metric,
                self.spec.slo.percentile if self.spec.slo is not None else 99.0,
            ),
            self.allocation,
            pending_seconds=self.interval_seconds,
            replica_startup_seconds=view.replica_startup_seconds,
        )
        decision, state = plan(self.spec, observation, self.state, view.now)
        self.state = commit_scale(state, decision.scale_delta, self.spec.behavior, view.now)
        self.decisions += 1
        demand = inference_pool_demand(
            NAMESPACE,
            POOL_NAME,
            self.spec,
            current_replicas=decision.desired_replicas,
            ready_replicas=view.ready_replicas,
            asked_replicas=decision.unconstrained_replicas,
            shedding=decision.shed.active,
            observed_accelerators_per_replica=observation.accelerators_per_replica,
        )
        nodes = tuple(
            NodeView(
                name=str(node.node_id),
                ready=node.ready_at is not None,
                created_at=node.requested_at,
                accelerators_allocatable=node.accelerators,
                accelerators_in_use=node.accelerators_in_use,
                workload_pods=node.replicas,
                ready_since=node.ready_at,
            )
            for node in view.nodes
        )
        capacity_plan, capacity_state = plan_capacity(
            self.pool_spec,
            [demand],
            CapacityObservation(nodes=nodes, requested_nodes=len(nodes)),
            self.capacity_state,
            view.now,
        )
        self.capacity_state = commit_node_actions(
            capacity_state,
            capacity_plan,
            resized=capacity_plan.desired_nodes != capacity_plan.current_nodes,
            released=capacity_plan.release_nodes,
            now=view.now,
        )
        # What the AcceleratorPool publishes in its status; the next poll observes it.
        self.allocation = PublishedAllocation(
            accelerator_pool=ACCELERATOR_POOL_NAME,
            exists=True,
            limit=capacity_plan.limit_for(NAMESPACE, POOL_NAME),
        )
        return Action(
            desired_replicas=decision.desired_replicas,
            shed=decision.shed.active,
            shed_queue_per_replica=self.shed_queue_per_replica,
            shed_fraction=decision.shed.fraction,
            node_target=capacity_plan.desired_nodes,
            release_nodes=tuple(int(name) for name in capacity_plan.release_nodes),
            reason=decision.reason,
        )
