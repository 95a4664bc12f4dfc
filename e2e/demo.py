"""`make demo`: fleetscale through a flash crowd on a local cluster, live in the terminal.

Role: the README's first command. It starts (or reuses) the local control plane, Prometheus and
the simulated vLLM fleet through ``e2e/cluster.sh``, installs the CRDs, deploys a vLLM-like
Deployment with an InferencePool, starts the operator as the chart's ServiceAccount, and drives
an offered load with a flash crowd (a jump to several times what the fleet may grow to). Every
few seconds it prints one line: load, replicas, queue, GPU utilization, the shed flag and the
operator's reason. At the end it prints a summary and the Events the operator posted, stops
the operator and tears the cluster down (``--keep`` leaves it running and says how to stop it).

Caller: ``make demo`` (``PYTHON`` must be the project's virtual environment).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_support import Exporter  # the fleet exporter's control client, shared with the suite

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent
CLUSTER_SH = E2E_DIR / "cluster.sh"

NAMESPACE = "demo"
DEPLOYMENT = "vllm-llama"
POOL = "llama"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
CONCURRENCY_PER_REPLICA = 8  # requests one simulated vLLM replica serves at once
MAX_REPLICAS = 6


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: int
    load: int  # requests in flight offered to the fleet


# Baseline fits two replicas; the flash crowd is ~6x that, beyond what MAX_REPLICAS can serve
# (6 x 8 = 48 at once), so the fleet scales to its maximum and then sheds; the decay lets the
# scale-down window pass.
PHASES = (
    Phase("baseline", 40, 14),
    Phase("flash-crowd", 80, 90),
    Phase("decay", 25, 40),
    Phase("quiet", 75, 10),
)

INFERENCE_POOL = {
    "apiVersion": "fleetscale.io/v1alpha1",
    "kind": "InferencePool",
    "metadata": {"name": POOL, "namespace": NAMESPACE},
    "spec": {
        "model": MODEL,
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
        "replicas": {"min": 1, "max": MAX_REPLICAS},
        "metrics": {
            # The demo narrates the queue rule: the fleet follows its queue (engine custom).
            "engine": "custom",
            "queueDepth": {
                "query": f'sum(vllm:num_requests_waiting{{namespace="{NAMESPACE}"}})',
                "targetPerReplica": 2,
            },
            "gpuUtilization": {
                "query": f'avg(DCGM_FI_DEV_GPU_UTIL{{namespace="{NAMESPACE}"}})',
                "targetPercent": 80,
            },
            "maxStalenessSeconds": 30,
        },
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 5}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 30,
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}],
            },
        },
        "shedLoad": {
            "enabled": True,
            "queuePerReplicaThreshold": 4,
            "configMapName": f"{POOL}-shed",
        },
        "pollIntervalSeconds": 3,
        "mode": "Active",
    },
}


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(cmd: list[str], *, env: dict[str, str], check: bool = True, quiet: bool = False) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"[demo] failed: {shlex.join(cmd)}")
    if not quiet and proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return proc.stdout


def cluster_env(base: dict[str, str]) -> dict[str, str]:
    """The `export K=V` lines of `cluster.sh env`, applied to a copy of the environment."""
    env = dict(base)
    for line in run([str(CLUSTER_SH), "env"], env=base, quiet=True).splitlines():
        if not line.startswith("export "):
            continue
        key, _, value = line[len("export ") :].partition("=")
        value = shlex.split(value)[0] if value else ""
        env[key] = value.replace("${PATH}", base.get("PATH", ""))
    return env


@dataclass
class Sample:
    elapsed_seconds: float
    phase: str
    load: int
    replicas: int
    ready: int
    desired: int | None
    queue: float | None
    gpu: float | None
    shed: bool
    retry_after: int | None
    reason: str


@dataclass
class Summary:
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def render(self) -> str:
        if not self.samples:
            return "no samples"
        peak = max(s.ready for s in self.samples)
        crowd = [s for s in self.samples if s.phase == "flash-crowd"]
        crowd_start = crowd[0].elapsed_seconds if crowd else 0.0
        first_max = next((s for s in crowd if s.ready >= MAX_REPLICAS), None)
        shed = [s for s in self.samples if s.shed]
        last = self.samples[-1]
        lines = [
            f"peak ready replicas:        {peak} (max {MAX_REPLICAS})",
            "flash crowd -> max replicas: "
            + (
                f"{first_max.elapsed_seconds - crowd_start:.0f} s"
                if first_max
                else "not reached during the crowd"
            ),
            f"shed flag up:               {_shed_span(shed)}",
            f"final:                      {last.ready} ready, desired {last.desired}, "
            f"shed {'on' if last.shed else 'off'} ({last.reason})",
        ]
        return "\n".join(lines)


def _shed_span(shed: list[Sample]) -> str:
    if not shed:
        return "never"
    return (
        f"{shed[0].elapsed_seconds:.0f} s -> {shed[-1].elapsed_seconds:.0f} s "
        f"(retry-after {shed[0].retry_after} s)"
    )


class Cluster:
    """Reads the demo's objects through the official client (faster than a kubectl per line)."""

    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=kubeconfig)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    def deployment(self) -> dict[str, Any]:
        try:
            scale = self._apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
        except Exception:  # the demo keeps drawing while the API server is busy
            return {}
        return {
            "replicas": scale.spec.replicas or 0,
            "ready": scale.status.ready_replicas or 0,
        }

    def pool_status(self) -> dict[str, Any]:
        try:
            pool = self._custom.get_namespaced_custom_object(
                "fleetscale.io", "v1alpha1", NAMESPACE, "inferencepools", POOL
            )
        except Exception:
            return {}
        status: dict[str, Any] = pool.get("status") or {}
        return status


