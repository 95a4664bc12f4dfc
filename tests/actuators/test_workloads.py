"""What a workload object says about accelerators and readiness (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetscale.actuators.workloads import (
    accelerators_per_replica,
    count_ready_pods,
    label_selector_string,
    pod_accelerators,
    ready_replicas_from_status,
    scale_of_apps_workload,
)


def container(
    limits: dict[str, Any] | None = None, requests: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    return {"name": "c", "resources": resources, **extra}


def deployment(
    *containers: dict[str, Any], init: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": spec}}}


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        pytest.param(deployment(container({"nvidia.com/gpu": "4"})), 4, id="limit-as-string"),
        pytest.param(deployment(container({"nvidia.com/gpu": 2})), 2, id="limit-as-number"),
        pytest.param(deployment(container(requests={"amd.com/gpu": "1"})), 1, id="request-only"),
        pytest.param(deployment(container({"google.com/tpu": "8"})), 8, id="tpu"),
        pytest.param(deployment(container({"aws.amazon.com/neuron": "1"})), 1, id="neuron"),
        pytest.param(
            deployment(container({"nvidia.com/gpu": "2"}), container({"nvidia.com/gpu": "2"})),
            4,
            id="two-containers-add-up",
        ),
        pytest.param(deployment(container({"cpu": "8", "memory": "64Gi"})), None, id="cpu-only"),
        pytest.param(deployment(container()), None, id="no-resources"),
        pytest.param({"kind": "Custom", "spec": {"size": 3}}, None, id="no-pod-template"),
        pytest.param(
            deployment(
                container({"nvidia.com/gpu": "1"}),
                init=[container({"nvidia.com/gpu": "8"})],  # a one-off step that needs 8
            ),
            8,
            id="init-container-larger-than-app",
        ),
        pytest.param(
            deployment(
                container({"nvidia.com/gpu": "4"}),
                init=[container({"nvidia.com/gpu": "1"}, restartPolicy="Always")],
            ),
            5,
            id="sidecar-adds-up",
        ),
        pytest.param(
            {
                "kind": "LeaderWorkerSet",
                "spec": {
                    "leaderWorkerTemplate": {
                        "size": 2,
                        "leaderTemplate": {
                            "spec": {"containers": [container({"nvidia.com/gpu": "1"})]}
                        },
                        "workerTemplate": {
                            "spec": {"containers": [container({"nvidia.com/gpu": "8"})]}
                        },
                    }
                },
            },
            9,
            id="lws-leader-plus-workers",
        ),
    ],
)
def test_accelerators_per_replica(workload: dict[str, Any], expected: int | None) -> None:
    assert accelerators_per_replica(workload) == expected


@given(gpus=st.lists(st.integers(0, 16), min_size=1, max_size=6))
def test_app_containers_always_add_up(gpus: list[int]) -> None:
    spec = {"containers": [container({"nvidia.com/gpu": str(n)}) for n in gpus]}
    assert pod_accelerators(spec) == sum(gpus)


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        pytest.param(
            {"apiVersion": "apps/v1", "kind": "Deployment", "status": {"readyReplicas": 3}},
            3,
            id="reported",
        ),
        pytest.param(
            {"apiVersion": "apps/v1", "kind": "Deployment", "status": {"replicas": 2}},
            0,
            id="deployment-omits-zero",
        ),
        pytest.param(
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "status": {}},
            0,
            id="statefulset-omits-zero",
        ),
        pytest.param(
            {"apiVersion": "x.io/v1", "kind": "Custom", "status": {"replicas": 2}},
            None,
            id="unknown-kind",
        ),
        pytest.param(
            {"apiVersion": "x.io/v1", "kind": "Custom", "status": {"readyReplicas": "2"}},
            2,
            id="string",
        ),
    ],
)
def test_ready_replicas_from_status(workload: dict[str, Any], expected: int | None) -> None:
    assert ready_replicas_from_status(workload) == expected


def test_count_ready_pods() -> None:
    def pod(ready: str | None, deleting: bool = False) -> dict[str, Any]:
        conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
        metadata = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
        return {"metadata": metadata, "status": {"conditions": conditions}}

    pods = [pod("True"), pod("True"), pod("False"), pod(None), pod("True", deleting=True)]
    assert count_ready_pods(pods) == 2


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param({"matchLabels": {"app": "vllm"}}, "app=vllm", id="one-label"),
        pytest.param(
            {"matchLabels": {"tier": "serve", "app": "vllm"}}, "app=vllm,tier=serve", id="sorted"
        ),
        pytest.param(
            {
                "matchLabels": {"app": "vllm"},
                "matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["b", "a"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "gpu", "operator": "Exists"},
                    {"key": "model", "operator": "NotIn", "values": ["8b"]},
                ],
            },
            "app=vllm,!canary,gpu,model notin (8b),zone in (a,b)",
            id="expressions",
        ),
        pytest.param({}, "", id="empty-selects-everything"),
    ],
)
def test_label_selectors_read_as_the_api_writes_them(
    selector: dict[str, Any], expected: str
) -> None:
    assert label_selector_string(selector) == expected


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        pytest.param(
            {
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "vllm"}}},
                "status": {"replicas": 4, "readyReplicas": 2},
            },
            {"spec": {"replicas": 3}, "status": {"replicas": 4, "selector": "app=vllm"}},
            id="rolling-update",
        ),
        pytest.param(
            {"spec": {"replicas": 0, "selector": {"matchLabels": {"app": "vllm"}}}, "status": {}},
            {"spec": {"replicas": 0}, "status": {"replicas": 0, "selector": "app=vllm"}},
            id="scaled-to-zero-has-no-status-counts",
        ),
        pytest.param(
            {"spec": {"selector": {"matchLabels": {"app": "vllm"}}}},
            {"spec": {"replicas": 1}, "status": {"replicas": 0, "selector": "app=vllm"}},
            id="replicas-defaulted-to-one",
        ),
    ],
)
def test_an_apps_workload_gives_the_scale_the_api_server_would(
    workload: dict[str, Any], expected: dict[str, Any]
) -> None:
    scale = scale_of_apps_workload(workload)
    assert {"spec": scale["spec"], "status": scale["status"]} == expected
