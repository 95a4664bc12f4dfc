"""High availability as the chart installs it: two operator replicas against the real API
server, one Lease, and faults an SRE would inject.

Each replica is a real `fleetscale run` process with the chart's environment (leader election
on the chart's Lease in the release namespace, the pod name as holder identity) and the chart's
ServiceAccount. Which replica wrote what comes from the kube-apiserver's own audit log: each
replica names itself in its User-Agent. The figures these tests measure (takeover after a
crash, the longest gap between ticks in a rollout) are printed and recorded in
docs/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from e2e_support import (
    AuditLog,
    E2EEnv,
    Exporter,
    Kube,
    Operator,
    OperatorProcess,
    Prometheus,
    replica_env,
    spec_replicas,
    wait_until,
)
from fleetscale.settings import Settings
from pools import create_pool, inference_pool
from test_e2e_scenarios import MODEL, start_fleet

DEFAULTS = Settings()  # what the chart sets: client-go's lease timing
LEASE = DEFAULTS.lease_duration_seconds
RETRY = DEFAULTS.retry_period_seconds


@dataclass
class Replica:
    """One operator replica (a pod of the chart's Deployment, as a process)."""

    identity: str
    process: OperatorProcess

    def metric(self, prefix: str) -> float | None:
        """The sum of the series whose exposition lines start with ``prefix``; None if none."""
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in self.process.metrics().splitlines()
            if line.startswith(prefix)
        ]
        return sum(values) if values else None

    def leads(self) -> bool:
        return self.metric("fleetscale_leader ") == 1

    def decisions(self) -> float:
        return self.metric("fleetscale_decisions_total{") or 0.0

    def pause(self) -> None:
        assert self.process.proc is not None
        self.process.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process.running():
            assert self.process.proc is not None
            self.process.proc.send_signal(signal.SIGCONT)

    def ticks(self, pool: str) -> list[float]:
        """When this replica decided for ``pool`` (every tick logs it at debug level)."""
        found = []
        for line in self.process.logs().splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("event") == "decided" and record.get("pool") == pool:
                found.append(datetime.fromisoformat(record["timestamp"]).timestamp())
        return found


@pytest.fixture
def audit(e2e_env: E2EEnv) -> AuditLog:
    if not e2e_env.audit_log or not Path(e2e_env.audit_log).exists():
        pytest.fail("the API server keeps no audit log; e2e/cluster.sh configures one")
    return AuditLog(e2e_env.audit_log)


@pytest.fixture
def start_replica(operator_session: Operator, e2e_env: E2EEnv, tmp_path: Path) -> Iterator[Any]:
    """Start replicas of the chart's Deployment; the session's own operator steps aside."""
    if not isinstance(operator_session, OperatorProcess):
        pytest.fail("the HA scenarios run the operator as processes (FLEETSCALE_E2E_OPERATOR)")
    operator_session.stop()  # a clean stop releases its Lease
    started: list[Replica] = []

    def start(identity: str) -> Replica:
        process = OperatorProcess(
            kubeconfig=operator_session.kubeconfig,
            prometheus_url=e2e_env.prometheus_url,
            namespaces=[],
            log_path=tmp_path / f"{identity}.log",
            extra_env={**replica_env(identity), "FLEETSCALE_LOG_LEVEL": "DEBUG"},
        )
        process.start()
        replica = Replica(identity, process)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.resume()
        replica.process.stop()
    operator_session.start()


def leader_and_standby(first: Replica, second: Replica) -> tuple[Replica, Replica]:
    wait_until(lambda: first.leads() or second.leads(), LEASE + 10, "a leader")
    return (first, second) if first.leads() else (second, first)


@pytest.fixture
def scale_under_load(
    kube: Kube, namespace: str, deploy_vllm: Any, fleet_load: Exporter, prometheus: Prometheus
) -> Callable[[], None]:
    """Put one replica under load and a pool on it; return once the leader has scaled to 6."""

    def scale() -> None:
        start_fleet(kube, namespace, deploy_vllm, fleet_load, prometheus, replicas=1, load=30)
        create_pool(kube, inference_pool("llama", namespace, "vllm", MODEL, gpu=True, poll=1))
        wait_until(lambda: spec_replicas(kube, namespace, "vllm") == 6, 90, "the leader to scale")

    return scale


def scale_writes(audit: AuditLog, since: int, by: str) -> list[Any]:
    return [w for w in audit.writes(since, by=by) if w.uri.split("?")[0].endswith("/scale")]


