"""One reconcile tick with the in-package fakes and the real planner.

What a user would check after each tick: the target's size, the status (and whether it was
rewritten), conditions, Events, the shed flag in the ConfigMap publisher, and the operator's
own metrics.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st_

from fleetscale.actuators.base import ActuatorError, ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
    FakeSecretReader,
    FakeShedFlagPublisher,
)
from fleetscale.controller.inferencepools import (
    InferencePoolDependencies,
    InferencePoolRef,
    ReconcileResult,
    reconcile,
)
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner import plan
from fleetscale.planner.types import Decision, MetricProblem, Observation, PlannerState
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource

NOW = 1_800_000_000.0
QUEUE = "sum(vllm:num_requests_waiting)"
GPU = "avg(DCGM_FI_DEV_GPU_UTIL)"
POOL = InferencePoolRef(namespace="serving", name="llama", uid="uid-1", generation=3)
TARGET = ScaleTargetRef(namespace="serving", api_version="apps/v1", kind="Deployment", name="vllm")


class World:
    """The fakes behind one set of Dependencies, and the status as the API server keeps it."""

    def __init__(self, replicas: int = 2, prometheus_url: str | None = "http://prom:9090") -> None:
        self.signals = FakeSignalSource()
        self.scaler = FakeScaleActuator(follow_immediately=True)
        self.scaler.add(TARGET, replicas, accelerators_per_replica=4)
        self.events = FakeEventSink()
        self.publisher = FakeShedFlagPublisher()
        self.secrets = FakeSecretReader()
        self.metrics = OperatorMetrics()
        self.deps = InferencePoolDependencies(
            signals=self.signals,
            scaler=self.scaler,
            events=self.events,
            shed_publisher=self.publisher,
            secrets=self.secrets,
            settings=Settings(prometheus_url=prometheus_url),
            metrics=self.metrics,
            plan=plan,
        )
        self.status: dict[str, Any] | None = None
        self.writes = 0

    async def tick(self, spec: dict[str, Any], now: float, queue: float | None = None) -> Any:
        if queue is not None:
            self.signals.set_value(QUEUE, queue, sampled_at=now)
        result = await reconcile(POOL, spec, self.status, self.deps, now)
        if result.patch:  # what the daemon does: write only when something changed
            self.writes += 1
            # Through JSON, as the API server would store it.
            self.status = json.loads(json.dumps(result.status))
        return result

    def condition(self, type_: str) -> dict[str, Any]:
        assert self.status is not None
        return next(c for c in self.status["conditions"] if c["type"] == type_)

    def metric(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            name, {"namespace": POOL.namespace, "pool": POOL.name}
        )


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
        "replicas": {"min": 1, "max": 10},
        "metrics": {"engine": "custom", "queueDepth": {"query": QUEUE, "targetPerReplica": 5}},
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
            "scaleDown": {"stabilizationWindowSeconds": 60, "policies": []},
        },
        "shedLoad": {"enabled": False},
        "pollIntervalSeconds": 15,
    }
    base.update(overrides)
    return base


async def test_scales_up_and_reports_in_status_events_and_metrics() -> None:
    world = World(replicas=2)
    result = await world.tick(spec(), NOW, queue=40)

    assert [call.replicas for call in world.scaler.writes] == [8]
    assert result.reason == "ScaledUp"
    assert world.status is not None
    assert (world.status["replicas"], world.status["desiredReplicas"]) == (8, 8)
    assert world.status["observedGeneration"] == 3
    assert world.status["observed"]["queueDepth"] == 40
    assert world.condition("Ready")["status"] == "True"
    assert world.condition("Ready")["observedGeneration"] == 3
    assert world.condition("MetricsAvailable")["status"] == "True"
    [event] = [e for e in world.events.events if e.reason == "ScaledUp"]
    assert event.type == "Normal"
    assert event.message == (
        "Scaled Deployment vllm from 2 to 8 replicas: "
        "queue 40 waiting, 20 per replica over target 5"
    )
    assert event.involved == POOL.involved
    assert world.metric("fleetscale_desired_replicas") == 8
    assert world.metric("fleetscale_current_replicas") == 8


async def test_status_is_not_rewritten_when_nothing_changed() -> None:
    world = World(replicas=8)
    await world.tick(spec(), NOW, queue=40)
    again = await world.tick(spec(), NOW)  # same tick, same reading: same status

    assert again.patch == {}
    assert world.writes == 1


async def test_constant_load_leaves_the_history_in_status_alone() -> None:
    world = World(replicas=8)
    await world.tick(spec(), NOW, queue=40)
    history = world.status["recommendations"] if world.status else None
    for tick in range(1, 6):
        result = await world.tick(spec(), NOW + 15 * tick, queue=40)
        # Only the sample's time moves, which is not worth a write; the history stays put.
        assert result.patch == {}
    assert world.writes == 1
    assert world.status is not None
    assert world.status["recommendations"] == history


async def test_a_changed_reading_patches_only_what_changed() -> None:
    world = World(replicas=8)
    await world.tick(spec(), NOW, queue=40)
    result = await world.tick(spec(), NOW + 15, queue=41)

    assert set(result.patch) <= {"observed", "recommendations", "conditions", "lastDecisionMessage"}
    assert result.patch["observed"] == {
        "queueDepth": 41.0,
        "sampledAt": "2027-01-15T08:00:15Z",
    }


async def test_condition_transition_time_moves_only_on_flips() -> None:
    world = World(replicas=8)
    await world.tick(spec(), NOW, queue=40)
    first = world.condition("MetricsAvailable")["lastTransitionTime"]
    await world.tick(spec(), NOW + 15, queue=40)
    assert world.condition("MetricsAvailable")["lastTransitionTime"] == first

    world.signals.fail_always(QUEUE, detail="connection refused")
    await world.tick(spec(), NOW + 30)
    assert world.condition("MetricsAvailable")["status"] == "False"
    assert world.condition("MetricsAvailable")["lastTransitionTime"] == "2027-01-15T08:00:30Z"


@pytest.mark.parametrize(
    "problem",
    [
        pytest.param(MetricProblem.QUERY_FAILED, id="query-failed"),
        pytest.param(MetricProblem.NO_DATA, id="no-data"),
        pytest.param(MetricProblem.MULTIPLE_SERIES, id="multiple-series"),
        pytest.param(MetricProblem.NOT_A_NUMBER, id="nan"),
    ],
)
async def test_unusable_metrics_hold_the_size_and_warn_once(problem: MetricProblem) -> None:
    world = World(replicas=6)
    world.signals.set_problem(QUEUE, problem)
    for tick in range(3):
        await world.tick(spec(), NOW + 15 * tick)

    assert world.scaler.writes == []
    assert world.status is not None
    assert world.status["desiredReplicas"] == 6
    assert world.condition("MetricsAvailable")["status"] == "False"
    assert world.events.reasons().count("MetricsUnavailable") == 1
    [event] = [e for e in world.events.events if e.reason == "MetricsUnavailable"]
    assert event.type == "Warning"
    assert "Holding Deployment vllm at 6 replicas" in event.message
    assert (
        world.metrics.registry.get_sample_value(
            "fleetscale_metric_query_errors_total", {"reason": problem.value}
        )
        == 3
    )


async def test_stale_metrics_hold_the_size() -> None:
    world = World(replicas=6)
    world.signals.set_value(QUEUE, 0, sampled_at=NOW - 600)
    await world.tick(spec(), NOW)

    assert world.scaler.writes == []
    assert world.condition("MetricsAvailable")["reason"] == "Stale"


@given(
    current=st_.integers(1, 50),
    problem=st_.sampled_from(list(MetricProblem)),
    ticks=st_.integers(1, 4),
)
async def test_never_scales_down_on_missing_metrics(
    current: int, problem: MetricProblem, ticks: int
) -> None:
    world = World(replicas=current)
    await world.tick(spec(replicas={"min": 1, "max": 50}), NOW, queue=0)  # history: wants 1
    world.signals.set_problem(QUEUE, problem)
    before = world.scaler.targets[TARGET].spec_replicas
    for tick in range(1, ticks + 1):
        await world.tick(spec(replicas={"min": 1, "max": 50}), NOW + 400 * tick)
    assert world.scaler.targets[TARGET].spec_replicas == before


async def test_missing_prometheus_url_is_reported_as_unavailable_metrics() -> None:
    world = World(replicas=3, prometheus_url=None)
    await world.tick(spec(), NOW, queue=100)

    assert world.signals.calls == []
    assert world.scaler.writes == []
    available = world.condition("MetricsAvailable")
    assert available["status"] == "False"
    assert "FLEETSCALE_PROMETHEUS_URL" in available["message"]


async def test_bearer_token_and_ca_are_read_from_secrets_and_reach_the_query() -> None:
    world = World(replicas=2)
    world.deps.settings = Settings(
        prometheus_url="http://prom:9090", prometheus_allowed_urls=("https://prom.internal:9090",)
    )
    world.secrets.set_secret("serving", "prom-auth", {"token": "s3cret\n", "ca.crt": "PEM"})
    prometheus = {
        "url": "https://prom.internal:9090",
        "bearerTokenSecretRef": {"name": "prom-auth", "key": "token"},
        "caSecretRef": {"name": "prom-auth", "key": "ca.crt"},
        "timeoutSeconds": 2,
    }
    pool_spec = spec(
        metrics={"prometheus": prometheus, "engine": "custom", "queueDepth": {"query": QUEUE}}
    )
    await world.tick(pool_spec, NOW, queue=40)

    [query] = world.signals.calls[0].queries
    assert query.endpoint.url == "https://prom.internal:9090"
    assert query.endpoint.bearer_token == "s3cret"
    assert query.endpoint.ca_pem == "PEM"
    assert query.endpoint.timeout_seconds == 2


def _operator_credentials(world: World, tmp_path: Path) -> tuple[Path, Path]:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("operator-token\n", encoding="utf-8")
    ca.write_text("OPERATOR-PEM", encoding="utf-8")
    world.deps.settings = Settings(
        prometheus_url="https://prom.monitoring:9091",
        prometheus_allowed_urls=("https://team-prom:9090",),
        prometheus_bearer_token_file=token,
        prometheus_ca_file=ca,
    )
    return token, ca


async def test_the_default_prometheus_uses_the_operators_credential_files(tmp_path: Path) -> None:
    world = World(replicas=2)
    token, _ca = _operator_credentials(world, tmp_path)
    await world.tick(spec(), NOW, queue=40)

    [query] = world.signals.calls[0].queries
    assert query.endpoint.url == "https://prom.monitoring:9091"
    assert query.endpoint.bearer_token == "operator-token"
    assert query.endpoint.ca_pem == "OPERATOR-PEM"

    token.write_text("rotated-token", encoding="utf-8")  # the kubelet updated the Secret
    stamp = token.stat().st_mtime_ns + 1_000_000_000
    os.utime(token, ns=(stamp, stamp))
    await world.tick(spec(), NOW + 15, queue=40)
    assert world.signals.calls[-1].queries[0].endpoint.bearer_token == "rotated-token"


async def test_a_pool_with_its_own_url_never_gets_the_operators_credentials(
    tmp_path: Path,
) -> None:
    world = World(replicas=2)
    _operator_credentials(world, tmp_path)
    own = {"url": "https://team-prom:9090"}
    await world.tick(
        spec(metrics={"prometheus": own, "engine": "custom", "queueDepth": {"query": QUEUE}}),
        NOW,
        40,
    )

    [query] = world.signals.calls[0].queries
    assert query.endpoint.url == "https://team-prom:9090"
    assert query.endpoint.bearer_token is None
    assert query.endpoint.ca_pem is None


async def test_a_pools_secret_ref_overrides_the_operators_file_on_the_default_url(
    tmp_path: Path,
) -> None:
    world = World(replicas=2)
    _operator_credentials(world, tmp_path)
    world.secrets.set_secret("serving", "team-token", {"token": "team"})
    refs = {"bearerTokenSecretRef": {"name": "team-token", "key": "token"}}
    await world.tick(
        spec(metrics={"prometheus": refs, "engine": "custom", "queueDepth": {"query": QUEUE}}),
        NOW,
        40,
    )

    [query] = world.signals.calls[0].queries
    assert query.endpoint.url == "https://prom.monitoring:9091"
    assert query.endpoint.bearer_token == "team"
    assert query.endpoint.ca_pem == "OPERATOR-PEM"  # not set by the pool: the operator's


async def test_an_unreadable_credential_file_holds_and_says_which(tmp_path: Path) -> None:
    world = World(replicas=2)
    token, _ca = _operator_credentials(world, tmp_path)
    token.unlink()
    await world.tick(spec(), NOW, queue=40)

    assert world.signals.calls == []  # no query without the credentials
    assert world.scaler.writes == []
    available = world.condition("MetricsAvailable")
    assert (available["status"], available["reason"]) == ("False", "QueryFailed")
    assert f"cannot read {token}" in available["message"]


async def test_a_missing_secret_holds_and_says_which() -> None:
    world = World(replicas=2)
    prometheus = {"bearerTokenSecretRef": {"name": "nope", "key": "token"}}
    await world.tick(
        spec(
            metrics={"prometheus": prometheus, "engine": "custom", "queueDepth": {"query": QUEUE}}
        ),
        NOW,
        queue=40,
    )

    assert world.scaler.writes == []
    assert "Secret serving/nope not found" in world.condition("MetricsAvailable")["message"]


async def test_pools_with_the_same_query_share_one_read_per_tick() -> None:
    world = World(replicas=2)
    other = InferencePoolRef(namespace="serving", name="llama-b", uid="uid-2", generation=1)
    world.signals.set_value(QUEUE, 10, sampled_at=NOW)
    await reconcile(POOL, spec(), None, world.deps, NOW, tick=NOW)
    await reconcile(other, spec(), None, world.deps, NOW + 0.3, tick=NOW)

    assert world.signals.backend_reads_of(QUEUE) == 1


async def test_dry_run_decides_and_reports_but_never_acts() -> None:
    world = World(replicas=2)
    dry = spec(
        mode="DryRun",
        replicas={"min": 1, "max": 4},
        shedLoad={"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "shed"},
    )
    for tick in range(3):
        await world.tick(dry, NOW + 15 * tick, queue=400)

    assert world.scaler.writes == []
    assert world.publisher.published == []
    assert world.status is not None
    assert world.status["desiredReplicas"] == 4
    assert world.status["replicas"] == 2
    assert world.status["shedLoad"]["active"] is False
    shed = world.condition("ShedLoad")
    assert (shed["status"], shed["reason"]) == ("False", "DryRunWouldShed")
    assert "would shed" in shed["message"]
    # The would-shed start is kept across ticks (hysteresis state), not reset every tick.
    assert shed["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert world.condition("Ready")["reason"] == "DryRun"
    assert world.events.reasons().count("WouldScaleUp") == 1
    assert "ScaledUp" not in world.events.reasons()
    assert "ShedLoadStarted" not in world.events.reasons()
    assert world.metric("fleetscale_shed_active") == 0


async def test_paused_reads_nothing_and_says_so() -> None:
    world = World(replicas=2)
    await world.tick(spec(), NOW, queue=40)
    reads_before = len(world.scaler.read_calls)
    await world.tick(spec(mode="Paused"), NOW + 15, queue=400)
    await world.tick(spec(mode="Paused"), NOW + 30, queue=400)

    assert len(world.scaler.read_calls) == reads_before
    assert len(world.signals.calls) == 1
    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Paused")
    assert world.events.reasons().count("Paused") == 1
    assert world.status is not None
    assert world.status["desiredReplicas"] == 8  # the memory is kept for when it resumes


async def test_invalid_spec_is_reported_in_plain_words_once() -> None:
    world = World(replicas=2)
    bad = spec(replicas={"min": 5, "max": 2})
    await world.tick(bad, NOW)
    await world.tick(bad, NOW + 15)

    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "replicas: replicas.min must be less than or equal to replicas.max" in ready["message"]
    assert world.events.reasons() == ["InvalidSpec"]
    assert world.events.events[0].type == "Warning"
    assert world.scaler.read_calls == []


async def test_missing_target_is_a_condition_and_an_event() -> None:
    world = World(replicas=2)
    world.scaler.remove(TARGET)
    await world.tick(spec(), NOW, queue=40)
    await world.tick(spec(), NOW + 15, queue=40)

    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TargetNotFound")
    assert "vllm" in ready["message"]
    assert world.events.reasons() == ["TargetNotFound"]
    assert (
        world.metrics.registry.get_sample_value(
            "fleetscale_reconcile_errors_total",
            {"namespace": "serving", "pool": "llama", "reason": "TargetNotFound"},
        )
        == 2
    )


async def test_a_failed_scale_write_is_reported_and_not_counted_as_a_change() -> None:
    world = World(replicas=2)
    world.scaler.conflict_next(TARGET, times=10)
    await world.tick(spec(), NOW, queue=40)

    ready = world.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ScaleFailed")
    assert "from 2 to 8" in ready["message"]
    assert world.status is not None
    assert world.status["scaleEvents"] == []
    assert "lastScaleTime" not in world.status
    assert "ScaleFailed" in world.events.reasons()


@pytest.mark.parametrize(
    ("value", "sampled_after_now", "reason"),
    [
        pytest.param(1e308, 0.0, "ValueOutOfRange", id="huge-reading"),
        pytest.param(40.0, 365 * 86400.0, "SampledInTheFuture", id="a-year-ahead"),
    ],
)
async def test_readings_at_the_edges_hold_with_a_clear_reason(
    value: float, sampled_after_now: float, reason: str
) -> None:
    world = World(replicas=2)
    world.signals.set_value(QUEUE, value, sampled_at=NOW + sampled_after_now)
    tiny_target = {"engine": "custom", "queueDepth": {"query": QUEUE, "targetPerReplica": 0.001}}
    result = await world.tick(spec(metrics=tiny_target), NOW)
    assert world.scaler.targets[TARGET].spec_replicas == 2  # held
    assert result.reason == "MetricsUnavailable"
    available = world.condition("MetricsAvailable")
    assert (available["status"], available["reason"]) == ("False", reason)
    assert world.condition("Ready")["status"] == "True"  # not a generic ReconcileError


async def test_an_unexpected_error_never_escapes_and_is_retried() -> None:
    world = World(replicas=2)
    world.scaler.fail_next(RuntimeError("boom"))
    result = await world.tick(spec(), NOW, queue=40)

    assert result.reason == "ReconcileError"
    assert "RuntimeError: boom" in world.condition("Ready")["message"]
    assert world.events.reasons() == ["ReconcileError"]

    await world.tick(spec(), NOW + 15, queue=40)  # the next tick recovers
    assert world.condition("Ready")["status"] == "True"
    assert world.scaler.targets[TARGET].spec_replicas == 8


async def test_shed_flag_goes_to_status_configmap_gauge_and_events() -> None:
    world = World(replicas=3)
    shed_spec = spec(
        replicas={"min": 1, "max": 3},
        shedLoad={"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-shed"},
    )
    await world.tick(shed_spec, NOW, queue=300)
    # 3 ready replicas at a threshold of 20 carry 60 of the 300 waiting: 80% are refused, so
    # the next reading shows the 20% let through, and the fraction holds.
    await world.tick(shed_spec, NOW + 15, queue=60)

    assert world.status is not None
    assert world.status["shedLoad"]["active"] is True
    assert world.status["shedLoad"]["fraction"] == 0.8
    assert world.status["shedLoad"]["retryAfterSeconds"] > 0
    assert world.condition("ShedLoad")["status"] == "True"
    assert world.condition("ScalingLimited")["status"] == "True"
    flag = world.publisher.current[("serving", "llama-shed")]
    assert flag.active
    assert flag.retry_after_seconds == world.status["shedLoad"]["retryAfterSeconds"]
    assert len(world.publisher.published) == 1  # unchanged flag: not re-written
    assert world.metric("fleetscale_shed_active") == 1
    assert world.metric("fleetscale_shed_retry_after_seconds") == flag.retry_after_seconds
    assert world.metric("fleetscale_shed_fraction") == 0.8
    assert flag.fraction == 0.8
    assert world.events.reasons().count("ShedLoadStarted") == 1

    await world.tick(shed_spec, NOW + 30, queue=3)
    assert world.status["shedLoad"]["active"] is False
    assert "fraction" not in world.status["shedLoad"]
    assert not world.publisher.current[("serving", "llama-shed")].active
    assert world.metric("fleetscale_shed_active") == 0
    assert world.metric("fleetscale_shed_fraction") == 0
    assert world.events.reasons().count("ShedLoadStopped") == 1


async def test_a_failed_flag_publish_is_retried_next_tick() -> None:
    world = World(replicas=3)
    shed_spec = spec(
        replicas={"min": 1, "max": 3},
        shedLoad={"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-shed"},
    )
    world.publisher.fail_next(ActuatorError("forbidden"))
    await world.tick(shed_spec, NOW, queue=300)
    assert world.condition("Ready")["reason"] == "ShedFlagPublishFailed"

    await world.tick(shed_spec, NOW + 15, queue=300)
    assert world.publisher.current[("serving", "llama-shed")].active
    assert world.condition("Ready")["status"] == "True"


async def test_a_new_operator_continues_from_status() -> None:
    first = World(replicas=2)
    await first.tick(spec(), NOW, queue=40)  # 2 -> 8, remembers 8
    await first.tick(spec(), NOW + 15, queue=5)  # wants 1, held by the 60 s window

    # A new process: new fakes, nothing in memory, only the status it reads back.
    second = World(replicas=8)
    second.status = first.status
    await second.tick(spec(), NOW + 30, queue=5)
    assert second.scaler.writes == []  # 8 was recommended 30 s ago: still in the window
    # The ask of 8 ran until NOW + 15, when 1 replaced it: in the 60 s window before NOW + 75.
    await second.tick(spec(), NOW + 74, queue=5)
    assert second.scaler.writes == []
    await second.tick(spec(), NOW + 75, queue=5)
    assert [call.replicas for call in second.scaler.writes] == [1]


async def test_metrics_of_a_pool_survive_until_forgotten() -> None:
    world = World(replicas=2)
    await world.tick(spec(), NOW, queue=40)
    assert world.metric("fleetscale_desired_replicas") == 8
    world.metrics.forget_pool("serving", "llama")
    assert world.metric("fleetscale_desired_replicas") is None


async def test_observed_gauges_follow_the_readings_and_gap_when_unusable() -> None:
    world = World(replicas=4)
    gpu_spec = spec(
        metrics={
            "engine": "custom",
            "queueDepth": {"query": QUEUE, "targetPerReplica": 5},
            "gpuUtilization": {"query": GPU, "targetPercent": 85},
        }
    )
    world.signals.set_value(GPU, 71.2857142857143, sampled_at=NOW)
    await world.tick(gpu_spec, NOW, queue=20.125)
    assert world.metric("fleetscale_observed_queue_depth") == 20.125
    assert world.metric("fleetscale_observed_gpu_utilization_percent") == 71.2857142857143

    world.signals.set_problem(QUEUE, MetricProblem.NO_DATA)
    world.signals.set_value(GPU, 60.0, sampled_at=NOW + 15)
    await world.tick(gpu_spec, NOW + 15)
    assert world.metric("fleetscale_observed_queue_depth") is None  # a gap, not 20.125
    assert world.metric("fleetscale_observed_gpu_utilization_percent") == 60.0

    world.signals.set_value(QUEUE, 7.0, sampled_at=NOW)  # 30 s old: fine
    await world.tick(gpu_spec, NOW + 30)
    assert world.metric("fleetscale_observed_queue_depth") == 7
    await world.tick(gpu_spec, NOW + 200)  # 200 s old: stale, the planner will not use it
    assert world.metric("fleetscale_observed_queue_depth") is None
    assert world.condition("MetricsAvailable")["reason"] == "Stale"

    await world.tick(spec(), NOW + 230, queue=8)  # the GPU query was removed from the spec
    assert world.metric("fleetscale_observed_queue_depth") == 8
    assert world.metric("fleetscale_observed_gpu_utilization_percent") is None

    await world.tick(spec(mode="Paused"), NOW + 245, queue=9)  # nothing is read
    assert world.metric("fleetscale_observed_queue_depth") is None


async def test_status_shows_rounded_readings_and_the_planner_gets_them_unrounded() -> None:
    world = World(replicas=4)
    seen: list[Observation] = []

    def recording_plan(
        spec_: Any, observation: Observation, state: Any, now: float
    ) -> tuple[Decision, PlannerState]:
        seen.append(observation)
        return plan(spec_, observation, state, now)

    world.deps.plan = recording_plan
    world.signals.set_value(GPU, 71.2857142857143, sampled_at=NOW)
    gpu_spec = spec(
        metrics={
            "engine": "custom",
            "queueDepth": {"query": QUEUE, "targetPerReplica": 5},
            "gpuUtilization": {"query": GPU, "targetPercent": 85},
        }
    )
    await world.tick(gpu_spec, NOW, queue=20.3333333333)

    assert world.status is not None
    assert world.status["observed"]["gpuUtilizationPercent"] == 71.29
    assert world.status["observed"]["queueDepth"] == 20.33
    assert seen[0].queue_depth.value == 20.3333333333
    assert seen[0].gpu_utilization_percent is not None
    assert seen[0].gpu_utilization_percent.value == 71.2857142857143
    assert world.metric("fleetscale_observed_gpu_utilization_percent") == 71.2857142857143


async def test_gpu_signal_is_read_with_the_queue() -> None:
    world = World(replicas=4)
    world.signals.set_value(GPU, 42.5, sampled_at=NOW)
    gpu_spec = spec(
        metrics={
            "engine": "custom",
            "queueDepth": {"query": QUEUE},
            "gpuUtilization": {"query": GPU, "targetPercent": 85},
        }
    )
    result: ReconcileResult = await world.tick(gpu_spec, NOW, queue=20)

    assert {query.promql for query in world.signals.calls[0].queries} == {QUEUE, GPU}
    assert world.status is not None
    assert world.status["observed"]["gpuUtilizationPercent"] == pytest.approx(42.5)
    assert result.decision is not None
    # The planner got the reading: 42.5% of the 85% target on 4 replicas keeps 2 busy, and
    # the queue (20 waiting, 2 per replica) still decides.
    gpu = next(step for step in result.decision.steps if step.name == "gpu")
    assert (gpu.replicas, gpu.reason) == (2, "GpuBelowTarget")
    assert result.decision.desired_replicas == 10
