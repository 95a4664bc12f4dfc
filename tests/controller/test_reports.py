"""The report steps of both kinds, as pure functions: from what a tick knew before, what it
decided and what executing it did, to status, Events and metrics."""

from __future__ import annotations

from typing import Any

import pytest

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec, AcceleratorPoolStatus
from fleetscale.api.inferencepool import InferencePoolSpec, InferencePoolStatus
from fleetscale.controller.acceleratorpools.execute import NodeOutcome
from fleetscale.controller.acceleratorpools.ports import AcceleratorPoolRef
from fleetscale.controller.acceleratorpools.report import NodeTick, report_plan
from fleetscale.controller.conditions import EventRecord, set_condition
from fleetscale.controller.inferencepools.execute import Outcome
from fleetscale.controller.inferencepools.ports import InferencePoolRef
from fleetscale.controller.inferencepools.report import (
    ObservedReadings,
    Tick,
    report_decision,
    report_not_ready,
)
from fleetscale.nodepools.base import ProviderError
from fleetscale.planner import plan
from fleetscale.planner.capacity import (
    CapacityObservation,
    CapacityState,
    NodeView,
    plan_capacity,
)
from fleetscale.planner.commit import commit_node_actions, commit_scale
from fleetscale.planner.demand import inference_pool_demand
from fleetscale.planner.observe import QUEUE, TargetSize, observe
from fleetscale.planner.types import MetricReading, PlannerState

NOW = 1_800_000_000.0
POOL = InferencePoolRef("serving", "llama", "uid-1", 2)


def spec(mode: str = "Active") -> InferencePoolSpec:
    return InferencePoolSpec.model_validate(
        {
            "targetRef": {"name": "vllm"},
            "replicas": {"min": 1, "max": 8},
            "metrics": {"engine": "custom", "queueDepth": {"query": "q", "targetPerReplica": 5}},
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
                "scaleDown": {"stabilizationWindowSeconds": 0, "policies": []},
            },
            "shedLoad": {"enabled": False},
            "mode": mode,
        }
    )


def decided(mode: str, queue: float | None, outcome: Outcome, stored: InferencePoolStatus) -> Any:
    pool_spec = spec(mode)
    readings = {} if queue is None else {QUEUE: MetricReading.ok(queue, NOW)}
    observation = observe(pool_spec, TargetSize(2, 2, 4), readings, None, pending_seconds=15)
    decision, planned = plan(pool_spec, observation, PlannerState(), NOW)
    committed = commit_scale(
        planned, outcome.applied_delta(decision.current_replicas), pool_spec.behavior, NOW
    )
    tick = Tick(POOL, pool_spec, stored, observation, decision, committed, outcome, NOW)
    return report_decision(
        tick, TargetSize(2, 2, 4), ObservedReadings.of(observation, pool_spec, NOW)
    )


def reasons(events: tuple[EventRecord, ...]) -> list[str]:
    return [event.reason for event in events]


SCALED = Outcome(scaled_to=8, target_after=TargetSize(8, 2, 4))
FAILED = Outcome(scale_error="Could not scale Deployment vllm from 2 to 8 replicas: HTTP 409")


LIMITED = "ScalingLimited"  # 8 asked, 2 ready: ReplicasNotReady while they start


@pytest.mark.parametrize(
    ("mode", "queue", "outcome", "ready", "events", "errors", "status_replicas"),
    [
        pytest.param(
            "Active", 40, SCALED, ("True", "Active"), ["ScaledUp", LIMITED], (), 8, id="scaled"
        ),
        pytest.param(
            "Active", 40, FAILED, ("False", "ScaleFailed"), [LIMITED, "ScaleFailed"],
            ("ScaleFailed",), 2, id="scale-failed",
        ),
        pytest.param(
            "Active", 40, Outcome(shed_error="ConfigMap refused"),
            ("False", "ShedFlagPublishFailed"), [LIMITED, "ShedFlagPublishFailed"],
            ("ShedFlagPublishFailed",), 2, id="flag-failed",
        ),
        pytest.param(
            "DryRun", 40, Outcome(), ("True", "DryRun"), ["WouldScaleUp", LIMITED], (), 2,
            id="dry-run",
        ),
        pytest.param(
            "Active", 10, Outcome(), ("True", "Active"), [], (), 2, id="holding-within-tolerance"
        ),
        pytest.param(
            "Active", None, Outcome(), ("True", "Active"), ["MetricsUnavailable"], (), 2,
            id="no-metrics",
        ),
    ],
)  # fmt: skip
def test_an_inference_pool_report(
    mode: str,
    queue: float | None,
    outcome: Outcome,
    ready: tuple[str, str],
    events: list[str],
    errors: tuple[str, ...],
    status_replicas: int,
) -> None:
    report = decided(mode, queue, outcome, InferencePoolStatus())
    condition = {c.type: c for c in report.status.conditions}["Ready"]
    assert (condition.status, condition.reason) == ready
    assert reasons(report.events) == events
    assert report.errors == errors
    assert report.status.replicas == status_replicas
    assert report.status.accelerators_per_replica == 4
    assert report.gauges is not None
    assert report.gauges.current_replicas == status_replicas
    # A change of size is in the history only when the write happened.
    assert (report.status.last_scale_time is not None) == (outcome.scaled_to is not None)


