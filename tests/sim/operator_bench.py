"""Operator overhead at scale: the real operator against kmock's emulator and a Prometheus stub.

Role: ``FLEETSCALE_BENCH_BACKEND=kmock make bench-operator``, the emulator variant of
e2e/operator_bench.py (the default, on the real control plane). Its figures measure kmock more
than the operator: kmock's answer time grows with its request history.

For each pool count in ``$FLEETSCALE_BENCH_POOLS`` (default 100,1000) it creates that many
InferencePools and Deployments in kmock's Kubernetes emulator, runs the operator exactly as
``fleetscale run`` does (kopf's ``KopfRunner`` with the real adapters, through the integration
suite's harness), waits until every pool has reported once, then measures a steady window:
reconcile latency p50/p99 (the operator's own histogram), Kubernetes API calls per pool per
hour, status writes, Prometheus queries per tick, and the process's resident memory. It fails
when a bar is missed: status writes only on change, Prometheus queries per tick bounded by the
distinct queries (not the pools), p99 reconcile under 1 s at 1,000 pools. Results:
out/bench-operator-kmock/results.json and table.md.

Not collected by ``make unit`` (its file name does not start with ``test_``); run explicitly.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import kmock
import pytest

from integration.harness import Cluster, pool_spec, running_operator
from support.prometheus_server import PrometheusServer

NAMESPACE = "bench"
QUEUE = 'sum(vllm:num_requests_waiting{model_name="bench"})'
POLL_SECONDS = 15
WINDOW_SECONDS = float(os.environ.get("FLEETSCALE_BENCH_WINDOW_SECONDS", "60"))
REPO = Path(__file__).resolve().parents[2]


def _pool_counts() -> list[int]:
    raw = os.environ.get("FLEETSCALE_BENCH_POOLS", "100,1000")
    return [int(part) for part in raw.split(",") if part.strip()]


def _rss_megabytes() -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a Prometheus text-format histogram."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1]))
            )
    return sorted(buckets)


def _quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float:
    """Upper bound of the bucket holding quantile ``q`` of the observations between snapshots."""
    start = dict(before)
    counts = [(bound, total - start.get(bound, 0.0)) for bound, total in after]
    if not counts or counts[-1][1] == 0:
        return float("nan")
    wanted = q * counts[-1][1]
    for bound, cumulative in counts:
        if cumulative >= wanted:
            return bound
    return float("inf")


def _counter_total(text: str, name: str) -> float:
    """Sum of a counter over all its label sets, in Prometheus text format."""
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") or line.startswith(f"{name} ")
    )


def _api_calls(cluster: Cluster) -> list[Any]:
    return list(cluster.server)


async def _measure(kmock_server: kmock.KubernetesEmulator, pools: int) -> dict[str, Any]:
    cluster = Cluster(kmock_server)
    # No Deployment controller stand-in: with an empty queue and replicas.min 1 nothing scales,
    # and its 50 ms sweep over every object would load the emulator, not the operator.
    async with PrometheusServer() as prometheus:
        prometheus.set_scalar(QUEUE, 0.0)
        for index in range(pools):
            cluster.add_deployment(NAMESPACE, f"vllm-{index}", replicas=1)
            cluster.add_pool(
                NAMESPACE,
                f"pool-{index}",
                pool_spec(f"vllm-{index}", QUEUE, poll_interval_seconds=POLL_SECONDS),
            )
        rss_before = _rss_megabytes()
        started = time.monotonic()
        async with running_operator(cluster, prometheus) as operator:

            def reported() -> bool:
                return all(
                    cluster.status(NAMESPACE, f"pool-{i}").get("desiredReplicas") is not None
                    for i in range(pools)
                )

            # Checked every 2 s: scanning every pool's status also runs on the emulator's
            # event loop, and polling it faster would slow the emulator down.
            deadline = time.monotonic() + 900
            while not reported():
                if time.monotonic() > deadline:
                    raise AssertionError(f"not all {pools} pools reported within 900 s")
                await asyncio.sleep(2)
            warm_seconds = time.monotonic() - started
            # One more tick so that every pool's first (changing) status write is behind us.
            await asyncio.sleep(POLL_SECONDS + 1)
            metrics_before = operator.runtime.metrics.render().decode()
            calls_before = len(_api_calls(cluster))
            queries_before = prometheus.query_count()
            window_started = time.monotonic()
            await asyncio.sleep(WINDOW_SECONDS)
            window = time.monotonic() - window_started
            calls = _api_calls(cluster)[calls_before:]
            queries = prometheus.query_count() - queries_before
            metrics_after = operator.runtime.metrics.render().decode()
            rss = _rss_megabytes()
    name = "fleetscale_reconcile_duration_seconds"
    before, after = _histogram(metrics_before, name), _histogram(metrics_after, name)
    ticks = window / POLL_SECONDS
    writes = [c for c in calls if c.subresource == "status" and c.method in ("PATCH", "PUT")]
    status_writes = len(writes)
    if writes:
        print("a status write in the steady window:", json.dumps(writes[-1].data)[:500])
    return {
        "pools": pools,
        "warm_up_seconds": round(warm_seconds, 1),
        "window_seconds": round(window, 1),
        "reconciles": (after[-1][1] - dict(before).get(float("inf"), 0.0)) if after else 0,
        "reconcile_p50_seconds": _quantile(before, after, 0.50),
        "reconcile_p99_seconds": _quantile(before, after, 0.99),
        "api_calls_per_pool_per_hour": round(len(calls) / pools * 3600 / window, 1),
        "status_writes_in_window": status_writes,
        "prometheus_queries_per_tick": round(queries / ticks, 2),
        "ticks_completed_fraction": round(
            ((after[-1][1] - dict(before).get(float("inf"), 0.0)) if after else 0.0)
            / (pools * ticks),
            2,
        ),
        "metric_errors_in_window": _counter_total(
            metrics_after, "fleetscale_metric_query_errors_total"
        )
        - _counter_total(metrics_before, "fleetscale_metric_query_errors_total"),
        "distinct_queries": 1,
        "resident_memory_mb": round(rss, 1),
        "resident_memory_growth_mb": round(rss - rss_before, 1),
    }


_RESULTS: list[dict[str, Any]] = []


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("pools", [pytest.param(n, id=f"{n}-pools") for n in _pool_counts()])
async def test_operator_overhead(kmock: kmock.KubernetesEmulator, pools: int) -> None:
    result = await _measure(kmock, pools)
    _RESULTS.append(result)
    _write(_RESULTS)
    print(json.dumps(result))
    assert result["status_writes_in_window"] == 0, "status must be written only on change"
    assert result["prometheus_queries_per_tick"] <= result["distinct_queries"] * 1.5, result
    if pools <= 1000:
        assert result["reconcile_p99_seconds"] < 1.0, result


def _write(results: list[dict[str, Any]]) -> None:
    out = REPO / "out" / "bench-operator-kmock"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    header = (
        "| pools | reconcile p50 | reconcile p99 | API calls / pool / hour | status writes "
        "(steady window) | Prometheus queries / tick | RSS (MB) |\n|---|---|---|---|---|---|---|\n"
    )

    def bound(seconds: float) -> str:
        return "> 30 s" if seconds == float("inf") else f"<= {seconds:g} s"

    rows = "".join(
        f"| {r['pools']:,} | {bound(r['reconcile_p50_seconds'])} | "
        f"{bound(r['reconcile_p99_seconds'])} | "
        f"{r['api_calls_per_pool_per_hour']:g} | {r['status_writes_in_window']} | "
        f"{r['prometheus_queries_per_tick']:g} | {r['resident_memory_mb']:g} |\n"
        for r in results
    )
    (out / "table.md").write_text(
        "# Operator overhead\n\nProduced by `make bench-operator`: the real operator (kopf, the "
        "official Kubernetes client, prometheus-api-client) against kmock's Kubernetes emulator "
        "and a Prometheus-speaking stub, all in one process on the build machine; every pool "
        f"polls every {POLL_SECONDS} s with one shared queue-depth query, metrics steady. "
        f"Measured over a {WINDOW_SECONDS:g} s window after every pool reported once. "
        "Latencies are the upper bounds of the operator's own histogram buckets; memory is the "
        "whole process (operator, emulator and stub).\n\n" + header + rows,
        encoding="utf-8",
    )
