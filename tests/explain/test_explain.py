"""`fleetscale explain`: the plan the operator would make now, with a reason for every number.

The core (``explain_pool``) runs on the in-package fakes; the command (``explain_live``) runs
against kmock's Kubernetes emulator and a Prometheus-speaking HTTP server, through the real
adapters. In both, nothing may be written: explain only reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from fleetscale.actuators.base import ScaleTargetRef
from fleetscale.actuators.fake import (
    FakeScaleActuator,
    FakeSecretReader,
)
from fleetscale.controller.inferencepools import (
    InferencePoolRef,
    reconcile,
)
from fleetscale.explain import (
    ExplainError,
    explain_live,
    explain_pool,
    render_json,
    render_text,
)
from fleetscale.planner.types import MetricProblem
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource
from support.dependencies import fake_pool_dependencies
from support.kube_emulator import ScaleSubresource, declare
from support.prometheus_server import PrometheusServer

NS = "models"
POOL = "llama"
QUEUE = 'sum(vllm:num_requests_waiting{model_name="llama"})'
GPU = 'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"vllm-.*"})'
NOW = 1_800_000_000.0
POOL_URL = "http://prometheus.monitoring:9090"  # on the allow-list of explain's settings
POOLS = "fleetscale.io/v1alpha1/inferencepools"
APOOLS = "fleetscale.io/v1alpha1/acceleratorpools"
TARGET = ScaleTargetRef(NS, "apps/v1", "Deployment", "vllm")


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "llama-3.1-70b",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
        "replicas": {"min": 1, "max": 8},
        "metrics": {
            "prometheus": {"url": POOL_URL},
            "engine": "custom",
            "queueDepth": {"query": QUEUE, "targetPerReplica": 5},
            "gpuUtilization": {"query": GPU, "targetPercent": 85},
        },
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
            "scaleDown": {"stabilizationWindowSeconds": 0, "policies": []},
        },
    }
    base.update(overrides)
    return base


def allocation_entry(max_replicas: int, reason: str) -> dict[str, Any]:
    """One entry of an AcceleratorPool's status.allocations, for this pool."""
    return {
        "namespace": NS,
        "name": POOL,
        "priority": 0,
        "acceleratorsPerReplica": 2,
        "desiredReplicas": 6,
        "grantedReplicas": max_replicas,
        "maxReplicas": max_replicas,
        "accelerators": 2 * max_replicas,
        "reason": reason,
        "message": f"{reason} holds {max_replicas} replicas",
    }


def body(pool_spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": POOL, "namespace": NS, "generation": 1, "uid": "u-1"},
        "spec": pool_spec,
        "status": status or {},
    }


@pytest.fixture
def scaler() -> FakeScaleActuator:
    fake = FakeScaleActuator()
    fake.add(TARGET, 2, accelerators_per_replica=4)
    return fake


@pytest.fixture
def signals() -> FakeSignalSource:
    fake = FakeSignalSource()
    fake.set_value(QUEUE, 40, sampled_at=NOW - 5)
    fake.set_value(GPU, 97, sampled_at=NOW - 5)
    return fake


async def explain(
    pool_body: dict[str, Any],
    scaler: FakeScaleActuator,
    signals: FakeSignalSource,
    secrets: FakeSecretReader | None = None,
    default_url: str | None = None,
) -> Any:
    return await explain_pool(
        NS,
        POOL,
        pool_body,
        scaler=scaler,
        signals=signals,
        secrets=secrets or FakeSecretReader(),
        settings=Settings(prometheus_url=default_url, prometheus_allowed_urls=(POOL_URL,)),
        now=NOW,
    )