def test_a_repeated_dry_run_would_scale_is_posted_once() -> None:
    first = decided("DryRun", 40, Outcome(), InferencePoolStatus())
    again = decided("DryRun", 40, Outcome(), first.status)
    assert "WouldScaleUp" in reasons(first.events)
    assert reasons(again.events) == []


@pytest.mark.parametrize(
    ("reason", "event_type", "errors"),
    [
        pytest.param("Paused", "Normal", (), id="paused"),
        pytest.param("InvalidSpec", "Warning", ("InvalidSpec",), id="invalid"),
        pytest.param("TargetNotFound", "Warning", ("TargetNotFound",), id="no-target"),
    ],
)
def test_a_not_ready_report_keeps_the_memory_and_posts_once(
    reason: str, event_type: str, errors: tuple[str, ...]
) -> None:
    stored = InferencePoolStatus(replicas=3, desired_replicas=3, demand_replicas=5)
    report = report_not_ready(POOL, stored, reason, "why", NOW)
    assert (report.status.replicas, report.status.demand_replicas) == (3, 5)
    assert [(e.type, e.reason) for e in report.events] == [(event_type, reason)]
    assert report.errors == errors
    assert (report.observed_queue_depth, report.gauges) == (None, None)
    assert report_not_ready(POOL, report.status, reason, "why", NOW + 15).events == ()


APOOL = AcceleratorPoolRef("h100", "uid-p", 1)
APOOL_SPEC = AcceleratorPoolSpec.model_validate(
    {
        "provider": {"kwok": {}},
        "nodeLabels": {"gpu": "h100"},
        "acceleratorsPerNode": 8,
        "nodes": {"min": 0, "max": 4},
        "scaleDownDelaySeconds": 0,
    }
)


def node(name: str, busy: bool) -> NodeView:
    return NodeView(name, True, NOW - 3600, 8, 8 if busy else 0, 1 if busy else 0, NOW - 3500)


def node_report(
    asked: int, nodes: list[NodeView], outcome: NodeOutcome, stored: AcceleratorPoolStatus
) -> Any:
    demand = inference_pool_demand("serving", "llama", spec(), current_replicas=2,
                                   ready_replicas=2, asked_replicas=asked, shedding=False,
                                   observed_accelerators_per_replica=8)  # fmt: skip
    requested = len(nodes)
    capacity_plan, planned = plan_capacity(
        APOOL_SPEC, [demand], CapacityObservation(nodes, requested), CapacityState(), NOW
    )
    committed = commit_node_actions(
        planned, capacity_plan, resized=outcome.resized, released=outcome.released, now=NOW
    )
    tick = NodeTick(APOOL, APOOL_SPEC, stored, nodes, requested, capacity_plan, committed,
                    outcome, NOW)  # fmt: skip
    return report_plan(tick)


REFUSED = NodeOutcome(error=ProviderError("ProviderConflict", "Cluster Autoscaler owns it"))


@pytest.mark.parametrize(
    ("asked", "busy", "outcome", "events", "size", "releasing"),
    [
        pytest.param(4, [True, True], NodeOutcome(grew=True, size=4), ["NodesRequested"], 4, [],
                     id="requested"),
        pytest.param(4, [True, True], REFUSED, ["ProviderConflict"], 2, [], id="request-refused"),
        pytest.param(2, [True, True, False], NodeOutcome(released=("n2",), size=2),
                     ["NodesReleased"], 2, ["n2"], id="released"),
        pytest.param(2, [True, True, False], REFUSED, ["ProviderConflict"], 3, [],
                     id="release-refused"),
    ],
)  # fmt: skip
def test_an_accelerator_pool_report(
    asked: int,
    busy: list[bool],
    outcome: NodeOutcome,
    events: list[str],
    size: int,
    releasing: list[str],
) -> None:
    nodes = [node(f"n{i}", b) for i, b in enumerate(busy)]
    report = node_report(asked, nodes, outcome, AcceleratorPoolStatus())
    assert reasons(report.events) == events
    assert report.status.desired_nodes == size
    assert [n.name for n in report.status.releasing_nodes] == releasing
    problem = {c.type: c for c in report.status.conditions}["ProviderError"]
    assert problem.status == ("True" if outcome.error else "False")


def test_a_provider_error_is_posted_once_per_reason() -> None:
    nodes = [node("n0", True), node("n1", True)]
    stored = AcceleratorPoolStatus(
        conditions=set_condition((), "ProviderError", True, "ProviderConflict", "x", NOW, 1)
    )
    assert reasons(node_report(4, nodes, REFUSED, stored).events) == []
