"""Joint planning of accelerator nodes and replicas for every InferencePool on one pool.

Role: from the demand of each InferencePool that draws on one AcceleratorPool and the nodes the
pool has, decide how many nodes the pool should have, which empty nodes to release, and how many
replicas each InferencePool may run now (its ``CapacityLimit``, which the replica planner applies
and which alone raises ScalingLimited MaxNodes / NodesProvisioning). Pure: no I/O, no clock; time
is an argument and memory is ``CapacityState``, persisted in the AcceleratorPool's status; the
node request and releases enter it through ``commit.commit_node_actions`` once they happened.
Callers: the AcceleratorPool controller, the simulator.

The rules, in order:
1. Demand: each InferencePool's desired replicas x acceleratorsPerReplica, packed first-fit
   decreasing onto nodes of acceleratorsPerNode (a replica never spans nodes unless it needs
   more accelerators than one node has; then it takes whole nodes).
2. Nodes: the node count that holds all demand, within nodes.min/max. Nodes are requested as
   soon as demand asks for them, before any model pod exists to go Pending.
3. Grants: when demand does not fit in nodes.max, InferencePools are served in priority order
   (higher first; ties by namespace/name), so the lowest priority is capped, and sheds, first.
4. Caps: replicas may only run on Ready nodes; while nodes are provisioning, each pool is capped
   to its share of Ready nodes (reason NodesProvisioning, with the expected seconds until the
   provisioning nodes are Ready). Running replicas keep their place before anyone grows: the
   replica planner never scales down for capacity, so a higher-priority pool grows into free
   room only, and a lower-priority pool over its grant is held (no growth, it sheds first) until
   its own demand lets it shrink. At nodes.max, while a pool sheds below its replicas.max (its
   demand is then a lower bound that grows round by round), pools of lower priority are held at
   their current replicas so they do not take the room it asks for next.
5. Scale-down: replicas go first (the replica planner); a node is released only once it hosts no
   workload pod and has stayed so for scaleDownDelaySeconds, oldest-empty first, and never below
   what demand needs or nodes.min. Releases are named: the provider's size shrinks only by the
   nodes released, never by a resize that lets the backend pick victims, so it never falls below
   the nodes that host workload pods (Ready or not), even when nodes.max is lowered under them;
   the NodesBusy verdict says so until their pods leave.
6. Failures: a node not Ready within provisioningTimeoutSeconds of its creation, or requested
   nodes that never registered within it, count as failed capacity: not coming, reported once
   (ProvisioningFailed), and failed Node objects are released at once (they host nothing).

Packing is an idealization of the scheduler: it assumes replicas are placed compactly. The
scheduler may fragment nodes; then fewer replicas fit than planned and the extra pods wait
Pending until the next tick asks for more nodes. Nodes are never released on that account,
because only empty nodes are released.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.planner.demand import InferencePoolDemand
from fleetscale.planner.types import CapacityLimit, ConditionVerdict

# Reasons (CamelCase; reused as condition reason, Event reason and log field).
CAPACITY_AVAILABLE = "CapacityAvailable"
MAX_NODES = "MaxNodes"
NODES_PROVISIONING = "NodesProvisioning"
PROVISIONING_FAILED = "ProvisioningFailed"
NODES_REQUESTED = "NodesRequested"
NODES_RELEASED = "NodesReleased"
HOLDING = "Holding"
WAITING_FOR_EMPTY_NODES = "WaitingForEmptyNodes"
NODES_BUSY = "NodesBusy"
BUSY_NODES_WITHIN_MAX = "BusyNodesWithinMax"

# How many node names a message lists before it only counts the rest.
NAMES_IN_MESSAGES = 10

# Until a node of the pool has been seen going from created to Ready, assume this long.
DEFAULT_PROVISIONING_SECONDS = 180.0


@dataclass(frozen=True)
class NodeView:
    """One Node of the pool as observed (labels matched)."""

    name: str
    ready: bool
    created_at: float  # metadata.creationTimestamp, epoch seconds
    accelerators_allocatable: int
    accelerators_in_use: int  # requested by scheduled, non-terminated pods (placeholders excluded)
    workload_pods: int = 0  # non-DaemonSet, non-placeholder pods scheduled on it
    ready_since: float | None = None  # lastTransitionTime of its Ready condition, when Ready

    @property
    def empty(self) -> bool:
        return self.workload_pods == 0 and self.accelerators_in_use == 0


@dataclass(frozen=True)
class CapacityObservation:
    """Everything observed about one AcceleratorPool at one tick."""

    nodes: Sequence[NodeView]
    requested_nodes: int  # the provider's current target size (includes unregistered nodes)


@dataclass(frozen=True)
class CapacityState:
    """The capacity planner's memory, persisted in the AcceleratorPool status."""

    empty_since: Mapping[str, float] = field(default_factory=dict)  # Ready, empty node -> since
    failed_nodes: frozenset[str] = frozenset()  # failed Node names already reported
    scale_up_requested_at: float | None = None  # when the requested size last grew
    last_scale_time: float | None = None
    # Nodes released and not gone yet, and when: a terminated node lingers as a Node object for
    # a while; it is neither capacity nor a candidate again, and does not count toward the size.
    # A Node of the same name created after that time is a new node (names get reused).
    releasing: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class InferencePoolAllocation:
    """Demand, grant and cap of one InferencePool."""

    namespace: str
    name: str
    priority: int
    accelerators_per_replica: int
    desired_replicas: int
    granted_replicas: int  # held once provisioning finishes (within nodes.max)
    limit: CapacityLimit  # replicas it may run now, and why

    @property
    def accelerators(self) -> int:
        return self.granted_replicas * self.accelerators_per_replica


