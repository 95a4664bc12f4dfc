"""The InferencePool resource: one model's serving fleet and how to size it.

Role: the typed, validated form of ``inferencepools.fleetscale.io`` (spec and status). The same
models generate the CRD schema (see ``crdgen``), so the API server and the operator enforce the
same rules. Callers: the controller (parse spec, render status), the planner (read spec), the
simulator (build specs), the CRD generator.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fleetscale.api.base import (
    API_VERSION_PATTERN,
    KIND_PATTERN,
    ApiModel,
    Condition,
    DnsSubdomainName,
    LocalObjectRef,
    SecretKeyRef,
)

KIND = "InferencePool"
PLURAL = "inferencepools"
SINGULAR = "inferencepool"
SHORT_NAMES = ("ipool", "ipools")
CATEGORIES = ("fleetscale",)

Mode = Literal["Active", "DryRun", "Paused"]

# Gateway API's SectionName: a DNS-1123 label (route rules, listeners).
SECTION_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An HTTP header name (RFC 7230 token), as Gateway API's HTTPHeaderName.
HTTP_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
DEFAULT_SHED_MESSAGE = "The model is at capacity; retry after the number of seconds in Retry-After."
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


class TargetRef(ApiModel):
    """The workload whose replicas are scaled; any kind that serves the /scale subresource."""

    api_version: str = Field(
        default="apps/v1", min_length=1, max_length=317, pattern=API_VERSION_PATTERN
    )
    """API version of the target, e.g. apps/v1 or leaderworkerset.x-k8s.io/v1."""
    kind: str = Field(default="Deployment", min_length=1, max_length=63, pattern=KIND_PATTERN)
    """Kind of the target, e.g. Deployment, StatefulSet, LeaderWorkerSet."""
    name: DnsSubdomainName
    """Name of the target in the InferencePool's namespace (a DNS-1123 subdomain, as the names
    of Deployments, StatefulSets and LeaderWorkerSets are)."""


class ReplicaBounds(ApiModel):
    """Hard bounds on the number of model replicas."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        ("self.min <= self.max", "replicas.min must be less than or equal to replicas.max"),
    )

    min: int = Field(default=1, ge=0, le=10000)
    """Fewest replicas ever kept. 0 allows scale to zero (queue depth must then be scraped from
    the gateway, since no replica exports it)."""
    max: int = Field(ge=1, le=10000)
    """Most replicas ever requested; reaching it raises ScalingLimited=True (MaxReplicas)."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ReplicaBounds:
        if self.min > self.max:
            raise ValueError(self.cel_rules[0][1])
        return self


class PrometheusSource(ApiModel):
    """Where and how to query Prometheus; unset fields fall back to the operator's defaults."""

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2048)
    """Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090."""
    bearer_token_secret_ref: SecretKeyRef | None = None
    """Secret key holding a bearer token sent as the Authorization header."""
    ca_secret_ref: SecretKeyRef | None = None
    """Secret key holding a PEM CA bundle to verify the server's certificate."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Timeout of one query."""


Engine = Literal["vllm", "sglang", "trtllm", "custom"]


class QueueDepthMetric(ApiModel):
    """Requests waiting for a slot, summed over the fleet: the fast overload term."""

    query: str | None = Field(default=None, min_length=1, max_length=4096)
    """PromQL returning exactly one series: the number of waiting requests, e.g.
    sum(vllm:num_requests_waiting{model_name="llama"}). Default: the engine preset's (required
    with engine custom, unless queries.waiting is set)."""
    target_per_replica: float = Field(default=2.0, gt=0, le=100000)
    """Waiting requests one ready replica may carry before the queue counts as a backlog to
    serve on top of the load (with engine custom and no load signal, the queue drives the fleet
    alone: desired = ceil(queue / target))."""


