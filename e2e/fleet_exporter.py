"""Simulated vLLM fleet exporter for the e2e tests.

It stands in for a fleet of vLLM pods and their DCGM exporters. For every pool
(a Deployment in a namespace) it exposes the metric names a current vLLM (V1,
0.12: ``vllm/v1/metrics/loggers.py``) and DCGM expose:

* gauges ``vllm:num_requests_waiting``, ``vllm:num_requests_running`` and
  ``vllm:kv_cache_usage_perc`` (a fraction; the ``vllm:gpu_cache_usage_perc``
  name that vLLM 0.12 removed is not exported),
* counters ``vllm:prompt_tokens_total`` and ``vllm:generation_tokens_total``,
* histograms ``vllm:time_to_first_token_seconds`` and
  ``vllm:inter_token_latency_seconds`` (vLLM's bucket bounds)
  (labels ``model_name``, ``engine``, ``namespace``, ``pod``), and
* ``DCGM_FI_DEV_GPU_UTIL``
  (labels ``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname``,
  ``namespace``, ``pod``, ``container``)

The numbers follow from two inputs, so a test can predict them exactly:

* the offered load L (requests in flight), set by the test over HTTP, and
* the Ready pods R of the target Deployment, read from the API server.

Each Ready pod serves up to C requests at once (the pool's concurrency); the
rest waits. Running = min(L, R*C), waiting = L - running, spread evenly over
the Ready pods in name order (the first pods get the remainder). With no Ready
pod the whole load is reported as waiting on one series without a ``pod``
label, as a gateway queue would be. GPU utilization of a pod's GPUs is
``idle + (100 - idle) * running_on_pod / C`` percent, rounded.

The vLLM V1 series a load model reads follow the same inputs. KV-cache usage of
a pod is ``min(1, (running + waiting) / (2 * C))``. Each running request adds
``PROMPT_TOKENS_PER_REQUEST`` prompt tokens and ``GENERATION_TOKENS_PER_REQUEST``
generated tokens per second to the pod's counters, and
``FIRSTS_PER_REQUEST`` first tokens per second, each observed in the TTFT
histogram at ``TTFT_FAST_SECONDS`` while nothing waits on the pod and
``TTFT_SLOW_SECONDS`` otherwise; every generated token is observed in the
inter-token histogram at ``ITL_SECONDS``. Counters start when the exporter
first sees the pod, as a restarted vLLM's do.

HTTP (one port, 127.0.0.1 by default):

* ``GET /metrics``                      Prometheus text format
* ``PUT|POST /load?pool=NS/NAME&value=N[&model=M][&concurrency=C]``
                                        set the offered load (adds the pool)
* ``DELETE /load?pool=NS/NAME``         forget a pool
* ``GET /load``                         JSON: every pool's inputs and outputs
* ``GET /healthz``                      ``ok``
* ``POST /v1/completions``, ``POST /v1/chat/completions`` (header ``X-Fleet-Pool: NS/NAME``)
                                        the replicas serving: an OpenAI-style answer after
                                        the pool's service time (``&service=S`` on
                                        ``/load``, default 1 s) while at least one pod is
                                        Ready (503 otherwise). A request counts in the
                                        pool's load while it is served, so real traffic
                                        (what a gateway lets through) drives the metrics;
                                        ``value`` is added to it.

Run: ``python e2e/fleet_exporter.py --port 0 --port-file /tmp/p``
(the Kubernetes config comes from ``KUBECONFIG``, as for kubectl).
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LOG = logging.getLogger("fleet_exporter")

DEFAULT_CONCURRENCY = 8
GPU_RESOURCE = "nvidia.com/gpu"
GPU_MODEL_NAME = "NVIDIA H100 80GB HBM3"

# Per running request and second (see the module docstring).
PROMPT_TOKENS_PER_REQUEST = 100.0
GENERATION_TOKENS_PER_REQUEST = 20.0
FIRSTS_PER_REQUEST = 0.5
TTFT_FAST_SECONDS = 0.2
TTFT_SLOW_SECONDS = 4.0
ITL_SECONDS = 0.03
# vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip


@dataclasses.dataclass
class PodCounters:
    """What one pod has counted since it became known (cumulative, as vLLM's)."""

    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    ttft: list[float] = dataclasses.field(default_factory=lambda: [0.0] * (len(TTFT_BUCKETS) + 1))
    ttft_sum: float = 0.0
    itl: list[float] = dataclasses.field(default_factory=lambda: [0.0] * (len(ITL_BUCKETS) + 1))
    itl_sum: float = 0.0

    def advance(self, running: int, waiting: int, seconds: float) -> None:
        if running <= 0 or seconds <= 0:
            return
        generated = GENERATION_TOKENS_PER_REQUEST * running * seconds
        self.prompt_tokens += PROMPT_TOKENS_PER_REQUEST * running * seconds
        self.generation_tokens += generated
        firsts = FIRSTS_PER_REQUEST * running * seconds
        ttft = TTFT_FAST_SECONDS if waiting == 0 else TTFT_SLOW_SECONDS
        self.ttft[bisect.bisect_left(TTFT_BUCKETS, ttft)] += firsts
        self.ttft_sum += ttft * firsts
        self.itl[bisect.bisect_left(ITL_BUCKETS, ITL_SECONDS)] += generated
        self.itl_sum += ITL_SECONDS * generated


def cumulative(bounds: tuple[float, ...], counts: list[float]) -> list[tuple[str, float]]:
    """Exposition buckets: cumulative counts per ``le``, +Inf last."""
    total = 0.0
    out = []
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        total += count
        out.append(("+Inf" if bound == math.inf else f"{bound:g}", total))
    return out


@dataclasses.dataclass
class ReadyPod:
    name: str
    node: str
    gpus: int


@dataclasses.dataclass
class Pool:
    namespace: str
    deployment: str
    model: str
    concurrency: int = DEFAULT_CONCURRENCY
    load: int = 0
    in_flight: int = 0  # completions being served now (added to ``load``)
    service_seconds: float = 1.0
    served: int = 0
    ready_pods: list[ReadyPod] = dataclasses.field(default_factory=list)
    observed: bool = False  # the API server has been read at least once
    error: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.deployment}"


