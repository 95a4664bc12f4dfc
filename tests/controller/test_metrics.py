"""The operator's own metrics and the /metrics, /healthz, /readyz server."""

from __future__ import annotations

import aiohttp

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

    metrics.forget_pool("ns", "a")

    assert _pools_in(metrics.render().decode()) == {"b"}


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
