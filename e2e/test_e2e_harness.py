"""The e2e environment itself: before the operator is judged, its ground must hold.

A real scheduler places GPU pods on kwok's fake GPU nodes and respects their
capacity, kwok makes the pods Ready, the fleet exporter turns the offered load
and the Ready pods into vLLM and DCGM metrics, and Prometheus scrapes them.
"""

from __future__ import annotations

import os
from typing import Any

from e2e_support import Exporter, Kube, Prometheus, ready_replicas, wait_until

GPU = "nvidia.com/gpu"


def gpu_nodes(kube: Kube) -> list[Any]:
    return [
        n
        for n in kube.core.list_node().items
        if int((n.status.allocatable or {}).get(GPU, "0")) > 0
    ]


def node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def free_gpus(kube: Kube) -> int:
    total = sum(int(n.status.allocatable[GPU]) for n in gpu_nodes(kube) if node_ready(n))
    used = 0
    for pod in kube.core.list_pod_for_all_namespaces().items:
        if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
            continue
        for c in pod.spec.containers:
            used += int(((c.resources and c.resources.requests) or {}).get(GPU, "0"))
    return total - used


def test_control_plane_reports_its_version(kube: Kube) -> None:
    from kubernetes import client

    info = client.VersionApi(kube.api).get_code()
    assert info.major == "1"
    assert info.git_version.startswith(f"v1.{info.minor.rstrip('+')}.")
    expected = os.environ.get("FLEETSCALE_E2E_KUBE_VERSION")
    if expected:
        assert info.git_version == expected


def test_gpu_nodes_are_ready(kube: Kube) -> None:
    nodes = gpu_nodes(kube)
    assert nodes, "no node has nvidia.com/gpu capacity: create some with e2e/gpu_nodes.py"
    not_ready = [n.metadata.name for n in nodes if not node_ready(n)]
    assert not not_ready, f"GPU nodes not Ready: {not_ready}"


def test_scheduler_places_gpu_pods_and_kwok_makes_them_ready(
    kube: Kube, namespace: str, deploy_vllm: Any
) -> None:
    deploy_vllm("vllm", replicas=2, gpus=2)
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 2, 60, "2 Ready replicas")

    gpu_node_names = {n.metadata.name for n in gpu_nodes(kube)}
    pods = kube.core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/instance=vllm"
    ).items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name in gpu_node_names
        assert pod.status.phase == "Running"
    events = kube.core.list_namespaced_event(namespace).items
    scheduled = [e for e in events if e.reason == "Scheduled"]
    assert len(scheduled) >= 2, "the pods were not placed by kube-scheduler"


def test_gpu_capacity_is_enforced(kube: Kube, namespace: str, deploy_vllm: Any) -> None:
    free = free_gpus(kube)
    per_replica = 8
    fits = free // per_replica
    assert fits >= 1, f"only {free} free GPUs; the suite needs at least {per_replica}"
    deploy_vllm("big", replicas=fits + 1, gpus=per_replica)

    def pending_unschedulable() -> list[Any]:
        pods = kube.core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/instance=big"
        ).items
        return [
            p
            for p in pods
            if p.status.phase == "Pending"
            and any(
                c.type == "PodScheduled" and c.reason == "Unschedulable"
                for c in p.status.conditions or []
            )
        ]

    wait_until(lambda: ready_replicas(kube, namespace, "big") == fits, 60, f"{fits} Ready")
    stuck = wait_until(pending_unschedulable, 60, "one Unschedulable pod")
    assert len(stuck) == 1
    message = next(c.message for c in stuck[0].status.conditions if c.type == "PodScheduled")
    assert "nvidia.com/gpu" in message


