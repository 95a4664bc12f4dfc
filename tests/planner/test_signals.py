"""Steps 2-4, ``queue``, ``gpu`` and ``combine``: what each signal asks for and who decides."""

from __future__ import annotations

import pytest

from fleetscale.api.inferencepool import GpuUtilizationMetric, QueueDepthMetric
from fleetscale.planner import signals
from fleetscale.planner.behavior import Tolerances
from fleetscale.planner.readings import ReadingCheck
from fleetscale.planner.types import MetricProblem, Step


def _queue_metric(target: float) -> QueueDepthMetric:
    return QueueDepthMetric(query="sum(waiting)", target_per_replica=target)


@pytest.mark.parametrize(
    ("queue", "current", "target", "tolerance", "replicas", "reason"),
    [
        pytest.param(15, 3, 5, 0.1, 3, "WithinTolerance", id="on-target"),
        pytest.param(16, 3, 5, 0.1, 3, "WithinTolerance", id="inside-tolerance-above"),
        pytest.param(14, 3, 5, 0.1, 3, "WithinTolerance", id="inside-tolerance-below"),
        pytest.param(17, 3, 5, 0.1, 4, "QueueAboveTarget", id="just-outside-tolerance"),
        pytest.param(16, 3, 5, 0.0, 4, "QueueAboveTarget", id="zero-tolerance"),
        pytest.param(42, 3, 5, 0.1, 9, "QueueAboveTarget", id="ceil-of-queue-over-target"),
        pytest.param(6, 3, 5, 0.1, 2, "QueueBelowTarget", id="shrink-to-ceil"),
        pytest.param(0, 3, 5, 0.1, 0, "QueueBelowTarget", id="empty-queue-asks-zero"),
        pytest.param(6, 2, 5, 0.1, 2, "QueueAtTarget", id="outside-tolerance-same-count"),
        pytest.param(0, 0, 5, 0.1, 0, "WithinTolerance", id="zero-stays-zero"),
        pytest.param(1, 0, 5, 0.1, 1, "QueueAboveTarget", id="scale-from-zero"),
        pytest.param(1.1, 1, 0.1, 0.1, 11, "QueueAboveTarget", id="float-noise-costs-nothing"),
        # The HPA's band is 1 - down <= ratio <= 1 + up in floating point: 11 / (1 x 10) is
        # exactly 1.0 + 0.1, so it holds (|1.1 - 1| > 0.1 would have gone to 11).
        pytest.param(11, 10, 1, 0.1, 10, "WithinTolerance", id="upper-edge-holds-as-upstream"),
        pytest.param(9, 10, 1, 0.1, 10, "WithinTolerance", id="lower-edge-holds-as-upstream"),
    ],
)
def test_queue_signal(
    queue: float, current: int, target: float, tolerance: float, replicas: int, reason: str
) -> None:
    step = signals.queue_signal(
        queue, current, _queue_metric(target), Tolerances(tolerance, tolerance)
    )
    assert (step.name, step.replicas, step.reason) == ("queue", replicas, reason)
    assert f"queue {queue:g} waiting" in step.message


@pytest.mark.parametrize(
    ("queue", "current", "target", "down", "up", "replicas"),
    [
        # kubernetes pkg/controller/podautoscaler/replica_calculator_test.go: the rows whose
        # metric is an External one with an AverageValue (per-pod) target, as queue depth is.
        pytest.param(8.6, 3, 2.9, 0.1, 0.1, 3, id="TestReplicaCalcTolerancePerPodCMExternal"),
        pytest.param(
            8.6, 3, 2.8, 0.1, 0.01, 4, id="TestReplicaCalcConfigurableTolerancePerPodCMExternal"
        ),
        # TestReplicaCalcConfigurableTolerance, its ratios on a per-pod target of 1 per replica.
        pytest.param(3.03, 3, 1, 0.0, 0.0, 4, id="outside-a-0pct-tolerance"),
        pytest.param(5.7, 3, 1, 0.1, 2.0, 3, id="within-a-200pct-scale-up-tolerance"),
        pytest.param(3.27, 3, 1, 2.0, 0.08, 4, id="outside-8pct-scale-up-tolerance"),
        pytest.param(1.95, 3, 1, 0.36, 0.1, 3, id="within-a-36pct-scale-down-tolerance"),
        pytest.param(1.95, 3, 1, 0.34, 0.1, 2, id="outside-a-34pct-scale-down-tolerance"),
    ],
)
def test_queue_signal_per_direction_tolerance(
    queue: float, current: int, target: float, down: float, up: float, replicas: int
) -> None:
    """Ported from the HPA's replica calculator tables (behavior.scaleUp/scaleDown.tolerance)."""
    step = signals.queue_signal(queue, current, _queue_metric(target), Tolerances(down, up))
    assert step.replicas == replicas


