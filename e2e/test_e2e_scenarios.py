"""The operator against a real control plane, a real Prometheus and a simulated vLLM fleet.

Every scenario runs in a namespace of its own with an operator that watches it.
The fleet exporter makes the numbers predictable: with concurrency C per Ready
replica and an offered load L, the queue is max(0, L - C x ready) and each GPU
is 100% busy while its replica has C requests running (see fleet_exporter.py).
With a queue target of 5 per replica, L=30 and C=4 on one replica, the queue is
26 and asks for ceil(26 / 5) = 6 replicas; at 6 replicas every GPU is busy, so
the GPU signal keeps all 6 although the queue (6) alone would ask for 2.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from e2e_support import (
    Exporter,
    Kube,
    Operator,
    Prometheus,
    decisions,
    ready_replicas,
    spec_generation,
    spec_replicas,
    wait_until,
)
from fleetscale.settings import Settings
from pools import (
    condition,
    condition_is,
    create_pool,
    event_reasons,
    get_pool,
    inference_pool,
    queue_query,
)

CONCURRENCY = 4
MODEL = "llama"


def start_fleet(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    replicas: int,
    load: int,
) -> None:
    """A Deployment with ``replicas`` Ready pods and ``load`` offered, seen by Prometheus."""
    deploy_vllm("vllm", replicas=replicas, gpus=2)
    wait_until(
        lambda: ready_replicas(kube, namespace, "vllm") == replicas,
        60,
        f"{replicas} Ready replicas",
    )
    fleet_load.set_load(namespace, "vllm", load, model=MODEL, concurrency=CONCURRENCY)
    expected = max(0, load - CONCURRENCY * replicas)
    prometheus.wait_for_value(queue_query(namespace, MODEL), expected)


def assert_holds(
    kube: Kube,
    operator: Operator,
    namespace: str,
    replicas: int,
    ticks: int,
    since: tuple[int, int] | None = None,
) -> None:
    """The next ``ticks`` decisions of the pool leave the Deployment at ``replicas`` with no
    write to its spec at all: its generation stays where it was when this was called (or at
    ``since``, a (generation, replicas) read earlier)."""
    before = since or spec_generation(kube, namespace, "vllm")
    assert before[1] == replicas, f"the Deployment has {before[1]} replicas, not {replicas}"
    start = decisions(operator, namespace, "llama")
    wait_until(
        lambda: decisions(operator, namespace, "llama") >= start + ticks,
        30 + 5 * ticks,
        f"{ticks} more decisions of the pool",
    )
    after = spec_generation(kube, namespace, "vllm")
    assert after == before, f"(generation, replicas) went from {before} to {after}"


def recommended(status: dict[str, Any]) -> list[tuple[float, int]]:
    """status.recommendations as (epoch seconds, replicas), oldest first."""
    return [
        (datetime.fromisoformat(r["time"]).timestamp(), r["replicas"])
        for r in status.get("recommendations") or []
    ]


def replaced_at(status: dict[str, Any], replicas: int) -> float | None:
    """When the last run of recommendations of ``replicas`` gave way to another number."""
    history = recommended(status)
    last = max((i for i, (_, r) in enumerate(history) if r == replicas), default=None)
    if last is None or last + 1 == len(history):
        return None
    return history[last + 1][0]


def test_scales_up_on_queue_depth_and_holds_while_gpus_are_busy(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=30)
    create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, max_replicas=8, gpu=True))

    wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 6, 60, "6 replicas")
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 6, 60, "6 Ready replicas")
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and p.get("status", {}).get("readyReplicas") == 6
            and p
        ),
        30,
        "status.readyReplicas == 6",
    )
    status = pool["status"]
    assert status["desiredReplicas"] == 6
    assert condition_is(pool, "MetricsAvailable", "True")
    assert condition_is(pool, "ScalingLimited", "False")
    assert status["observed"]["queueDepth"] is not None
    assert "ScaledUp" in event_reasons(kube, namespace, "llama")

    # Queue 6 alone asks for 2, but the GPUs are all busy: the fleet holds.
    assert_holds(kube, operator, namespace, replicas=6, ticks=4)
    # While the new replicas were starting the fleet was limited (ReplicasNotReady) and may
    # have shed; once they are Ready nothing limits it, and the flag is down.
    pool = get_pool(kube, namespace, "llama")
    assert not (pool["status"].get("shedLoad") or {}).get("active", False)
    reasons = event_reasons(kube, namespace, "llama")
    if "ShedLoadStarted" in reasons:
        assert "ShedLoadStopped" in reasons[reasons.index("ShedLoadStarted") :]


def test_scales_down_to_min_when_idle(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=5, load=0)
    create_pool(
        kube,
        inference_pool(
            "llama", namespace, "vllm", MODEL, min_replicas=2, gpu=True, scale_down_window=4
        ),
    )
    wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 2, 60, "scale-down to min 2")
    assert_holds(kube, operator, namespace, replicas=2, ticks=3)  # never below min, no flapping
    assert "ScaledDown" in event_reasons(kube, namespace, "llama")
    pool = get_pool(kube, namespace, "llama")
    assert pool["status"]["desiredReplicas"] == 2


def test_sheds_load_at_max_replicas_and_stops_when_demand_fits(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    # Two replicas serve 8; 92 wait, 46 per replica, over the threshold of 20.
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=2, load=100)
    create_pool(
        kube,
        inference_pool(
            "llama",
            namespace,
            "vllm",
            MODEL,
            max_replicas=2,
            shed_threshold=20,
            shed_config_map="llama-shed",
        ),
    )

    def shedding() -> dict[str, Any] | None:
        p = get_pool(kube, namespace, "llama")
        return p if (p.get("status", {}).get("shedLoad") or {}).get("active") else None

    pool = wait_until(shedding, 60, "status.shedLoad.active")
    assert condition_is(pool, "ScalingLimited", "True", "MaxReplicas")
    assert condition_is(pool, "ShedLoad", "True")
    assert pool["status"]["shedLoad"]["retryAfterSeconds"] >= 1
    assert spec_replicas(kube, namespace, "vllm") == 2
    assert "ShedLoadStarted" in event_reasons(kube, namespace, "llama")
    cm = wait_until(
        lambda: kube.core.read_namespaced_config_map("llama-shed", namespace),
        30,
        "the shed-load ConfigMap",
    )
    assert cm.data["active"] == "true"
    assert int(cm.data["retryAfterSeconds"]) >= 1

    # Demand fits again: 8 in flight, nothing waits.
    fleet_load.set_load(namespace, "vllm", 8)
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and not (p["status"].get("shedLoad") or {}).get("active")
            and p
        ),
        60,
        "shed-load to stop",
    )
    assert condition_is(pool, "ShedLoad", "False")
    assert "ShedLoadStopped" in event_reasons(kube, namespace, "llama")
    wait_until(
        lambda: (
            kube.core.read_namespaced_config_map("llama-shed", namespace).data["active"] == "false"
        ),
        30,
        "the ConfigMap to say active=false",
    )


def test_holds_size_while_prometheus_is_down_and_recovers(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus_restarted: Prometheus,
    operator: Operator,
) -> None:
    prom = prometheus_restarted
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prom, replicas=3, load=0)
    prom.stop()
    # Idle fleet, no stabilization: with metrics it would drop to 1 at once.
    create_pool(
        kube, inference_pool("llama", namespace, "vllm", MODEL, scale_down_window=0, poll=1)
    )
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and condition_is(p, "MetricsAvailable", "False")
            and p
        ),
        60,
        "MetricsAvailable=False",
    )
    assert (condition(pool, "MetricsAvailable") or {}).get("message"), "no reason given"
    assert_holds(kube, operator, namespace, replicas=3, ticks=5)  # no scaling on missing data
    assert "MetricsUnavailable" in event_reasons(kube, namespace, "llama")

    prom.start()
    wait_until(
        lambda: condition_is(get_pool(kube, namespace, "llama"), "MetricsAvailable", "True"),
        60,
        "MetricsAvailable=True after Prometheus is back",
    )
    wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 1, 60, "scale-down to 1")


def test_restarted_operator_continues_the_stabilization_window(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    window = 30
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=30)
    create_pool(
        kube,
        inference_pool(
            "llama", namespace, "vllm", MODEL, gpu=True, scale_down_window=window, poll=1
        ),
    )
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 6, 90, "6 Ready replicas")
    wait_until(
        lambda: 6 in [r for _, r in recommended(get_pool(kube, namespace, "llama")["status"])],
        30,
        "the busy fleet's recommendation of 6 in status",
    )

    fleet_load.set_load(namespace, "vllm", 0)
    low_since = wait_until(
        lambda: replaced_at(get_pool(kube, namespace, "llama")["status"], 6),
        60,
        "the idle fleet's lower recommendation in status",
    )
    # Ten more ticks hold at 6, so the restart comes a third into the window: a restarted
    # operator that kept the window scales down 20 s after it, one that started a new window
    # at its first tick would wait 30 s.
    assert_holds(kube, operator, namespace, replicas=6, ticks=10)

    # A clean restart (SIGTERM: the operator releases its Lease on the way out).
    restarted_at = time.time()
    operator.restart()

    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and p["status"].get("desiredReplicas", 6) < 6
            and p
        ),
        60,
        "scale-down after the window",
    )
    # The operator's own times: the 6 counted until a full window after it was replaced (not
    # at once), and the window was the one that began before the restart (not a new one
    # begun at the restarted operator's first tick).
    scaled_at = datetime.fromisoformat(pool["status"]["lastScaleTime"]).timestamp()
    assert scaled_at >= low_since + window, f"{scaled_at - low_since:.1f} s after the drop"
    assert scaled_at < restarted_at + window, f"{scaled_at - restarted_at:.1f} s after restart"
    wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 1, 30, "scale-down to 1")


# How long a crashed replica's Lease is honoured before another replica may take over; the
# same replica restarted (same pod name) renews its own Lease at once.
LEASE_DURATION = Settings().lease_duration_seconds


def test_operator_recovers_from_a_crash(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=0)
    create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, gpu=True, poll=1))
    wait_until(
        lambda: condition_is(get_pool(kube, namespace, "llama"), "MetricsAvailable", "True"),
        60,
        "the operator to observe the pool",
    )

    operator.kill()  # SIGKILL (or force-deleted pods): no clean-up of any kind
    crashed = time.monotonic()
    operator.start()
    fleet_load.set_load(namespace, "vllm", 30)
    wait_until(
        lambda: spec_replicas(kube, namespace, "vllm") == 6,
        LEASE_DURATION + 60,
        "the replacement operator to scale up",
    )
    elapsed = time.monotonic() - crashed
    assert elapsed <= LEASE_DURATION + 30, f"the replacement acted {elapsed:.0f}s after the crash"


def test_dry_run_decides_and_reports_but_never_acts(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=30)
    untouched = spec_generation(kube, namespace, "vllm")
    create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, mode="DryRun", poll=1))
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and p.get("status", {}).get("desiredReplicas") == 6
            and p
        ),
        60,
        "status.desiredReplicas == 6",
    )
    assert pool["status"]["observed"]["queueDepth"] == 26
    # Not one write to the target since the pool was created, over its first ticks and five more.
    assert_holds(kube, operator, namespace, replicas=1, ticks=5, since=untouched)
    assert "ScaledUp" not in event_reasons(kube, namespace, "llama")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        pytest.param(
            {"replicas": {"min": 5, "max": 2}},
            "replicas.min must be less than or equal to replicas.max",
            id="min-above-max",
        ),
        pytest.param({"mode": "Turbo"}, "Unsupported value", id="unknown-mode"),
        pytest.param({"replicas": {"min": 1, "max": 0}}, "spec.replicas.max", id="max-zero"),
        pytest.param(
            {"shedLoad": {"queuePerReplicaThreshold": 10, "releaseQueuePerReplica": 10}},
            "releaseQueuePerReplica must be below",
            id="release-not-below-threshold",
        ),
        pytest.param(
            {"metrics": {"engine": "custom", "queueDepth": {"targetPerReplica": 5}}},
            "metrics.engine custom needs metrics.queueDepth.query or metrics.queries.waiting",
            id="custom-without-a-queue-query",
        ),
    ],
)
def test_api_server_rejects_invalid_pools(
    kube: Kube, namespace: str, patch: dict[str, Any], message: str
) -> None:
    doc = inference_pool("bad", namespace, "vllm", MODEL)
    doc["spec"].update(patch)
    with pytest.raises(ApiException) as err:
        create_pool(kube, doc)
    assert err.value.status == 422, err.value.body
    assert message in err.value.body


def test_kubectl_explain_describes_the_api(kube: Kube) -> None:
    out = kube.kubectl("explain", "inferencepools.fleetscale.io.spec.replicas").stdout
    assert "min" in out
    assert "max" in out
    assert "DESCRIPTION" in out.upper()


def test_a_pool_refuses_to_fight_an_hpa_on_its_workload(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    prometheus: Prometheus,
    operator: Operator,
) -> None:
    """An HPA (KEDA creates one per ScaledObject) already sizes the Deployment: the pool says
    so and leaves the replicas to it, as the chart's ServiceAccount sees HPAs through its
    watch."""
    from kubernetes import client

    start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=30)
    client.AutoscalingV2Api(kube.api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "vllm"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )
    create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, poll=1))
    pool = wait_until(
        lambda: (
            (p := get_pool(kube, namespace, "llama"))
            and condition_is(p, "Ready", "False", "ConflictingAutoscaler")
            and p
        ),
        60,
        "Ready=False ConflictingAutoscaler",
    )
    message = (condition(pool, "Ready") or {}).get("message", "")
    assert f"HorizontalPodAutoscaler {namespace}/vllm" in message
    assert "ConflictingAutoscaler" in event_reasons(kube, namespace, "llama")
    assert spec_replicas(kube, namespace, "vllm") == 1  # the queue asks for 6: not acted on