class SignalQueries(ApiModel):
    """PromQL of each load signal, each returning exactly one series. Every field set here
    replaces the engine preset's query for that signal; with engine custom, a signal without a
    query is not read."""

    waiting: str | None = Field(default=None, min_length=1, max_length=4096)
    """Requests waiting, fleet total (same as queueDepth.query, which wins when both are set)."""
    running: str | None = Field(default=None, min_length=1, max_length=4096)
    """Requests in the running batches, fleet total (concurrency is running plus waiting)."""
    kv_cache_usage: str | None = Field(default=None, min_length=1, max_length=4096)
    """KV-cache usage averaged over the fleet, a fraction from 0 to 1 (the saturation guard)."""
    prompt_tokens: str | None = Field(default=None, min_length=1, max_length=4096)
    """Prompt tokens processed per second, fleet total (a rate() of the engine's counter)."""
    generation_tokens: str | None = Field(default=None, min_length=1, max_length=4096)
    """Tokens generated per second, fleet total (a rate() of the engine's counter)."""
    request_rate: str | None = Field(default=None, min_length=1, max_length=4096)
    """Requests that got their first token per second, fleet total (the rate of the TTFT
    histogram's count)."""
    work_growth: str | None = Field(default=None, min_length=1, max_length=4096)
    """How fast the requests in the system (running plus waiting) grow, per second: deriv() of
    the running and waiting gauges over the last scrapes."""
    ttft: str | None = Field(default=None, min_length=1, max_length=4096)
    """Time to first token at slo.percentile, seconds (histogram_quantile over the engine's
    histogram). Default: built from slo.percentile."""
    itl: str | None = Field(default=None, min_length=1, max_length=4096)
    """Inter-token latency at slo.percentile, seconds. Default: built from slo.percentile."""


class OfferedLoadMetric(ApiModel):
    """Demand that survives shedding: what the gateway was asked, refused requests included."""

    query: str = Field(min_length=1, max_length=4096)
    """PromQL returning the requests per second offered to the pool, those answered 429
    included, e.g. sum(rate(gateway_requests_total{backend="llama"}[1m]))."""
    refused_query: str | None = Field(default=None, min_length=1, max_length=4096)
    """PromQL returning the requests per second the gateway refused (429). Without it, the
    admitted rate is the engine's request rate (queries.requestRate)."""


class GpuUtilizationMetric(ApiModel):
    """Accelerator utilization, averaged over the fleet (legacy scale-down gate)."""

    query: str = Field(min_length=1, max_length=4096)
    """PromQL returning exactly one series in percent (0-100), e.g.
    avg(DCGM_FI_DEV_GPU_UTIL{pod=~"vllm-llama-.*"})."""
    target_percent: float = Field(default=85.0, gt=0, le=100)
    """Utilization one replica should run at. It gates scale-down and never, alone, drives a
    scale-up (vLLM keeps GPUs busy even at low load)."""