async def test_explains_a_scale_up_number_by_number_without_acting(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    explanation = await explain(body(spec()), scaler, signals)
    decision = explanation.decision
    assert (decision.current_replicas, decision.desired_replicas) == (2, 8)  # 40 / 5 per replica
    assert decision.reason == "ScaledUp"
    assert scaler.set_calls == []  # never acts
    (read,) = signals.calls
    assert read.tick == NOW
    assert [q.promql for q in read.queries] == [QUEUE, GPU]

    text = render_text(explanation)
    assert "InferencePool models/llama (model llama-3.1-70b)" in text
    assert "Plan now (nothing is changed here): the operator would go 2 -> 8" in text
    assert "queue depth: 40, sampled 5s ago" in text
    assert "GPU utilization: 97%, sampled 5s ago" in text
    assert "none yet: the operator has not reconciled this pool" in text
    for number, step in enumerate(decision.steps, start=1):
        assert f"{number}. {step.name}" in text
        assert step.reason in text


async def test_plans_from_the_memory_kept_in_the_status(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    # A recent recommendation of 8 inside a 300 s scale-down window keeps the fleet at 8 even
    # though the queue alone now asks for 2: the same memory the operator would use.
    scaler.add(TARGET, 8)
    signals.set_value(QUEUE, 10, sampled_at=NOW - 1)
    pool_spec = spec(
        behavior={
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
            "scaleDown": {"stabilizationWindowSeconds": 300, "policies": []},
        }
    )
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 60))
    status = {
        "replicas": 8,
        "desiredReplicas": 8,
        "lastDecisionReason": "ScaledUp",
        "lastDecisionMessage": "Scaled up from 4 to 8 replicas: 40 requests waiting.",
        "lastScaleTime": recent,
        "lastScaleUpTime": recent,
        "recommendations": [{"time": recent, "replicas": 8}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Active",
                "message": "Observing, deciding and scaling the target.",
                "lastTransitionTime": recent,
            }
        ],
    }
    explanation = await explain(body(pool_spec, status), scaler, signals)
    assert explanation.decision.desired_replicas == 8
    stabilize = next(s for s in explanation.decision.steps if s.name == "stabilize")
    assert stabilize.replicas == 8
    text = render_text(explanation)
    assert "ScaledUp: Scaled up from 4 to 8 replicas: 40 requests waiting." in text
    assert "Ready=True (Active, since 60s ago): Observing, deciding and scaling" in text
    assert "the operator would hold 8" in text
    assert f"last scaled {recent} (60s ago), last raised {recent} (60s ago)" in text


async def test_shows_the_queries_as_the_operator_sends_them_when_it_enforces_namespaces(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    scoped_queue = 'sum(vllm:num_requests_waiting{model_name="llama",namespace="models"})'
    signals.set_value(scoped_queue, 40, sampled_at=NOW - 5)
    pool_spec = spec()
    pool_spec["metrics"]["gpuUtilization"]["query"] = 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="x"})'
    explanation = await explain_pool(
        NS,
        POOL,
        body(pool_spec),
        scaler=scaler,
        signals=signals,
        secrets=FakeSecretReader(),
        settings=Settings(prometheus_allowed_urls=(POOL_URL,), enforce_namespace=True),
        now=NOW,
    )
    [read] = signals.calls
    assert [q.promql for q in read.queries] == [scoped_queue]  # the refused one is not sent
    assert explanation.live.queue_query == scoped_queue
    assert explanation.live.queue.value == 40
    assert explanation.live.gpu.problem is MetricProblem.QUERY_REFUSED
    assert 'matches namespace="x"' in render_text(explanation)