@dataclass(frozen=True)
class CapacityPlan:
    """The decision for one AcceleratorPool: plain commands for the provider, plus reasons."""

    current_nodes: int  # the size before this tick: the provider's, or the nodes that exist
    desired_nodes: int  # the provider's target size after this tick
    release_nodes: tuple[str, ...]  # empty nodes to release, by name (the only way to shrink)
    allocations: tuple[InferencePoolAllocation, ...]  # priority order
    ready_nodes: int
    provisioning_nodes: int  # expected and not Ready (registered or not)
    failed_nodes: tuple[str, ...]  # failed Node objects (all, this tick)
    unregistered_failed: int  # requested nodes that never registered in time
    newly_failed: tuple[str, ...]  # failed Node objects not reported before
    needed_nodes: int  # nodes the whole demand would take, before nodes.min/max
    reason: str  # NodesRequested, NodesReleased, Holding, WaitingForEmptyNodes
    message: str
    scaling_limited: ConditionVerdict
    ready: ConditionVerdict
    seconds_until_more: float | None
    nodes_busy: ConditionVerdict  # True while more nodes host pods than nodes.max: all kept

    @property
    def limits(self) -> dict[tuple[str, str], CapacityLimit]:
        """The cap of each InferencePool, by (namespace, name)."""
        return {(a.namespace, a.name): a.limit for a in self.allocations}

    def limit_for(self, namespace: str, name: str) -> CapacityLimit | None:
        return self.limits.get((namespace, name))