class MetricsSpec(ApiModel):
    """The signals that size the fleet, and where to read them."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        (
            "self.engine != 'custom' || (has(self.queueDepth) && has(self.queueDepth.query)) "
            "|| (has(self.queries) && has(self.queries.waiting))",
            "metrics.engine custom needs metrics.queueDepth.query or metrics.queries.waiting",
        ),
    )

    engine: Engine = "vllm"
    """The serving engine, whose current metric names fill in every query, scoped to the pool's
    namespace and, when spec.model is set, its model label: vllm, sglang, trtllm
    (trtllm-serve), or custom (only the queries given here are read)."""
    prometheus: PrometheusSource | None = None
    """Prometheus connection; if unset, the operator-wide default URL is used."""
    queue_depth: QueueDepthMetric = Field(default_factory=QueueDepthMetric)
    """The waiting queue (the fast overload term)."""
    queries: SignalQueries = Field(default_factory=SignalQueries)
    """Per-signal PromQL overrides of the engine preset."""
    offered_load: OfferedLoadMetric | None = None
    """A gateway's offered and refused request rates (optional): while the gateway sheds, the
    demand is read from them instead of being bounded by the capped queue."""
    gpu_utilization: GpuUtilizationMetric | None = None
    """GPU utilization (optional, legacy): only ever holds replicas, never adds them."""
    max_staleness_seconds: int = Field(default=60, ge=1, le=3600)
    """A sample older than this counts as missing: the fleet holds its size."""
    tolerance: float | None = Field(default=None, ge=0, le=1)
    """Deprecated: use behavior.scaleUp.tolerance and behavior.scaleDown.tolerance. When set, the
    tolerance of each direction that does not set its own (default 0.1, as the HPA)."""

    @model_validator(mode="after")
    def _custom_reads_a_queue(self) -> MetricsSpec:
        if (
            self.engine == "custom"
            and self.queue_depth.query is None
            and self.queries.waiting is None
        ):
            raise ValueError(self.cel_rules[0][1])
        return self


class SloSpec(ApiModel):
    """Latency targets read from the engine's histograms: over target adds capacity (and lowers
    the learned capacity per replica); well under target allows scale-down."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        (
            "has(self.ttftSeconds) || has(self.itlSeconds)",
            "slo needs ttftSeconds or itlSeconds",
        ),
    )

    ttft_seconds: float | None = Field(default=None, gt=0, le=3600)
    """Time to first token the percentile must stay within, seconds."""
    itl_seconds: float | None = Field(default=None, gt=0, le=60)
    """Inter-token latency the percentile must stay within, seconds (optional)."""
    percentile: float = Field(default=95.0, ge=50, lt=100)
    """The percentile held to the targets, e.g. 99 for p99."""
    scale_down_below: float = Field(default=0.5, gt=0, lt=1)
    """Scale-down (and raising the learned capacity) waits until every latency is under this
    fraction of its target; between it and the target the fleet holds."""

    @model_validator(mode="after")
    def _some_target(self) -> SloSpec:
        if self.ttft_seconds is None and self.itl_seconds is None:
            raise ValueError(self.cel_rules[0][1])
        return self


class CapacitySpec(ApiModel):
    """What one replica carries at the latency targets: a starting value, then learned online
    from the fleet's own metrics and kept in status.capacity."""

    tokens_per_second_per_replica: float | None = Field(default=None, gt=0, le=1e9)
    """Prompt plus generated tokens per second one replica serves within the latency targets.
    Default: learned, starting from what the fleet serves when first seen (its size is then
    taken as right)."""
    concurrency_per_replica: float | None = Field(default=None, gt=0, le=1e6)
    """Requests (running plus waiting) one replica holds within the latency targets. Default:
    learned as above."""
    target_utilization: float = Field(default=0.8, gt=0, le=1)
    """Share of the capacity per replica the fleet is sized to use: 0.8 keeps 20% headroom for
    the minutes a new replica takes to serve."""
    learn: bool = True
    """Learn the capacity from the latency targets (needs spec.slo). false keeps the starting
    values."""
    kv_cache_saturation_percent: float = Field(default=90.0, gt=0, le=100)
    """KV-cache usage above which the fleet counts as saturated: at least one more replica, and
    no scale-down."""


class ForecastSpec(ApiModel):
    """A short-horizon forecast of demand (Holt, or Holt-Winters with a season), used only to
    request nodes ahead of demand; replicas still follow the measured load."""

    enabled: bool = False
    """Off by default."""
    horizon_seconds: int = Field(default=600, ge=15, le=7200)
    """How far ahead nodes are requested: the time a node takes to provision plus a model to
    load."""
    season_seconds: int = Field(default=86400, ge=0, le=604800)
    """Length of the season (a day); 0 forecasts level and trend only (Holt)."""
    level_smoothing: float = Field(default=0.2, gt=0, lt=1)
    """Holt-Winters alpha: weight of the newest observation in the level."""
    trend_smoothing: float = Field(default=0.05, ge=0, lt=1)
    """Holt-Winters beta: weight of the newest change in the trend."""
    season_smoothing: float = Field(default=0.1, ge=0, lt=1)
    """Holt-Winters gamma: weight of the newest observation in its season slot."""


class ScalingPolicy(ApiModel):
    """At most `value` pods (or percent of current) may be added/removed per `periodSeconds`."""

    type: PolicyType
    """Pods or Percent."""
    value: int = Field(gt=0, le=10000)
    """Amount of change allowed in one period."""
    period_seconds: int = Field(gt=0, le=1800)
    """Length of the window the change is counted over."""


