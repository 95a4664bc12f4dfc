"""Baseline autoscalers as they behave in a real cluster: HPA, KEDA, Knative KPA, static.

Role: faithful models of the algorithms fleetscale is compared against, written from their
documented behavior (kubernetes pkg/controller/podautoscaler replica calculator and
behaviors, KEDA's Prometheus scaler on top of the HPA, Knative's KPA). None of them raises a
shed flag, and all get Cluster Autoscaler-like nodes (only for Pending pods). Callers:
``fleetscale.sim.runner`` builds them by name.

The metrics they scale on are the ones users deploy them with on LLM servers:

- ``HpaPodsAverage``: an HPA on a per-pod average (a Resource or Pods metric): DCGM's GPU
  utilization, vLLM's KV-cache usage, or the requests a pod holds (running plus waiting).
- ``KedaMetric``: KEDA's Prometheus scaler (an External metric with an AverageValue target)
  on a fleet total: the waiting queue, or the requests in the system (running plus waiting).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetscale.sim.policy import Action, FleetView, MetricsSample, NodeMode

# The HPA controller's --horizontal-pod-autoscaler-tolerance.
HPA_TOLERANCE = 0.1


def hpa_within(ratio: float, tolerance: float) -> bool:
    """The HPA's ``isWithin``: ``1 - t <= ratio <= 1 + t``."""
    return 1.0 - tolerance <= ratio <= 1.0 + tolerance


@dataclass(frozen=True)
class RatePolicy:
    kind: str  # "Pods" | "Percent"
    value: int
    period_seconds: int


@dataclass(frozen=True)
class HpaRules:
    stabilization_window_seconds: int
    policies: tuple[RatePolicy, ...]


# autoscaling/v2 defaults.
HPA_SCALE_UP = HpaRules(0, (RatePolicy("Percent", 100, 15), RatePolicy("Pods", 4, 15)))
HPA_SCALE_DOWN = HpaRules(300, (RatePolicy("Percent", 100, 15),))


@dataclass
class HpaBehavior:
    """The HPA's stabilization windows and rate limits (select policy Max, both directions)."""

    min_replicas: int
    max_replicas: int
    scale_up: HpaRules = HPA_SCALE_UP
    scale_down: HpaRules = HPA_SCALE_DOWN
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, replica delta)

    def normalize(self, now: float, current: int, proposed: int) -> int:
        if not self.recommendations:
            # recordInitialRecommendation: the first sight of a target counts as its size.
            self.recommendations.append((now, current))
        up_since = now - self.scale_up.stabilization_window_seconds
        down_since = now - self.scale_down.stabilization_window_seconds
        up, down = proposed, proposed
        for at, value in self.recommendations:
            if at > up_since:
                up = min(up, value)
            if at > down_since:
                down = max(down, value)
        longest = max(
            self.scale_up.stabilization_window_seconds,
            self.scale_down.stabilization_window_seconds,
        )
        self.recommendations = [(t, v) for t, v in self.recommendations if t > now - longest]
        self.recommendations.append((now, proposed))
        stabilized = min(max(current, up), down)
        desired = stabilized
        if stabilized > current:
            desired = min(stabilized, self._up_limit(now, current))
        elif stabilized < current:
            desired = max(stabilized, self._down_limit(now, current))
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        if desired != current:
            self.events.append((now, desired - current))
        return desired

    def _changed_within(self, now: float, period: int, sign: int) -> int:
        return sum(d for t, d in self.events if t > now - period and d * sign > 0) * sign

    def _up_limit(self, now: float, current: int) -> int:
        limits = []
        for policy in self.scale_up.policies:
            start = current - self._changed_within(now, policy.period_seconds, 1)
            if policy.kind == "Pods":
                limits.append(start + policy.value)
            else:
                limits.append(math.ceil(start * (1 + policy.value / 100)))
        return max(limits) if limits else self.max_replicas

    def _down_limit(self, now: float, current: int) -> int:
        limits = []
        for policy in self.scale_down.policies:
            start = current + self._changed_within(now, policy.period_seconds, -1)
            if policy.kind == "Pods":
                limits.append(start - policy.value)
            else:
                limits.append(int(start * (1 - policy.value / 100)))
        return min(limits) if limits else self.min_replicas


