"""Baselines behave like their real counterparts: HPA behaviors, KEDA, Knative KPA, static."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetscale.sim.baselines import (
    HpaBehavior,
    HpaGpuUtilization,
    HpaPodsAverage,
    KedaMetric,
    KedaQueueDepth,
    KnativeKpa,
    StaticPeak,
    concurrency,
    concurrency_per_pod,
    kv_cache_usage,
)
from fleetscale.sim.policy import FleetView, MetricsSample


def _view(
    now: float,
    desired: int,
    ready: int | None = None,
    queue: float = 0.0,
    gpu: float | None = 50.0,
    concurrency: float = 0.0,
    running: float = 0.0,
    kv: float | None = None,
) -> FleetView:
    ready = desired if ready is None else ready
    return FleetView(
        now=now,
        desired_replicas=desired,
        ready_replicas=ready,
        starting_replicas=desired - ready,
        pending_replicas=0,
        sample=MetricsSample(now - 15, queue, running, gpu, kv, ready),
        concurrency_now=concurrency,
        nodes_ready=desired,
        nodes_provisioning=0,
        max_nodes=100,
        replicas_per_node=1,
        seconds_until_next_node=None,
        replica_startup_seconds=60,
    )


@pytest.mark.parametrize(
    ("current", "proposed", "allowed"),
    [
        pytest.param(2, 50, 6, id="small fleet: +4 pods beats +100%"),
        pytest.param(10, 50, 20, id="large fleet: +100% beats +4 pods"),
        pytest.param(10, 12, 12, id="within the limit"),
    ],
)
def test_hpa_scale_up_rate_is_the_larger_of_four_pods_and_double(
    current: int, proposed: int, allowed: int
) -> None:
    assert HpaBehavior(1, 100).normalize(0, current, proposed) == allowed


def test_hpa_scale_up_limit_counts_changes_within_the_period() -> None:
    behavior = HpaBehavior(1, 100)
    assert behavior.normalize(0, 10, 100) == 20
    assert behavior.normalize(5, 20, 100) == 20  # the period still holds the +10
    assert behavior.normalize(16, 20, 100) == 40


def test_hpa_scale_down_waits_out_the_stabilization_window() -> None:
    behavior = HpaBehavior(1, 100)
    assert behavior.normalize(0, 10, 10) == 10
    assert behavior.normalize(15, 10, 2) == 10
    assert behavior.normalize(299, 10, 2) == 10
    assert behavior.normalize(301, 10, 2) == 2


@given(
    current=st.integers(1, 50),
    proposals=st.lists(st.integers(0, 80), min_size=1, max_size=20),
)
def test_hpa_behavior_stays_within_bounds(current: int, proposals: list[int]) -> None:
    behavior = HpaBehavior(1, 64)
    for step, proposed in enumerate(proposals):
        current = behavior.normalize(step * 15.0, current, proposed)
        assert 1 <= current <= 64


def test_hpa_on_gpu_ignores_changes_within_tolerance_and_scales_on_the_ratio() -> None:
    hpa = HpaGpuUtilization(1, 64, target_percent=70)
    assert hpa.decide(_view(0, 10, gpu=75)).desired_replicas == 10
    assert hpa.decide(_view(15, 10, gpu=98)).desired_replicas == 14


def test_hpa_counts_unready_pods_as_idle_on_scale_up() -> None:
    hpa = HpaGpuUtilization(1, 64, target_percent=70)
    # 4 of 8 ready at 90%: diluted over 8 it is 45%, below target, so no further scale-up.
    assert hpa.decide(_view(0, 8, ready=4, gpu=90)).desired_replicas == 8


@pytest.mark.parametrize(
    ("threshold", "queue", "expected"),
    [
        pytest.param(5, 100, 20, id="ceil(queue / threshold)"),
        pytest.param(10, 100, 10, id="higher threshold, fewer replicas"),
        pytest.param(5, 52, 10, id="within tolerance"),
    ],
)
def test_keda_asks_for_queue_over_threshold(threshold: float, queue: float, expected: int) -> None:
    keda = KedaQueueDepth(1, 64, threshold=threshold)
    keda.behavior.scale_up = keda.behavior.scale_up.__class__(0, ())  # no rate limit here
    assert keda.decide(_view(0, 10, queue=queue)).desired_replicas == expected


def test_keda_reads_the_metric_once_per_polling_interval() -> None:
    keda = KedaQueueDepth(1, 64, threshold=5, polling_seconds=30)
    keda.decide(_view(0, 10, queue=50))
    assert keda.decide(_view(15, 10, queue=500)).desired_replicas == 10  # cached 50
    assert keda.decide(_view(30, 10, queue=500)).desired_replicas == 20  # +100% per 15 s


def test_kpa_panics_at_twice_the_capacity_and_never_scales_down_while_panicking() -> None:
    kpa = KnativeKpa(1, 64, container_concurrency=10, target_utilization=1.0)
    for second in range(60):
        kpa.decide(_view(second, 4, concurrency=40))
    assert kpa.decide(_view(60, 4, concurrency=40)).desired_replicas == 4
    spike = [kpa.decide(_view(61 + s, 4, concurrency=200)).desired_replicas for s in range(6)]
    assert spike[-1] >= 8  # panic window average over 2x the ready capacity
    calm = kpa.decide(_view(70, spike[-1], concurrency=0)).desired_replicas
    assert calm >= spike[-1]


def test_kpa_scales_on_the_stable_window_without_panic() -> None:
    kpa = KnativeKpa(1, 64, container_concurrency=10, target_utilization=1.0)
    desired = 0
    for second in range(60):
        desired = kpa.decide(_view(second, 5, concurrency=60)).desired_replicas
    assert desired == 6


def test_static_holds_its_peak_and_nodes() -> None:
    static = StaticPeak(replicas=10, replicas_per_node=2)
    action = static.decide(_view(0, 10))
    assert (action.desired_replicas, action.node_target, action.shed) == (10, 5, False)


def test_hpa_holds_on_the_upper_edge_of_the_band_as_upstream() -> None:
    """77 / 70 is exactly 1.0 + 0.1 in floating point: isWithin holds the size."""
    hpa = HpaGpuUtilization(1, 64, target_percent=70)
    assert hpa.decide(_view(0, 10, gpu=77)).desired_replicas == 10


def test_hpa_records_the_size_it_first_sees() -> None:
    """recordInitialRecommendation: a first low reading waits out the scale-down window."""
    hpa = HpaGpuUtilization(1, 64, target_percent=70)
    assert hpa.decide(_view(0, 10, gpu=7)).desired_replicas == 10
    assert hpa.decide(_view(301, 10, gpu=7)).desired_replicas == 1


@pytest.mark.parametrize(
    ("metric", "target", "view_args", "expected"),
    [
        pytest.param(kv_cache_usage, 20.0, {"kv": 0.4}, 20, id="kv-usage-twice-target"),
        pytest.param(
            concurrency_per_pod, 50.0, {"running": 900, "queue": 100}, 20, id="requests-per-pod"
        ),
        pytest.param(kv_cache_usage, 20.0, {"kv": None}, 10, id="no-metric-holds"),
    ],
)
def test_hpa_on_a_pod_average(
    metric: object, target: float, view_args: dict[str, float | None], expected: int
) -> None:
    hpa = HpaPodsAverage("hpa", metric, 1, 64, target)  # type: ignore[arg-type]
    assert hpa.decide(_view(0, 10, **view_args)).desired_replicas == expected  # type: ignore[arg-type]


def test_keda_on_the_requests_in_the_system() -> None:
    keda = KedaMetric("keda-conc", concurrency, 1, 64, threshold=50)
    assert keda.decide(_view(0, 10, running=1400, queue=100)).desired_replicas == 20
