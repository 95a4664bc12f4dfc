"""Gateways act on the shed decision: a real HAProxy refuses what fleetscale decides, and every
Envoy Gateway policy fleetscale writes is accepted by Envoy Gateway's own CRDs.

The flash crowd: a load generator sends real HTTP requests through HAProxy (Debian's package,
docs/gateways/haproxy.cfg as it is) to the simulated fleet's replicas (fleet_exporter.py serves
completions; each one is in the pool's load while it is served, so only what HAProxy lets
through reaches the metrics). ``fleetscale haproxy-agent`` keeps HAProxy's maps at the pool's
ConfigMap. The pool (docs/gateways/envoy-gateway.yaml as it is, its query limited to the
test's namespace) is capped at 2 replicas of concurrency 4 with a shed threshold of 5 waiting
per replica, so with 30 requests a second of 1 s each, 30 x (1 - f) are in flight and the
queue holds at the threshold (10) when f = 1 - 18/30 = 0.4.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from e2e_support import (
    REPO_ROOT,
    Exporter,
    Kube,
    Operator,
    free_port,
    ready_replicas,
    service_account_kubeconfig,
    wait_until,
)
from fleetscale.gateways.base import GatewayTarget, Owner, RouteTarget, ShedOrder
from fleetscale.gateways.envoy_gateway import policy_body
from pools import get_pool, queue_query

GATEWAYS = REPO_ROOT / "docs" / "gateways"
EG_GROUP, EG_VERSION, BTP = "gateway.envoyproxy.io", "v1alpha1", "backendtrafficpolicies"
POLL = 2  # the pool's pollIntervalSeconds (docs/gateways/envoy-gateway.yaml)
AGENT_INTERVAL = 1.0
CONCURRENCY = 4
SERVICE_SECONDS = 1.0
# The refused share of the requests sent while the flag was on may differ from the decided
# fraction (averaged over those requests, at each one's send time) by this much: the binomial
# spread of ~2,000 coin flips (3 sigma = 0.033) plus the agent's one-second lag on each change.
FRACTION_TOLERANCE = 0.05


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((GATEWAYS / name).read_text()) if doc]


# --------------------------------------------------------------------------- Envoy Gateway CRDs


def order_variants() -> list[Any]:
    route = RouteTarget("gateway.networking.k8s.io", "HTTPRoute", "llama-route")
    rule = RouteTarget("gateway.networking.k8s.io", "HTTPRoute", "llama-route", "completions")
    grpc = RouteTarget("gateway.networking.k8s.io", "GRPCRoute", "llama-grpc")
    quoted = 'llama is "busy" \\ retry later, ünïcode ok'
    return [
        pytest.param(route, ShedOrder(0.05, 1, "busy", "MaxReplicas"), id="least-fraction"),
        pytest.param(route, ShedOrder(1.0, 3600, "busy", "MaxNodes"), id="all-longest-retry"),
        pytest.param(rule, ShedOrder(0.37, 15, quoted, "NodesProvisioning"), id="route-rule"),
        pytest.param(grpc, ShedOrder(0.5, 2, "busy", "ReplicasNotReady"), id="grpc-route"),
        pytest.param(route, ShedOrder(0.5, 2, "x" * 1024, "MaxReplicas"), id="longest-message"),
    ]


@pytest.mark.parametrize(("route", "order"), order_variants())
def test_every_policy_shape_fleetscale_writes_is_accepted_by_envoy_gateway_crds(
    kube: Kube, namespace: str, route: RouteTarget, order: ShedOrder
) -> None:
    """Server-side dry run of each shape the writer produces, against Envoy Gateway v1.9.1's
    CRD (OpenAPI schema and CEL rules) on the real API server."""
    owner = Owner("fleetscale.io/v1alpha1", "InferencePool", "llama", "00000000-0000-0000-0000-1")
    body = policy_body(owner, GatewayTarget("EnvoyGateway", namespace, "llama-shed", route), order)
    created = kube.custom.create_namespaced_custom_object(
        EG_GROUP, EG_VERSION, namespace, BTP, body, dry_run="All"
    )
    assert created["spec"]["faultInjection"] == body["spec"]["faultInjection"]
    assert created["spec"]["responseOverride"] == body["spec"]["responseOverride"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"faultInjection": {"abort": {"httpStatus": 700}}}, "httpStatus", id="status-700"
        ),
        pytest.param(
            {"targetRefs": [{"group": "apps", "kind": "Deployment", "name": "x"}]},
            "targetRefs[*].group of gateway.networking.k8s.io",
            id="not-a-route",
        ),
    ],
)
def test_the_crd_schema_refuses_what_envoy_gateway_would_not_accept(
    kube: Kube, namespace: str, change: dict[str, Any], message: str
) -> None:
    """The check above can fail: the same dry run refuses policies outside the schema."""
    route = RouteTarget("gateway.networking.k8s.io", "HTTPRoute", "r")
    owner = Owner("fleetscale.io/v1alpha1", "InferencePool", "llama", "00000000-0000-0000-0000-1")
    body = policy_body(
        owner,
        GatewayTarget("EnvoyGateway", namespace, "p", route),
        ShedOrder(0.5, 2, "b", "R"),
    )
    body["spec"].update(change)
    with pytest.raises(ApiException) as refused:
        kube.custom.create_namespaced_custom_object(
            EG_GROUP, EG_VERSION, namespace, BTP, body, dry_run="All"
        )
    assert refused.value.status == 422, refused.value.body
    assert message in refused.value.body


# --------------------------------------------------------------------------- HAProxy


@dataclass
class HAProxyGateway:
    url: str
    process: subprocess.Popen[bytes]
    agent: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def haproxy(
    kube: Kube, namespace: str, tmp_path: Path, fleet_load: Exporter
) -> Iterator[HAProxyGateway]:
    """docs/gateways/haproxy.cfg in front of the fleet's replicas, and the agent that keeps its
    maps at the pool's ConfigMap, authenticated as docs/gateways/haproxy-agent-rbac.yaml's
    ServiceAccount."""
    binary = os.environ.get("FLEETSCALE_E2E_HAPROXY", "/usr/sbin/haproxy")
    if not Path(binary).is_file():
        pytest.exit(f"no HAProxy at {binary}: run e2e/install-deps.sh", 3)
    kube.kubectl("apply", "-n", namespace, "-f", str(GATEWAYS / "haproxy-agent-rbac.yaml"))
    agent_config = service_account_kubeconfig(
        kube, namespace, "haproxy-shed-agent", tmp_path / "agent.kubeconfig"
    )
    for name in ("shed.map", "shed-text.map"):
        (tmp_path / name).write_text((GATEWAYS / name).read_text())
    port = free_port()
    env = {
        **os.environ,
        "ADMIN_SOCKET": str(tmp_path / "admin.sock"),
        "LISTEN": f"127.0.0.1:{port}",
        "SHED_MAP": str(tmp_path / "shed.map"),
        "SHED_TEXT_MAP": str(tmp_path / "shed-text.map"),
        "PRIORITY_HEADER": "x-priority",
        "PRIORITY_VALUE": "low",
        "FLEET_POOL": f"{namespace}/vllm",
        "BACKEND": fleet_load.url.removeprefix("http://"),
    }
    config = str(GATEWAYS / "haproxy.cfg")
    check = subprocess.run([binary, "-c", "-f", config], env=env, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr.decode()
    log = tmp_path / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "-db", "-f", config], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetscale",
                "haproxy-agent",
                "--namespace",
                namespace,
                "--config-map",
                "llama-shed",
                "--socket",
                env["ADMIN_SOCKET"],
                "--map",
                env["SHED_MAP"],
                "--text-map",
                env["SHED_TEXT_MAP"],
                "--interval",
                str(AGENT_INTERVAL),
                "--kubeconfig",
                str(agent_config),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "operator")},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: (tmp_path / "admin.sock").exists(), 30, "HAProxy's stats socket")
    gateway = HAProxyGateway(f"http://127.0.0.1:{port}", process, agent, log)
    try:
        yield gateway
    finally:
        for proc in (agent, process):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        print(f"--- HAProxy and agent log\n{log.read_text(errors='replace')[-4000:]}")


@dataclass(frozen=True)
class Answer:
    sent: float  # epoch seconds
    low: bool  # sent as lower priority
    status: int  # 0: no answer (connection error or timeout)
    retry_after: str | None
    body: dict[str, Any]


@dataclass(frozen=True)
class Phase:
    rate: float  # requests a second
    seconds: float


async def _send(session: Any, url: str, low: bool) -> Answer:
    import aiohttp

    sent = time.time()
    headers = {"x-priority": "low"} if low else {}
    body = {"model": "llama", "prompt": "hello", "max_tokens": 1}
    try:
        async with session.post(f"{url}/v1/completions", json=body, headers=headers) as response:
            text = await response.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = {"raw": text}
            return Answer(sent, low, response.status, response.headers.get("Retry-After"), parsed)
    except (aiohttp.ClientError, TimeoutError) as error:
        return Answer(sent, low, 0, None, {"error": repr(error)})


async def _generate(url: str, phases: list[Phase], low_every: int) -> list[Answer]:
    """Open loop: requests at fixed times whatever the answers; every ``low_every``-th one is
    lower priority."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = []
        start = time.monotonic()
        offset = 0.0
        count = 0
        for phase in phases:
            for i in range(int(phase.rate * phase.seconds)):
                at = start + offset + i / phase.rate
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                tasks.append(asyncio.create_task(_send(session, url, count % low_every == 0)))
                count += 1
            offset += phase.seconds
        return list(await asyncio.gather(*tasks))


