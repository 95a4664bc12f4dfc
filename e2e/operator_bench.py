"""Operator overhead at scale: `fleetscale run` against the real local control plane.

Role: ``make bench-operator``. For each pool count in ``$FLEETSCALE_BENCH_POOLS`` (default
1,000, 5,000 and 10,000, grown one into the next) it creates that many InferencePools and
small Deployments (one pod each, on kwok nodes) in the e2e control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok, from ``e2e/cluster.sh``),
all pools sharing a handful of distinct PromQL queries answered by a small counting
Prometheus stub and one of four AcceleratorPools (kwok provider, a node of their own each),
and runs ``python -m fleetscale run`` as the chart's ServiceAccount (JSON logs):

- one replica (``$FLEETSCALE_BENCH_REPLICAS`` 1): alone, without leader election;
- two replicas (2): ``shards=2``; the first alone until every pool ticked, then the second
  joins (the rebalance: how long until each holds one shard), the steady window on both, then
  the one not holding shard 0 is killed with SIGKILL (the takeover: how long until the other
  holds both). Meanwhile a quarter of the pools write their status every tick (the stub's
  churn), and every write to a pool in the API server's audit log is checked against the
  writes of its shard's Lease: the last Lease write before it must be the same replica's.

Each steady window (every pool ticked, plus one tick) measures: ticks done; reconcile p50/p99
(the operator's fleetscale_reconcile_duration_seconds, as upper bounds of the buckets holding
the quantile, both replicas merged); Kubernetes API calls (the kube-apiserver's own
apiserver_request_total, delta over the window, by resource and verb: it has no user label);
Lease writes (the audit log, by the replicas' names) and reads (fixed by the design); status
writes; Prometheus queries per tick (the stub); CPU (user + system, /proc) and resident
memory (VmRSS), summed over the replicas, and per pool; the time one /metrics scrape takes.
At the end, every pool is deleted at once (one deletecollection) while one replica runs: how
long until the API server has let them go, and until the operator has forgotten them.

The cluster is started and stopped by the bench (``e2e/cluster.sh up``/``down``, state in
``$FLEETSCALE_E2E_STATE``, default /tmp/fleetscale-bench) unless ``KUBECONFIG`` and
``FLEETSCALE_E2E_STATE`` are already set (``eval "$(e2e/cluster.sh env)"``), in which case it
is reused and left running. Results: out/bench-operator/results.json, table.md (the table of
docs/benchmark-operator.md) and operator-*.log (the operators' JSON logs). Exit status 1
when a bar is missed: status written only on change, Prometheus queries per tick bounded by
the distinct queries, API calls per pool per hour at most 240, every tick done and p99
reconcile under 1 s at up to 5,000 pools on one replica, every tick done at 10,000 pools on
two, no pool written by two replicas.

Settings: FLEETSCALE_BENCH_POOLS, FLEETSCALE_BENCH_REPLICAS (1,2),
FLEETSCALE_BENCH_WINDOW_SECONDS (60), FLEETSCALE_BENCH_QUERIES (distinct PromQL, 4),
FLEETSCALE_BENCH_DELETION (0: skip the deletion), FLEETSCALE_BENCH_CLEANUP (0: leave the
namespace for the next run, which grows it), PYTHON (the project venv's python).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fleetscale.sim.bench import splice_readme

README_MARKERS = ("<!-- bench-operator:start -->", "<!-- bench-operator:end -->")

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "e2e" / "cluster.sh"
NAMESPACE = "fleetscale-bench"
POLL_SECONDS = 15
WINDOW_SECONDS = float(os.environ.get("FLEETSCALE_BENCH_WINDOW_SECONDS", "60"))
DISTINCT_QUERIES = int(os.environ.get("FLEETSCALE_BENCH_QUERIES", "4"))
PODS_PER_NODE = 100
PYTHON = os.environ.get("PYTHON", sys.executable)
GROUP, VERSION, PLURAL = "fleetscale.io", "v1alpha1", "inferencepools"
OPERATOR_NAMESPACE = os.environ.get("FLEETSCALE_E2E_OPERATOR_NAMESPACE", "fleetscale-system")
ACCELERATOR_POOLS = 4
APOOL_LABEL = "fleetscale.io/bench-accelerator-pool"
# What the operator reads and writes: apiserver_request_total has no user label, so the
# operator's share is taken by resource and verb (kwok and the controllers renew Nodes and
# Leases and watch pods themselves; their traffic is in results.json beside it).
OPERATOR_CALLS = {
    PLURAL: None,  # every verb
    "acceleratorpools": None,
    "deployments": None,
    "events": None,
    "pods": {"LIST"},  # the AcceleratorPools' pods per node
    "nodes": {"LIST"},  # the node cache's lists, the kwok provider's size
}


def operator_call(verb: str, resource: str) -> bool:
    if resource not in OPERATOR_CALLS:
        return False
    verbs = OPERATOR_CALLS[resource]
    return verbs is None or verb in verbs


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pool_counts() -> list[int]:
    raw = os.environ.get("FLEETSCALE_BENCH_POOLS", "1000,5000,10000")
    return [int(part) for part in raw.split(",") if part.strip()]


def query_text(index: int) -> str:
    return f'sum(vllm:num_requests_waiting{{model_name="bench-{index % DISTINCT_QUERIES}"}})'


# ----------------------------------------------------------------- Prometheus stub
class PromStub:
    """Answers /api/v1/query with 0 sampled now for every query, and counts the queries.

    While ``churn`` is on, the first distinct query answers 0 and 3 on alternate ticks, so a
    quarter of the pools write their status every tick (within tolerance: no scaling): the
    writes the audit check follows through a rebalance and a takeover.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.churn = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, params: dict[str, list[str]]) -> None:
                query = params.get("query", [""])[0]
                with stub.lock:
                    stub.counts[query] += 1
                now = time.time()
                odd_tick = int(now // POLL_SECONDS) % 2 == 1
                value = "3" if stub.churn and query == query_text(0) and odd_tick else "0"
                body = json.dumps(
                    {
                        "status": "success",
                        "data": {
                            "resultType": "vector",
                            "result": [{"metric": {}, "value": [now, value]}],
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                self._answer(urllib.parse.parse_qs(parsed.query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                parsed = urllib.parse.urlparse(self.path)
                params = urllib.parse.parse_qs(parsed.query)
                params.update(urllib.parse.parse_qs(body))
                self._answer(params)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------- cluster
def kubectl(*args: str, stdin: str | None = None, timeout: float = 600) -> str:
    exe = os.environ.get("FLEETSCALE_E2E_KUBECTL", "kubectl")
    done = subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr.strip()[-2000:]}")
    return done.stdout


@contextmanager
def cluster() -> Iterator[dict[str, str]]:
    """The e2e control plane's environment: reused when set, else started and stopped here."""
    if os.environ.get("KUBECONFIG") and os.environ.get("FLEETSCALE_E2E_STATE"):
        log(f"reusing the cluster of {os.environ['FLEETSCALE_E2E_STATE']}")
        yield dict(os.environ)
        return
    env = {
        **os.environ,
        "PYTHON": PYTHON,
        "FLEETSCALE_E2E_STATE": os.environ.get("FLEETSCALE_E2E_STATE", "/tmp/fleetscale-bench"),
        "FLEETSCALE_E2E_CLUSTER": os.environ.get("FLEETSCALE_E2E_CLUSTER", "fleetscale-bench"),
        "FLEETSCALE_BENCH_OWNS": "1",  # started here, so taken down here with all it holds
        # Creating and deleting thousands of Deployments at the controllers' default 20
        # requests a second takes longer than the measurement itself.
        "FLEETSCALE_E2E_CONTROL_PLANE_QPS": os.environ.get(
            "FLEETSCALE_E2E_CONTROL_PLANE_QPS", "200"
        ),
    }
    try:
        log("starting the cluster: e2e/cluster.sh up")
        subprocess.run([str(CLUSTER_SH), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
        lines = subprocess.run(
            [str(CLUSTER_SH), "env"], env=env, check=True, capture_output=True, text=True
        ).stdout
        for line in lines.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                value = " ".join(shlex.split(value)) if value.startswith("'") else value
                env[key] = value.replace("${PATH}", os.environ.get("PATH", ""))
        # The fleet exporter and the real Prometheus belong to the e2e scenarios; the bench
        # uses its own stub, so they are stopped to keep their API reads out of the figures.
        subprocess.run([str(CLUSTER_SH), "prometheus", "stop"], env=env, check=True)
        subprocess.run([str(CLUSTER_SH), "exporter", "stop"], env=env, check=True)
        os.environ.update({k: env[k] for k in ("KUBECONFIG", "PATH", "FLEETSCALE_E2E_KUBECTL")})
        yield env
    finally:
        log("stopping the cluster: e2e/cluster.sh down")
        subprocess.run([str(CLUSTER_SH), "down"], env=env, check=False)


def manifests(first: int, last: int) -> list[dict[str, Any]]:
    """The Deployments and InferencePools number ``first`` to ``last - 1``."""
    items: list[dict[str, Any]] = []
    for index in range(first, last):
        name = f"vllm-{index}"
        labels = {"app": name}
        items.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{"name": "vllm", "image": "vllm"}],
                            "nodeSelector": {"type": "kwok"},
                            "tolerations": [{"operator": "Exists"}],
                        },
                    },
                },
            }
        )
        items.append(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "InferencePool",
                "metadata": {"name": f"pool-{index}", "namespace": NAMESPACE},
                "spec": {
                    "model": f"bench-{index % DISTINCT_QUERIES}",
                    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "replicas": {"min": 1, "max": 4},
                    "metrics": {
                        # One query per pool, so the figures compare with earlier runs.
                        "engine": "custom",
                        "queueDepth": {"query": query_text(index), "targetPerReplica": 5},
                        "maxStalenessSeconds": 60,
                    },
                    "pollIntervalSeconds": POLL_SECONDS,
                    "mode": "Active",
                    # Every pool draws on an AcceleratorPool it shares with a quarter of the
                    # others; it asks for no accelerators, so no node has to be made for it.
                    "acceleratorPoolRef": {"name": apool_name(index)},
                    "acceleratorsPerReplica": 0,
                },
            }
        )
    return items