async def test_agrees_with_what_the_controller_decides(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    pool_body = body(spec())
    explanation = await explain(pool_body, scaler, signals)
    controller_scaler = FakeScaleActuator()
    controller_scaler.add(TARGET, 2, accelerators_per_replica=4)
    deps = fake_pool_dependencies(
        signals=signals,
        scaler=controller_scaler,
        settings=Settings(prometheus_allowed_urls=(POOL_URL,)),
    )
    result = await reconcile(InferencePoolRef(NS, POOL, "u-1", 1), pool_body["spec"], {}, deps, NOW)
    assert result.decision is not None
    assert result.decision == explanation.decision
    assert [c.replicas for c in controller_scaler.writes] == [explanation.decision.desired_replicas]


async def test_a_pool_without_prometheus_holds_and_says_where_to_set_it(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    pool_spec = spec()
    del pool_spec["metrics"]["prometheus"]
    explanation = await explain(body(pool_spec), scaler, signals)
    assert explanation.decision.desired_replicas == 2  # never scales blind
    assert explanation.live.queue.problem is MetricProblem.QUERY_FAILED
    assert signals.calls == []
    assert "no Prometheus URL: set spec.metrics.prometheus.url" in render_text(explanation)


async def test_default_prometheus_and_credentials_from_secrets(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    pool_spec = spec()
    pool_spec["metrics"]["prometheus"] = {
        "bearerTokenSecretRef": {"name": "prom", "key": "token"},
    }
    secrets = FakeSecretReader()
    secrets.set_secret(NS, "prom", {"token": "s3cret\n"})
    explanation = await explain(
        body(pool_spec), scaler, signals, secrets, default_url="http://prom:9090"
    )
    (read,) = signals.calls
    endpoint = read.queries[0].endpoint
    assert (endpoint.url, endpoint.bearer_token) == ("http://prom:9090", "s3cret")
    assert "s3cret" not in render_text(explanation)
    assert "s3cret" not in render_json(explanation)


async def test_default_prometheus_uses_the_operators_credential_files(
    scaler: FakeScaleActuator, signals: FakeSignalSource, tmp_path: Path
) -> None:
    # What `fleetscale run` would send to its default Prometheus, explain sends too.
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    pool_spec = spec()
    del pool_spec["metrics"]["prometheus"]
    await explain_pool(
        NS,
        POOL,
        body(pool_spec),
        scaler=scaler,
        signals=signals,
        secrets=FakeSecretReader(),
        settings=Settings(
            prometheus_url="http://prom:9090", prometheus_bearer_token_file=token_file
        ),
        now=NOW,
    )
    (read,) = signals.calls
    endpoint = read.queries[0].endpoint
    assert (endpoint.url, endpoint.bearer_token) == ("http://prom:9090", "from-file")


async def test_missing_secret_is_explained_not_raised(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    pool_spec = spec()
    pool_spec["metrics"]["prometheus"]["caSecretRef"] = {"name": "prom-ca", "key": "ca.crt"}
    explanation = await explain(body(pool_spec), scaler, signals)
    assert "cannot read Prometheus credentials" in render_text(explanation)
    assert explanation.decision.desired_replicas == 2


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        pytest.param("DryRun", "in DryRun the operator only reports that it would go 2 -> 8"),
        pytest.param("Paused", "the pool is Paused, so the operator does nothing"),
    ],
)
async def test_modes_say_what_the_operator_does_with_the_plan(
    mode: str, words: str, scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    explanation = await explain(body(spec(mode=mode)), scaler, signals)
    assert words in render_text(explanation)


@pytest.mark.parametrize(
    ("pool_body", "message"),
    [
        pytest.param(
            body(spec(replicas={"min": 5, "max": 2})),
            "has an invalid spec: replicas: replicas.min must be less than or equal",
            id="invalid-spec",
        ),
        pytest.param(
            body(spec(targetRef={"kind": "Deployment", "name": "gone"})),
            "cannot read the target Deployment.apps/v1 models/gone",
            id="missing-target",
        ),
    ],
)
async def test_what_cannot_be_explained_says_why(
    pool_body: dict[str, Any], message: str, scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    with pytest.raises(ExplainError, match=message):
        await explain(pool_body, scaler, signals)


async def test_json_output_carries_every_step(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    explanation = await explain(body(spec()), scaler, signals)
    document = json.loads(render_json(explanation))
    assert document["plan"]["desiredReplicas"] == 8
    assert [s["name"] for s in document["plan"]["steps"]] == [
        s.name for s in explanation.decision.steps
    ]
    assert document["observed"]["queueDepth"]["value"] == 40


# ---------------------------------------------------------------------------------------------
# The command, through the real adapters


def kubeconfig_for(emulator: kmock.KubernetesEmulator, path: Path) -> Path:
    server = str(emulator.url).rstrip("/")
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}
                ],
                "current-context": "emulator",
            }
        )
    )
    return path