def test_the_charts_two_replicas_elect_exactly_one_writer(
    start_replica: Any,
    audit: AuditLog,
    scale_under_load: Callable[[], None],
) -> None:
    first, second = start_replica("fleetscale-a"), start_replica("fleetscale-b")
    leader, standby = leader_and_standby(first, second)
    assert not standby.leads()
    mark = audit.size()
    scale_under_load()
    decided = leader.decisions()
    wait_until(lambda: leader.decisions() >= decided + 10, 60, "ten more ticks of the leader")

    by_leader = audit.writes(mark, by=leader.identity)
    assert scale_writes(audit, mark, leader.identity), "the leader scaled the target"
    assert any("/inferencepools/llama/status" in w.uri for w in by_leader)
    assert any("/leases/fleetscale" in w.uri for w in by_leader), "the leader renews"
    # Not one write from the standby: not the target, not a status, not an Event, not the
    # Lease (it only reads it), not the pool itself.
    assert audit.writes(mark, by=standby.identity) == []
    assert standby.metric("fleetscale_desired_replicas{") is None


def test_kill_9_of_the_leader_under_load_hands_over_within_the_lease(
    kube: Kube,
    namespace: str,
    fleet_load: Exporter,
    start_replica: Any,
    audit: AuditLog,
    scale_under_load: Callable[[], None],
) -> None:
    first, second = start_replica("fleetscale-a"), start_replica("fleetscale-b")
    leader, standby = leader_and_standby(first, second)
    scale_under_load()

    mark = audit.size()
    leader.process.kill()  # SIGKILL: no release of the Lease, no clean-up of any kind
    killed = time.time()
    fleet_load.set_load(namespace, "vllm", 60, model=MODEL, concurrency=4)  # demand goes on
    wait_until(lambda: spec_replicas(kube, namespace, "vllm") > 6, LEASE + 60, "the standby")
    first_write = min(w.at for w in scale_writes(audit, mark, standby.identity))
    takeover = first_write - killed
    print(f"\ntakeover after kill -9 of the leader: {takeover:.1f} s (lease {LEASE:g} s)")
    # The standby acquires once it has seen the Lease unrenewed for the lease duration (at
    # most one retry period after the last renewal it saw), then acts at its first tick.
    assert takeover <= LEASE + 2 * RETRY + 3, f"took {takeover:.1f} s"
    assert standby.leads()


def test_a_paused_leader_writes_nothing_after_it_resumes(
    kube: Kube,
    namespace: str,
    fleet_load: Exporter,
    start_replica: Any,
    audit: AuditLog,
    scale_under_load: Callable[[], None],
) -> None:
    first, second = start_replica("fleetscale-a"), start_replica("fleetscale-b")
    leader, standby = leader_and_standby(first, second)
    scale_under_load()

    leader.pause()  # SIGSTOP: a frozen node, a long GC pause, a partitioned pod
    paused = time.time()
    wait_until(standby.leads, LEASE + 4 * RETRY + 10, "the standby to take over")
    assert time.time() - paused >= LEASE - RETRY, "taken over before the lease could lapse"
    fleet_load.set_load(namespace, "vllm", 60, model=MODEL, concurrency=4)
    wait_until(lambda: spec_replicas(kube, namespace, "vllm") > 6, 60, "the new leader to act")

    mark = audit.size()
    leader.resume()  # SIGCONT: its lease lapsed long ago, and it has not noticed yet
    decided = standby.decisions()
    fleet_load.set_load(namespace, "vllm", 20, model=MODEL, concurrency=4)
    wait_until(lambda: not leader.leads(), 30, "the old leader to know it is a standby")
    wait_until(lambda: standby.decisions() >= decided + 10, 60, "ten ticks of the new leader")
    assert audit.writes(mark, by=leader.identity) == []
    assert audit.writes(mark, by=standby.identity)


def test_a_rollout_loses_no_tick_longer_than_one_lease(
    start_replica: Any,
    scale_under_load: Callable[[], None],
) -> None:
    """`helm upgrade` with a changed pod annotation: the Deployment (maxSurge 1,
    maxUnavailable 0) starts a new pod, stops an old one once the new one is ready, twice."""
    old = [start_replica("fleetscale-old-a"), start_replica("fleetscale-old-b")]
    leader_and_standby(*old)
    scale_under_load()
    started = time.time()
    new = []
    for index, retiring in enumerate(sorted(old, key=lambda r: not r.leads())):
        new.append(start_replica(f"fleetscale-new-{index}"))  # ready: /healthz answers
        retiring.process.stop()  # SIGTERM: the loops finish their tick, the Lease is released
    wait_until(lambda: any(r.leads() for r in new), LEASE + 10, "a new replica to lead")
    decided = sum(r.decisions() for r in new)
    wait_until(lambda: sum(r.decisions() for r in new) >= decided + 5, 60, "new ticks")
    ticks = sorted(t for r in (*old, *new) for t in r.ticks("llama") if t >= started - 5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    longest = max(gaps)
    print(f"\nlongest gap between ticks through the rollout: {longest:.1f} s (poll 1 s)")
    assert longest <= LEASE, f"{longest:.1f} s without a tick"