def replicas_per_node(accelerators_per_replica: int, accelerators_per_node: int) -> float:
    """How many replicas one node holds (a fraction when a replica spans several nodes)."""
    if accelerators_per_replica <= 0:
        return math.inf
    if accelerators_per_replica <= accelerators_per_node:
        return float(accelerators_per_node // accelerators_per_replica)
    return 1.0 / math.ceil(accelerators_per_replica / accelerators_per_node)


class _Bins:
    """Nodes being filled first-fit: the free accelerators of each, in opening order."""

    def __init__(self, accelerators_per_node: int, limit: int | None) -> None:
        self.size = accelerators_per_node
        self.limit = limit  # most nodes that may be opened; None: unbounded
        self.free: list[int] = []

    @property
    def count(self) -> int:
        return len(self.free)

    def place(self, accelerators: int) -> bool:
        """Place one replica; False (and nothing changed) when it does not fit."""
        if accelerators <= 0:
            return True
        if accelerators > self.size:
            whole = math.ceil(accelerators / self.size)
            if self.limit is not None and self.count + whole > self.limit:
                return False
            remainder = whole * self.size - accelerators
            self.free.extend([0] * (whole - 1) + [remainder])
            return True
        for index, free in enumerate(self.free):
            if free >= accelerators:
                self.free[index] = free - accelerators
                return True
        if self.limit is not None and self.count >= self.limit:
            return False
        self.free.append(self.size - accelerators)
        return True

    def place_many(self, accelerators: int, replicas: int) -> int:
        """Place up to ``replicas`` replicas; how many fit."""
        if accelerators <= 0:
            return replicas
        placed = 0
        while placed < replicas and self.place(accelerators):
            placed += 1
        return placed


def nodes_needed(demands: Sequence[InferencePoolDemand], accelerators_per_node: int) -> int:
    """Nodes that hold every pool's desired replicas, packed first-fit decreasing."""
    bins = _Bins(accelerators_per_node, limit=None)
    for demand in sorted(demands, key=lambda d: -d.accelerators_per_replica):
        bins.place_many(demand.accelerators_per_replica, demand.planned_replicas)
    return bins.count


def _priority_order(demands: Sequence[InferencePoolDemand]) -> list[InferencePoolDemand]:
    return sorted(demands, key=lambda d: (-d.priority, d.namespace, d.name))


def _held_below_lower_bounds(
    demands: Sequence[InferencePoolDemand], at_node_limit: bool
) -> dict[tuple[str, str], int]:
    """What each pool may plan for: at nodes.max, a pool of lower priority than one whose
    demand is only a lower bound is held at its current replicas.

    The higher-priority pool's ask grows round by round while it sheds; without the hold a
    lower-priority pool would take the room it asks for next round, and running replicas are
    never preempted. Below nodes.max every pool gets nodes for its demand anyway.
    """
    wanted = {d.key: d.planned_replicas for d in demands}
    if not at_node_limit:
        return wanted
    bounding_priority: int | None = None
    for demand in _priority_order(demands):
        if bounding_priority is not None and demand.priority < bounding_priority:
            wanted[demand.key] = min(demand.planned_replicas, demand.current_replicas)
        if demand.demand_is_lower_bound and bounding_priority is None:
            bounding_priority = demand.priority
    return wanted


def _grant(
    demands: Sequence[InferencePoolDemand],
    accelerators_per_node: int,
    node_limit: int,
    keep: Mapping[tuple[str, str], int] | None = None,
    wanted: Mapping[tuple[str, str], int] | None = None,
) -> dict[tuple[str, str], int]:
    """Replicas each pool gets within ``node_limit`` nodes, higher priority first, each up to
    ``wanted[key]`` (default: its planned replicas).

    With ``keep``, those replicas are placed first for every pool (running replicas keep their
    place), then each pool grows toward what it wants in priority order.
    """
    bins = _Bins(accelerators_per_node, limit=node_limit)
    granted: dict[tuple[str, str], int] = {d.key: 0 for d in demands}
    ordered = _priority_order(demands)
    if keep is not None:
        for demand in ordered:
            granted[demand.key] = bins.place_many(
                demand.accelerators_per_replica, keep.get(demand.key, 0)
            )
    for demand in ordered:
        goal = demand.planned_replicas if wanted is None else wanted[demand.key]
        missing = goal - granted[demand.key]
        if missing > 0:
            granted[demand.key] += bins.place_many(demand.accelerators_per_replica, missing)
    return granted


def _provisioning_estimate(nodes: Sequence[NodeView]) -> float:
    """Median seconds from creation to Ready over the pool's Ready nodes (learned, stateless)."""
    samples = [
        node.ready_since - node.created_at
        for node in nodes
        if node.ready and node.ready_since is not None and node.ready_since >= node.created_at
    ]
    return statistics.median(samples) if samples else DEFAULT_PROVISIONING_SECONDS


def plan_capacity(
    spec: AcceleratorPoolSpec,
    demands: Sequence[InferencePoolDemand],
    observation: CapacityObservation,
    state: CapacityState,
    now: float,
) -> tuple[CapacityPlan, CapacityState]:
    """Decide the pool's node count, the nodes to release and each InferencePool's cap."""
    per_node = spec.accelerators_per_node
    timeout = spec.provisioning_timeout_seconds

    def lingering(node: NodeView) -> bool:
        released_at = state.releasing.get(node.name)
        return released_at is not None and node.created_at <= released_at

    nodes = sorted((n for n in observation.nodes if not lingering(n)), key=lambda n: n.name)
    still_releasing = {n.name: state.releasing[n.name] for n in observation.nodes if lingering(n)}

    ready = [n for n in nodes if n.ready]
    not_ready = [n for n in nodes if not n.ready]
    provisioning = [n for n in not_ready if now - n.created_at < timeout]
    failed = [n for n in not_ready if now - n.created_at >= timeout]
    unregistered = max(0, observation.requested_nodes - len(nodes))
    requested_at = state.scale_up_requested_at
    if unregistered and requested_at is None:
        requested_at = now  # first seen (e.g. sized by someone else): the timeout starts now
    unregistered_timed_out = requested_at is not None and now - requested_at >= timeout
    unregistered_coming = 0 if unregistered_timed_out else unregistered
    unregistered_failed = unregistered if unregistered_timed_out else 0
    coming = len(provisioning) + unregistered_coming
    healthy = len(ready) + coming

    # Demand and the node count it takes.
    needed = nodes_needed(demands, per_node)
    want = min(max(needed, spec.nodes.min), spec.nodes.max)
    # Failed nodes that still exist occupy the group (and nodes.max) until released; failed
    # Node objects are released now, unregistered ones cannot be named and stay in the size.
    budget = max(0, spec.nodes.max - unregistered_failed)
    want = min(want, budget)

    # Which empty Ready nodes may go.
    empty_since = {
        n.name: state.empty_since.get(n.name, now) for n in ready if n.empty
    }  # a node first seen empty starts its clock now
    releasable = sorted(
        (since, name)
        for name, since in empty_since.items()
        if now - since >= spec.scale_down_delay_seconds
    )
    surplus = healthy - want
    release = [name for _, name in releasable[: max(0, surplus)]]
    # Never release into a node count below what is needed (a busy node is never a candidate).
    release_failed = [n.name for n in failed if n.empty]

    # The provider's size: shrink by exactly the nodes released (named, empty), or grow to
    # `want` healthy nodes within nodes.max. Never lower: what is not released stays, so busy
    # nodes keep their place even when nodes.max was lowered under them (NodesBusy).
    # Nodes still registered beyond the provider's size (being deleted) are counted as present.
    current_size = max(observation.requested_nodes, len(nodes))
    after_release = current_size - len(release_failed) - len(release)
    grow = max(0, want - healthy)
    desired = max(after_release, min(after_release + grow, spec.nodes.max))

    # Grants within the nodes we will have; caps within the Ready nodes.
    granted = _grant(
        demands, per_node, want, wanted=_held_below_lower_bounds(demands, want >= spec.nodes.max)
    )
    keep = {d.key: d.current_replicas for d in demands}
    runnable = _grant(demands, per_node, len(ready), keep=keep, wanted=granted)

    estimate = _provisioning_estimate(nodes)
    seconds_until_more = _seconds_until_more(
        provisioning, unregistered_coming, requested_at, desired > current_size, estimate, now
    )

    allocations = tuple(
        _allocation(
            d,
            granted[d.key],
            runnable[d.key],
            seconds_until_more,
            failed_any=bool(failed) or unregistered_failed > 0,
            budget_reduced=budget < spec.nodes.max,
            per_node=per_node,
            max_nodes=spec.nodes.max,
        )
        for d in _priority_order(demands)
    )

    newly_failed = tuple(n.name for n in failed if n.name not in state.failed_nodes)
    reason, message = _summary(
        current_size, desired, release, release_failed, want, healthy, surplus, needed
    )
    scaling_limited = _scaling_limited(allocations)
    ready_verdict = _ready(ready, failed, unregistered_failed, timeout)

    # What was observed; the node request and the releases are added by ``commit`` once the
    # provider has taken them.
    new_state = CapacityState(
        empty_since=empty_since,
        failed_nodes=frozenset(n.name for n in failed),
        scale_up_requested_at=requested_at if unregistered else None,
        last_scale_time=state.last_scale_time,
        releasing=still_releasing,
    )
    plan = CapacityPlan(
        current_nodes=current_size,
        desired_nodes=desired,
        release_nodes=tuple(release_failed + release),
        allocations=allocations,
        ready_nodes=len(ready),
        provisioning_nodes=coming + max(0, desired - current_size),
        failed_nodes=tuple(n.name for n in failed),
        unregistered_failed=unregistered_failed,
        newly_failed=newly_failed,
        needed_nodes=needed,
        reason=reason,
        message=message,
        scaling_limited=scaling_limited,
        ready=ready_verdict,
        seconds_until_more=seconds_until_more,
        nodes_busy=_nodes_busy([n.name for n in nodes if not n.empty], spec.nodes.max),
    )
    return plan, new_state


def _seconds_until_more(
    provisioning: Sequence[NodeView],
    unregistered: int,
    requested_at: float | None,
    requesting_now: bool,
    estimate: float,
    now: float,
) -> float | None:
    """Expected seconds until the next provisioning node is Ready, if any is coming."""
    starts = [n.created_at for n in provisioning]
    if unregistered and requested_at is not None:
        starts.append(requested_at)
    if requesting_now:
        starts.append(now)
    if not starts:
        return None
    return max(0.0, min(start + estimate - now for start in starts))


def _allocation(
    demand: InferencePoolDemand,
    granted: int,
    runnable: int,
    seconds_until_more: float | None,
    failed_any: bool,
    budget_reduced: bool,
    per_node: int,
    max_nodes: int,
) -> InferencePoolAllocation:
    r = demand.accelerators_per_replica
    who = f"{demand.namespace}/{demand.name}"
    if runnable < granted:
        if seconds_until_more is not None:
            reason = NODES_PROVISIONING
            message = (
                f"{who} may run {runnable} of {demand.desired_replicas} replicas on Ready nodes "
                f"until provisioning nodes are Ready"
            )
        elif failed_any:
            reason = PROVISIONING_FAILED
            message = (
                f"{who} may run {runnable} of {demand.desired_replicas} replicas: requested "
                f"nodes did not become Ready in time"
            )
        else:
            reason = MAX_NODES
            message = (
                f"{who} may run {runnable} of {demand.desired_replicas} replicas: the rest of "
                f"its grant is held by running replicas of other pools until they scale down"
            )
        cap = runnable
    elif granted < demand.planned_replicas and budget_reduced:
        reason = PROVISIONING_FAILED
        message = (
            f"{who} gets {granted} of {demand.desired_replicas} replicas: requested nodes that "
            f"never became Ready still hold part of nodes.max={max_nodes}"
        )
        cap = granted
    elif granted < demand.planned_replicas:
        reason = MAX_NODES
        message = (
            f"{who} gets {granted} of {demand.desired_replicas} replicas ({r} accelerators each): "
            f"the pool is at nodes.max={max_nodes} x {per_node} accelerators, shared by priority "
            f"(this pool: {demand.priority})"
        )
        cap = granted
    else:
        reason = CAPACITY_AVAILABLE
        message = f"{who}: all {demand.desired_replicas} desired replicas fit"
        cap = granted
    limit = CapacityLimit(
        max_replicas=cap,
        reason=reason,
        message=message,
        seconds_until_more=seconds_until_more if reason == NODES_PROVISIONING else None,
    )
    return InferencePoolAllocation(
        namespace=demand.namespace,
        name=demand.name,
        priority=demand.priority,
        accelerators_per_replica=r,
        desired_replicas=demand.desired_replicas,
        granted_replicas=granted,
        limit=limit,
    )


def _summary(
    current: int,
    desired: int,
    release: Sequence[str],
    release_failed: Sequence[str],
    want: int,
    healthy: int,
    surplus: int,
    needed: int,
) -> tuple[str, str]:
    if desired > current - len(release_failed):
        return (
            NODES_REQUESTED,
            f"requested {desired - (current - len(release_failed))} node(s): demand needs "
            f"{needed}, want {want}, have {healthy} Ready or coming",
        )
    if release or release_failed:
        names = ", ".join([*release_failed, *release])
        return NODES_RELEASED, f"releasing {len(release) + len(release_failed)} node(s): {names}"
    if surplus > 0:
        return (
            WAITING_FOR_EMPTY_NODES,
            f"{surplus} node(s) more than demand needs ({want}); waiting until nodes are empty "
            f"for scaleDownDelaySeconds",
        )
    return HOLDING, f"{healthy} node(s) Ready or coming hold the demand ({needed} needed)"


def _scaling_limited(allocations: Sequence[InferencePoolAllocation]) -> ConditionVerdict:
    limited = [a for a in allocations if a.limit.reason != CAPACITY_AVAILABLE]
    if not limited:
        return ConditionVerdict(False, CAPACITY_AVAILABLE, "every InferencePool's demand fits")
    # The most binding reason: MaxNodes beats ProvisioningFailed beats NodesProvisioning.
    rank = {MAX_NODES: 0, PROVISIONING_FAILED: 1, NODES_PROVISIONING: 2}
    first = min(limited, key=lambda a: rank.get(a.limit.reason, 3))
    return ConditionVerdict(True, first.limit.reason, "; ".join(a.limit.message for a in limited))


def _nodes_busy(busy: Sequence[str], max_nodes: int) -> ConditionVerdict:
    """True while more nodes host workload pods than nodes.max: none of them is released."""
    if len(busy) <= max_nodes:
        return ConditionVerdict(
            False,
            BUSY_NODES_WITHIN_MAX,
            f"{len(busy)} node(s) host workload pods, within nodes.max={max_nodes}",
        )
    return ConditionVerdict(
        True,
        NODES_BUSY,
        f"{len(busy)} node(s) host workload pods, {len(busy) - max_nodes} more than "
        f"nodes.max={max_nodes}: busy nodes are never released, so the pool stays above "
        f"nodes.max until their pods leave ({_names(busy)})",
    )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_IN_MESSAGES])
    rest = len(names) - NAMES_IN_MESSAGES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _ready(
    ready: Sequence[NodeView],
    failed: Sequence[NodeView],
    unregistered_failed: int,
    timeout: int,
) -> ConditionVerdict:
    if failed or unregistered_failed:
        names = ", ".join(n.name for n in failed) or f"{unregistered_failed} unregistered"
        return ConditionVerdict(
            False,
            PROVISIONING_FAILED,
            f"node(s) not Ready within provisioningTimeoutSeconds={timeout}: {names}",
        )
    return ConditionVerdict(True, "NodesReady", f"{len(ready)} node(s) Ready")