@dataclasses.dataclass(frozen=True)
class PodSample:
    pod: str  # "" for the gateway queue when no pod is Ready
    node: str
    gpus: int
    running: int
    waiting: int
    gpu_util: int


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts``; the first ones get the remainder."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def compute(pool: Pool, idle_gpu_util: int) -> list[PodSample]:
    """The per-pod numbers of one pool: pure, so a test can predict them."""
    pods = sorted(pool.ready_pods, key=lambda p: p.name)
    load = max(0, pool.load) + max(0, pool.in_flight)
    if not pods:
        return [PodSample(pod="", node="", gpus=0, running=0, waiting=load, gpu_util=0)]
    capacity = len(pods) * pool.concurrency
    running = split_evenly(min(load, capacity), len(pods))
    waiting = split_evenly(load - min(load, capacity), len(pods))
    samples = []
    for pod, run, wait in zip(pods, running, waiting, strict=True):
        busy = run / pool.concurrency if pool.concurrency else 1.0
        util = round(idle_gpu_util + (100 - idle_gpu_util) * busy)
        samples.append(
            PodSample(
                pod=pod.name, node=pod.node, gpus=pod.gpus, running=run, waiting=wait, gpu_util=util
            )
        )
    return samples


def fake_gpu_uuid(node: str, pod: str, index: int) -> str:
    digest = hashlib.sha1(f"{node}/{pod}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class Fleet:
    """The pools, their offered load and what the API server says about them."""

    def __init__(self, idle_gpu_util: int = 0) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, Pool] = {}
        self.idle_gpu_util = idle_gpu_util
        self._counters: dict[tuple[str, str], PodCounters] = {}  # (pool, pod)
        self._counted_at: float | None = None

    def counters(self, now: float | None = None) -> dict[tuple[str, str], PodCounters]:
        """Every pod's counters, advanced to ``now`` at the load it carried since the last call
        (pods that left keep theirs out: their series end, as a removed pod's do)."""
        now = time.monotonic() if now is None else now
        samples = self.snapshot()
        with self._lock:
            seconds = 0.0 if self._counted_at is None else now - self._counted_at
            self._counted_at = now
            live: dict[tuple[str, str], PodCounters] = {}
            for pool, pods in samples:
                for s in pods:
                    if not s.pod:
                        continue
                    key = (pool.key, s.pod)
                    counters = self._counters.get(key) or PodCounters()
                    counters.advance(s.running, s.waiting, seconds)
                    live[key] = counters
            self._counters = live
            return dict(live)

    def set_load(
        self,
        key: str,
        value: int,
        model: str | None = None,
        concurrency: int | None = None,
        service_seconds: float | None = None,
    ) -> Pool:
        namespace, name = parse_pool_key(key)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = Pool(namespace=namespace, deployment=name, model=model or name)
                self._pools[key] = pool
            if model:
                pool.model = model
            if concurrency is not None:
                pool.concurrency = concurrency
            if service_seconds is not None:
                pool.service_seconds = service_seconds
            pool.load = value
            return dataclasses.replace(pool)

    def add(self, pool: Pool) -> None:
        with self._lock:
            self._pools[pool.key] = pool

    def remove(self, key: str) -> bool:
        with self._lock:
            return self._pools.pop(key, None) is not None

    def pool_keys(self) -> list[str]:
        with self._lock:
            return list(self._pools)

    def update_ready(self, key: str, pods: list[ReadyPod] | None, error: str = "") -> None:
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                return
            if pods is not None:
                pool.ready_pods = pods
                pool.observed = True
            pool.error = error

    def admit(self, key: str) -> tuple[Pool | None, str]:
        """Start serving one completion of pool ``key``: the pool, or None and why not."""
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                return None, f"no pool {key}"
            if not pool.ready_pods:
                return None, f"no Ready replica of {key}"
            pool.in_flight += 1
            return dataclasses.replace(pool), ""

    def finish(self, key: str) -> None:
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                pool.in_flight = max(0, pool.in_flight - 1)
                pool.served += 1

    def snapshot(self) -> list[tuple[Pool, list[PodSample]]]:
        with self._lock:
            pools = [
                dataclasses.replace(p, ready_pods=list(p.ready_pods)) for p in self._pools.values()
            ]
        return [(p, compute(p, self.idle_gpu_util)) for p in sorted(pools, key=lambda p: p.key)]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pool, samples in self.snapshot():
            out[pool.key] = {
                "model": pool.model,
                "concurrency": pool.concurrency,
                "load": pool.load,
                "inFlight": pool.in_flight,
                "served": pool.served,
                "serviceSeconds": pool.service_seconds,
                "observed": pool.observed,
                "error": pool.error,
                "readyPods": [p.name for p in sorted(pool.ready_pods, key=lambda p: p.name)],
                "running": sum(s.running for s in samples),
                "waiting": sum(s.waiting for s in samples),
            }
        return out