def test_queue_signal_message_reads_as_plain_words() -> None:
    step = signals.queue_signal(42, 5, _queue_metric(5), Tolerances())
    assert step.message == "queue 42 waiting, 8.4 per replica over target 5"


def test_asymmetric_band_reads_as_both_bounds() -> None:
    step = signals.queue_signal(15, 3, _queue_metric(5), Tolerances(down=0.3, up=0.05))
    assert step.message == "queue 15 waiting, 5 per replica, within -30%/+5% of target 5"


def _usable(value: float) -> ReadingCheck:
    return ReadingCheck(value=value, problem=None, message=f"GPU utilization {value:g}%")


_UNUSABLE = ReadingCheck(
    value=None, problem=MetricProblem.NO_DATA, message="GPU utilization: NoData"
)


@pytest.mark.parametrize(
    ("reading", "current", "ready", "replicas", "reason"),
    [
        pytest.param(_usable(85), 4, 4, 4, "WithinTolerance", id="on-target"),
        pytest.param(_usable(93), 4, 4, 4, "WithinTolerance", id="inside-tolerance"),
        pytest.param(_usable(95), 4, 4, 5, "GpuAboveTarget", id="busy"),
        pytest.param(_usable(40), 4, 4, 2, "GpuBelowTarget", id="idle-half"),
        pytest.param(_usable(0), 4, 4, 0, "GpuBelowTarget", id="idle"),
        pytest.param(_usable(50), 1, 1, 1, "GpuAtTarget", id="one-replica-stays-one"),
        pytest.param(_UNUSABLE, 4, 4, 4, "GpuUtilizationUnavailable", id="unusable-keeps-all"),
        pytest.param(_UNUSABLE, 4, 0, 4, "NoReadyReplicas", id="nothing-ready-yet"),
    ],
)
def test_gpu_signal(
    reading: ReadingCheck, current: int, ready: int, replicas: int, reason: str
) -> None:
    metric = GpuUtilizationMetric(query="avg(util)", target_percent=85)
    step = signals.gpu_signal(reading, current, ready, metric, Tolerances())
    assert (step.name, step.replicas, step.reason) == ("gpu", replicas, reason)


def _q(replicas: int) -> Step:
    return Step("queue", replicas, "Queue", "queue says")


def _g(replicas: int, reason: str = "Gpu") -> Step:
    return Step("gpu", replicas, reason, "gpu says")


@pytest.mark.parametrize(
    ("queue", "gpu", "replicas", "reason"),
    [
        pytest.param(_q(8), None, 8, "QueueDepth", id="no-gpu-queue-up"),
        pytest.param(_q(2), None, 2, "QueueDepth", id="no-gpu-queue-down"),
        pytest.param(_q(5), None, 5, "WithinTolerance", id="no-gpu-queue-holds"),
        pytest.param(_q(8), _g(12), 8, "QueueDepth", id="gpu-never-lifts-past-queue"),
        pytest.param(_q(5), _g(12), 5, "WithinTolerance", id="gpu-alone-never-scales-up"),
        pytest.param(_q(0), _g(6), 5, "GpuBusy", id="busy-gpus-keep-all"),
        pytest.param(_q(0), _g(5), 5, "GpuBusy", id="gpus-on-target-keep-all"),
        pytest.param(_q(0), _g(2), 2, "GpuUtilization", id="gpus-allow-partial-shrink"),
        pytest.param(_q(3), _g(1), 3, "QueueDepth", id="queue-floor-above-gpu"),
        pytest.param(
            _q(0),
            _g(5, "GpuUtilizationUnavailable"),
            5,
            "GpuUtilizationUnavailable",
            id="unknown-gpu-blocks-shrink",
        ),
        pytest.param(
            _q(8),
            _g(5, "GpuUtilizationUnavailable"),
            8,
            "QueueDepth",
            id="unknown-gpu-lets-queue-grow",
        ),
    ],
)
def test_combine(queue: Step, gpu: Step | None, replicas: int, reason: str) -> None:
    step = signals.combine(queue, gpu, current_replicas=5)
    assert (step.name, step.replicas, step.reason) == ("combine", replicas, reason)
    assert step.message.startswith("queue says")


def test_combine_says_gpu_alone_never_adds_replicas() -> None:
    step = signals.combine(_q(5), _g(12), current_replicas=5)
    assert "never adds replicas" in step.message