def apool_name(index: int) -> str:
    return f"bench-{index % ACCELERATOR_POOLS}"


def accelerator_pools() -> list[dict[str, Any]]:
    """The shared AcceleratorPools: kwok nodes of their own (tainted, so no bench pod lands
    there), one each, found by label."""
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AcceleratorPool",
            "metadata": {"name": apool_name(index)},
            "spec": {
                "provider": {
                    "kwok": {
                        "taints": [
                            {"key": APOOL_LABEL, "value": apool_name(index), "effect": "NoSchedule"}
                        ]
                    }
                },
                "nodeLabels": {APOOL_LABEL: apool_name(index)},
                "acceleratorsPerNode": 8,
                "nodes": {"min": 1, "max": 1},
                "pollIntervalSeconds": POLL_SECONDS,
            },
        }
        for index in range(ACCELERATOR_POOLS)
    ]


def create_all(items: list[dict[str, Any]], parallel: int = 4, chunk: int = 250) -> None:
    """``kubectl create`` in a few parallel processes: one process creates one object at a time."""
    chunks = [items[start : start + chunk] for start in range(0, len(items), chunk)]

    def create(part: list[dict[str, Any]]) -> str:
        listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": part})
        try:
            return kubectl("create", "-f", "-", stdin=listing, timeout=1800)
        except RuntimeError as error:  # objects a previous run left are fine as they are
            lines = [line for line in str(error).splitlines() if "AlreadyExists" not in line]
            if any("Error" in line for line in lines):
                raise
            return ""

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(create, chunks))