class FleetCollector:
    """prometheus-client collector that renders the fleet at scrape time."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            labels=["model_name", "engine", "namespace", "pod"],
        )
        running = GaugeMetricFamily(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            labels=["model_name", "engine", "namespace", "pod"],
        )
        util = GaugeMetricFamily(
            "DCGM_FI_DEV_GPU_UTIL",
            "GPU utilization (in %).",
            labels=[
                "gpu",
                "UUID",
                "device",
                "modelName",
                "Hostname",
                "namespace",
                "pod",
                "container",
            ],
        )
        vllm_labels = ["model_name", "engine", "namespace", "pod"]
        kv_usage = GaugeMetricFamily(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            labels=vllm_labels,
        )
        prompt = CounterMetricFamily(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels=vllm_labels
        )
        generation = CounterMetricFamily(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels=vllm_labels
        )
        ttft = HistogramMetricFamily(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            labels=vllm_labels,
        )
        itl = HistogramMetricFamily(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            labels=vllm_labels,
        )
        counters = self.fleet.counters()
        for pool, samples in self.fleet.snapshot():
            for s in samples:
                labels = [pool.model, "0", pool.namespace, s.pod]
                waiting.add_metric(labels, s.waiting)
                if s.pod:
                    running.add_metric(labels, s.running)
                    usage = (s.running + s.waiting) / (2 * max(pool.concurrency, 1))
                    kv_usage.add_metric(labels, min(1.0, usage))
                    c = counters.get((pool.key, s.pod)) or PodCounters()
                    prompt.add_metric(labels, c.prompt_tokens)
                    generation.add_metric(labels, c.generation_tokens)
                    ttft.add_metric(labels, cumulative(TTFT_BUCKETS, c.ttft), c.ttft_sum)
                    itl.add_metric(labels, cumulative(ITL_BUCKETS, c.itl), c.itl_sum)
                for i in range(s.gpus):
                    util.add_metric(
                        [
                            str(i),
                            fake_gpu_uuid(s.node, s.pod, i),
                            f"nvidia{i}",
                            GPU_MODEL_NAME,
                            s.node,
                            pool.namespace,
                            s.pod,
                            "vllm",
                        ],
                        s.gpu_util,
                    )
        yield waiting
        yield running
        yield kv_usage
        yield prompt
        yield generation
        yield ttft
        yield itl
        yield util


def parse_pool_key(key: str) -> tuple[str, str]:
    namespace, sep, name = key.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"pool must be NAMESPACE/DEPLOYMENT, got {key!r}")
    return namespace, name


def parse_pool_spec(spec: str) -> Pool:
    """``NS/DEPLOYMENT[=MODEL[:CONCURRENCY]]`` from the command line."""
    key, _, rest = spec.partition("=")
    namespace, name = parse_pool_key(key)
    model, _, conc = rest.partition(":")
    return Pool(
        namespace=namespace,
        deployment=name,
        model=model or name,
        concurrency=int(conc) if conc else DEFAULT_CONCURRENCY,
    )


# --------------------------------------------------------------------------- API server


def pod_is_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None:
        return False
    if pod.status is None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_gpus(pod: Any) -> int:
    total = 0
    for c in pod.spec.containers or []:
        res = c.resources
        for source in (res.limits if res else None, res.requests if res else None):
            if source and GPU_RESOURCE in source:
                total += int(source[GPU_RESOURCE])
                break
    return total


def selector_string(match_labels: dict[str, str] | None, expressions: Iterable[Any] | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted((match_labels or {}).items())]
    for e in expressions or []:
        values = ",".join(e.values or [])
        if e.operator == "In":
            parts.append(f"{e.key} in ({values})")
        elif e.operator == "NotIn":
            parts.append(f"{e.key} notin ({values})")
        elif e.operator == "Exists":
            parts.append(e.key)
        elif e.operator == "DoesNotExist":
            parts.append(f"!{e.key}")
    return ",".join(parts)


class ApiWatcher(threading.Thread):
    """Polls the API server for the Ready pods of every pool's Deployment."""

    def __init__(self, fleet: Fleet, interval: float) -> None:
        super().__init__(name="api-watcher", daemon=True)
        self.fleet = fleet
        self.interval = interval
        self.stopping = threading.Event()
        from kubernetes import client, config

        config.load_kube_config()
        self.apps = client.AppsV1Api()
        self.core = client.CoreV1Api()

    def read_pool(self, key: str) -> list[ReadyPod] | None:
        from kubernetes.client.exceptions import ApiException

        namespace, name = parse_pool_key(key)
        try:
            dep = self.apps.read_namespaced_deployment(name, namespace, _request_timeout=5)
        except ApiException as e:
            if e.status == 404:
                return []
            raise
        sel = dep.spec.selector
        label_selector = selector_string(sel.match_labels, sel.match_expressions)
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=label_selector, _request_timeout=5
        ).items
        return [
            ReadyPod(name=p.metadata.name, node=p.spec.node_name or "", gpus=pod_gpus(p))
            for p in pods
            if pod_is_ready(p)
        ]

    def refresh_once(self) -> None:
        for key in self.fleet.pool_keys():
            try:
                self.fleet.update_ready(key, self.read_pool(key))
            except Exception as e:  # keep the last known pods; report the error
                LOG.warning("reading %s failed: %s", key, e)
                self.fleet.update_ready(key, None, error=str(e))

    def run(self) -> None:
        while not self.stopping.is_set():
            self.refresh_once()
            self.stopping.wait(self.interval)