async def test_explain_command_reads_the_cluster_and_prometheus_and_writes_nothing(
    kmock: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    declare(kmock, "apps/v1/deployments", "Deployment", subresources=["scale", "status"])
    declare(kmock, POOLS, "InferencePool", subresources=["status"])
    deployments = ScaleSubresource(kmock, "apps/v1/deployments")
    declare(kmock, APOOLS, "AcceleratorPool", namespaced=False, subresources=["status"])
    # The operator's AcceleratorPool caps this pool at 4 replicas (MaxNodes).
    kmock.objects[APOOLS, None, "h100"] = {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "AcceleratorPool",
        "metadata": {"name": "h100"},
        "spec": {},
        "status": {"allocations": [allocation_entry(max_replicas=4, reason="MaxNodes")]},
    }
    kmock.objects["apps/v1/deployments", NS, "vllm"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": NS, "resourceVersion": "3"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "vllm"}},
            "template": {
                "metadata": {"labels": {"app": "vllm"}},
                "spec": {
                    "containers": [
                        {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
                    ]
                },
            },
        },
        "status": {"replicas": 3, "readyReplicas": 3},
    }
    async with PrometheusServer() as prometheus:
        pool_spec = spec(acceleratorPoolRef={"name": "h100"})
        pool_spec["metrics"]["prometheus"] = {"url": prometheus.url}
        kmock.objects["fleetscale.io/v1alpha1/inferencepools", NS, POOL] = body(pool_spec)
        now = time.time()
        prometheus.set_value(QUEUE, 30, sampled_at=now - 2)
        prometheus.set_value(GPU, 90, sampled_at=now - 2)
        stored_before = json.dumps(
            kmock.objects["fleetscale.io/v1alpha1/inferencepools", NS, POOL].raw, sort_keys=True
        )

        explanation = await explain_live(
            NS,
            POOL,
            Settings(prometheus_allowed_urls=(prometheus.url,)),
            str(kubeconfig_for(kmock, tmp_path / "kubeconfig")),
            None,
        )

        assert prometheus.query_count(QUEUE) == 1
    assert explanation.live.target.spec_replicas == 3
    assert explanation.live.target.accelerators_per_replica == 2
    # 30 waiting / 5 per replica asks for 6; the AcceleratorPool's published cap holds 4.
    assert explanation.decision.unconstrained_replicas == 6
    assert explanation.decision.desired_replicas == 4
    capacity = next(step for step in explanation.decision.steps if step.name == "capacity")
    assert (capacity.replicas, capacity.reason) == (4, "MaxNodes")
    text = render_text(explanation)
    assert "target: 3 replicas, 3 ready, 2 accelerators per replica" in text
    assert "the operator would go 3 -> 4" in text
    # Nothing written anywhere: every request was a read.
    methods = {str(request.method).upper().rsplit(".", 1)[-1] for request in kmock}
    assert methods == {"GET"}, methods
    assert deployments.writes == []
    assert kmock.objects["apps/v1/deployments", NS, "vllm"].raw["spec"]["replicas"] == 3
    stored_after = json.dumps(
        kmock.objects["fleetscale.io/v1alpha1/inferencepools", NS, POOL].raw, sort_keys=True
    )
    assert stored_after == stored_before


async def test_explain_command_names_a_missing_pool(
    kmock: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    declare(kmock, "fleetscale.io/v1alpha1/inferencepools", "InferencePool")
    with pytest.raises(ExplainError, match="InferencePool models/nope not found"):
        await explain_live(
            NS, "nope", Settings(), str(kubeconfig_for(kmock, tmp_path / "kubeconfig")), None
        )


async def test_a_sample_stamped_a_moment_after_our_clock_reads_as_just_now(
    scaler: FakeScaleActuator, signals: FakeSignalSource
) -> None:
    # Prometheus stamps an instant query with its own evaluation time, a hair after ours.
    signals.set_value(QUEUE, 40, sampled_at=NOW + 0.4)
    text = render_text(await explain(body(spec()), scaler, signals))
    assert "queue depth: 40, sampled just now" in text
    assert "target: 2 replicas, 2 ready" in text
