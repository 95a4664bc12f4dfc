"""The integration suite's harness: the real operator against emulated Kubernetes and Prometheus.

Role: start kmock's Kubernetes emulator with the resources fleetscale uses (InferencePools
with /status, Deployments with /scale, Events, ConfigMaps, Secrets, Namespaces and CRDs for
kopf's discovery), a Deployment controller stand-in that makes pods "ready" as replicas are
set, the Prometheus-speaking test server, and the operator itself: kopf's ``KopfRunner``
running fleetscale's registry in a thread, with the real adapters (official kubernetes client,
prometheus-api-client) pointed at both emulators. Callers: tests in this folder and their
conftest (fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import kmock
import kubernetes.client
from kopf.testing import KopfRunner

from fleetscale.controller.handlers import OperatorRuntime, build_registry, kopf_settings
from fleetscale.controller.wiring import (
    kubernetes_accelerator_pool_dependencies,
    kubernetes_dependencies,
)
from fleetscale.settings import Settings
from support.kube_emulator import LeaseEmulation, announce
from support.prometheus_server import PrometheusServer

POOLS = kmock.resource("fleetscale.io/v1alpha1/inferencepools")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
EVENTS = kmock.resource("v1/events")
CONFIG_MAPS = kmock.resource("v1/configmaps")
SECRETS = kmock.resource("v1/secrets")

_versions = itertools.count(1)


def _metadata(namespace: str | None, name: str, **extra: Any) -> dict[str, Any]:
    metadata = {
        "name": name,
        "uid": str(uuid.uuid4()),
        "resourceVersion": str(next(_versions)),
        "generation": 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        **extra,
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


class Cluster:
    """The emulated cluster, with the few verbs the tests need to set up and to look."""

    def __init__(self, server: kmock.KubernetesEmulator) -> None:
        self.server = server
        info = kmock.ResourceInfo
        all_verbs = {"list", "watch", "get", "create", "update", "patch", "delete"}
        server.resources[POOLS] = info(
            kind="InferencePool", namespaced=True, subresources={"status"}, verbs=all_verbs
        )
        server.resources[DEPLOYMENTS] = info(
            kind="Deployment", namespaced=True, subresources={"scale", "status"}, verbs=all_verbs
        )
        server.resources["fleetscale.io/v1alpha1/acceleratorpools"] = info(
            kind="AcceleratorPool", namespaced=False, subresources={"status"}, verbs=all_verbs
        )
        server.resources[EVENTS] = info(kind="Event", namespaced=True, verbs=all_verbs)
        server.resources[CONFIG_MAPS] = info(kind="ConfigMap", namespaced=True, verbs=all_verbs)
        server.resources[SECRETS] = info(kind="Secret", namespaced=True, verbs=all_verbs)
        server.resources["v1/pods"] = info(kind="Pod", namespaced=True, verbs=all_verbs)
        # Every cluster serves them; the operator watches them so as never to fight one.
        server.resources["autoscaling/v2/horizontalpodautoscalers"] = info(
            kind="HorizontalPodAutoscaler", namespaced=True, verbs=all_verbs
        )
        # kopf waits for these in discovery before it starts watching anything.
        server.resources["v1/namespaces"] = info(
            kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
        )
        server.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = info(
            kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"}
        )
        self._serve_scale_subresource()
        self.leases = LeaseEmulation(server)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    # ----- set up -----

    def add_deployment(
        self, namespace: str, name: str, replicas: int, gpus_per_pod: int | None = 1
    ) -> None:
        resources = {"limits": {"nvidia.com/gpu": str(gpus_per_pod)}} if gpus_per_pod else {}
        self.server.objects[DEPLOYMENTS, namespace, name] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(namespace, name),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [{"name": "vllm", "image": "vllm", "resources": resources}]
                    },
                },
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
        self.announce("apps/v1/deployments", namespace, name, "ADDED")

    def announce(
        self, resource: str, namespace: str | None, name: str, event_type: str = "MODIFIED"
    ) -> None:
        """Watchers (the operator's caches) hear of a change made to the store directly; a
        no-op before the emulator's loop runs (a later list finds the object anyway)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        announce(self.server, resource, namespace, name, event_type)

    def add_pool(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        self.server.objects[POOLS, namespace, name] = {
            "apiVersion": "fleetscale.io/v1alpha1",
            "kind": "InferencePool",
            "metadata": _metadata(namespace, name),
            "spec": copy.deepcopy(dict(spec)),
        }

    async def label_namespace(self, namespace: str, labels: Mapping[str, str]) -> None:
        """PATCH the Namespace's labels through the API, so watches see the change."""
        url = f"{self.url}/api/v1/namespaces/{namespace}"
        patch = {"metadata": {"labels": dict(labels)}}
        headers = {"Content-Type": "application/merge-patch+json"}
        async with (
            aiohttp.ClientSession() as session,
            session.patch(url, json=patch, headers=headers) as response,
        ):
            response.raise_for_status()

    async def delete_pool(self, namespace: str, name: str) -> None:
        """DELETE through the API, as kubectl does (finalizers then hold it until released)."""
        url = f"{self.url}/apis/fleetscale.io/v1alpha1/namespaces/{namespace}/inferencepools/{name}"
        async with aiohttp.ClientSession() as session, session.delete(url) as response:
            response.raise_for_status()

    # ----- look -----

    def pool(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.server.objects[POOLS, namespace, name].raw)

    def pool_gone(self, namespace: str, name: str) -> bool:
        key = (POOLS, namespace, name)
        return key not in self.server.objects or self.server.objects[key].deleted

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.pool(namespace, name).get("status") or {})

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        conditions = self.status(namespace, name).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def replicas(self, namespace: str, name: str) -> int:
        return int(self.server.objects[DEPLOYMENTS, namespace, name].raw["spec"]["replicas"])

    def events(self, namespace: str, reason: str | None = None) -> list[dict[str, Any]]:
        found = []
        for resource, event_namespace, name in list(self.server.objects):
            if resource != EVENTS or event_namespace != namespace:
                continue
            event = self.server.objects[resource, event_namespace, name]
            if event.deleted:
                continue
            raw = event.raw
            if reason is None or raw.get("reason") == reason:
                found.append(raw)
        return found

    def event_reasons(self, namespace: str, pool: str) -> list[str]:
        return [
            event["reason"]
            for event in self.events(namespace)
            if event.get("involvedObject", {}).get("name") == pool
        ]

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (CONFIG_MAPS, namespace, name)
        if key not in self.server.objects or self.server.objects[key].deleted:
            return None
        return copy.deepcopy(self.server.objects[key].raw)

    def scale_writes(self) -> int:
        """PATCH/PUT requests the operator sent to any /scale subresource."""
        return sum(
            1
            for request in list(self.server)
            if request.subresource == "scale" and request.method in ("PATCH", "PUT")
        )

    # ----- the Deployment controller and the /scale subresource -----

    def _serve_scale_subresource(self) -> None:
        """Answer /scale as the API server does: an autoscaling/v1 Scale of the Deployment."""

        def render(request: kmock.Request) -> dict[str, Any]:
            key = (DEPLOYMENTS, request.namespace, request.name)
            if key not in self.server.objects or self.server.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            obj = self.server.objects[key]
            if request.method == "PUT" and isinstance(request.data, Mapping):
                # Replace: only spec.replicas is writable through /scale.
                obj.patch({"spec": {"replicas": int(request.data["spec"]["replicas"])}})
            elif request.method == "PATCH":
                # The emulator merged the patch into the Deployment as if it were the object;
                # keep only what the API server keeps from a Scale: spec.replicas.
                replicas = obj.raw["spec"]["replicas"]
                obj.patch({"apiVersion": "apps/v1", "kind": "Deployment"})
                obj.patch({"spec": {"replicas": replicas}})
            if request.method in ("PUT", "PATCH"):
                self.announce("apps/v1/deployments", request.namespace, request.name)
            raw = obj.raw
            return {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {
                    "name": request.name,
                    "namespace": request.namespace,
                    "uid": raw["metadata"]["uid"],
                    "resourceVersion": raw["metadata"].get("resourceVersion", "1"),
                },
                "spec": {"replicas": raw["spec"]["replicas"]},
                "status": {
                    "replicas": raw.get("status", {}).get("replicas", 0),
                    "selector": f"app={request.name}",
                },
            }

        self.server[DEPLOYMENTS, kmock.subresource("scale")] << render

    async def run_deployment_controller(self) -> None:
        """Pods start at once: status follows spec.replicas, like a Deployment with no delay."""
        while True:
            for resource, namespace, name in list(self.server.objects):
                if resource != DEPLOYMENTS:
                    continue
                obj = self.server.objects[resource, namespace, name]
                if obj.deleted:
                    continue
                replicas = obj.raw["spec"]["replicas"]
                status = obj.raw.get("status") or {}
                if status.get("replicas") != replicas or status.get("readyReplicas") != replicas:
                    obj.patch({"status": {"replicas": replicas, "readyReplicas": replicas}})
                    self.announce("apps/v1/deployments", namespace, name)
            await asyncio.sleep(0.05)


class OperatorHandle:
    """A running operator: its runtime (metrics, bound port) and how to stop it."""

    def __init__(self, runtime: OperatorRuntime, runner: KopfRunner) -> None:
        self.runtime = runtime
        self.runner = runner

    def metric(self, line_prefix: str) -> float | None:
        """The value of the first /metrics line starting with ``line_prefix``."""
        for line in self.runtime.metrics.render().decode().splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
        return None


@contextlib.asynccontextmanager
async def running_operator(
    cluster: Cluster,
    prometheus: PrometheusServer,
    namespaces: tuple[str, ...] = (),
    identity: str = "replica-a",
    shards: int = 1,
) -> AsyncIterator[OperatorHandle]:
    """The operator as `fleetscale run` starts it (electing itself on the Lease) for the
    block; ``identity`` names the replica, so two blocks can run two replicas."""
    settings = Settings(
        prometheus_url=prometheus.url,
        namespaces=namespaces,
        http_port=0,
        identity=identity,
        shards=shards,
    )
    configuration = kubernetes.client.Configuration()
    configuration.host = cluster.url
    runtime = OperatorRuntime(
        settings=settings,
        dependencies_factory=kubernetes_dependencies,
        accelerator_pool_dependencies_factory=kubernetes_accelerator_pool_dependencies,
        configuration_factory=lambda: configuration,
    )
    scope = [arg for namespace in namespaces for arg in ("--namespace", namespace)] or ["-A"]
    runner = KopfRunner(
        ["run", "--standalone", *scope],
        registry=build_registry(runtime),
        settings=kopf_settings(settings),
        timeout=60,
    )
    # KopfRunner runs kopf in its own thread and loop; the emulators live in this loop, so
    # entering and leaving must not block it.
    await asyncio.to_thread(runner.__enter__)
    try:
        yield OperatorHandle(runtime, runner)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


@contextlib.contextmanager
def recorded_log(name: str) -> Iterator[list[str]]:
    """Every message of the logger ``name`` during the block, debug included, from any thread
    (kopf runs in its own); for waiting on what kopf only says at debug level."""
    messages: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger(name)
    recorder, level = Recorder(logging.DEBUG), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield messages
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)


async def eventually(
    check: Callable[[], Any], timeout_seconds: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


def pool_spec(
    target: str,
    queue_query: str,
    *,
    min_replicas: int = 1,
    max_replicas: int = 10,
    target_per_replica: float = 5,
    scale_down_window_seconds: int = 0,
    poll_interval_seconds: int = 1,
    mode: str = "Active",
    shed: Mapping[str, Any] | None = None,
    max_staleness_seconds: int = 60,
) -> dict[str, Any]:
    """An InferencePool spec with fast windows and unlimited rates, as the tests need."""
    return {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "replicas": {"min": min_replicas, "max": max_replicas},
        "metrics": {
            "engine": "custom",
            "queueDepth": {"query": queue_query, "targetPerReplica": target_per_replica},
            "maxStalenessSeconds": max_staleness_seconds,
        },
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": []},
            "scaleDown": {
                "stabilizationWindowSeconds": scale_down_window_seconds,
                "policies": [],
            },
        },
        "shedLoad": dict(shed or {"enabled": False}),
        "pollIntervalSeconds": poll_interval_seconds,
        "mode": mode,
    }