class ScalingRules(ApiModel):
    """Stabilization, rate limits and tolerance for one direction (autoscaling/v2
    HPAScalingRules). An omitted field takes the HPA's default for its direction."""

    stabilization_window_seconds: int | None = Field(default=None, ge=0, le=3600)
    """Recommendations over this window are considered; scale-up takes their minimum and
    scale-down their maximum, so a short spike or dip does not move the fleet. Default: 0 for
    scaleUp, 300 for scaleDown (as the HPA)."""
    select_policy: SelectPolicy = "Max"
    """Which policy wins when several apply: Max (most change), Min (least), Disabled (none)."""
    policies: tuple[ScalingPolicy, ...] | None = Field(default=None, max_length=10)
    """Rate policies. Default (omitted), as the HPA: scaleUp allows +4 pods or +100% per 15 s
    (the larger), scaleDown -100% per 15 s. An empty list means no rate limit (the HPA rejects
    an empty list)."""
    tolerance: float | None = Field(default=None, ge=0, le=1)
    """Relative deviation of a signal from its target ignored in this direction before it asks
    for a change (autoscaling/v2 behavior.scaleUp/scaleDown.tolerance, Kubernetes 1.33): the
    size holds while 1 - scaleDown.tolerance <= usage / target <= 1 + scaleUp.tolerance.
    Default: metrics.tolerance when set, else 0.1 (the HPA controller's default)."""


# The HPA's defaults (k8s.io/kubernetes pkg/apis/autoscaling/v2/defaults.go, and the
# controller's --horizontal-pod-autoscaler-downscale-stabilization and -tolerance flags).
HPA_SCALE_UP_WINDOW_SECONDS = 0
HPA_SCALE_DOWN_WINDOW_SECONDS = 300
HPA_TOLERANCE = 0.1


def hpa_scale_up_policies() -> tuple[ScalingPolicy, ...]:
    return (
        ScalingPolicy(type="Pods", value=4, period_seconds=15),
        ScalingPolicy(type="Percent", value=100, period_seconds=15),
    )


def hpa_scale_down_policies() -> tuple[ScalingPolicy, ...]:
    return (ScalingPolicy(type="Percent", value=100, period_seconds=15),)


class Behavior(ApiModel):
    """Scaling behavior with the semantics and per-field defaults of autoscaling/v2: a behavior
    block copied from a HorizontalPodAutoscaler gives the same numbers."""

    scale_up: ScalingRules = Field(default_factory=ScalingRules)
    """Rules when adding replicas. Default: no window, +4 pods or +100% per 15 s (the larger)."""
    scale_down: ScalingRules = Field(default_factory=ScalingRules)
    """Rules when removing replicas. Default: 300 s window, -100% per 15 s."""


class RouteRef(ApiModel):
    """A Gateway API route in the InferencePool's namespace (never another namespace)."""

    group: Literal["gateway.networking.k8s.io"] = "gateway.networking.k8s.io"
    """API group of the route."""
    kind: Literal["HTTPRoute", "GRPCRoute"] = "HTTPRoute"
    """Kind of the route."""
    name: DnsSubdomainName
    """Name of the route (a DNS-1123 subdomain)."""
    section_name: str | None = Field(
        default=None, min_length=1, max_length=63, pattern=SECTION_NAME
    )
    """One rule of the route, by its name; unset: every rule of the route."""


class EnvoyGatewayShed(ApiModel):
    """Shed through an Envoy Gateway BackendTrafficPolicy (gateway.envoyproxy.io/v1alpha1) that
    fleetscale writes, owns and labels: fault injection aborts the shed fraction of the route's
    requests with HTTP 429, and a response override adds Retry-After and a JSON body."""

    route_ref: RouteRef
    """The route (or route rule) whose requests are shed."""
    policy_name: DnsSubdomainName | None = None
    """Name of the BackendTrafficPolicy. Default: the InferencePool's name with "-shed"."""