def apiserver_requests() -> Counter[tuple[str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource), summed over the other labels."""
    totals: Counter[tuple[str, str, str]] = Counter()
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
        labels = dict(
            part.split("=", 1) for part in labels_text.replace('"', "").split(",") if "=" in part
        )
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        totals[key] += int(float(value))
    return totals


def pool_statuses() -> dict[str, dict[str, Any]]:
    listing = json.loads(kubectl("-n", NAMESPACE, "get", PLURAL, "-o", "json", timeout=300))
    return {item["metadata"]["name"]: item.get("status") or {} for item in listing["items"]}


# ----------------------------------------------------------------- operator
def histogram(text: str, name: str) -> list[tuple[float, float]]:
    buckets: Counter[float] = Counter()
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if bound == "+Inf" else float(bound)] += int(float(line.split()[-1]))
    return sorted(buckets.items())


def merged(histograms: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    total: Counter[float] = Counter()
    for buckets in histograms:
        for bound, count in buckets:
            total[bound] += count
    return sorted(total.items())


def counter_total(text: str, name: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(f"{name}{{") or line.startswith(f"{name} ")
    )


def quantile(
    before: list[tuple[float, float]], after: list[tuple[float, float]], q: float
) -> float:
    start = dict(before)
    counts = [(bound, total - start.get(bound, 0.0)) for bound, total in after]
    if not counts or counts[-1][1] == 0:
        return math.nan
    wanted = q * counts[-1][1]
    for bound, cumulative in counts:
        if cumulative >= wanted:
            return bound
    return math.inf


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as response:
        body: bytes = response.read()
        return body.decode()


class Replica:
    """One `fleetscale run` process, as a pod of the chart's Deployment runs it."""

    def __init__(self, env: dict[str, str], stub: PromStub, out: Path, name: str, shards: int):
        self.identity = name
        self.port = free_port()
        self.log_path = out / f"operator-{name}.log"
        operator_env = {
            **env,
            "KUBECONFIG": env.get("FLEETSCALE_E2E_OPERATOR_KUBECONFIG")
            or str(Path(env["FLEETSCALE_E2E_STATE"]) / "operator.kubeconfig"),
            "FLEETSCALE_PROMETHEUS_URL": stub.url,
            "FLEETSCALE_NAMESPACES": NAMESPACE,
            "FLEETSCALE_LOG_FORMAT": "json",
            "FLEETSCALE_HTTP_PORT": str(self.port),
            "FLEETSCALE_LEADER_ELECTION": "true" if shards > 1 else "false",
            "FLEETSCALE_SHARDS": str(shards),
            "FLEETSCALE_LEASE_NAME": "fleetscale",
            "FLEETSCALE_LEASE_NAMESPACE": OPERATOR_NAMESPACE,
            "FLEETSCALE_IDENTITY": name,
            "PYTHONPATH": str(REPO / "operator"),
        }
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "fleetscale", "run"],
                env=operator_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def metrics(self) -> str:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited {self.proc.returncode}; see {self.log_path}")
        return http_get(self.metrics_url)

    def value(self, name: str) -> float:
        try:
            return counter_total(self.metrics(), name)
        except (OSError, ValueError):
            return 0.0

    def reconciles(self) -> float:
        try:
            buckets = histogram(self.metrics(), "fleetscale_reconcile_duration_seconds")
        except OSError:
            return 0.0
        return buckets[-1][1] if buckets else 0.0

    def stop(self, *, kill: bool = False) -> None:
        if self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(check: Any, seconds: float, what: str, every: float = 2.0) -> float:
    """Poll ``check`` until true; how long it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"not {what} within {seconds:.0f} s")
        time.sleep(every)
    return time.monotonic() - started


def grow_to(env: dict[str, str], have: int, pools: int) -> None:
    """Create the Deployments and InferencePools ``have`` to ``pools`` and wait for their pods."""
    if pools <= have:
        return
    log(f"{pools} pools: nodes, {pools - have} more Deployments and InferencePools")
    subprocess.run(
        [str(CLUSTER_SH), "nodes", str(pools // PODS_PER_NODE + 1)],
        env={**env, "PYTHON": PYTHON},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    created = time.monotonic()
    create_all(manifests(have, pools))
    log(f"created {2 * (pools - have)} objects in {time.monotonic() - created:.0f} s")

    def available() -> bool:
        listing = json.loads(kubectl("-n", NAMESPACE, "get", "deployments", "-o", "json"))
        return sum(1 for d in listing["items"] if d["status"].get("availableReplicas")) >= pools

    wait_for(available, 1800, f"every one of {pools} Deployments available", every=10)
    log(f"every Deployment available after {time.monotonic() - created:.0f} s")


def status_writes() -> int:
    return sum(
        n
        for (verb, resource, sub), n in apiserver_requests().items()
        if resource == PLURAL and sub == "status" and verb != "GET"
    )


def warm_up(replicas: list[Replica], pools: int) -> float:
    """Until every pool ticked once on these replicas: how long. Then until a whole tick
    passes with (almost) no status write: the first ticks of new pools write their status,
    an AcceleratorPool plans from the demand they report, the next tick reads its allocation."""
    started = time.monotonic()
    # From now: a replica that just joined (or took a shard over) ticks its pools too.
    base = [r.reconciles() for r in replicas]
    wait_for(
        lambda: sum(r.reconciles() - b for r, b in zip(replicas, base, strict=True)) >= pools,
        1800,
        "every pool ticked",
    )
    warm = time.monotonic() - started
    time.sleep(POLL_SECONDS + 1)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        before = status_writes()
        time.sleep(POLL_SECONDS)
        if status_writes() - before <= pools // 1000:
            break
    return warm


def window(replicas: list[Replica], stub: PromStub, pools: int) -> dict[str, Any]:
    """The steady window: latency, ticks, API calls, CPU, memory, /metrics."""
    statuses_before = pool_statuses()
    scrape_seconds = 0.0
    metrics_before = []
    for replica in replicas:
        scrape_started = time.monotonic()
        metrics_before.append(replica.metrics())
        scrape_seconds = max(scrape_seconds, time.monotonic() - scrape_started)
    cpu_before = [cpu_seconds(r.proc.pid) for r in replicas]
    calls_before = apiserver_requests()
    queries_before = stub.total()
    started = time.monotonic()
    time.sleep(WINDOW_SECONDS)
    elapsed = time.monotonic() - started
    queries = stub.total() - queries_before
    calls = apiserver_requests() - calls_before
    cpu = [cpu_seconds(r.proc.pid) - before for r, before in zip(replicas, cpu_before, strict=True)]
    metrics_after = [r.metrics() for r in replicas]
    rss = [rss_mb(r.proc.pid) for r in replicas]
    statuses_after = pool_statuses()
    name = "fleetscale_reconcile_duration_seconds"
    before = merged([histogram(text, name) for text in metrics_before])
    after = merged([histogram(text, name) for text in metrics_after])
    reconciles = (after[-1][1] - dict(before).get(math.inf, 0.0)) if after else 0.0
    ticks = elapsed / POLL_SECONDS
    per_hour = 3600 / elapsed / pools
    by_resource = {
        f"{v} {r}{'/' + s if s else ''}": n for (v, r, s), n in calls.items() if operator_call(v, r)
    }
    status_writes = sum(
        n for (v, r, s), n in calls.items() if r == PLURAL and s == "status" and v != "GET"
    )
    # Lease requests: the audit log shows the writes by the replicas' names; the reads are
    # fixed by the design (per replica per retry period: the members Lease, each shard's
    # Lease, the leader Lease), since other components renew Leases of their own too.
    lease_reads = 0.0 if len(replicas) == 1 else len(replicas) * elapsed / 2.0 * (len(replicas) + 2)
    return {
        "window_seconds": round(elapsed, 1),
        "reconciles": reconciles,
        "ticks_completed_fraction": round(reconciles / (pools * ticks), 2),
        "reconcile_p50_seconds": quantile(before, after, 0.50),
        "reconcile_p99_seconds": quantile(before, after, 0.99),
        "operator_calls_in_window": by_resource,
        "operator_calls_per_pool_per_hour": round(sum(by_resource.values()) * per_hour, 2),
        "lease_reads_per_pool_per_hour": round(lease_reads * per_hour, 2),
        "all_calls_in_window": {
            f"{v} {r}{'/' + s if s else ''}": n for (v, r, s), n in calls.most_common(15)
        },
        "status_writes_per_pool_per_hour": round(status_writes * per_hour, 2),
        "pools_whose_status_changed_in_window": sum(
            1 for n, st in statuses_after.items() if statuses_before.get(n) != st
        ),
        "prometheus_queries_per_tick": round(queries / ticks, 2),
        "reconcile_errors_in_window": sum(
            counter_total(a, "fleetscale_reconcile_errors_total")
            - counter_total(b, "fleetscale_reconcile_errors_total")
            for a, b in zip(metrics_after, metrics_before, strict=True)
        ),
        "operator_rss_mb": round(sum(rss), 1),
        "rss_kb_per_pool": round(sum(rss) * 1024 / pools, 1),
        "operator_cpu_percent_of_one_core": round(100 * sum(cpu) / elapsed, 1),
        "cpu_ms_per_pool_per_tick": round(1000 * sum(cpu) / (pools * ticks), 3),
        "metrics_scrape_seconds": round(scrape_seconds, 2),
    }


def lease_writes_per_pool_per_hour(
    audit: Any, mark: int, replicas: list[Replica], seconds: float, pools: int
) -> float:
    writes = [w for r in replicas for w in audit.writes(mark, by=r.identity) if "/leases/" in w.uri]
    return round(len(writes) * 3600 / seconds / pools, 2)


def exclusive_writes(audit: Any, mark: int, replicas: list[Replica], shards: int) -> dict[str, Any]:
    """Every write to a pool (its status, its target's /scale) checked against the API server's
    audit log: the last successful write of the pool's shard Lease before it (an acquisition,
    a renewal or a release) must be the same replica's. No pool then ever had two writers."""
    from fleetscale.election.shards import shard_of

    writes = sorted(
        (w.at, r.identity, w.uri, w.name)
        for r in replicas
        for w in audit.writes(mark, by=r.identity)
        if w.code is None or 200 <= int(w.code) < 300
    )
    last_lease_writer: dict[int, str] = {}
    checked, violations = 0, []
    for at, who, uri, written in writes:
        path = uri.split("?")[0]
        # A shard Lease's first acquisition is a create, whose URI names only the collection
        # (on a fresh cluster): its name is the audit event's objectRef.
        if "/leases" in path and written.startswith("fleetscale-shard-"):
            last_lease_writer[int(written.rsplit("-", 1)[1])] = who
            continue
        name = None
        if f"/namespaces/{NAMESPACE}/inferencepools/" in path:
            name = path.split("/inferencepools/", 1)[1].split("/", 1)[0]
        elif f"/namespaces/{NAMESPACE}/deployments/" in path and path.endswith("/scale"):
            name = "pool-" + path.split("/deployments/vllm-", 1)[1].split("/", 1)[0]
        if name is None:
            continue
        checked += 1
        holder = last_lease_writer.get(shard_of(NAMESPACE, name, shards))
        if holder != who:
            violations.append(f"{name} written by {who} at {at:.3f} while {holder} held its shard")
    return {"pool_writes_checked": checked, "two_writer_violations": violations[:20]}