# --------------------------------------------------------------------------- HTTP


def make_handler(fleet: Fleet, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-exporter/1"

        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug("%s " + format, self.address_string(), *args)

        def reply(self, code: int, body: bytes | str, ctype: str = "text/plain") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def reply_json(self, code: int, obj: Any) -> None:
            self.reply(code, json.dumps(obj, indent=2, sort_keys=True) + "\n", "application/json")

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self.reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/load":
                self.reply_json(200, fleet.describe())
            elif path == "/healthz":
                self.reply(200, "ok\n")
            else:
                self.reply(404, "not found\n")

        def do_PUT(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/load":
                self.reply(404, "not found\n")
                return
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                value = int(q["value"])
                if value < 0:
                    raise ValueError("value must be >= 0")
                conc = int(q["concurrency"]) if "concurrency" in q else None
                if conc is not None and conc < 1:
                    raise ValueError("concurrency must be >= 1")
                service = float(q["service"]) if "service" in q else None
                if service is not None and not 0 <= service <= 60:
                    raise ValueError("service must be within [0, 60] seconds")
                pool = fleet.set_load(
                    q["pool"],
                    value,
                    model=q.get("model"),
                    concurrency=conc,
                    service_seconds=service,
                )
            except (KeyError, ValueError) as e:
                self.reply(400, f"bad request: {e}; use /load?pool=NS/NAME&value=N\n")
                return
            LOG.info("load %s = %d", pool.key, pool.load)
            self.reply_json(200, fleet.describe()[pool.key])

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path in ("/v1/completions", "/v1/chat/completions"):
                self.complete(path)
            else:
                self.do_PUT()

        def complete(self, path: str) -> None:
            """Serve one completion as the pool's Ready replicas would (see the module doc)."""
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}") if length else {}
            key = self.headers.get("X-Fleet-Pool", "")
            pool, why = fleet.admit(key)
            if pool is None:
                self.reply_json(503, {"error": {"message": why, "type": "unavailable"}})
                return
            try:
                time.sleep(pool.service_seconds)
            finally:
                fleet.finish(key)
            chat = path.endswith("chat/completions")
            text = "ok"
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}}
                if chat
                else {"index": 0, "text": text}
            )
            self.reply_json(
                200,
                {
                    "id": f"cmpl-{time.monotonic_ns()}",
                    "object": "chat.completion" if chat else "text_completion",
                    "model": request.get("model", pool.model),
                    "choices": [{**choice, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )

        def do_DELETE(self) -> None:
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path != "/load" or "pool" not in q:
                self.reply(404, "not found\n")
                return
            self.reply(200 if fleet.remove(q["pool"]) else 404, "ok\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", type=Path, help="write the port here once listening")
    ap.add_argument(
        "--pool",
        action="append",
        default=[],
        metavar="NS/DEPLOYMENT[=MODEL[:CONCURRENCY]]",
        help="a pool to expose from the start (more can be added with PUT /load)",
    )
    ap.add_argument("--interval", type=float, default=1.0, help="API server poll interval (s)")
    ap.add_argument(
        "--idle-gpu-util",
        type=int,
        default=0,
        help="GPU utilization %% of an idle replica (vLLM keeps GPUs busy even when idle)",
    )
    ap.add_argument("--no-kube", action="store_true", help="do not read the API server")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    fleet = Fleet(idle_gpu_util=args.idle_gpu_util)
    for spec in args.pool:
        fleet.add(parse_pool_spec(spec))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(fleet))

    watcher = None if args.no_kube else ApiWatcher(fleet, args.interval)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(fleet, registry))
    server.daemon_threads = True
    port = server.server_address[1]
    if watcher:
        watcher.start()
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(args.port_file)
    LOG.info("listening on http://%s:%d", args.host, port)

    def stop(signum: int, _frame: Any) -> None:
        LOG.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if watcher:
            watcher.stopping.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