class LowPriority(ApiModel):
    """Requests the gateway marks as lower priority: shed before any other request, as the
    Gateway API Inference Extension sheds Sheddable requests first."""

    header_name: str = Field(min_length=1, max_length=256, pattern=HTTP_HEADER_NAME)
    """Request header that marks a request's priority, e.g. x-request-priority."""
    header_value: str = Field(default="low", min_length=1, max_length=256)
    """Value of that header on lower-priority requests."""


class GatewayShed(ApiModel):
    """Where gateways act on the shed decision, besides status, the gauge and the ConfigMap."""

    envoy_gateway: EnvoyGatewayShed | None = None
    """Write an Envoy Gateway BackendTrafficPolicy for the named route."""
    message: str = Field(default=DEFAULT_SHED_MESSAGE, min_length=1, max_length=1024)
    """Text of the JSON body of a refused request ({"error": {"message": ..., "type":
    "fleetscale_shed", "code": 429}})."""
    low_priority: LowPriority | None = None
    """Requests to shed first. Gateways that see the mix of requests (the HAProxy
    configuration of docs/gateways.md) refuse these before any other; published in the
    ConfigMap as lowPriorityHeader and lowPriorityValue."""


class ShedLoadSpec(ApiModel):
    """When the fleet cannot grow, tell gateways to answer 429 with Retry-After."""

    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = (
        (
            "!has(self.releaseQueuePerReplica) || "
            "self.releaseQueuePerReplica < self.queuePerReplicaThreshold",
            "shedLoad.releaseQueuePerReplica must be below shedLoad.queuePerReplicaThreshold",
        ),
        (
            "self.minFraction <= self.maxFraction",
            "shedLoad.minFraction must be less than or equal to shedLoad.maxFraction",
        ),
    )

    enabled: bool = True
    """Whether the flag may be raised at all."""
    queue_per_replica_threshold: float = Field(default=10.0, gt=0, le=100000)
    """Shed starts when the fleet is limited and waiting requests per ready replica exceed this."""
    release_queue_per_replica: float | None = Field(default=None, ge=0, le=100000)
    """Shed stops when waiting requests per replica fall below this (hysteresis). Default: half
    of queuePerReplicaThreshold."""
    release_after_seconds: int = Field(default=30, ge=0, le=3600)
    """While the fleet is still limited, shed stops only after waiting requests per replica have
    stayed below the release threshold this long: a replica that just became Ready drains the
    queue for a moment while demand is still above capacity. 0 releases on the first sample
    below the threshold. When the fleet is no longer limited the flag stops at once."""
    config_map_name: DnsSubdomainName | None = None
    """If set, the flag is also published in this ConfigMap of the pool's namespace (keys:
    active, retryAfterSeconds, reason, since) for gateways that read ConfigMaps. The operator
    creates it, marked as this pool's (label app.kubernetes.io/managed-by=fleetscale, owner
    reference to the pool); an existing ConfigMap it did not create for this pool is never
    written (Ready=False, ConfigMapNotOwned)."""
    max_retry_after_seconds: int = Field(default=300, ge=1, le=3600)
    """Upper bound of the Retry-After value handed to clients."""
    min_fraction: float = Field(default=0.05, gt=0, le=1)
    """Least share of requests refused while the flag is on. 1 refuses every request while the
    flag is on (all or nothing)."""
    max_fraction: float = Field(default=1.0, gt=0, le=1)
    """Largest share of requests refused."""
    fraction_smoothing_seconds: int = Field(default=10, ge=0, le=600)
    """Time constant of the exponential smoothing of the shed fraction; 0 follows each
    reading."""
    fraction_deadband: float = Field(default=0.05, ge=0, le=0.5)
    """The published fraction moves only when the smoothed one differs from it by at least
    this much (hysteresis: gateways are not rewritten for noise)."""
    gateway: GatewayShed | None = None
    """Gateway objects fleetscale writes the decision into (Envoy Gateway), the message of a
    refused request, and which requests to shed first."""

    @model_validator(mode="after")
    def _release_below_threshold(self) -> ShedLoadSpec:
        release = self.release_queue_per_replica
        if release is not None and release >= self.queue_per_replica_threshold:
            raise ValueError(self.cel_rules[0][1])
        if self.min_fraction > self.max_fraction:
            raise ValueError(self.cel_rules[1][1])
        return self

    @property
    def release_threshold(self) -> float:
        """The per-replica queue below which shedding stops."""
        if self.release_queue_per_replica is not None:
            return self.release_queue_per_replica
        return self.queue_per_replica_threshold / 2


