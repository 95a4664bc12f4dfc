"""The one interface every simulated autoscaling policy implements, and what it sees.

Role: the boundary between the simulator engine (which owns the fleet and the clock) and the
policies (fleetscale's planner, HPA, KEDA, Knative KPA, static, oracle). A policy sees only
what its real counterpart would: Prometheus samples one scrape interval late, replica counts
from the API server, node counts. Callers: ``fleetscale.sim.engine`` calls ``decide`` every
``interval_seconds``; the policy modules implement it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# "reactive": nodes come only for Pending pods (Cluster Autoscaler-like).
# "ahead": the policy names a node count itself, before pods are created.
NodeMode = Literal["reactive", "ahead"]


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram as scraped: cumulative bucket counts (``le`` buckets, +Inf last)
    and the sum of observations. Both only grow, so the difference of two scrapes is what
    ``increase()`` over the window between them gives."""

    bounds_seconds: tuple[float, ...]
    cumulative_counts: tuple[int, ...]  # len(bounds_seconds) + 1; the last is the count
    sum_seconds: float = 0.0

    @property
    def count(self) -> int:
        return self.cumulative_counts[-1] if self.cumulative_counts else 0

    def quantile(self, fraction: float, earlier: Histogram | None = None) -> float | None:
        """``histogram_quantile(fraction, increase(...))`` since ``earlier`` (or since the
        start): linear inside the bucket, the highest finite bound past it; None when empty."""
        counts = self.cumulative_counts
        if earlier is not None:
            counts = tuple(a - b for a, b in zip(counts, earlier.cumulative_counts, strict=True))
        total = counts[-1] if counts else 0
        if total <= 0:
            return None
        rank = fraction * total
        lower_bound, lower_count = 0.0, 0
        for bound, count in zip(self.bounds_seconds, counts, strict=False):
            if count >= rank:
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = bound, count
        return self.bounds_seconds[-1]


@dataclass(frozen=True)
class MetricsSample:
    """One Prometheus scrape of the fleet, summed (or averaged) over the Ready replicas as the
    usual PromQL would: what vLLM exports, plus DCGM's GPU utilization.

    Gauges describe the scrape instant; ``*_total`` counters and the histograms are cumulative
    over the run (replicas that went away included), so rates and quantiles over a window come
    from the difference of two samples.
    """

    sampled_at: float
    # sum(vllm:num_requests_waiting): queued at the pods, preempted requests included.
    waiting: float
    running: float  # sum(vllm:num_requests_running)
    gpu_utilization_percent: float | None  # avg(DCGM_FI_DEV_GPU_UTIL); None when none is Ready
    # avg(vllm:kv_cache_usage_perc): KV blocks used / all blocks, a fraction in [0, 1].
    kv_cache_usage: float | None
    ready_replicas: int
    prompt_tokens_total: float = 0.0  # sum(vllm:prompt_tokens_total)
    generation_tokens_total: float = 0.0  # sum(vllm:generation_tokens_total)
    preemptions_total: float = 0.0  # sum(vllm:num_preemptions_total)
    ttft: Histogram | None = None  # vllm:time_to_first_token_seconds
    itl: Histogram | None = None  # vllm:inter_token_latency_seconds
    # The gateway in front of the pods: requests that reached it, and those it answered 429.
    arrivals_total: float = 0.0
    refused_total: float = 0.0

    @property
    def queue_depth(self) -> float:
        """What ``sum(vllm:num_requests_waiting)`` reads: the queue-depth signal."""
        return self.waiting

    @property
    def kv_cache_usage_percent(self) -> float | None:
        return None if self.kv_cache_usage is None else 100.0 * self.kv_cache_usage

    @property
    def concurrency(self) -> float:
        """Work in the system: running plus waiting."""
        return self.running + self.waiting


@dataclass(frozen=True)
class NodeInfo:
    """One GPU node as the API server shows it (requested nodes register at once, NotReady)."""

    node_id: int
    requested_at: float
    ready_at: float | None  # None while provisioning
    accelerators: int
    accelerators_in_use: int
    replicas: int  # model pods scheduled on it


@dataclass(frozen=True)
class FleetView:
    """What a policy knows at one decision time."""

    now: float
    desired_replicas: int  # the target's spec.replicas, as last set
    ready_replicas: int
    starting_replicas: int  # scheduled, loading the model
    pending_replicas: int  # waiting for accelerators
    sample: MetricsSample | None  # newest sample visible now (one scrape interval late)
    concurrency_now: float  # requests held by the pods now (Knative's queue-proxy view, 1 s)
    nodes_ready: int
    nodes_provisioning: int
    max_nodes: int
    replicas_per_node: int
    seconds_until_next_node: float | None  # expected, for nodes still provisioning
    replica_startup_seconds: float  # median model load
    nodes: tuple[NodeInfo, ...] = ()  # live (requested, not released) nodes
    # The visible samples of the last ``HISTORY_SECONDS``, oldest first (``sample`` is the
    # last): what ``rate()``, ``deriv()`` and ``histogram_quantile()`` over a window read.
    history: tuple[MetricsSample, ...] = ()


# How far back a policy sees samples: one rate window (60 s) and one scrape interval.
HISTORY_SECONDS = 75.0


@dataclass(frozen=True)
class Action:
    """A policy's output: the replica count to set, the shed flag and, in "ahead" node mode,
    the node count to hold."""

    desired_replicas: int
    shed: bool = False
    shed_queue_per_replica: float = 0.0  # the gateway answers 429 over this queue per replica
    shed_fraction: float = 1.0  # share of requests to refuse while shedding (gateway "fraction")
    node_target: int | None = None
    # Nodes to release now (empty ones only). When set, the policy manages releases itself and
    # the simulator releases nothing on its own.
    release_nodes: tuple[int, ...] | None = None
    reason: str = ""


class Policy(Protocol):
    """An autoscaling policy under test."""

    @property
    def name(self) -> str: ...

    @property
    def interval_seconds(self) -> int:
        """How often ``decide`` is called (its sync period)."""
        ...

    @property
    def node_mode(self) -> NodeMode: ...

    @property
    def node_scale_down_delay_seconds(self) -> float:
        """How long an empty node is kept before release (in "ahead" node mode)."""
        ...

    def decide(self, view: FleetView) -> Action: ...