def measure(
    env: dict[str, str], stub: PromStub, pools: int, replicas: int, out: Path, audit: Any
) -> dict[str, Any]:
    """One count of pools on one or two replicas (two: shards=2, with the rebalance when the
    second one joins, and the takeover when one is killed)."""
    result: dict[str, Any] = {"pools": pools, "replicas": replicas}
    if replicas == 1:
        one = Replica(env, stub, out, f"bench-{pools}-solo", 1)
        try:
            result["warm_up_seconds"] = round(warm_up([one], pools), 1)
            result.update(window([one], stub, pools))
        finally:
            one.stop()
        return result
    mark = audit.size()
    first = Replica(env, stub, out, f"bench-{pools}-a", replicas)
    second: Replica | None = None
    try:
        wait_for(lambda: first.value("fleetscale_shards_held") == replicas, 120, "one holding all")
        result["warm_up_seconds"] = round(warm_up([first], pools), 1)
        stub.churn = True  # a quarter of the pools write every tick from here
        second = Replica(env, stub, out, f"bench-{pools}-b", replicas)
        result["rebalance_seconds"] = round(
            wait_for(
                lambda: (
                    first.value("fleetscale_shards_held") == 1
                    and second is not None
                    and second.value("fleetscale_shards_held") == 1
                ),
                300,
                "one shard each",
                every=0.5,
            ),
            1,
        )
        time.sleep(2 * POLL_SECONDS)  # both write their shards' pools
        stub.churn = False
        warm_up([first, second], pools)  # every pool ticked on its holder, churn settled
        window_mark = audit.size()
        result.update(window([first, second], stub, pools))
        result["lease_writes_per_pool_per_hour"] = lease_writes_per_pool_per_hour(
            audit, window_mark, [first, second], result["window_seconds"], pools
        )
        stub.churn = True
        victim = second if second.value("fleetscale_leader") == 0 else first
        survivor = first if victim is second else second
        victim.stop(kill=True)  # kill -9: no release, no clean-up
        result["takeover_seconds"] = round(
            wait_for(
                lambda: survivor.value("fleetscale_shards_held") == replicas,
                120,
                "the survivor to hold every shard",
                every=0.25,
            ),
            1,
        )
        time.sleep(2 * POLL_SECONDS)  # the survivor writes the taken shard's pools
        stub.churn = False
        result.update(exclusive_writes(audit, mark, [first, second], replicas))
    finally:
        stub.churn = False
        first.stop()
        if second is not None:
            second.stop()
    return result


