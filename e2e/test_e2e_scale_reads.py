"""The operator's one-read view of an apps/v1 workload matches the API server's own /scale.

For Deployments, StatefulSets and ReplicaSets the actuator reads the object alone and derives
its Scale (``workloads.scale_of_apps_workload``) instead of reading /scale as well; this holds
only while the derivation says what the real API server says, selector string included.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e_support import Kube, vllm_deployment, wait_until
from fleetscale.actuators.workloads import scale_of_apps_workload


def raw(kube: Kube, path: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(kube.kubectl("get", "--raw", path).stdout)
    return answer


def scale_fields(scale: dict[str, Any]) -> tuple[int, int, str]:
    # omitempty on both sides: a Scale at zero has no spec.replicas.
    spec, status = scale.get("spec") or {}, scale.get("status") or {}
    return (spec.get("replicas") or 0, status.get("replicas") or 0, status.get("selector") or "")


@pytest.mark.parametrize(
    "replicas", [pytest.param(2, id="running"), pytest.param(0, id="scaled-to-zero")]
)
def test_a_deployment_says_what_its_scale_says(kube: Kube, namespace: str, replicas: int) -> None:
    doc = vllm_deployment("vllm", replicas=replicas, gpus=1)
    doc["spec"]["selector"]["matchExpressions"] = [
        {"key": "zone", "operator": "In", "values": ["b", "a"]},
        {"key": "gpu", "operator": "Exists"},
        {"key": "canary", "operator": "DoesNotExist"},
    ]
    doc["spec"]["template"]["metadata"]["labels"].update({"zone": "a", "gpu": "h100"})
    kube.apps.create_namespaced_deployment(namespace, doc)
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/vllm"

    def settled() -> bool:
        status = raw(kube, path).get("status") or {}
        return (status.get("readyReplicas") or 0) == replicas == (status.get("replicas") or 0)

    wait_until(settled, 60, f"{replicas} Ready replicas")
    derived = scale_of_apps_workload(raw(kube, path))
    served = raw(kube, path + "/scale")
    assert scale_fields(derived) == scale_fields(served)
    assert "zone in (a,b)" in scale_fields(served)[2]