@dataclass
class Watcher:
    """Samples the pool's status and ConfigMap every quarter second, from another thread."""

    kube: Kube
    namespace: str
    samples: list[tuple[float, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    # (time, the policy's abort percentage (None: no policy), whether Envoy Gateway accepted it)
    policies: list[tuple[float, float | None, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            try:
                shed = get_pool(self.kube, self.namespace, "llama").get("status", {})
                shed = shed.get("shedLoad") or {}
                data = self.kube.core.read_namespaced_config_map("llama-shed", self.namespace).data
                self.samples.append((now, shed, dict(data or {})))
                self.policies.append((now, *self._policy()))
            except ApiException:
                pass
            self.stop.wait(0.25)

    def _policy(self) -> tuple[float | None, bool]:
        try:
            policy = self.kube.custom.get_namespaced_custom_object(
                EG_GROUP, EG_VERSION, self.namespace, BTP, "llama-shed"
            )
        except ApiException as error:
            if error.status == 404:
                return None, False
            raise
        conditions = [
            c
            for ancestor in (policy.get("status") or {}).get("ancestors") or []
            for c in ancestor.get("conditions") or []
        ]
        accepted = any(c["type"] == "Accepted" and c["status"] == "True" for c in conditions)
        return float(policy["spec"]["faultInjection"]["abort"]["percentage"]), accepted

    def config_map_at(self, at: float) -> dict[str, str]:
        """The ConfigMap as last sampled at or before ``at``."""
        found: dict[str, str] = {}
        for when, _, data in self.samples:
            if when > at:
                break
            found = data
        return found


def flag_windows(watcher: Watcher) -> list[tuple[float, float | None]]:
    """(on, off) of each time the flag was on, by the operator's own times
    (status.shedLoad.since moves when the flag flips); off None: still on."""
    windows: list[tuple[float, float | None]] = []
    from datetime import datetime

    for _, shed, _ in watcher.samples:
        since = shed.get("since")
        at = datetime.fromisoformat(since).timestamp() if since else None
        if shed.get("active") and at is not None and (not windows or windows[-1][0] != at):
            if windows and windows[-1][1] is None:
                continue
            windows.append((at, None))
        elif not shed.get("active") and windows and windows[-1][1] is None and at is not None:
            windows[-1] = (windows[-1][0], at)
    return windows


@pytest.mark.timeout(480)  # the crowd itself lasts 132 s, the release up to a minute more
def test_a_flash_crowd_through_haproxy_is_refused_in_the_decided_fraction(
    kube: Kube,
    namespace: str,
    deploy_vllm: Any,
    fleet_load: Exporter,
    operator: Operator,
    haproxy: HAProxyGateway,
) -> None:
    deploy_vllm("vllm", replicas=2, gpus=2)
    wait_until(lambda: ready_replicas(kube, namespace, "vllm") == 2, 60, "2 Ready replicas")
    fleet_load.set_load(
        namespace,
        "vllm",
        0,
        model="llama",
        concurrency=CONCURRENCY,
        service_seconds=SERVICE_SECONDS,
    )
    wait_until(
        lambda: len(fleet_load.pool(namespace, "vllm").get("readyPods") or []) == 2,
        30,
        "the fleet's replicas to serve (the exporter reads the Ready pods every second)",
    )
    docs = manifests("envoy-gateway.yaml")
    pool_doc = next(d for d in docs if d["kind"] == "InferencePool")
    pool_doc["spec"]["metrics"]["queueDepth"]["query"] = queue_query(namespace, "llama")
    message = pool_doc["spec"]["shedLoad"]["gateway"]["message"]
    applied = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs)
    ).stdout
    assert "inferencepool.fleetscale.io/llama created" in applied
    wait_until(
        lambda: (get_pool(kube, namespace, "llama").get("status") or {}).get("observed"),
        60,
        "the pool's first decision",
    )

    watcher = Watcher(kube, namespace)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    phases = [Phase(4, 12), Phase(30, 75), Phase(4, 45)]
    try:
        answers = asyncio.run(_generate(haproxy.url, phases, low_every=2))
        # The release: the queue stays under the release threshold for releaseAfterSeconds.
        wait_until(
            lambda: (
                not (get_pool(kube, namespace, "llama")["status"].get("shedLoad") or {}).get(
                    "active"
                )
            ),
            60,
            "the flag to go off after the crowd",
        )
    finally:
        watcher.stop.set()
        thread.join(10)

    windows = flag_windows(watcher)
    assert len(windows) == 1, f"the flag went on {len(windows)} times: {windows}"
    (on, off) = windows[0]
    assert off is not None
    refused = [a for a in answers if a.status == 429]
    served = [a for a in answers if a.status == 200]
    others = [a for a in answers if a.status not in (200, 429)]

    # Every request that was not refused was served.
    assert others == [], f"{len(others)} neither served nor refused, e.g. {others[:3]}"
    assert all(a.body.get("choices") for a in served)

    # Refused only while the flag was on (the agent reads the ConfigMap every second).
    lag = AGENT_INTERVAL + 1.0
    early = [a for a in refused if a.sent < on]
    late = [a for a in refused if a.sent > off + lag]
    assert early == [], f"{len(early)} refused before the flag went on at {on}"
    assert late == [], f"{len(late)} refused after the flag went off at {off}"

    # Retry-After: the operator's value at the time (plus or minus one poll), the JSON body.
    for answer in refused:
        published = int(watcher.config_map_at(answer.sent).get("retryAfterSeconds") or POLL)
        assert abs(int(answer.retry_after or -1) - published) <= POLL, answer
        assert answer.body == {
            "error": {"message": message, "type": "fleetscale_shed", "code": 429}
        }

    # The refused share of what was sent while the flag was on, against the decided fraction
    # at each request's send time (averaged over the same requests).
    during = [a for a in answers if on + lag <= a.sent <= off]
    decided = [float(watcher.config_map_at(a.sent).get("fraction") or 0) for a in during]
    refused_share = sum(a.status == 429 for a in during) / len(during)
    decided_share = sum(decided) / len(decided)
    print(
        f"flag on {off - on:.1f} s; {len(during)} requests while on: refused "
        f"{refused_share:.3f}, decided {decided_share:.3f} (fractions published: "
        f"{sorted(set(decided))}); Retry-After {sorted({a.retry_after for a in refused})}; "
        f"{len(served)} served, {len(refused)} refused of {len(answers)}"
    )
    assert abs(refused_share - decided_share) <= FRACTION_TOLERANCE
    assert 0 < decided_share < 1, "fractional shedding serves part of the crowd"

    # Lower priority first: while the decided share is below the low-priority share (half of
    # the requests), the others are (nearly) all served.
    low = [a for a in during if a.low]
    normal = [a for a in during if not a.low]
    low_refused = sum(a.status == 429 for a in low) / len(low)
    normal_refused = sum(a.status == 429 for a in normal) / len(normal)
    print(f"refused: lower priority {low_refused:.3f}, others {normal_refused:.3f}")
    assert low_refused > normal_refused
    if decided_share < 0.45:
        assert normal_refused <= 0.05

    # The same decision reached Envoy Gateway's policy while the pool shed, and Envoy Gateway's
    # controller (e2e/cluster.sh runs v1.9.1) accepted it for the Gateway; it is gone after.
    written = [(p, ok) for t, p, ok in watcher.policies if p is not None and on <= t <= off]
    assert written, "no BackendTrafficPolicy while the pool shed"
    published = {round(100 * float(d.get("fraction") or 0)) for _, _, d in watcher.samples}
    assert {round(p) for p, _ in written} <= published
    assert any(ok for _, ok in written), "Envoy Gateway never reported the policy Accepted"
    wait_until(lambda: watcher._policy()[0] is None, 30, "the policy to be deleted")