def deletion_pace(env: dict[str, str], stub: PromStub, pools: int, out: Path) -> dict[str, Any]:
    """Delete every pool at once (a deletecollection) while one replica runs: how fast the API
    server lets them go, and how fast the operator has forgotten them."""
    one = Replica(env, stub, out, f"bench-{pools}-deletion", 1)
    try:
        warm_up([one], pools)
        started = time.monotonic()
        kubectl("delete", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}")

        def gone() -> bool:
            listing = json.loads(
                kubectl(
                    "get",
                    "--raw",
                    f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}?limit=1",
                )
            )
            return not listing["items"]

        api_seconds = wait_for(gone, 1800, "every pool gone from the API server", every=1)
        forgotten = wait_for(
            lambda: "fleetscale_desired_replicas{" not in one.metrics(),
            1800,
            "every pool forgotten by the operator",
            every=1,
        )
        total = time.monotonic() - started
    finally:
        one.stop()
    return {
        "pools": pools,
        "deleted_in_api_seconds": round(api_seconds, 1),
        "forgotten_by_operator_seconds": round(total, 1),
        "pools_released_per_second": round(pools / max(total, 0.001), 1),
        "operator_lag_after_api_seconds": round(forgotten, 1),
    }


def misses(result: dict[str, Any]) -> list[str]:
    if "failed" in result:
        return [f"not measured: {result['failed']}"]
    found = []
    if result["status_writes_per_pool_per_hour"] > 0:
        found.append("status written without a change")
    # Each replica reads each distinct query once a tick, for the pools it acts on.
    if result["prometheus_queries_per_tick"] > DISTINCT_QUERIES * result["replicas"] * 1.5:
        found.append("Prometheus queries per tick follow the pools, not the distinct queries")
    api_calls = (
        result["operator_calls_per_pool_per_hour"]
        + result.get("lease_writes_per_pool_per_hour", 0)
        + result.get("lease_reads_per_pool_per_hour", 0)
    )
    if api_calls > 240:
        found.append(f"{api_calls:g} API calls per pool per hour (bar: 240)")
    if result["pools"] <= 5000 and result["replicas"] == 1:
        if not result["reconcile_p99_seconds"] <= 1.0:
            found.append("p99 reconcile not under 1 s")
        if result["ticks_completed_fraction"] < 1.0:
            found.append("not every tick done")
    if (
        result["pools"] == 10000
        and result["replicas"] == 2
        and result["ticks_completed_fraction"] < 1.0
    ):
        found.append("not every tick done")
    if result.get("two_writer_violations"):
        found.append("a pool had two writers")
    return found


