"""The operator's own metrics and the /metrics, /healthz, /readyz server."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fleetscale.metrics import HealthServer, OperatorMetrics


def _pools_in(text: str) -> set[str]:
    return {
        line.split('pool="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if 'pool="' in line
    }


def test_forget_pool_removes_only_that_pools_series() -> None:
    metrics = OperatorMetrics()
    for pool in ("a", "b"):
        metrics.desired_replicas.labels("ns", pool).set(3)
        metrics.shed_active.labels("ns", pool).set(1)
        metrics.decisions_total.labels("ns", pool, "ScaledUp").inc()
        metrics.reconcile_errors_total.labels("ns", pool, "TargetNotFound").inc()
        metrics.set_observed("ns", pool, 12.0, 71.5)

    metrics.forget_pool("ns", "a")

    exposition = metrics.render().decode()
    assert _pools_in(exposition) == {"b"}
    assert 'fleetscale_observed_queue_depth{namespace="ns",pool="b"} 12.0' in exposition
    assert 'fleetscale_observed_gpu_utilization_percent{namespace="ns",pool="b"} 71.5' in exposition


def test_an_unusable_reading_removes_its_series_instead_of_keeping_a_stale_value() -> None:
    metrics = OperatorMetrics()
    metrics.set_observed("ns", "a", 12.0, 71.5)
    metrics.set_observed("ns", "b", 3.0, 40.0)

    metrics.set_observed("ns", "a", None, 70.0)  # queue unusable, GPU fine

    def value(name: str, pool: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"namespace": "ns", "pool": pool})

    assert value("fleetscale_observed_queue_depth", "a") is None
    assert value("fleetscale_observed_gpu_utilization_percent", "a") == 70.0
    assert value("fleetscale_observed_queue_depth", "b") == 3.0
    metrics.set_observed("ns", "a", None, None)  # removing an absent series is fine
    metrics.set_observed("ns", "a", 5.25, None)
    assert value("fleetscale_observed_queue_depth", "a") == 5.25
    assert value("fleetscale_observed_gpu_utilization_percent", "a") is None


def test_registries_are_private() -> None:
    first, second = OperatorMetrics(), OperatorMetrics()  # would raise if both used the global
    first.shed_active.labels("ns", "a").set(1)
    assert b'fleetscale_shed_active{namespace="ns",pool="a"} 1.0' in first.render()
    assert b'pool="a"' not in second.render()


async def test_server_serves_metrics_and_probes() -> None:
    metrics = OperatorMetrics()
    metrics.shed_active.labels("ns", "a").set(1)
    ready = False
    server = HealthServer(
        metrics, 0, is_alive=lambda: True, is_ready=lambda: ready, host="127.0.0.1"
    )
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.bound_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                assert (
                    'fleetscale_shed_active{namespace="ns",pool="a"} 1.0' in await response.text()
                )
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 503
            ready = True
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
    finally:
        await server.stop()


def _samples(families: Any) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in families
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_the_rendered_page_says_what_the_registry_holds() -> None:
    """The per-pool families are rendered by hand: the page must parse to the very samples the
    registry collects, label values escaped."""
    metrics = OperatorMetrics()
    for pool in ("a", 'odd"name\\x'):
        metrics.desired_replicas.labels("ns", pool).set(3)
        metrics.shed_active.labels("ns", pool).set(1)
        metrics.decisions_total.labels("ns", pool, "ScaledUp").inc()
        metrics.decisions_total.labels("ns", pool, "ScaledUp").inc()
        metrics.reconcile_errors_total.labels("ns", pool, "TargetNotFound").inc()
        metrics.set_observed("ns", pool, 12.5, None)
    metrics.reconcile_duration_seconds.observe(0.2)
    page = metrics.render().decode()
    assert _samples(text_string_to_metric_families(page)) == _samples(metrics.registry.collect())
    assert 'fleetscale_decisions_total{namespace="ns",pool="a",reason="ScaledUp"} 2.0' in page


def test_a_lost_shard_drops_only_its_pools_gauges() -> None:
    metrics = OperatorMetrics()
    for pool in ("a", "b", "c"):
        metrics.shed_active.labels("ns", pool).set(1)
        metrics.decisions_total.labels("ns", pool, "Holding").inc()
    metrics.forget_pools(lambda namespace, pool: pool in ("a", "c"))
    assert _pools_in(
        "\n".join(line for line in metrics.render().decode().splitlines() if "shed" in line)
    ) == {"b"}
    # Counters count what this replica did; they stay.
    assert (
        metrics.registry.get_sample_value(
            "fleetscale_decisions_total", {"namespace": "ns", "pool": "a", "reason": "Holding"}
        )
        == 1
    )