def sample(cluster: Cluster, elapsed: float, phase: Phase) -> Sample:
    deployment = cluster.deployment()
    status = cluster.pool_status()
    observed = status.get("observed") or {}
    shed = status.get("shedLoad") or {}
    return Sample(
        elapsed_seconds=elapsed,
        phase=phase.name,
        load=phase.load,
        replicas=int(deployment.get("replicas") or 0),
        ready=int(deployment.get("ready") or 0),
        desired=status.get("desiredReplicas"),
        queue=observed.get("queueDepth"),
        gpu=observed.get("gpuUtilizationPercent"),
        shed=bool(shed.get("active")),
        retry_after=shed.get("retryAfterSeconds"),
        reason=str(status.get("lastDecisionReason") or "-"),
    )


HEADER = (
    f"{'time':>5}  {'phase':<11} {'load':>4}  {'ready/desired':>13}  "
    f"{'queue':>5}  {'gpu%':>4}  {'shed':<10} reason"
)


def render(s: Sample) -> str:
    desired = "-" if s.desired is None else str(s.desired)
    queue = "-" if s.queue is None else f"{s.queue:.0f}"
    gpu = "-" if s.gpu is None else f"{s.gpu:.0f}"
    shed = f"ON {s.retry_after}s" if s.shed else "off"
    return (
        f"{s.elapsed_seconds:>4.0f}s  {s.phase:<11} {s.load:>4}  {f'{s.ready}/{desired}':>13}  "
        f"{queue:>5}  {gpu:>4}  {shed:<10} {s.reason}"
    )


@contextmanager
def operator_process(env: dict[str, str], state_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`fleetscale run` as the chart's ServiceAccount, watching the demo namespace only."""
    operator_env = dict(env)
    operator_env["KUBECONFIG"] = env.get("FLEETSCALE_E2E_OPERATOR_KUBECONFIG", env["KUBECONFIG"])
    operator_env.update(
        {
            "FLEETSCALE_PROMETHEUS_URL": env["FLEETSCALE_E2E_PROMETHEUS_URL"],
            "FLEETSCALE_NAMESPACES": NAMESPACE,
            "FLEETSCALE_LOG_FORMAT": "json",
            "FLEETSCALE_HTTP_PORT": "0",
            "FLEETSCALE_LEADER_ELECTION": "false",
        }
    )
    log_path = state_dir / "demo-operator.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetscale", "run"],
            env=operator_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log(f"operator started (pid {proc.pid}); its JSON log: {log_path}")
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def apply(env: dict[str, str], manifest: dict[str, Any]) -> None:
    subprocess.run(
        ["kubectl", "apply", "-f", "-"],
        env=env,
        input=json.dumps(manifest),
        text=True,
        check=True,
        capture_output=True,
    )