class InferencePoolSpec(ApiModel):
    """Desired sizing of one model's serving fleet."""

    model: str | None = Field(default=None, max_length=253)
    """Model name, for display only."""
    target_ref: TargetRef
    """The workload to scale (any kind with a /scale subresource)."""
    replicas: ReplicaBounds
    """Bounds on replicas."""
    accelerators_per_replica: int | None = Field(default=None, ge=0, le=1024)
    """Accelerators one replica needs. Default: read from the target's pod template requests."""
    accelerator_pool_ref: LocalObjectRef | None = None
    """The AcceleratorPool that supplies the accelerators (optional)."""
    priority: int = Field(default=0, ge=-1000000, le=1000000)
    """Higher gets scarce accelerators first and sheds last."""
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    """Signals that size the fleet. Default: the vLLM preset in the pool's namespace."""
    slo: SloSpec | None = None
    """Latency targets (optional): without them the capacity per replica is not learned."""
    capacity: CapacitySpec = Field(default_factory=CapacitySpec)
    """Capacity per replica: starting values, headroom and the saturation guard."""
    forecast: ForecastSpec = Field(default_factory=ForecastSpec)
    """Request nodes one horizon ahead of the forecast demand (off by default)."""
    behavior: Behavior = Field(default_factory=Behavior)
    """Stabilization windows and rate policies."""
    shed_load: ShedLoadSpec = Field(default_factory=ShedLoadSpec)
    """The shed-load flag."""
    poll_interval_seconds: int = Field(default=15, ge=1, le=3600)
    """How often the pool is observed and planned."""
    mode: Mode = "Active"
    """Active acts; DryRun decides and reports but never acts; Paused does nothing."""


class ObservedMetrics(ApiModel):
    """The last measurement the decision was made from."""

    queue_depth: float | None = None
    """Waiting requests across the fleet."""
    gpu_utilization_percent: float | None = None
    """Mean accelerator utilization, percent."""
    sampled_at: datetime | None = None
    """Timestamp of the queue-depth sample these values come from. Not re-written while the
    values stay the same: status is written only when something in it changes (freshness is
    the MetricsAvailable condition)."""


class ShedLoadStatus(ApiModel):
    """The shed-load flag as gateways read it."""

    active: bool = False
    """True while gateways should answer 429."""
    reason: str = ""
    """Why the flag is in its state (CamelCase)."""
    since: datetime | None = None
    """When the flag last changed."""
    retry_after_seconds: int | None = Field(default=None, ge=0)
    """Seconds clients should wait before retrying."""
    fraction: float | None = Field(default=None, ge=0, le=1)
    """While the flag is on: the share of requests gateways should refuse (lower-priority
    requests first)."""
    gateway_policy: str | None = None
    """While the flag is on: the gateway object it is written in, as kind/name (so that it is
    withdrawn there whatever happens to the spec)."""
    release_candidate_since: datetime | None = None
    """While the flag is on: since when waiting requests per replica have stayed below the
    release threshold (shedLoad.releaseAfterSeconds counts from here)."""
    config_map_name: DnsSubdomainName | None = None
    """While the flag is on: the ConfigMap it is published in (so that it is turned off there
    whatever happens to the spec)."""


class Recommendation(ApiModel):
    """One entry of the recommendation history the stabilization windows look at."""

    time: datetime
    """When the recommendation was made."""
    replicas: int = Field(ge=0)
    """Replicas recommended by the signals at that time (before behavior); for an entry that
    stands for several compacted ones, the highest of them."""
    lowest_replicas: int | None = Field(default=None, ge=0)
    """For an entry that stands for several compacted ones: the lowest of them."""


class ScaleEvent(ApiModel):
    """One past change of the target's replicas, counted by the rate policies."""

    time: datetime
    """When the change was made."""
    delta: int
    """Replicas added (positive) or removed (negative)."""


