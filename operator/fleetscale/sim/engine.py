"""The fleet simulator: GPU nodes, vLLM pods behind a load balancer, monitoring and a policy.

Role: replay a ``Workload`` through a fleet of ``fleetscale.sim.replica.Replica`` servers
driven by one ``Policy`` and return per-request outcomes, a timeline and the bill.
Deterministic for a seed. Callers: ``fleetscale.sim.runner`` and the tests.

How time advances: control events (nodes and pods becoming Ready, scrapes, policy decisions,
node autoscaling) happen on whole seconds; requests arrive at their exact times. A pod's
server runs its own scheduler clock (see ``replica``): it is advanced to an arrival's time
when the load balancer looks at it or hands it a request, and every pod is advanced to the
end of each second, so scrapes see every pod as of that instant.

Routing: each Ready pod keeps its own queue (vLLM queues per server). The load balancer
picks a pod per request: round-robin (a plain Service), or least outstanding requests
(Envoy's LEAST_REQUEST: the less loaded of two random picks), which also stands in for an
inference-aware gateway. A pod that becomes Ready receives only new arrivals; requests queued
elsewhere stay where they are. Clients give up on a request without a first token after the
client timeout. While the shed flag is up, the gateway answers 429 at once (``SimConfig.gateway``):
to a request arriving when the pods' waiting requests exceed the threshold per Ready pod
("queue-cap"), to every request ("all", a gateway that reads only the flag), or to the share
the planner decided ("fraction"), lower-priority requests first: with ``s`` the share of
lower-priority requests, those are refused with probability ``min(1, f / s)`` and the others
with ``max(0, (f - s) / (1 - s))``. With no Ready pod, requests wait at the gateway for the
first one.

Pods: Pending until accelerators are free on a Ready node (packed onto the fullest node), then
loading the model (a lognormal draw), then Ready. Removed pods stop receiving requests and
leave when their last request finishes. Nodes: a provisioning attempt may fail (stock-out) and
is retried; nodes are billed from the start of the attempt that succeeded until release.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from fleetscale.sim.model import SimConfig
from fleetscale.sim.policy import (
    HISTORY_SECONDS,
    Action,
    FleetView,
    Histogram,
    MetricsSample,
    NodeInfo,
    Policy,
)
from fleetscale.sim.replica import (
    ITL_BUCKETS_SECONDS,
    NOT_YET,
    TTFT_BUCKETS_SECONDS,
    HistogramCounts,
    Replica,
    RequestBook,
)
from fleetscale.sim.workload import Workload

PENDING: Final = 0
LOADING: Final = 1
READY: Final = 2
DRAINING: Final = 3


class _Node:
    __slots__ = (
        "billed_from",
        "empty_since",
        "free",
        "id",
        "ready_at",
        "released_at",
        "requested_at",
    )

    def __init__(
        self, node_id: int, requested_at: float, billed_from: float, ready_at: float, free: int
    ) -> None:
        self.id = node_id
        self.requested_at = requested_at
        self.billed_from = billed_from  # the successful attempt's start
        self.ready_at = ready_at
        self.released_at: float | None = None
        self.free = free
        self.empty_since: float | None = ready_at


class _Pod:
    __slots__ = ("busy_mark", "id", "node", "ready_at", "server", "state")

    def __init__(self, pod_id: int) -> None:
        self.id = pod_id
        self.state = PENDING
        self.node: _Node | None = None
        self.ready_at = math.inf
        self.server: Replica | None = None
        self.busy_mark = 0.0  # the server's busy seconds at the last scrape


@dataclass
class Timeline:
    """The fleet every ``record_every_seconds``, for plots and the JSON report."""

    time_seconds: list[float] = field(default_factory=list)
    arrivals_per_second: list[float] = field(default_factory=list)
    desired_replicas: list[int] = field(default_factory=list)
    ready_replicas: list[int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)  # billed or provisioning, not released
    nodes_ready: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # at the pods, preempted included
    running: list[int] = field(default_factory=list)
    kv_cache_usage_percent: list[float] = field(default_factory=list)  # mean over Ready pods
    preemptions: list[int] = field(default_factory=list)  # cumulative
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
    ttft_seconds: list[float] = field(default_factory=list)  # of served requests
    shed_times: list[float] = field(default_factory=list)  # arrival times of 429s
    preemptions: int = 0
    low_priority_total: int = 0  # requests marked lower priority, and what became of them
    low_priority_shed: int = 0
    low_priority_served: int = 0


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
    # Requests answered 429 while nothing was provisioning, loading or capped.
    shed_requests_while_unconstrained: int = 0
    # Every change of the replica target: (time, replicas added or removed).
    scale_changes: list[tuple[float, int]] = field(default_factory=list)


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
        self.load_rng = random.Random(config.seed * 104729 + 3)
        self.book = RequestBook(
            workload.arrival_seconds,
            workload.input_tokens,
            workload.output_tokens,
            workload.prefix_hashes,
            workload.prefix_block_tokens,
        )
        self.book.timeout_seconds = config.client_timeout_seconds
        self.now = 0.0
        self.pods: list[_Pod] = []
        self.ready: list[_Pod] = []
        self.nodes: list[_Node] = []
        self.held: deque[int] = deque()  # at the gateway while no pod is Ready
        self.desired = 0
        self.shed_active = False
        self.shed_queue_per_replica = 0.0
        self.shed_fraction = 1.0
        self.shed_rng = random.Random(config.seed * 15485863 + 5)
        self.low_priority_shed = 0
        self.node_target: int | None = None
        self.releases_managed = False
        self.samples: list[MetricsSample] = []
        self.shed_count = 0
        self.arrived_count = 0
        self.shed_times: list[float] = []
        self.timeline = Timeline()
        self.scale_actions = 0
        self.scale_changes: list[tuple[float, int]] = []
        self.shed_unconstrained_seconds = 0.0
        self.shed_unconstrained_requests = 0
        self._next_pod_id = 0
        self._round_robin = 0
        self._arrivals_in_record = 0
        # Counters of pods that went away, so fleet totals never go back.
        self._retired_prompt_tokens = 0
        self._retired_generation_tokens = 0
        self._retired_preemptions = 0
        self._retired_ttft = HistogramCounts(TTFT_BUCKETS_SECONDS)
        self._retired_itl = HistogramCounts(ITL_BUCKETS_SECONDS)
        end = workload.duration_seconds
        self.end_seconds = math.ceil(
            end + (config.client_timeout_seconds if extra_seconds is None else extra_seconds)
        )
        self._start(initial_replicas)

    # -- construction ------------------------------------------------------------------------

    def _start(self, initial_replicas: int) -> None:
        """A fleet already serving: nodes Ready and pods Ready at time zero."""
        per_node = self.config.replicas_per_node
        initial_replicas = max(self.config.min_replicas, initial_replicas)
        for _ in range(math.ceil(initial_replicas / per_node)):
            self._add_node(ready_at=0.0)
        # Creating the pods places them (``_set_desired``); placing them again here took a
        # second share of accelerators for each, never given back.
        self._set_desired(initial_replicas, count_action=False)
        for pod in self.pods:
            pod.ready_at = 0.0
            self._make_ready(pod)

    # -- nodes -------------------------------------------------------------------------------

    def _add_node(self, ready_at: float | None = None) -> _Node:
        billed_from = self.now
        if ready_at is None:
            lost, provisioning = self.config.nodes.draw_attempts(self.node_rng)
            billed_from = self.now + lost
            ready_at = billed_from + provisioning
        node = _Node(
            len(self.nodes),
            self.now,
            billed_from,
            ready_at,
            self.config.nodes.accelerators_per_node,
        )
        self.nodes.append(node)
        return node

    def _live_nodes(self) -> list[_Node]:
        return [n for n in self.nodes if n.released_at is None]

    def _place(self, pod: _Pod) -> bool:
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
        pod.node = best
        pod.state = LOADING
        pod.ready_at = self.now + self.model.draw_model_load_seconds(self.load_rng)
        return True

    def _free_accelerators(self, pod: _Pod) -> None:
        node = pod.node
        if node is None:
            return
        node.free += self.model.accelerators_per_replica
        if node.free == self.config.nodes.accelerators_per_node:
            node.empty_since = self.now
        pod.node = None

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
        pending = sum(1 for p in self.pods if p.state == PENDING)
        provisioning_slots = sum(
            n.free // self.model.accelerators_per_replica for n in live if n.ready_at > self.now
        )
        if self.policy.node_mode == "ahead" and self.node_target is not None:
            if self.releases_managed:
                wanted = min(self.node_target, max_nodes)
            else:
                active = sum(1 for p in self.pods if p.state != DRAINING)
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

    # -- pods --------------------------------------------------------------------------------

    def _make_ready(self, pod: _Pod) -> None:
        pod.state = READY
        pod.server = Replica(self.model, self.book, now=self.now)
        pod.busy_mark = 0.0
        self.ready.append(pod)
        while self.held:
            pod.server.enqueue(self.held.popleft())

    def _set_desired(self, desired: int, count_action: bool = True) -> None:
        desired = max(self.config.min_replicas, min(self.config.max_replicas, desired))
        if desired == self.desired:
            return
        if count_action:
            self.scale_actions += 1
            self.scale_changes.append((self.now, desired - self.desired))
        self.desired = desired
        active = [p for p in self.pods if p.state != DRAINING]
        if desired > len(active):
            for _ in range(desired - len(active)):
                pod = _Pod(self._next_pod_id)
                self._next_pod_id += 1
                self.pods.append(pod)
                self._place(pod)
            return
        # Scale down like a ReplicaSet: unscheduled first, then not Ready; among Ready ones,
        # those on the emptiest nodes (as pod-deletion-cost or a consolidating node autoscaler
        # would arrange, so whole nodes free up), then the least busy. Same for every policy.
        victims = sorted(
            active,
            key=lambda p: (
                p.state == READY,
                p.state == LOADING and -p.ready_at,
                -(p.node.free if p.node else 0),
                p.server.outstanding if p.server else 0,
            ),
        )[: len(active) - desired]
        for pod in victims:
            if pod.state == READY:
                self.ready.remove(pod)
                pod.state = DRAINING
                if pod.server is None or pod.server.idle:
                    self._retire(pod)
            else:
                self._retire(pod)

    def _retire(self, pod: _Pod) -> None:
        pod.state = DRAINING
        self._free_accelerators(pod)
        self.pods.remove(pod)
        server = pod.server
        if server is not None:
            self._retired_prompt_tokens += server.prompt_tokens_total
            self._retired_generation_tokens += server.generation_tokens_total
            self._retired_preemptions += server.preemptions_total
            self._retired_ttft.add(server.ttft)
            self._retired_itl.add(server.itl)

    # -- requests ----------------------------------------------------------------------------

    def _route(self, request: int, at: float) -> None:
        ready = self.ready
        self.arrived_count += 1
        if self.shed_active and self._refuses(request):
            self.shed_count += 1
            self.shed_times.append(at)
            if self._low_priority(request):
                self.low_priority_shed += 1
            if not self._constrained():
                self.shed_unconstrained_requests += 1
            return
        if not ready:
            self.held.append(request)
            return
        if self.config.load_balancer == "round-robin":
            self._round_robin = (self._round_robin + 1) % len(ready)
            pick = _serving(ready[self._round_robin])
            pick.advance_to(at)
        else:
            count = len(ready)
            first = _serving(ready[int(self.rng.random() * count)])
            second = _serving(ready[int(self.rng.random() * count)])
            first.advance_to(at)
            second.advance_to(at)
            pick = first if first.outstanding <= second.outstanding else second
        pick.enqueue(request)

    def _low_priority(self, request: int) -> bool:
        """A stable draw per request, the same in every run of the workload."""
        share = self.config.low_priority_share
        return share > 0 and ((request * 2654435761) % 2**32) / 2**32 < share

    def _refuses(self, request: int) -> bool:
        """Whether the gateway answers this arrival 429 while the flag is up."""
        mode = self.config.gateway
        if mode == "all":
            return True
        if mode == "queue-cap":
            return self._waiting_now() >= self._shed_queue_limit()
        share, fraction = self.config.low_priority_share, self.shed_fraction
        if share <= 0:
            chance = fraction
        elif self._low_priority(request):
            chance = min(1.0, fraction / share)
        else:
            chance = max(0.0, (fraction - share) / (1.0 - share)) if share < 1 else 0.0
        return self.shed_rng.random() < chance

    def _waiting_now(self) -> int:
        return sum(p.server.num_waiting for p in self.ready if p.server is not None)

    def _shed_queue_limit(self) -> float:
        return self.shed_queue_per_replica * max(1, len(self.ready))

    # -- observation -------------------------------------------------------------------------

    def _scrape(self) -> None:
        interval = self.config.scrape_interval_seconds
        utilizations = []
        usages = []
        waiting = 0
        running = 0
        prompt_tokens = self._retired_prompt_tokens
        generation_tokens = self._retired_generation_tokens
        preemptions = self._retired_preemptions
        ttft = HistogramCounts(TTFT_BUCKETS_SECONDS, list(self._retired_ttft.counts))
        ttft.sum_seconds = self._retired_ttft.sum_seconds
        itl = HistogramCounts(ITL_BUCKETS_SECONDS, list(self._retired_itl.counts))
        itl.sum_seconds = self._retired_itl.sum_seconds
        for pod in self.pods:
            server = pod.server
            if server is None:
                continue
            prompt_tokens += server.prompt_tokens_total
            generation_tokens += server.generation_tokens_total
            preemptions += server.preemptions_total
            ttft.add(server.ttft)
            itl.add(server.itl)
            if pod.state != READY:
                continue
            waiting += server.num_waiting
            running += server.num_running
            usages.append(server.kv_cache_usage)
            window = min(interval, self.now - pod.ready_at)
            if window > 0:
                busy = (server.busy_seconds - pod.busy_mark) / window
                utilizations.append(min(1.0, busy))
            pod.busy_mark = server.busy_seconds
        self.samples.append(
            MetricsSample(
                sampled_at=self.now,
                waiting=float(waiting),
                running=float(running),
                gpu_utilization_percent=(
                    100.0 * sum(utilizations) / len(utilizations) if utilizations else None
                ),
                kv_cache_usage=sum(usages) / len(usages) if usages else None,
                ready_replicas=len(self.ready),
                prompt_tokens_total=float(prompt_tokens),
                generation_tokens_total=float(generation_tokens),
                preemptions_total=float(preemptions),
                ttft=_histogram(ttft),
                itl=_histogram(itl),
                arrivals_total=float(self.arrived_count),
                refused_total=float(self.shed_count),
            )
        )

    def _visible_sample(self) -> MetricsSample | None:
        horizon = self.now - self.config.scrape_interval_seconds
        for sample in reversed(self.samples):
            if sample.sampled_at <= horizon:
                return sample
        return None

    def _visible_history(self) -> tuple[MetricsSample, ...]:
        """The visible samples of the last ``HISTORY_SECONDS``, oldest first."""
        horizon = self.now - self.config.scrape_interval_seconds
        found: list[MetricsSample] = []
        for sample in reversed(self.samples):
            if sample.sampled_at > horizon:
                continue
            if sample.sampled_at < horizon - HISTORY_SECONDS:
                break
            found.append(sample)
        return tuple(reversed(found))

    def view(self) -> FleetView:
        live = self._live_nodes()
        provisioning = [n.ready_at - self.now for n in live if n.ready_at > self.now]
        states = [p.state for p in self.pods]
        held_by_pods = sum(p.server.outstanding for p in self.pods if p.server is not None)
        return FleetView(
            now=self.now,
            desired_replicas=self.desired,
            ready_replicas=len(self.ready),
            starting_replicas=states.count(LOADING),
            pending_replicas=states.count(PENDING),
            sample=self._visible_sample(),
            history=self._visible_history(),
            concurrency_now=float(held_by_pods + len(self.held)),
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
        self.shed_fraction = action.shed_fraction
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
            # 1. Nodes that became Ready take Pending pods; loaded pods become Ready.
            for pod in self.pods:
                if pod.state == PENDING:
                    self._place(pod)
            for pod in self.pods:
                if pod.state == LOADING and pod.ready_at <= tick:
                    self._make_ready(pod)
            # 2. Monitoring and control.
            if step % scrape_every == 0:
                self._scrape()
            if step % decide_every == 0:
                self._apply(self.policy.decide(self.view()))
            self._autoscale_nodes()
            if self.shed_active and not self._constrained():
                self.shed_unconstrained_seconds += 1
            # 3. Arrivals of this second, at their exact times.
            limit = tick + 1.0
            while next_arrival < total and arrivals[next_arrival] < limit:
                self._route(next_arrival, arrivals[next_arrival])
                next_arrival += 1
                self._arrivals_in_record += 1
            # 4. Serve: every pod runs its scheduler to the end of the second.
            for pod in list(self.pods):
                server = pod.server
                if server is None:
                    continue
                server.advance_to(limit)
                server.expire_waiting(limit)
                server.finished.clear()
                if pod.state == DRAINING and server.idle:
                    self._retire(pod)
            # 5. Clients held at the gateway give up too.
            held = self.held
            while held and arrivals[held[0]] + timeout <= limit:
                self.book.timed_out[held.popleft()] = True
            if step % record_every == 0:
                self._record()
        return SimResult(
            policy=self.policy.name,
            workload=self.workload.name,
            duration_seconds=float(self.end_seconds),
            outcomes=self._outcomes(),
            timeline=self.timeline,
            gpu_hours=self._gpu_hours(),
            scale_actions=self.scale_actions,
            nodes_requested=len(self.nodes),
            shed_seconds_while_unconstrained=self.shed_unconstrained_seconds,
            shed_requests_while_unconstrained=self.shed_unconstrained_requests,
            scale_changes=self.scale_changes,
        )

    def _outcomes(self) -> Outcomes:
        """Per request: served (a first token), shed, or timed out (everything else)."""
        book = self.book
        target = self.config.ttft_target_seconds
        outcomes = Outcomes(total=len(book.arrival), shed=self.shed_count)
        outcomes.shed_times = self.shed_times
        waits = outcomes.queue_wait_seconds
        ttfts = outcomes.ttft_seconds
        for arrival, admitted, first in zip(
            book.arrival, book.admitted_at, book.first_token_at, strict=True
        ):
            if first == NOT_YET:
                continue
            ttft = first - arrival
            ttfts.append(ttft)
            waits.append(admitted - arrival)
            if ttft <= target:
                outcomes.met_ttft += 1
        outcomes.served = len(ttfts)
        if self.config.low_priority_share > 0:
            low = [self._low_priority(i) for i in range(len(book.arrival))]
            outcomes.low_priority_total = sum(low)
            outcomes.low_priority_shed = self.low_priority_shed
            outcomes.low_priority_served = sum(
                1 for i, first in enumerate(book.first_token_at) if low[i] and first != NOT_YET
            )
        outcomes.timed_out = outcomes.total - outcomes.served - outcomes.shed
        outcomes.preemptions = self._retired_preemptions + sum(
            p.server.preemptions_total for p in self.pods if p.server is not None
        )
        return outcomes

    def _constrained(self) -> bool:
        """Capacity is on its way or capped: the only times shedding is legitimate."""
        live = self._live_nodes()
        provisioning = any(n.ready_at > self.now for n in live)
        loading = any(p.state in (PENDING, LOADING) for p in self.pods)
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
        servers = [p.server for p in self.ready if p.server is not None]
        timeline.waiting.append(sum(s.num_waiting for s in servers) + len(self.held))
        timeline.running.append(sum(s.num_running for s in servers))
        timeline.kv_cache_usage_percent.append(
            100.0 * sum(s.kv_cache_usage for s in servers) / len(servers) if servers else 0.0
        )
        timeline.preemptions.append(
            self._retired_preemptions
            + sum(p.server.preemptions_total for p in self.pods if p.server is not None)
        )
        timeline.shed.append(self.shed_active)

    def _gpu_hours(self) -> float:
        end = float(self.end_seconds)
        seconds = sum(
            max(0.0, (node.released_at if node.released_at is not None else end) - node.billed_from)
            for node in self.nodes
        )
        return seconds * self.config.nodes.accelerators_per_node / 3600.0


def _serving(pod: _Pod) -> Replica:
    """The server of a Ready pod (every Ready pod has one)."""
    if pod.server is None:
        raise RuntimeError(f"pod {pod.id} is Ready without a server")
    return pod.server


def _histogram(counts: HistogramCounts) -> Histogram:
    cumulative = []
    running = 0
    for count in counts.counts:
        running += count
        cumulative.append(running)
    return Histogram(counts.bounds_seconds, tuple(cumulative), counts.sum_seconds)