class _Reactive:
    """Baselines: Cluster Autoscaler-like nodes, no shed flag."""

    node_mode: NodeMode = "reactive"
    node_scale_down_delay_seconds = 600.0


PodMetric = Callable[[MetricsSample], float | None]


def gpu_utilization(sample: MetricsSample) -> float | None:
    """DCGM_FI_DEV_GPU_UTIL averaged over the Ready pods, percent."""
    return sample.gpu_utilization_percent


def kv_cache_usage(sample: MetricsSample) -> float | None:
    """vllm:kv_cache_usage_perc averaged over the Ready pods, in percent."""
    return sample.kv_cache_usage_percent


def concurrency_per_pod(sample: MetricsSample) -> float | None:
    """Requests a Ready pod holds (vllm:num_requests_running plus waiting), averaged."""
    if sample.ready_replicas == 0:
        return None
    return sample.concurrency / sample.ready_replicas


class HpaPodsAverage(_Reactive):
    """HPA on a per-pod average (a Resource or Pods metric): ``ceil(ratio * ready)``.

    Unready and Pending pods count as 0 on scale-up, as the HPA does for pods without
    metrics, so a long model load does not make it scale up again and again.
    """

    def __init__(
        self,
        name: str,
        metric: PodMetric,
        min_replicas: int,
        max_replicas: int,
        target: float,
        tolerance: float = HPA_TOLERANCE,
        sync_seconds: int = 15,
    ) -> None:
        self.name = name
        self.metric = metric
        self.interval_seconds = sync_seconds
        self.target = target
        self.tolerance = tolerance
        self.behavior = HpaBehavior(min_replicas, max_replicas)

    def decide(self, view: FleetView) -> Action:
        current = view.desired_replicas
        sample = view.sample
        value = self.metric(sample) if sample is not None else None
        if value is None or view.ready_replicas == 0:
            return Action(current, reason="NoMetrics")
        ratio = value / self.target
        proposed = current
        if not hpa_within(ratio, self.tolerance):
            ready = view.ready_replicas
            unready = max(0, current - ready)
            proposed = math.ceil(ratio * ready)
            if ratio > 1 and unready:
                diluted = ratio * ready / (ready + unready)
                proposed = current
                if not hpa_within(diluted, self.tolerance) and diluted > 1:
                    proposed = math.ceil(diluted * (ready + unready))
        return Action(self.behavior.normalize(view.now, current, proposed))


class HpaGpuUtilization(HpaPodsAverage):
    """HPA on DCGM's GPU utilization (target 70% by default)."""

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        target_percent: float = 70.0,
        tolerance: float = HPA_TOLERANCE,
        sync_seconds: int = 15,
    ) -> None:
        super().__init__(
            f"hpa-gpu{target_percent:g}",
            gpu_utilization,
            min_replicas,
            max_replicas,
            target_percent,
            tolerance,
            sync_seconds,
        )


FleetMetric = Callable[[MetricsSample], float]


def waiting(sample: MetricsSample) -> float:
    """sum(vllm:num_requests_waiting)."""
    return sample.queue_depth


def concurrency(sample: MetricsSample) -> float:
    """sum(vllm:num_requests_running) + sum(vllm:num_requests_waiting)."""
    return sample.concurrency


