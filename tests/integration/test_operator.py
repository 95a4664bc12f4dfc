"""The real operator end to end: kopf, the adapters and the planner against emulated APIs.

Each test starts the operator (kopf's KopfRunner, fleetscale's registry, the real adapters)
against kmock's Kubernetes emulator and a Prometheus-speaking HTTP server, then drives the
demand through Prometheus answers and watches what a user would see: the Deployment's
replicas, the InferencePool's status and conditions, Events, the shed ConfigMap and the
operator's own metrics. Intervals and windows are seconds, so each test takes seconds.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import pytest

from integration.harness import (
    Cluster,
    eventually,
    pool_spec,
    running_operator,
)
from support.prometheus_server import PrometheusServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NS = "serving"
QUEUE = 'sum(vllm:num_requests_waiting{model_name="llama"})'


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


def recommended_since(status: dict[str, Any], replicas: int) -> float | None:
    """When the last run of recommendations of ``replicas`` began (status.recommendations)."""
    history = status.get("recommendations", [])
    times = [epoch(entry["time"]) for entry in history if entry["replicas"] == replicas]
    return times[-1] if times else None


async def test_scales_up_on_queue_and_reports_why(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 40)  # 40 waiting / 5 per replica = 8 replicas
    cluster.add_deployment(NS, "vllm-llama", replicas=1, gpus_per_pod=4)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE))

    async with running_operator(cluster, prometheus) as operator:
        await eventually(lambda: cluster.replicas(NS, "vllm-llama") == 8, what="8 replicas")
        await eventually(
            lambda: cluster.status(NS, "llama").get("desiredReplicas") == 8, what="status"
        )
        await eventually(lambda: "ScaledUp" in cluster.event_reasons(NS, "llama"), what="Event")
        assert operator.metric('fleetscale_desired_replicas{namespace="serving",pool="llama"}') == 8

    status = cluster.status(NS, "llama")
    assert status["observed"]["queueDepth"] == 40
    assert status["observedGeneration"] == 1
    ready = cluster.condition(NS, "llama", "Ready")
    metrics_available = cluster.condition(NS, "llama", "MetricsAvailable")
    assert ready is not None
    assert ready["status"] == "True"
    assert metrics_available is not None
    assert metrics_available["status"] == "True"
    scaled = cluster.events(NS, "ScaledUp")[0]
    assert "from 1 to 8" in scaled["message"]
    assert scaled["type"] == "Normal"


async def test_scales_down_only_after_the_window(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 40)
    cluster.add_deployment(NS, "vllm-llama", replicas=8)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE, scale_down_window_seconds=4))

    async with running_operator(cluster, prometheus):
        await eventually(
            lambda: recommended_since(cluster.status(NS, "llama"), 8),
            what="the demand of 8 to be remembered",
        )
        prometheus.set_value(QUEUE, 5)  # one replica's worth
        status = await eventually(
            lambda: (s := cluster.status(NS, "llama")).get("desiredReplicas") == 1 and s,
            timeout_seconds=12,
            what="scale-down",
        )

    # The operator's own times, not the test's: the 8 stays in the 4 s window until 4 s after
    # the first tick that asked for 1, so the scale-down comes no earlier.
    low_since = recommended_since(status, 1)
    assert low_since is not None
    assert epoch(status["lastScaleTime"]) >= low_since + 4
    assert cluster.replicas(NS, "vllm-llama") == 1
    assert "ScaledDown" in cluster.event_reasons(NS, "llama")


@pytest.mark.parametrize(
    "break_prometheus",
    [
        pytest.param(
            lambda p: p.set_error(QUEUE, status=503, error_type="unavailable", error="down"),
            id="prometheus-down",
        ),
        pytest.param(lambda p: p.set_value(QUEUE, 0, sampled_at=time.time() - 600), id="stale"),
        pytest.param(lambda p: p.set_value(QUEUE, math.nan), id="nan"),
    ],
)
async def test_holds_the_size_when_metrics_are_unusable(
    cluster: Cluster, prometheus: PrometheusServer, break_prometheus: object
) -> None:
    # Zero demand would scale 6 -> 1 at once if the reading were trusted.
    break_prometheus(prometheus)  # type: ignore[operator]
    cluster.add_deployment(NS, "vllm-llama", replicas=6)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE, max_staleness_seconds=30))

    async with running_operator(cluster, prometheus):
        await eventually(
            lambda: (
                (cluster.condition(NS, "llama", "MetricsAvailable") or {}).get("status") == "False"
            ),
            what="MetricsAvailable=False",
        )
        first_status = cluster.status(NS, "llama")
        await eventually(
            lambda: prometheus.query_count(QUEUE) >= 4, what="a few more ticks", timeout_seconds=8
        )
        assert cluster.replicas(NS, "vllm-llama") == 6

    assert cluster.scale_writes() == 0
    # One Event on the transition, not one per tick.
    assert cluster.event_reasons(NS, "llama").count("MetricsUnavailable") == 1
    assert first_status["desiredReplicas"] == 6


async def test_sheds_at_max_replicas_and_stops_when_demand_fits(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 300)  # 100 per replica at the max of 3
    cluster.add_deployment(NS, "vllm-llama", replicas=3)
    shed = {"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-shed"}
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE, max_replicas=3, shed=shed))

    async with running_operator(cluster, prometheus) as operator:
        await eventually(
            lambda: (
                (cluster.config_map(NS, "llama-shed") or {}).get("data", {}).get("active") == "true"
            ),
            what="the shed ConfigMap",
        )
        status = await eventually(
            lambda: (s := cluster.status(NS, "llama")).get("shedLoad", {}).get("active") and s,
            what="the flag in status",
        )
        assert status["shedLoad"]["retryAfterSeconds"] > 0
        assert (cluster.condition(NS, "llama", "ScalingLimited") or {}).get("status") == "True"
        await eventually(
            lambda: (
                operator.metric('fleetscale_shed_active{namespace="serving",pool="llama"}') == 1
            ),
            what="the shed gauge",
        )

        prometheus.set_value(QUEUE, 3)  # 1 per replica: under the release threshold
        await eventually(
            lambda: (
                (cluster.config_map(NS, "llama-shed") or {}).get("data", {}).get("active")
                == "false"
            ),
            what="the flag to drop",
        )
        await eventually(
            lambda: cluster.status(NS, "llama")["shedLoad"]["active"] is False,
            what="the flag in status to drop",
        )
        await eventually(
            lambda: (
                operator.metric('fleetscale_shed_active{namespace="serving",pool="llama"}') == 0
            ),
            what="the shed gauge to drop",
        )

    reasons = cluster.event_reasons(NS, "llama")
    assert reasons.count("ShedLoadStarted") == 1
    assert reasons.count("ShedLoadStopped") == 1
    owner = (cluster.config_map(NS, "llama-shed") or {})["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("InferencePool", "llama")


async def test_dry_run_decides_and_reports_but_touches_nothing(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 300)
    cluster.add_deployment(NS, "vllm-llama", replicas=2)
    shed = {"enabled": True, "queuePerReplicaThreshold": 20, "configMapName": "llama-shed"}
    spec = pool_spec("vllm-llama", QUEUE, max_replicas=4, mode="DryRun", shed=shed)
    cluster.add_pool(NS, "llama", spec)

    async with running_operator(cluster, prometheus):
        await eventually(
            lambda: cluster.status(NS, "llama").get("desiredReplicas") == 4, what="a decision"
        )
        await eventually(
            lambda: "WouldScaleUp" in cluster.event_reasons(NS, "llama"), what="a would-Event"
        )
        await eventually(
            lambda: prometheus.query_count(QUEUE) >= 3, what="a few more ticks", timeout_seconds=8
        )

    assert cluster.replicas(NS, "vllm-llama") == 2
    assert cluster.scale_writes() == 0
    assert cluster.config_map(NS, "llama-shed") is None
    status = cluster.status(NS, "llama")
    assert status["shedLoad"]["active"] is False
    shed_condition = cluster.condition(NS, "llama", "ShedLoad") or {}
    assert shed_condition.get("reason") == "DryRunWouldShed"
    assert "ScaledUp" not in cluster.event_reasons(NS, "llama")


async def test_broken_pools_do_not_stop_the_others(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    other_queue = 'sum(vllm:num_requests_waiting{model_name="mistral"})'
    prometheus.set_value(QUEUE, 40)
    prometheus.set_value(other_queue, 20)
    cluster.add_pool(NS, "llama", pool_spec("no-such-deployment", QUEUE))
    # As if the CRD's schema had been bypassed (or an older CRD installed): min above max.
    cluster.add_pool(
        NS, "broken", pool_spec("vllm-mistral", other_queue, min_replicas=9, max_replicas=2)
    )
    cluster.add_deployment(NS, "vllm-mistral", replicas=1)
    cluster.add_pool(NS, "mistral", pool_spec("vllm-mistral", other_queue))

    async with running_operator(cluster, prometheus):
        await eventually(
            lambda: (cluster.condition(NS, "broken", "Ready") or {}).get("reason") == "InvalidSpec",
            what="Ready=False InvalidSpec",
        )
        await eventually(
            lambda: (
                (cluster.condition(NS, "llama", "Ready") or {}).get("reason") == "TargetNotFound"
            ),
            what="Ready=False TargetNotFound",
        )
        await eventually(lambda: cluster.replicas(NS, "vllm-mistral") == 4, what="mistral scaled")
        await eventually(
            lambda: "TargetNotFound" in cluster.event_reasons(NS, "llama"), what="the Event"
        )

    ready = cluster.condition(NS, "llama", "Ready") or {}
    assert ready["status"] == "False"
    assert "no-such-deployment" in ready["message"]
    assert cluster.events(NS, "TargetNotFound")[0]["type"] == "Warning"
    invalid = cluster.condition(NS, "broken", "Ready") or {}
    assert "replicas.min must be less than or equal to replicas.max" in invalid["message"]
    assert cluster.event_reasons(NS, "broken") == ["InvalidSpec"]


async def test_a_restarted_operator_continues_the_stabilization_window(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    window = 10
    prometheus.set_value(QUEUE, 40)
    cluster.add_deployment(NS, "vllm-llama", replicas=1)
    spec = pool_spec("vllm-llama", QUEUE, scale_down_window_seconds=window)
    cluster.add_pool(NS, "llama", spec)

    async with running_operator(cluster, prometheus):
        await eventually(lambda: cluster.replicas(NS, "vllm-llama") == 8, what="scale-up")
        prometheus.set_value(QUEUE, 5)  # one replica's worth from now on
        low_since = await eventually(
            lambda: recommended_since(cluster.status(NS, "llama"), 1),
            what="the low demand to be recorded",
        )
        # Later ticks hold at 8: wait for the queries of ticks 3 s on, so that the restart
        # below comes well after the drop and a new window would end seconds after this one.
        await eventually(
            lambda: any(
                r.promql == QUEUE and r.received_at >= low_since + 3 for r in prometheus.requests
            ),
            what="ticks 3 s after the drop",
        )
        assert cluster.replicas(NS, "vllm-llama") == 8  # held by the window

    history = cluster.status(NS, "llama")["recommendations"]
    assert [entry["replicas"] for entry in history][-2:] == [8, 1]

    restarted_at = time.time()
    async with running_operator(cluster, prometheus):
        status = await eventually(
            lambda: (s := cluster.status(NS, "llama")).get("desiredReplicas") == 1 and s,
            timeout_seconds=20,
            what="scale-down",
        )

    scaled_down_at = epoch(status["lastScaleTime"])
    # Not premature: the 8 recommended before the drop still counted after the restart, until
    # the window had passed the first tick that asked for 1.
    assert scaled_down_at >= low_since + window
    # Not restarted either: an operator that forgot the history would start a new window at
    # its first tick, after restarted_at (seeded with the current 8 replicas), and scale down
    # only once that window had passed.
    assert scaled_down_at < restarted_at + window
    assert cluster.replicas(NS, "vllm-llama") == 1
    assert "ScaledDown" in cluster.event_reasons(NS, "llama")


def _writes_by(cluster: Cluster, identity: str) -> list[str]:
    """The write requests a replica sent (it names itself in its User-Agent)."""
    return [
        f"{request.method} {request.url.path}"
        for request in cluster.server
        if str(request.method).upper().rsplit(".", 1)[-1] not in ("GET", "HEAD")
        and f"({identity})" in (request.headers.get("User-Agent") or "")
    ]


async def test_two_replicas_elect_one_and_the_standby_takes_over_on_a_clean_stop(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    """The chart's default, two replicas: one leads and acts, the other writes nothing at all
    (not the pool, not its status, not even the Lease); stopping the leader hands over."""
    prometheus.set_value(QUEUE, 20)
    cluster.add_deployment(NS, "vllm-llama", replicas=1)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE))
    async with running_operator(cluster, prometheus, identity="replica-a") as first:
        await eventually(lambda: cluster.replicas(NS, "vllm-llama") == 4, what="scale to 4")
        async with running_operator(cluster, prometheus, identity="replica-b") as second:
            await eventually(lambda: second.runtime.started, what="the standby to start")
            prometheus.set_value(QUEUE, 40)
            await eventually(lambda: cluster.replicas(NS, "vllm-llama") == 8, what="scale to 8")
            assert first.metric("fleetscale_leader") == 1
            assert second.metric("fleetscale_leader") == 0
            assert _writes_by(cluster, "replica-b") == []
            assert cluster.leases.holder("default", "fleetscale") == "replica-a"
        # The standby stopped; now the leader stops and releases the Lease.
    assert cluster.leases.holder("default", "fleetscale") is None
    prometheus.set_value(QUEUE, 10)
    async with running_operator(cluster, prometheus, identity="replica-b") as successor:
        await eventually(lambda: cluster.replicas(NS, "vllm-llama") == 2, what="scale to 2")
        assert successor.metric("fleetscale_leader") == 1
    assert _writes_by(cluster, "replica-b")


async def test_a_deleted_pool_is_released_at_once_and_its_metrics_removed(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    prometheus.set_value(QUEUE, 10)
    cluster.add_deployment(NS, "vllm-llama", replicas=2)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE))
    series = 'fleetscale_desired_replicas{namespace="serving",pool="llama"}'

    async with running_operator(cluster, prometheus) as operator:
        await eventually(lambda: operator.metric(series) == 2, what="the pool's series")
        # No finalizer: deleting a pool never waits for the operator.
        assert not cluster.pool(NS, "llama")["metadata"].get("finalizers")
        await cluster.delete_pool(NS, "llama")
        await eventually(lambda: cluster.pool_gone(NS, "llama"), what="the pool gone")
        await eventually(lambda: operator.metric(series) is None, what="the series removed")


def _pool_writers(cluster: Cluster, pool: str, target: str) -> list[str]:
    """Which replica sent each write to a pool's status or to its target's /scale, in order."""
    writers = []
    for request in cluster.server:
        if str(request.method).upper().rsplit(".", 1)[-1] in ("GET", "HEAD"):
            continue
        path = request.url.path
        if path.endswith((f"/inferencepools/{pool}/status", f"/deployments/{target}/scale")):
            agent = request.headers.get("User-Agent") or ""
            writers.append(agent.rsplit("(", 1)[-1].rstrip(")"))
    return writers


def _runs(writers: list[str]) -> list[str]:
    return [w for i, w in enumerate(writers) if i == 0 or writers[i - 1] != w]


async def test_a_second_replica_takes_a_shard_and_no_pool_ever_has_two_writers(
    cluster: Cluster, prometheus: PrometheusServer
) -> None:
    """Two shards: replica-a alone holds both; replica-b joins and takes one, which a hands
    over only after its ticks on it stopped. Each pool is written by one replica at a time:
    a, then (for the shard that moved) b, never back and forth."""
    pools = {"llama": 0, "mistral": 1}  # their shards among two (a stable hash of the name)
    prometheus.set_value(QUEUE, 20)
    for pool in pools:
        cluster.add_deployment(NS, f"vllm-{pool}", replicas=1)
        cluster.add_pool(NS, pool, pool_spec(f"vllm-{pool}", QUEUE))
    async with running_operator(cluster, prometheus, identity="replica-a", shards=2) as a:
        for pool in pools:
            await eventually(lambda p=pool: cluster.replicas(NS, f"vllm-{p}") == 4, what=pool)
        assert a.metric("fleetscale_shards_held") == 2
        async with running_operator(cluster, prometheus, identity="replica-b", shards=2) as b:
            await eventually(
                lambda: (
                    b.metric("fleetscale_shards_held") == 1
                    and a.metric("fleetscale_shards_held") == 1
                ),
                timeout_seconds=30,
                what="one shard each",
            )
            prometheus.set_value(QUEUE, 40)  # every pool acts again, on its shard's holder
            for pool in pools:
                await eventually(lambda p=pool: cluster.replicas(NS, f"vllm-{p}") == 8, what=pool)
            moved = next(s for s in (0, 1) if b.runtime.gate_for(s).admits())
            assert a.metric("fleetscale_leader") == (1 if moved == 1 else 0)
    for pool, shard in pools.items():
        runs = _runs(_pool_writers(cluster, pool, f"vllm-{pool}"))
        assert runs == (["replica-a", "replica-b"] if shard == moved else ["replica-a"]), pool
    assert cluster.leases.holder("default", f"fleetscale-shard-{moved}") is None  # released