class PendingScale(ApiModel):
    """A change of size recorded before it is made, so that it counts against the rate
    policies even if the operator stops between the change and its status write."""

    time: datetime
    """When the change was decided."""
    from_replicas: int = Field(ge=0)
    """The target's size before the change."""
    to_replicas: int = Field(ge=0)
    """The size being set."""


class CapacityStatus(ApiModel):
    """The capacity per replica the planner uses, as learned so far."""

    tokens_per_second_per_replica: float | None = Field(default=None, ge=0)
    """Tokens per second one replica serves within the latency targets."""
    concurrency_per_replica: float | None = Field(default=None, ge=0)
    """Requests one replica holds within the latency targets."""
    ceiling_tokens_per_second_per_replica: float | None = Field(default=None, ge=0)
    """The lowest load per replica at which a latency target was missed lately: learning does
    not probe past it. Forgotten an hour after the last miss."""
    ceiling_since: datetime | None = None
    """When a latency target was last missed at the ceiling."""
    reason: str | None = None
    """Why the capacity has its value (CamelCase)."""
    updated_at: datetime | None = None
    """When the capacity last changed."""


class ForecastStatus(ApiModel):
    """The forecast's smoothed state (Holt-Winters)."""

    level: float = Field(ge=0)
    """Smoothed demand, replicas."""
    trend: float
    """Smoothed change of the demand, replicas per second."""
    seasonal: tuple[float, ...] = Field(default=(), max_length=48)
    """Seasonal offsets, replicas, one per slot of the season."""
    updated_at: datetime
    """When the forecast last took an observation."""


class InferencePoolStatus(ApiModel):
    """What the operator observed and decided. Also the operator's memory: a restarted operator
    continues from here."""

    observed_generation: int | None = None
    """The .metadata.generation last reconciled."""
    replicas: int | None = None
    """Replicas of the target (its /scale spec.replicas)."""
    ready_replicas: int | None = None
    """Ready replicas of the target."""
    desired_replicas: int | None = None
    """Replicas the operator wants (what it set, or would set in DryRun)."""
    demand_replicas: int | None = Field(default=None, ge=0)
    """Replicas the signals ask for before behavior, bounds and capacity: what the
    AcceleratorPool plans nodes for."""
    max_replicas_by_capacity: int | None = None
    """Replicas the accelerator pool can hold for this pool now, if an AcceleratorPool is used
    and caps it (absent while all of the pool's demand fits)."""
    accelerators_per_replica: int | None = Field(default=None, ge=0)
    """Accelerators one replica takes: spec.acceleratorsPerReplica, else what the target's pod
    template requests. The AcceleratorPool plans nodes with it."""
    observed: ObservedMetrics | None = None
    """Last measurement."""
    shed_load: ShedLoadStatus | None = None
    """The shed-load flag."""
    last_scale_time: datetime | None = None
    """When replicas were last changed."""
    last_scale_up_time: datetime | None = None
    """When replicas were last raised (learning does not probe for a smaller size for 15
    minutes after)."""
    last_decision_reason: str | None = None
    """Reason of the last decision (CamelCase)."""
    last_decision_message: str | None = None
    """The last decision in plain words."""
    recommendations: tuple[Recommendation, ...] = ()
    """Recent recommendations (the stabilization windows' history)."""
    scale_events: tuple[ScaleEvent, ...] = ()
    """Recent scale changes (the rate policies' history)."""
    pending_scale: PendingScale | None = None
    """A change of size being made right now; the next tick counts it as a scale event if the
    target has that size, and drops it otherwise."""
    capacity: CapacityStatus | None = None
    """The capacity per replica as learned (a restarted operator keeps it)."""
    forecast: ForecastStatus | None = None
    """The forecast's state, when spec.forecast is enabled."""
    conditions: tuple[Condition, ...] = ()
    """Ready, MetricsAvailable, ScalingLimited, ShedLoad."""


class InferencePool(ApiModel):
    """An InferencePool object as read from the API server (metadata kept loosely)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    spec: InferencePoolSpec
    status: InferencePoolStatus = Field(default_factory=InferencePoolStatus)
