"""Helpers of the e2e suite: clients of the cluster, Prometheus and the fleet exporter."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

E2E_DIR = Path(__file__).resolve().parent


REPO_ROOT = E2E_DIR.parent


MANIFESTS = E2E_DIR / "manifests"


REQUIRED_ENV = {
    "KUBECONFIG": "kubeconfig of the cluster under test",
    "FLEETSCALE_E2E_PROMETHEUS_URL": "base URL of the Prometheus that scrapes the fleet exporter",
    "FLEETSCALE_E2E_EXPORTER_URL": "base URL of the fleet exporter (e2e/fleet_exporter.py)",
    "FLEETSCALE_E2E_PROMETHEUS_STOP": "shell command that stops that Prometheus",
    "FLEETSCALE_E2E_PROMETHEUS_START": "shell command that starts it again on the same URL",
}


T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.5,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as e:  # probes may race with the system under test
            last = e
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


@dataclass(frozen=True)
class E2EEnv:
    kubeconfig: str
    prometheus_url: str
    exporter_url: str
    prometheus_stop: str
    prometheus_start: str
    prometheus_targets_dir: str | None
    kubectl: str
    helm: str


@dataclass
class Kube:
    api: Any
    core: Any
    apps: Any
    custom: Any
    apiext: Any
    rbac: Any
    kubeconfig: str
    kubectl_bin: str

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc


def dns_label(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")


def vllm_deployment(
    name: str, replicas: int = 1, gpus: int = 2, model: str | None = None
) -> dict[str, Any]:
    """The sample vLLM Deployment (e2e/manifests/vllm-deployment.yaml), renamed."""
    doc: dict[str, Any] = yaml.safe_load((MANIFESTS / "vllm-deployment.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"]["app.kubernetes.io/instance"] = name
    doc["spec"]["replicas"] = replicas
    doc["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/instance": name}
    tmpl = doc["spec"]["template"]
    tmpl["metadata"]["labels"]["app.kubernetes.io/instance"] = name
    container = tmpl["spec"]["containers"][0]
    container["resources"]["requests"]["nvidia.com/gpu"] = str(gpus)
    container["resources"]["limits"]["nvidia.com/gpu"] = str(gpus)
    if model:
        container["args"][1] = model
    return doc


def ready_replicas(kube: Kube, namespace: str, name: str) -> int:
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    return int(dep.status.ready_replicas or 0)


def spec_replicas(kube: Kube, namespace: str, name: str) -> int:
    return int(kube.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas or 0)


def http(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Exporter:
    """Client of the fleet exporter's control endpoint."""

    def __init__(self, url: str) -> None:
        self.url = url

    def set_load(
        self,
        namespace: str,
        deployment: str,
        value: int,
        model: str | None = None,
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        q = {"pool": f"{namespace}/{deployment}", "value": str(value)}
        if model:
            q["model"] = model
        if concurrency is not None:
            q["concurrency"] = str(concurrency)
        code, body = http("PUT", f"{self.url}/load?{urllib.parse.urlencode(q)}")
        assert code == 200, f"exporter refused the load: {code} {body!r}"
        result: dict[str, Any] = json.loads(body)
        return result

    def remove(self, namespace: str, deployment: str) -> None:
        q = urllib.parse.urlencode({"pool": f"{namespace}/{deployment}"})
        http("DELETE", f"{self.url}/load?{q}")

    def state(self) -> dict[str, Any]:
        code, body = http("GET", f"{self.url}/load")
        assert code == 200, f"exporter: {code} {body!r}"
        result: dict[str, Any] = json.loads(body)
        return result

    def pool(self, namespace: str, deployment: str) -> dict[str, Any]:
        result: dict[str, Any] = self.state().get(f"{namespace}/{deployment}", {})
        return result


class Prometheus:
    def __init__(self, env: E2EEnv) -> None:
        self.url = env.prometheus_url
        self._stop = env.prometheus_stop
        self._start = env.prometheus_start
        self.targets_dir = env.prometheus_targets_dir

    def ready(self) -> bool:
        try:
            return http("GET", f"{self.url}/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        code, body = http("GET", f"{self.url}/api/v1/query?{q}")
        assert code == 200, f"prometheus: {code} {body!r}"
        data = json.loads(body)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        """The value of a single-series query, None when it has no series."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, f"{promql} returned {len(result)} series"
        return float(result[0]["value"][1])

    def wait_for_value(self, promql: str, expected: float, timeout: float = 30) -> float:
        """Wait until the single-series ``promql`` equals ``expected``."""

        def probe() -> tuple[float] | None:
            v = self.scalar(promql)
            return (v,) if v == expected else None

        return wait_until(probe, timeout, f"{promql} == {expected} in Prometheus")[0]

    def stop(self) -> None:
        subprocess.run(self._stop, shell=True, check=True, timeout=60)
        wait_until(lambda: not self.ready(), 30, "Prometheus to stop")

    def start(self) -> None:
        subprocess.run(self._start, shell=True, check=True, timeout=120)
        wait_until(self.ready, 60, "Prometheus to start")