class KedaMetric(_Reactive):
    """KEDA's Prometheus scaler on a fleet total (AverageValue target) driving an HPA.

    KEDA refreshes the metric every polling interval; the HPA syncs every 15 s and computes
    ``ceil(total / threshold)``, with the HPA's tolerance and default behaviors.
    """

    def __init__(
        self,
        name: str,
        metric: FleetMetric,
        min_replicas: int,
        max_replicas: int,
        threshold: float,
        polling_seconds: int = 30,
        tolerance: float = HPA_TOLERANCE,
        sync_seconds: int = 15,
    ) -> None:
        self.name = name
        self.metric = metric
        self.interval_seconds = sync_seconds
        self.threshold = threshold
        self.polling_seconds = polling_seconds
        self.tolerance = tolerance
        self.behavior = HpaBehavior(min_replicas, max_replicas)
        self._cached: float | None = None
        self._polled_at = -math.inf

    def decide(self, view: FleetView) -> Action:
        current = view.desired_replicas
        if view.now - self._polled_at >= self.polling_seconds and view.sample is not None:
            self._cached = self.metric(view.sample)
            self._polled_at = view.now
        if self._cached is None:
            return Action(current, reason="NoMetrics")
        proposed = current
        if not hpa_within(self._cached / (self.threshold * max(current, 1)), self.tolerance):
            proposed = math.ceil(self._cached / self.threshold)
        return Action(self.behavior.normalize(view.now, current, proposed))


class KedaQueueDepth(KedaMetric):
    """KEDA on the waiting queue (``sum(vllm:num_requests_waiting)``)."""

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        threshold: float,
        polling_seconds: int = 30,
        tolerance: float = HPA_TOLERANCE,
        sync_seconds: int = 15,
    ) -> None:
        super().__init__(
            f"keda-queue{threshold:g}",
            waiting,
            min_replicas,
            max_replicas,
            threshold,
            polling_seconds,
            tolerance,
            sync_seconds,
        )


class KnativeKpa(_Reactive):
    """Knative's KPA on concurrency: stable and panic windows, panic at 2x.

    Concurrency (in flight plus queued) is read every second, as the autoscaler scrapes the
    queue-proxies; the target per replica is ``target_utilization`` of the batch slots.
    """

    def __init__(
        self,
        min_replicas: int,
        max_replicas: int,
        container_concurrency: int,
        target_utilization: float = 0.7,
        stable_window_seconds: int = 60,
        panic_window_seconds: int = 6,
        panic_threshold: float = 2.0,
        max_scale_down_rate: float = 2.0,
        max_scale_up_rate: float = 1000.0,
    ) -> None:
        self.name = "knative-kpa"
        self.interval_seconds = 1
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target = container_concurrency * target_utilization
        self.stable_window = stable_window_seconds
        self.panic_window = panic_window_seconds
        self.panic_threshold = panic_threshold
        self.max_scale_down_rate = max_scale_down_rate
        self.max_scale_up_rate = max_scale_up_rate
        self._history: deque[float] = deque(maxlen=stable_window_seconds)
        self._panic_since: float | None = None
        self._max_panic_pods = 0

    def decide(self, view: FleetView) -> Action:
        self._history.append(view.concurrency_now)
        history = list(self._history)
        stable = sum(history) / len(history)
        recent = history[-self.panic_window :]
        panic = sum(recent) / len(recent)
        ready = max(1, view.ready_replicas)
        lowest = math.floor(ready / self.max_scale_down_rate)
        highest = math.ceil(ready * self.max_scale_up_rate)
        stable_pods = min(max(math.ceil(stable / self.target), lowest), highest)
        panic_pods = min(max(math.ceil(panic / self.target), lowest), highest)
        over = panic_pods / ready >= self.panic_threshold
        if over:
            self._panic_since = view.now
        elif self._panic_since is not None and view.now > self._panic_since + self.stable_window:
            self._panic_since = None
            self._max_panic_pods = 0
        if self._panic_since is not None:
            desired = max(panic_pods, self._max_panic_pods, view.desired_replicas)
            self._max_panic_pods = desired
        else:
            desired = stable_pods
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        return Action(desired)


class StaticPeak(_Reactive):
    """Provisioned for the peak, all the time (nodes bought up front)."""

    node_mode: NodeMode = "ahead"

    def __init__(self, replicas: int, replicas_per_node: int) -> None:
        self.name = "static-peak"
        self.interval_seconds = 60
        self.replicas = replicas
        self.nodes = math.ceil(replicas / replicas_per_node)

    def decide(self, view: FleetView) -> Action:
        return Action(self.replicas, node_target=self.nodes)