def deployment_manifest() -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(
        (E2E_DIR / "manifests" / "vllm-deployment.yaml").read_text()
    )
    doc["metadata"]["namespace"] = NAMESPACE
    doc["spec"]["replicas"] = 1
    return doc


def offer_load(exporter: Exporter, requests_in_flight: int) -> None:
    exporter.set_load(
        NAMESPACE,
        DEPLOYMENT,
        requests_in_flight,
        model=MODEL,
        concurrency=CONCURRENCY_PER_REPLICA,
    )


def wait_for_first_decision(cluster: Cluster, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not cluster.pool_status().get("lastDecisionReason"):
        if time.monotonic() > deadline:
            raise SystemExit("[demo] the operator made no decision in time; see its log")
        time.sleep(1)


def drive(cluster: Cluster, exporter: Exporter, interval_seconds: float) -> Summary:
    summary = Summary()
    print(HEADER, flush=True)
    start = time.monotonic()
    for phase in PHASES:
        offer_load(exporter, phase.load)
        phase_end = time.monotonic() + phase.seconds
        while time.monotonic() < phase_end:
            current = sample(cluster, time.monotonic() - start, phase)
            summary.add(current)
            print(render(current), flush=True)
            time.sleep(max(0.0, min(interval_seconds, phase_end - time.monotonic())))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between lines")
    args = parser.parse_args(argv)

    base = dict(os.environ)
    base.setdefault("PYTHON", sys.executable)
    state_dir = Path(base.setdefault("FLEETSCALE_E2E_STATE", "/tmp/fleetscale-demo"))
    base.setdefault("FLEETSCALE_E2E_CLUSTER", "fleetscale-demo")
    base.setdefault("FLEETSCALE_E2E_GPU_NODES", "2")

    started = time.monotonic()
    log("starting the local cluster, Prometheus and the simulated vLLM fleet")
    subprocess.run([str(CLUSTER_SH), "up"], env=base, check=True, stdout=subprocess.DEVNULL)
    log(f"cluster ready in {time.monotonic() - started:.0f} s")
    try:
        env = cluster_env(base)
        run(["kubectl", "create", "namespace", NAMESPACE], env=env, check=False, quiet=True)
        apply(env, deployment_manifest())
        apply(env, INFERENCE_POOL)
        exporter = Exporter(env["FLEETSCALE_E2E_EXPORTER_URL"])
        offer_load(exporter, PHASES[0].load)
        cluster = Cluster(env["KUBECONFIG"])
        with operator_process(env, state_dir) as operator:
            wait_for_first_decision(cluster)
            log(
                f"load pattern: {', '.join(f'{p.name} {p.load} for {p.seconds}s' for p in PHASES)}"
                f"; each replica serves {CONCURRENCY_PER_REPLICA} at once, max {MAX_REPLICAS}"
            )
            summary = drive(cluster, exporter, args.interval)
            if operator.poll() is not None:
                log(f"the operator exited early ({operator.returncode}); see its log")
        print()
        log("summary")
        print(summary.render())
        print()
        log("Events the operator posted (kubectl get events -n demo)")
        print(
            run(
                [
                    "kubectl",
                    "-n",
                    NAMESPACE,
                    "get",
                    "events",
                    "--field-selector",
                    f"involvedObject.name={POOL}",
                    "--sort-by=.lastTimestamp",
                    "-o",
                    "custom-columns=LAST:.lastTimestamp,TYPE:.type,REASON:.reason,"
                    "COUNT:.count,MESSAGE:.message",
                ],
                env=env,
                check=False,
            )
        )
        print(
            run(
                ["kubectl", "-n", NAMESPACE, "get", "inferencepools.fleetscale.io", "-o", "wide"],
                env=env,
            )
        )
    finally:
        if args.keep:
            log(
                f'cluster kept: `eval "$(e2e/cluster.sh env)"` with FLEETSCALE_E2E_STATE='
                f"{state_dir} FLEETSCALE_E2E_CLUSTER={base['FLEETSCALE_E2E_CLUSTER']}, "
                "then `e2e/cluster.sh down` to stop it"
            )
        else:
            log("tearing down")
            subprocess.run([str(CLUSTER_SH), "down"], env=base, check=False)
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
