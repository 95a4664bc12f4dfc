"""Plain data that flows into and out of the planner.

Role: the contract between the adapters (which produce measurements), the planner (which
decides) and the controller (which acts and reports). Everything here is immutable and free of
I/O; times are seconds since the Unix epoch, passed in by the caller. Callers: planner, signals
and actuators adapters (they build ``MetricReading``), controller, simulator.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class MetricProblem(enum.Enum):
    """Why a reading cannot be used. The value doubles as the condition reason."""

    QUERY_FAILED = "QueryFailed"  # Prometheus unreachable, timed out, or answered an error
    QUERY_REFUSED = "QueryRefused"  # the operator's policy forbids the URL or the query (#11)
    NO_DATA = "NoData"  # the query returned no series
    MULTIPLE_SERIES = "MultipleSeries"  # ambiguous: the query must aggregate to one series
    NOT_A_NUMBER = "NotANumber"  # NaN or infinite value
    STALE = "Stale"  # sample older than maxStalenessSeconds (decided by the planner)
    NEGATIVE = "NegativeValue"  # a count or a percentage below zero
    OUT_OF_RANGE = "ValueOutOfRange"  # too large to be a reading of a real fleet
    FROM_THE_FUTURE = "SampledInTheFuture"  # stamped ahead of the operator's clock


@dataclass(frozen=True)
class MetricReading:
    """One measurement as an adapter saw it: a value with its timestamp, or a problem.

    Adapters report what they saw; only the planner decides staleness (it owns the clock).
    """

    value: float | None
    sampled_at: float | None = None
    problem: MetricProblem | None = None
    detail: str = ""

    @classmethod
    def ok(cls, value: float, sampled_at: float) -> MetricReading:
        return cls(value=value, sampled_at=sampled_at)

    @classmethod
    def failed(cls, problem: MetricProblem, detail: str = "") -> MetricReading:
        return cls(value=None, sampled_at=None, problem=problem, detail=detail)

    @property
    def usable(self) -> bool:
        return (
            self.problem is None
            and self.value is not None
            and self.sampled_at is not None
            and math.isfinite(self.value)
        )


@dataclass(frozen=True)
class CapacityLimit:
    """What the accelerator pool can hold for one InferencePool right now.

    Produced by the joint node planner; absent when the pool has no AcceleratorPool.
    """

    max_replicas: int  # replicas that fit on Ready nodes plus the share granted to this pool
    reason: str  # CamelCase: MaxNodes, NodesProvisioning, Quota, ...
    message: str = ""
    seconds_until_more: float | None = None  # expected time until provisioning nodes are Ready


@dataclass(frozen=True)
class LoadReadings:
    """The load model's readings; None for a signal the spec does not read.

    Rates are per second over the query's window (PromQL ``rate``/``deriv``), latencies the
    ``slo.percentile`` of the engine's histogram over the same window, in seconds.
    """

    running: MetricReading | None = None  # requests in the running batches, fleet total
    kv_cache_usage: MetricReading | None = None  # fraction of KV-cache blocks in use, mean
    prompt_tokens: MetricReading | None = None  # prompt tokens per second
    generation_tokens: MetricReading | None = None  # generated tokens per second
    request_rate: MetricReading | None = None  # first tokens per second (requests started)
    work_growth: MetricReading | None = None  # requests in the system added per second (< 0: fewer)
    ttft: MetricReading | None = None  # time to first token at the percentile
    itl: MetricReading | None = None  # inter-token latency at the percentile
    offered: MetricReading | None = None  # requests per second offered to the gateway
    refused: MetricReading | None = None  # requests per second the gateway refused


@dataclass(frozen=True)
class Observation:
    """Everything measured about one pool at one tick."""

    current_replicas: int  # the target's /scale spec.replicas
    ready_replicas: int  # Ready replicas of the target
    queue_depth: MetricReading
    gpu_utilization_percent: MetricReading | None = None  # None when the spec has no such signal
    load: LoadReadings = field(default_factory=LoadReadings)
    capacity: CapacityLimit | None = None
    # Expected seconds until a newly started replica serves (model load). Used for Retry-After.
    replica_startup_seconds: float | None = None
    # The spec's value, else the target's pod template (None: unknown). Reported, and what the
    # AcceleratorPool plans accelerators with; the replica planner does not use it.
    accelerators_per_replica: int | None = None


@dataclass(frozen=True)
class TimedReplicas:
    """A replica count at a time: one entry of the recommendation history.

    An entry that stands for several compacted ones carries their highest ask in ``replicas``
    and their lowest in ``lowest`` (None: the entry is one ask).
    """

    time: float
    replicas: int
    lowest: int | None = None

    @property
    def low(self) -> int:
        return self.replicas if self.lowest is None else self.lowest


@dataclass(frozen=True)
class TimedDelta:
    """A scale change at a time: one entry of the rate-policy history."""

    time: float
    delta: int


@dataclass(frozen=True)
class ShedState:
    """The shed-load flag as last decided."""

    active: bool = False
    since: float | None = None
    reason: str = "NotLimited"
    # While the flag is on and the fleet still limited: since when the queue per replica has
    # stayed below the release threshold (None while it is not below it).
    release_candidate_since: float | None = None
    # While active: the share of requests gateways refuse (``planner.fraction``).
    fraction: float = 0.0
    # Whether gateways act on the flag. False in DryRun, where the flag is decided and reported
    # but never published: the gateways do not shed, so the queue is not censored.
    published: bool = True


@dataclass(frozen=True)
class CapacityEstimate:
    """What one replica carries within the latency targets, as learned so far (None: unknown).

    ``ceiling_tokens_per_replica`` is the lowest load per replica at which a target was missed
    lately; learning does not probe past it, and it is forgotten an hour after the last miss so
    a change of traffic can be learned again.
    """

    tokens_per_replica: float | None = None
    concurrency_per_replica: float | None = None
    ceiling_tokens_per_replica: float | None = None
    ceiling_since: float | None = None  # when a target was last missed at the ceiling
    reason: str = ""
    updated_at: float | None = None


@dataclass(frozen=True)
class ForecastState:
    """Holt-Winters state of the demand, in replicas (``seasonal``: one offset per slot)."""

    level: float
    trend: float  # replicas per second
    seasonal: tuple[float, ...]
    updated_at: float


@dataclass(frozen=True)
class PlannerState:
    """The planner's memory, persisted in the InferencePool's status between ticks.

    Histories are pruned by the planner to the longest window that still needs them; the
    capacity estimate and the forecast have a fixed size.
    """

    recommendations: tuple[TimedReplicas, ...] = ()
    scale_events: tuple[TimedDelta, ...] = ()
    shed: ShedState = field(default_factory=ShedState)
    last_scale_time: float | None = None
    # When replicas were last raised: the capacity probe waits after it (learn.py).
    last_scale_up_time: float | None = None
    capacity: CapacityEstimate = field(default_factory=CapacityEstimate)
    forecast: ForecastState | None = None


@dataclass(frozen=True)
class Step:
    """One numbered step of the replica pipeline: its output and why."""

    name: str  # e.g. "queue", "gpu", "combine", "stabilize", "rate", "bounds", "capacity"
    replicas: int
    reason: str  # CamelCase
    message: str = ""


@dataclass(frozen=True)
class ConditionVerdict:
    """A condition the controller should publish (type is implied by the field holding it)."""

    status: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ShedDecision:
    active: bool
    reason: str
    message: str = ""
    retry_after_seconds: int | None = None
    changed: bool = False
    # What ``ShedState.release_candidate_since`` becomes after this tick.
    release_candidate_since: float | None = None
    # While active: the share of requests gateways refuse, lower-priority ones first
    # (``planner.fraction``); 0 while off.
    fraction: float = 0.0
    fraction_message: str = ""


@dataclass(frozen=True)
class Decision:
    """The planner's output for one tick: what to do, and why, in plain data.

    ``desired_replicas`` is what the target should be set to (equal to the current size when
    holding). ``reason`` is the decisive CamelCase reason (ScaledUp, ScaledDown, Holding,
    MetricsUnavailable, ...); ``steps`` explain every number on the way.
    """

    current_replicas: int
    desired_replicas: int
    reason: str
    message: str
    steps: tuple[Step, ...]
    metrics_available: ConditionVerdict
    scaling_limited: ConditionVerdict
    shed: ShedDecision
    # Demand the signals asked for before behavior, bounds and capacity, or the forecast's when
    # larger (spec.forecast): what the AcceleratorPool plans nodes for.
    unconstrained_replicas: int = 0

    @property
    def scale_delta(self) -> int:
        """Positive to add, negative to remove, zero to hold."""
        return self.desired_replicas - self.current_replicas
