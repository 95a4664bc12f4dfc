"""The fleet simulator: requests, replicas, GPU nodes and a gateway, advanced in 1 s steps.

Role: replay a ``Workload`` through a model of a GPU fleet driven by one ``Policy`` and return
per-request outcomes, a timeline and the bill. Deterministic for a seed. Callers:
``fleetscale.sim.runner`` and the tests.

How time advances (the reason it runs an hour of a 64-replica fleet in seconds): control events
(node and replica readiness, scrapes, policy decisions, node autoscaling) happen on whole
seconds; requests arrive at their exact times. Each replica is a processor-sharing server: a
per-replica counter of decoded tokens per sequence advances at the batch's per-sequence speed,
held constant within a second, and a request finishes when the counter passes its own finish
mark (heap per replica). Completion times inside a second are interpolated, and a freed slot
takes the head of the gateway queue at that instant, so queue waits are not rounded to seconds.
Each replica prefills its admitted requests one after another (compute-bound); requests
admitted but not yet prefilled count as waiting in the exported queue depth, as in vLLM.

Gateway: requests go to a Ready replica with a free slot (the less loaded of two random picks),
else wait in one FIFO queue until a slot frees or the client timeout passes. While the shed
flag is up, a request arriving when the queue is over the threshold per Ready replica gets 429
at once. Replicas: Pending until accelerators are free on a Ready node (packed onto the fullest
node), then loading the model, then Ready. Removed replicas stop taking requests and leave when
their last request finishes. Nodes are billed from request to release.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from fleetscale.sim.model import SimConfig
from fleetscale.sim.policy import Action, FleetView, MetricsSample, NodeInfo, Policy
from fleetscale.sim.workload import Workload

PENDING: Final = 0
LOADING: Final = 1
READY: Final = 2
DRAINING: Final = 3


class _Node:
    __slots__ = ("empty_since", "free", "id", "ready_at", "released_at", "requested_at")

    def __init__(self, node_id: int, requested_at: float, ready_at: float, free: int) -> None:
        self.id = node_id
        self.requested_at = requested_at
        self.ready_at = ready_at
        self.released_at: float | None = None
        self.free = free
        self.empty_since: float | None = ready_at


class _Replica:
    __slots__ = (
        "busy_mark",
        "busy_seconds",
        "heap",
        "id",
        "node",
        "prefill_free_at",
        "prefill_starts",
        "ready_at",
        "state",
        "tokens",
    )

    def __init__(self, replica_id: int) -> None:
        self.id = replica_id
        self.state = PENDING
        self.node: _Node | None = None
        self.ready_at = math.inf
        self.tokens = 0.0  # decoded tokens per sequence since start (processor-sharing clock)
        self.heap: list[tuple[float, int]] = []  # (finish mark, request index)
        self.busy_seconds = 0.0
        self.busy_mark = 0.0  # busy_seconds at the last scrape
        self.prefill_free_at = 0.0  # when the replica's prefill queue empties
        self.prefill_starts: deque[float] = deque()  # of admitted requests, nondecreasing


@dataclass
class Timeline:
    """The fleet every ``record_every_seconds``, for plots and the JSON report."""

    time_seconds: list[float] = field(default_factory=list)
    arrivals_per_second: list[float] = field(default_factory=list)
    desired_replicas: list[int] = field(default_factory=list)
    ready_replicas: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)  # billed: requested and not released
    nodes_ready: list[int] = field(default_factory=list)
    queue_depth: list[int] = field(default_factory=list)
    shed: list[bool] = field(default_factory=list)


@dataclass
class Outcomes:
    """What happened to the requests."""

    total: int = 0
    served: int = 0
    met_ttft: int = 0
    shed: int = 0
    timed_out: int = 0
    queue_wait_seconds: list[float] = field(default_factory=list)  # of served requests
    shed_times: list[float] = field(default_factory=list)  # arrival times of 429s


@dataclass
class SimResult:
    policy: str
    workload: str
    duration_seconds: float
    outcomes: Outcomes
    timeline: Timeline
    gpu_hours: float
    scale_actions: int
    nodes_requested: int
    shed_seconds_while_unconstrained: float  # shed flag up with no provisioning and no cap
    wall_seconds: float = 0.0


class FleetSimulator:
    """One run of one workload under one policy."""

    def __init__(
        self,
        config: SimConfig,
        workload: Workload,
        policy: Policy,
        initial_replicas: int,
        extra_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.workload = workload
        self.policy = policy
        self.model = config.model
        self.rng = random.Random(config.seed)
        self.node_rng = random.Random(config.seed * 7919 + 1)
        self.now = 0.0
        self.replicas: list[_Replica] = []
        self.ready: list[_Replica] = []
        self.nodes: list[_Node] = []
        self.queue: deque[int] = deque()
        self.free_slots = 0
        self.desired = 0
        self.shed_active = False
        self.shed_queue_per_replica = 0.0
        self.node_target: int | None = None
        self.releases_managed = False
        self.samples: list[MetricsSample] = []
        self.outcomes = Outcomes(total=len(workload))
        self.timeline = Timeline()
        self.scale_actions = 0
        self.shed_unconstrained_seconds = 0.0
        self._next_replica_id = 0
        self._arrivals_in_record = 0
        end = workload.duration_seconds
        self.end_seconds = math.ceil(
            end + (config.client_timeout_seconds if extra_seconds is None else extra_seconds)
        )
        self._start(initial_replicas)

    # -- construction ------------------------------------------------------------------------

    def _start(self, initial_replicas: int) -> None:
        """A fleet already serving: nodes Ready and replicas Ready at time zero."""
        per_node = self.config.replicas_per_node
        initial_replicas = max(self.config.min_replicas, initial_replicas)
        for _ in range(math.ceil(initial_replicas / per_node)):
            self._add_node(ready_at=0.0)
        self._set_desired(initial_replicas, count_action=False)
        for replica in self.replicas:
            self._place(replica)
            replica.state = READY
            replica.ready_at = 0.0
            self._make_ready(replica)

    # -- nodes -------------------------------------------------------------------------------

    def _add_node(self, ready_at: float | None = None) -> _Node:
        if ready_at is None:
            ready_at = self.now + self.config.nodes.draw_provisioning_seconds(self.node_rng)
        node = _Node(len(self.nodes), self.now, ready_at, self.config.nodes.accelerators_per_node)
        self.nodes.append(node)
        return node

    def _live_nodes(self) -> list[_Node]:
        return [n for n in self.nodes if n.released_at is None]

    def _place(self, replica: _Replica) -> bool:
        need = self.model.accelerators_per_replica
        best: _Node | None = None
        for node in self.nodes:
            usable = node.released_at is None and node.ready_at <= self.now and node.free >= need
            # Pack onto the fullest node, so that nodes empty out and can be released.
            if usable and (best is None or node.free < best.free):
                best = node
        if best is None:
            return False
        best.free -= need
        best.empty_since = None
        replica.node = best
        replica.state = LOADING
        replica.ready_at = self.now + self.model.model_load_seconds
        return True

    def _free_accelerators(self, replica: _Replica) -> None:
        node = replica.node
        if node is None:
            return
        node.free += self.model.accelerators_per_replica
        if node.free == self.config.nodes.accelerators_per_node:
            node.empty_since = self.now
        replica.node = None

    def _release_empty_nodes(self, keep: int, min_empty_seconds: float) -> None:
        """Release empty Ready nodes idle for ``min_empty_seconds``, keeping ``keep`` live."""
        live = self._live_nodes()
        surplus = len(live) - keep
        for node in sorted(live, key=lambda n: n.id, reverse=True):
            if surplus <= 0:
                return
            if (
                node.ready_at <= self.now
                and node.empty_since is not None
                and self.now - node.empty_since >= min_empty_seconds
            ):
                node.released_at = self.now
                surplus -= 1

    def _autoscale_nodes(self) -> None:
        per_node = self.config.replicas_per_node
        max_nodes = self.config.nodes.max_nodes
        live = self._live_nodes()
        pending = sum(1 for r in self.replicas if r.state == PENDING)
        provisioning_slots = sum(
            n.free // self.model.accelerators_per_replica for n in live if n.ready_at > self.now
        )
        if self.policy.node_mode == "ahead" and self.node_target is not None:
            if self.releases_managed:
                wanted = min(self.node_target, max_nodes)
            else:
                active = sum(1 for r in self.replicas if r.state != DRAINING)
                wanted = min(max(self.node_target, math.ceil(active / per_node)), max_nodes)
                self._release_empty_nodes(
                    keep=wanted, min_empty_seconds=self.policy.node_scale_down_delay_seconds
                )
            for _ in range(wanted - len(self._live_nodes())):
                self._add_node()
            return
        if int(self.now) % self.config.cluster_autoscaler_scan_seconds != 0:
            return
        # Cluster Autoscaler: nodes only for Pending pods that will not fit on nodes on the way.
        missing = math.ceil(max(0, pending - provisioning_slots) / per_node)
        for _ in range(min(missing, max_nodes - len(live))):
            self._add_node()
        self._release_empty_nodes(
            keep=0, min_empty_seconds=self.config.cluster_autoscaler_unneeded_seconds
        )

    # -- replicas ----------------------------------------------------------------------------

    def _make_ready(self, replica: _Replica) -> None:
        self.ready.append(replica)
        self.free_slots += self.model.max_concurrency - len(replica.heap)
        self._fill_from_queue(replica, self.now, self.model.decode_tokens_per_second(0))

    def _set_desired(self, desired: int, count_action: bool = True) -> None:
        desired = max(self.config.min_replicas, min(self.config.max_replicas, desired))
        if desired == self.desired:
            return
        if count_action:
            self.scale_actions += 1
        self.desired = desired
        active = [r for r in self.replicas if r.state != DRAINING]
        if desired > len(active):
            for _ in range(desired - len(active)):
                replica = _Replica(self._next_replica_id)
                self._next_replica_id += 1
                self.replicas.append(replica)
                self._place(replica)
            return
        # Scale down like a ReplicaSet: unscheduled first, then not Ready; among Ready ones,
        # those on the emptiest nodes (as pod-deletion-cost or a consolidating node autoscaler
        # would arrange, so whole nodes free up), then the least busy. Same for every policy.
        victims = sorted(
            active,
            key=lambda r: (
                r.state == READY,
                r.state == LOADING and -r.ready_at,
                -(r.node.free if r.node else 0),
                len(r.heap),
            ),
        )[: len(active) - desired]
        for replica in victims:
            if replica.state == READY:
                self.ready.remove(replica)
                self.free_slots -= self.model.max_concurrency - len(replica.heap)
                replica.state = DRAINING
                if not replica.heap:
                    self._retire(replica)
            else:
                self._retire(replica)

    def _retire(self, replica: _Replica) -> None:
        replica.state = DRAINING
        self._free_accelerators(replica)
        self.replicas.remove(replica)

    # -- requests ----------------------------------------------------------------------------

    def _admit(self, replica: _Replica, index: int, at: float, tick: float, rate: float) -> None:
        """Start request ``index`` on ``replica`` at time ``at`` inside the step from ``tick``."""
        outcomes = self.outcomes
        arrival = self.workload.arrival_seconds[index]
        # Prefill is compute-bound: one replica prefills its admitted requests one after the
        # other at its prefill rate; the first token comes when the request's prefill ends.
        prefill_start = at if replica.prefill_free_at < at else replica.prefill_free_at
        first_token = prefill_start + (
            self.workload.input_tokens[index] / self.model.prefill_tokens_per_second
        )
        replica.prefill_free_at = first_token
        replica.prefill_starts.append(prefill_start)
        outcomes.served += 1
        outcomes.queue_wait_seconds.append(at - arrival)
        if first_token - arrival <= self.config.ttft_target_seconds:
            outcomes.met_ttft += 1
        mark = replica.tokens + (first_token - tick) * rate + self.workload.output_tokens[index]
        heapq.heappush(replica.heap, (mark, index))
        self.free_slots -= 1

    def _fill_from_queue(self, replica: _Replica, at: float, rate: float) -> None:
        queue = self.queue
        arrivals = self.workload.arrival_seconds
        timeout = self.config.client_timeout_seconds
        capacity = self.model.max_concurrency
        while queue and len(replica.heap) < capacity:
            index = queue.popleft()
            if arrivals[index] + timeout <= at:
                self.outcomes.timed_out += 1
                continue
            self._admit(replica, index, max(at, arrivals[index]), math.floor(at), rate)

    def _route(self, index: int, at: float, tick: float, rates: dict[int, float]) -> None:
        ready = self.ready
        capacity = self.model.max_concurrency
        if self.queue or self.free_slots <= 0 or not ready:
            if self.shed_active and len(self.queue) >= self._shed_queue_limit():
                self.outcomes.shed += 1
                self.outcomes.shed_times.append(at)
                return
            self.queue.append(index)
            return
        count = len(ready)
        first = ready[int(self.rng.random() * count)]
        second = ready[int(self.rng.random() * count)]
        pick = first if len(first.heap) <= len(second.heap) else second
        if len(pick.heap) >= capacity:
            pick = min(ready, key=lambda r: len(r.heap))
        self._admit(pick, index, at, tick, rates[pick.id])

    def _shed_queue_limit(self) -> float:
        return self.shed_queue_per_replica * max(1, len(self.ready))

    # -- observation -------------------------------------------------------------------------

    def _scrape(self) -> None:
        interval = self.config.scrape_interval_seconds
        utilizations = []
        running = 0
        ready_running = 0
        prefill_waiting = 0
        for replica in self.replicas:
            # Admitted but not yet prefilled: vLLM still counts these as waiting.
            starts = replica.prefill_starts
            while starts and starts[0] <= self.now:
                starts.popleft()
            prefill_waiting += len(starts)
            in_batch = len(replica.heap) - len(starts)
            running += in_batch
            if replica.state == READY:
                ready_running += in_batch
                window = min(interval, self.now - replica.ready_at)
                if window > 0:
                    busy = (replica.busy_seconds - replica.busy_mark) / window
                    utilizations.append(min(1.0, busy))
            replica.busy_mark = replica.busy_seconds
        self.samples.append(
            MetricsSample(
                sampled_at=self.now,
                queue_depth=float(len(self.queue) + prefill_waiting),
                running=float(running),
                gpu_utilization_percent=(
                    100.0 * sum(utilizations) / len(utilizations) if utilizations else None
                ),
                kv_cache_usage_percent=(
                    100.0 * ready_running / (len(self.ready) * self.model.max_concurrency)
                    if self.ready
                    else None
                ),
                ready_replicas=len(self.ready),
            )
        )

    def _visible_sample(self) -> MetricsSample | None:
        horizon = self.now - self.config.scrape_interval_seconds
        for sample in reversed(self.samples):
            if sample.sampled_at <= horizon:
                return sample
        return None

    def view(self) -> FleetView:
        live = self._live_nodes()
        provisioning = [n.ready_at - self.now for n in live if n.ready_at > self.now]
        states = [r.state for r in self.replicas]
        running = sum(len(r.heap) for r in self.replicas)
        return FleetView(
            now=self.now,
            desired_replicas=self.desired,
            ready_replicas=len(self.ready),
            starting_replicas=states.count(LOADING),
            pending_replicas=states.count(PENDING),
            sample=self._visible_sample(),
            concurrency_now=float(running + len(self.queue)),
            nodes_ready=len(live) - len(provisioning),
            nodes_provisioning=len(provisioning),
            max_nodes=self.config.nodes.max_nodes,
            replicas_per_node=self.config.replicas_per_node,
            seconds_until_next_node=min(provisioning) if provisioning else None,
            replica_startup_seconds=self.model.model_load_seconds,
            nodes=tuple(
                NodeInfo(
                    node_id=n.id,
                    requested_at=n.requested_at,
                    ready_at=n.ready_at if n.ready_at <= self.now else None,
                    accelerators=self.config.nodes.accelerators_per_node,
                    accelerators_in_use=self.config.nodes.accelerators_per_node - n.free,
                    replicas=(self.config.nodes.accelerators_per_node - n.free)
                    // self.model.accelerators_per_replica,
                )
                for n in live
            ),
        )

    def _apply(self, action: Action) -> None:
        self.shed_active = action.shed
        self.shed_queue_per_replica = action.shed_queue_per_replica
        self.node_target = action.node_target
        if action.release_nodes is not None:
            self.releases_managed = True
            for node_id in action.release_nodes:
                node = self.nodes[node_id]
                empty = node.free == self.config.nodes.accelerators_per_node
                if node.released_at is None and empty:
                    node.released_at = self.now
        self._set_desired(action.desired_replicas)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> SimResult:
        config = self.config
        model = self.model
        arrivals = self.workload.arrival_seconds
        timeout = config.client_timeout_seconds
        scrape_every = config.scrape_interval_seconds
        record_every = config.record_every_seconds
        decide_every = max(1, int(self.policy.interval_seconds))
        next_arrival = 0
        total = len(arrivals)
        for step in range(self.end_seconds):
            tick = float(step)
            self.now = tick
            # 1. Nodes that became Ready take Pending replicas; loaded replicas become Ready.
            for replica in self.replicas:
                if replica.state == PENDING:
                    self._place(replica)
            for replica in self.replicas:
                if replica.state == LOADING and replica.ready_at <= tick:
                    replica.state = READY
                    self._make_ready(replica)
            # 2. Monitoring and control.
            if step % scrape_every == 0:
                self._scrape()
            if step % decide_every == 0:
                self._apply(self.policy.decide(self.view()))
            self._autoscale_nodes()
            if self.shed_active and not self._constrained():
                self.shed_unconstrained_seconds += 1
            # 3. Arrivals of this second, at their exact times.
            rates = {r.id: model.decode_tokens_per_second(len(r.heap)) for r in self.replicas}
            busy_before = {r.id for r in self.replicas if r.heap}
            limit = tick + 1.0
            while next_arrival < total and arrivals[next_arrival] < limit:
                self._route(next_arrival, arrivals[next_arrival], tick, rates)
                next_arrival += 1
                self._arrivals_in_record += 1
            # 4. Serve: advance every replica's processor-sharing clock by one second.
            for replica in list(self.replicas):
                heap = replica.heap
                if not heap:
                    continue
                replica.busy_seconds += 1.0 if replica.id in busy_before else 0.5
                rate = rates[replica.id]
                start_tokens = replica.tokens
                replica.tokens = end_tokens = start_tokens + rate
                takes = replica.state == READY
                while heap and heap[0][0] <= end_tokens:
                    mark, _ = heapq.heappop(heap)
                    at = tick + (mark - start_tokens) / rate
                    if not takes:
                        continue
                    self.free_slots += 1
                    while self.queue:
                        index = self.queue.popleft()
                        if arrivals[index] + timeout <= at:
                            self.outcomes.timed_out += 1
                            continue
                        self._admit(replica, index, max(at, arrivals[index]), tick, rate)
                        break
                if replica.state == DRAINING and not heap:
                    self._retire(replica)
            # 5. Clients that waited too long give up.
            queue = self.queue
            while queue and arrivals[queue[0]] + timeout <= limit:
                queue.popleft()
                self.outcomes.timed_out += 1
            if step % record_every == 0:
                self._record()
        # Requests still waiting at the end were never served in time.
        self.outcomes.timed_out += len(self.queue)
        self.queue.clear()
        return SimResult(
            policy=self.policy.name,
            workload=self.workload.name,
            duration_seconds=float(self.end_seconds),
            outcomes=self.outcomes,
            timeline=self.timeline,
            gpu_hours=self._gpu_hours(),
            scale_actions=self.scale_actions,
            nodes_requested=len(self.nodes),
            shed_seconds_while_unconstrained=self.shed_unconstrained_seconds,
        )

    def _constrained(self) -> bool:
        """Capacity is on its way or capped: the only times shedding is legitimate."""
        live = self._live_nodes()
        provisioning = any(n.ready_at > self.now for n in live)
        loading = any(r.state in (PENDING, LOADING) for r in self.replicas)
        capped = (
            self.desired >= self.config.max_replicas or len(live) >= self.config.nodes.max_nodes
        )
        return provisioning or loading or capped

    def _record(self) -> None:
        timeline = self.timeline
        live = self._live_nodes()
        timeline.time_seconds.append(self.now)
        span = self.config.record_every_seconds
        timeline.arrivals_per_second.append(self._arrivals_in_record / span)
        self._arrivals_in_record = 0
        timeline.desired_replicas.append(self.desired)
        timeline.ready_replicas.append(len(self.ready))
        timeline.nodes.append(len(live))
        timeline.nodes_ready.append(sum(1 for n in live if n.ready_at <= self.now))
        timeline.queue_depth.append(len(self.queue))
        timeline.shed.append(self.shed_active)

    def _gpu_hours(self) -> float:
        end = float(self.end_seconds)
        seconds = sum(
            (node.released_at if node.released_at is not None else end) - node.requested_at
            for node in self.nodes
        )
        return seconds * self.config.nodes.accelerators_per_node / 3600.0
