"""`python -m fleetscale run` as a process: KUBECONFIG, leader election, probes, JSON logs.

The same command the container and the e2e suite run, pointed by a kubeconfig file at kmock's
emulator; it must start, serve /healthz, /readyz and /metrics, scale a pool, log JSON lines
(its own and kopf's), and exit cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import kubernetes.config
import pytest

from fleetscale.cli import main
from integration.harness import Cluster, eventually, pool_spec
from support.prometheus_server import PrometheusServer

# A fresh interpreter importing kopf and the clients takes seconds on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NS = "serving"
QUEUE = 'sum(vllm:num_requests_waiting{model_name="llama"})'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulated", "cluster": {"server": server}}],
                "users": [{"name": "operator", "user": {"token": "not-checked"}}],
                "contexts": [
                    {"name": "emulated", "context": {"cluster": "emulated", "user": "operator"}}
                ],
                "current-context": "emulated",
            }
        )
    )


async def _get(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def test_the_command_runs_the_operator_and_stops_on_sigterm(
    cluster: Cluster, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    prometheus.set_value(QUEUE, 20)
    cluster.add_deployment(NS, "vllm-llama", replicas=1)
    cluster.add_pool(NS, "llama", pool_spec("vllm-llama", QUEUE))
    kubeconfig = tmp_path / "kubeconfig"
    _kubeconfig(kubeconfig, cluster.url)
    port = _free_port()
    environ = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "FLEETSCALE_PROMETHEUS_URL": prometheus.url,
        "FLEETSCALE_HTTP_PORT": str(port),
        "FLEETSCALE_LOG_FORMAT": "json",
    }
    environ.pop("KUBERNETES_SERVICE_HOST", None)  # never mistake the test for a pod
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetscale",
        "run",  # cluster-wide: kmock cannot list Namespaces, which namespaced kopf watches
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = asyncio.create_task(process.stdout.read())  # type: ignore[union-attr]
    try:
        base = f"http://127.0.0.1:{port}"
        await eventually(
            lambda: process.returncode is not None or cluster.replicas(NS, "vllm-llama") == 4,
            timeout_seconds=60,  # a fresh interpreter on a loaded machine; ~10 s normally
            what="scale to 4",
        )
        assert process.returncode is None, "the operator exited early"
        assert await _get(f"{base}/healthz") == 200
        assert await _get(f"{base}/readyz") == 200
        # The gauges are set when the tick reports, a moment after /scale was written.
        expected = 'fleetscale_desired_replicas{namespace="serving",pool="llama"} 4.0'
        metrics = ""
        deadline = time.monotonic() + 15
        while expected not in metrics and time.monotonic() < deadline:
            async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
            await asyncio.sleep(0.1)
        assert expected in metrics
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), timeout=30)
        lines = (await output).decode().splitlines()

    assert exit_code == 0
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == len(lines), "every log line is JSON"
    decided = [r for r in records if r["event"] == "decided"]
    assert decided
    assert decided[0]["pool"] == "llama"
    assert decided[0]["namespace"] == NS
    # Leader election is on by default: it took the Lease, and gave it up on SIGTERM.
    assert [r["event"] for r in records if r["event"].startswith("leadership_")] == [
        "leadership_acquired",
        "leadership_lost",
    ]
    assert cluster.leases.holder("default", "fleetscale") is None
    # kopf's own records come through the same renderer.
    assert any(r.get("logger", "").startswith("kopf") for r in records)


def test_a_taken_port_stops_the_operator_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process: kopf.run in this thread, failing its startup; retrying cannot help.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(
        kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # the operator binds all interfaces too
        taken.listen()
        port = taken.getsockname()[1]

        assert main(["run", "--http-port", str(port), "--leader-election", "false"]) == 1

    assert "fleetscale run: the operator stopped" in capsys.readouterr().err
