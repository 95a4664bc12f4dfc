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
class MetricsSample:
    """One Prometheus scrape of the fleet."""

    sampled_at: float
    queue_depth: float  # requests waiting for a slot (vllm:num_requests_waiting summed)
    running: float  # requests holding a slot (vllm:num_requests_running summed)
    gpu_utilization_percent: float | None  # mean over Ready replicas; None when none is Ready
    # Share of the Ready replicas' batch slots in use: a stand-in for vLLM's KV-cache usage
    # (vllm:gpu_cache_usage_perc), the resource that bounds the batch. None when none is Ready.
    kv_cache_usage_percent: float | None
    ready_replicas: int


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
    concurrency_now: float  # in-flight plus queued now (Knative's queue-proxy view, 1 s)
    nodes_ready: int
    nodes_provisioning: int
    max_nodes: int
    replicas_per_node: int
    seconds_until_next_node: float | None  # expected, for nodes still provisioning
    replica_startup_seconds: float
    nodes: tuple[NodeInfo, ...] = ()  # live (requested, not released) nodes


@dataclass(frozen=True)
class Action:
    """A policy's output: the replica count to set, the shed flag and, in "ahead" node mode,
    the node count to hold."""

    desired_replicas: int
    shed: bool = False
    shed_queue_per_replica: float = 0.0  # the gateway answers 429 over this queue per replica
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