def test_exporter_metrics_follow_load_and_ready_pods(
    kube: Kube, namespace: str, deploy_vllm: Any, fleet_load: Exporter, prometheus: Prometheus
) -> None:
    deploy_vllm("vllm", replicas=2, gpus=2)
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 2, 60, "2 Ready replicas")

    fleet_load.set_load(namespace, "vllm", 20, model="llama", concurrency=8)
    state = wait_until(
        lambda: (s := fleet_load.pool(namespace, "vllm")) and len(s["readyPods"]) == 2 and s,
        30,
        "the exporter to see 2 Ready pods",
    )
    assert (state["running"], state["waiting"]) == (16, 4)

    sel = f'namespace="{namespace}",model_name="llama"'
    prometheus.wait_for_value(f"sum(vllm:num_requests_waiting{{{sel}}})", 4)
    prometheus.wait_for_value(f"sum(vllm:num_requests_running{{{sel}}})", 16)
    gpu_sel = f'namespace="{namespace}"'
    prometheus.wait_for_value(f"count(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", 4)
    prometheus.wait_for_value(f"avg(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", 100)

    # One more replica: the queue drains, and the load spreads 7/7/6.
    kube.apps.patch_namespaced_deployment_scale(
        namespace=namespace, name="vllm", body={"spec": {"replicas": 3}}
    )
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 3, 60, "3 Ready replicas")
    prometheus.wait_for_value(f"sum(vllm:num_requests_waiting{{{sel}}})", 0)
    prometheus.wait_for_value(f"sum(vllm:num_requests_running{{{sel}}})", 20)
    prometheus.wait_for_value(f"count(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", 6)
    prometheus.wait_for_value(f"max(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", 88)
    prometheus.wait_for_value(f"min(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", 75)


def test_the_vllm_presets_queries_read_the_exporter(
    kube: Kube, namespace: str, deploy_vllm: Any, fleet_load: Exporter, prometheus: Prometheus
) -> None:
    """The names in the vLLM preset are the ones a current vLLM exports: each of its queries
    returns one series, with the value the exporter's model gives (rates within a tenth)."""
    from fleet_exporter import (
        FIRSTS_PER_REQUEST,
        GENERATION_TOKENS_PER_REQUEST,
        PROMPT_TOKENS_PER_REQUEST,
    )
    from fleetscale.signals.presets import preset_queries

    deploy_vllm("vllm", replicas=2, gpus=2)
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 2, 60, "2 Ready replicas")
    fleet_load.set_load(namespace, "vllm", 16, model="llama", concurrency=8)  # 8 + 8, none waits
    queries = preset_queries("vllm", namespace, "namespace", "llama", 95.0)
    prometheus.wait_for_value(queries["queue"], 0)
    prometheus.wait_for_value(queries["running"], 16)
    prometheus.wait_for_value(queries["kv_cache"], 0.5)
    expected = {
        "prompt_tokens": 16 * PROMPT_TOKENS_PER_REQUEST,
        "generation_tokens": 16 * GENERATION_TOKENS_PER_REQUEST,
        "request_rate": 16 * FIRSTS_PER_REQUEST,
    }
    for signal, value in expected.items():
        wait_until(
            lambda q=queries[signal], v=value: abs((prometheus.scalar(q) or 0) / v - 1) < 0.1,
            90,
            f"{signal} near {value}/s",
        )
    # Nothing waits: every first token takes 0.2 s, inside vLLM's (0.1, 0.25] bucket.
    wait_until(
        lambda: 0.1 < (prometheus.scalar(queries["ttft"]) or 0) <= 0.25, 90, "TTFT p95 0.1-0.25"
    )
    assert prometheus.query(f'vllm:gpu_cache_usage_perc{{namespace="{namespace}"}}') == []


def test_queue_without_ready_pods_is_still_reported(
    kube: Kube, namespace: str, deploy_vllm: Any, fleet_load: Exporter, prometheus: Prometheus
) -> None:
    deploy_vllm("vllm", replicas=0)
    fleet_load.set_load(namespace, "vllm", 7, model="cold")
    prometheus.wait_for_value(
        f'sum(vllm:num_requests_waiting{{namespace="{namespace}",model_name="cold"}})', 7
    )
    assert prometheus.query(f'vllm:num_requests_running{{namespace="{namespace}"}}') == []


def test_prometheus_can_be_stopped_and_started(
    prometheus_restarted: Prometheus, fleet_load: Exporter, namespace: str
) -> None:
    prom = prometheus_restarted
    prom.stop()
    assert not prom.ready()
    fleet_load.set_load(namespace, "absent", 3)
    prom.start()
    prom.wait_for_value(f'sum(vllm:num_requests_waiting{{namespace="{namespace}"}})', 3)