def verdict(result: dict[str, Any]) -> str:
    """The table's last column: the bars missed, and whether the operator kept up at all."""
    found = misses(result)
    if "failed" not in result and result["ticks_completed_fraction"] < 0.95:
        found.append(
            f"falls behind: {result['ticks_completed_fraction']:.0%} of the ticks done "
            f"at {result['operator_cpu_percent_of_one_core']:g}% of a core"
        )
    if result.get("note"):
        found.append(str(result["note"]))
    return "; ".join(dict.fromkeys(found)) or "none"


def bound(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return "> 30 s" if seconds == math.inf else f"<= {seconds:g} s"


def write(results: list[dict[str, Any]], deletion: dict[str, Any] | None, out: Path) -> None:
    (out / "results.json").write_text(
        json.dumps({"runs": results, "deletion": deletion}, indent=1) + "\n", encoding="utf-8"
    )
    header = (
        "| pools | replicas | ticks done | reconcile p50 | reconcile p99 | API calls / pool / hour "
        "(pools, targets, nodes, Events; + Leases) | CPU / pool / tick (ms) | CPU (% of a core) "
        "| RSS / pool (KB) | RSS (MB) | /metrics in | every pool ticked, after start "
        "| takeover after kill -9 | pools written, by two replicas | bars missed |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        if "failed" in r:
            rows.append(f"| {r['pools']:,} | {r['replicas']} | {verdict(r)} |" + " |" * 12 + "\n")
            continue
        leases = r.get("lease_writes_per_pool_per_hour", 0) + r.get(
            "lease_reads_per_pool_per_hour", 0
        )
        takeover = f"{r['takeover_seconds']:g} s" if "takeover_seconds" in r else "-"
        first_ticks = f"{r['warm_up_seconds']:g} s" if "warm_up_seconds" in r else "-"
        writers = (
            f"{r['pool_writes_checked']:,}, {len(r['two_writer_violations'])}"
            if "pool_writes_checked" in r
            else "-"
        )
        rows.append(
            f"| {r['pools']:,} | {r['replicas']} | {r['ticks_completed_fraction']:.0%} | "
            f"{bound(r['reconcile_p50_seconds'])} | {bound(r['reconcile_p99_seconds'])} | "
            f"{r['operator_calls_per_pool_per_hour']:g}; + {leases:.1f} | "
            f"{r['cpu_ms_per_pool_per_tick']:g} | {r['operator_cpu_percent_of_one_core']:g} | "
            f"{r['rss_kb_per_pool']:g} | {r['operator_rss_mb']:g} | "
            f"{r['metrics_scrape_seconds']:g} s | {first_ticks} | {takeover} | {writers} | "
            f"{verdict(r)} |\n"
        )
    text = header + "".join(rows)
    if deletion:
        text += (
            f"\nDeleting all {deletion['pools']:,} pools at once (one deletecollection): gone from "
            f"the API server after {deletion['deleted_in_api_seconds']:g} s, forgotten by the "
            f"operator after {deletion['forgotten_by_operator_seconds']:g} s "
            f"({deletion['pools_released_per_second']:g} pools a second).\n"
        )
    (out / "table.md").write_text(text, encoding="utf-8")
    log(f"table in {out / 'table.md'}")


def readme_section(out: Path) -> str:
    """README's operator-overhead section: the table, and how and where it was measured."""
    table = (out / "table.md").read_text(encoding="utf-8")
    versions = dict(
        line.split("=", 1)
        for line in (REPO / "e2e" / "versions.env").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    return (
        f"Produced by `make bench-operator` on {time.strftime('%Y-%m-%d')}: the real "
        f"`fleetscale run` (one process, or two with `shards: 2`) against a local control plane "
        f"(kube-apiserver, controller-manager, scheduler {versions.get('KUBE_VERSION', '?')}, "
        f"kwok {versions.get('KWOK_VERSION', '?')}), every pool polling "
        f"every {POLL_SECONDS} s on {DISTINCT_QUERIES} distinct queries and sharing one of "
        f"{ACCELERATOR_POOLS} AcceleratorPools, measured over {WINDOW_SECONDS:g} s of steady "
        f"load on a {os.cpu_count()}-core machine shared with the control plane. Reconcile "
        "latency as the upper bound of its histogram bucket. How each figure is read, and what "
        "limits it: [docs/benchmark-operator.md](docs/benchmark-operator.md).\n\n" + table
    )


def existing_pools() -> int:
    """How many of the bench's pools exist already (pool-0 ... pool-N-1)."""
    try:
        names = kubectl("-n", NAMESPACE, "get", PLURAL, "-o", "name").split()
    except RuntimeError:  # no namespace yet
        return 0
    return len(names)


def replica_counts() -> list[int]:
    raw = os.environ.get("FLEETSCALE_BENCH_REPLICAS", "1,2")
    return [int(part) for part in raw.split(",") if part.strip()]


def prepare_chart(env: dict[str, str], shards: int) -> None:
    """The chart's RBAC for ``shards`` (their Leases by name), the in-cluster operator at 0."""
    helm = env.get("FLEETSCALE_E2E_HELM", "helm")
    subprocess.run(
        [helm, "--kubeconfig", env["KUBECONFIG"], "upgrade", "fleetscale",
         str(REPO / "charts" / "fleetscale"), "-n", OPERATOR_NAMESPACE, "--reuse-values",
         "--set", f"shards={shards}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    kubectl("-n", OPERATOR_NAMESPACE, "scale", "deployment", "-l",
            "app.kubernetes.io/instance=fleetscale", "--replicas=0")  # fmt: skip


def main() -> int:
    from e2e_support import AuditLog

    out = REPO / "out" / "bench-operator"
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    deletion: dict[str, Any] | None = None
    with cluster() as env:
        log(f"machine: {os.cpu_count()} cores, {platform.platform()}, load {os.getloadavg()}")
        audit = AuditLog(env.get("FLEETSCALE_E2E_AUDIT_LOG", ""))
        prepare_chart(env, max(replica_counts()))
        # A namespace left by an interrupted run is grown on, not made again.
        have = existing_pools()
        if have == 0:
            create_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
            create_all(accelerator_pools())
        stub = PromStub()
        try:
            for pools in pool_counts():
                if pools < have:
                    log(f"{pools} pools: skipped, {have} exist already")
                    continue
                grow_to(env, have, pools)
                have = pools
                for replicas in replica_counts():
                    log(f"{pools} pools on {replicas} replica(s)")
                    try:
                        result = measure(env, stub, pools, replicas, out, audit)
                    except Exception as error:  # one run failing still reports the others
                        log(f"{pools} pools, {replicas} replicas: failed: {error!r}")
                        result = {
                            "pools": pools,
                            "replicas": replicas,
                            "failed": f"{type(error).__name__}: {error}"[:300],
                        }
                    result["load_average"] = [round(x, 1) for x in os.getloadavg()]
                    results.append(result)
                    print(json.dumps(result), flush=True)
                    write(results, deletion, out)
            if have and os.environ.get("FLEETSCALE_BENCH_DELETION", "1") != "0":
                deletion = deletion_pace(env, stub, have, out)
                print(json.dumps(deletion), flush=True)
                write(results, deletion, out)
        finally:
            stub.close()
            keep = os.environ.get("FLEETSCALE_BENCH_CLEANUP", "1") == "0"
            if not env.get("FLEETSCALE_BENCH_OWNS") and not keep:
                log("deleting the bench's namespace and AcceleratorPools")
                kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=1800s",
                        timeout=1900)  # fmt: skip
                names = [apool["metadata"]["name"] for apool in accelerator_pools()]
                kubectl("delete", f"acceleratorpools.{GROUP}", *names, timeout=300)
                kubectl("delete", "nodes", "-l", APOOL_LABEL, timeout=300)
                prepare_chart(env, 1)  # the e2e suite's chart, as it was
    readme = os.environ.get("FLEETSCALE_BENCH_README")
    if readme:
        splice_readme(Path(readme), readme_section(out), README_MARKERS)
        log(f"results section of {readme} refreshed")
    failed = [
        f"{r['pools']} pools, {r['replicas']} replicas: {m}" for r in results for m in misses(r)
    ]
    for line in failed:
        log(f"MISSED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
