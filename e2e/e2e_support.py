"""Helpers of the e2e suite: clients of the cluster, Prometheus and the fleet exporter."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
    audit_log: str | None = None  # the API server's audit log of writes, when it keeps one


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


def spec_generation(kube: Kube, namespace: str, name: str) -> tuple[int, int]:
    """The Deployment's metadata.generation and spec.replicas, read together: every write that
    changes its spec (a /scale write included) raises the generation."""
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    return int(dep.metadata.generation), int(dep.spec.replicas or 0)


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
        service_seconds: float | None = None,
    ) -> dict[str, Any]:
        q = {"pool": f"{namespace}/{deployment}", "value": str(value)}
        if service_seconds is not None:
            q["service"] = str(service_seconds)
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


# --------------------------------------------------------------------------- the operator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_account_kubeconfig(
    kube: Kube, namespace: str, name: str, path: Path, hours: int = 4
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a TokenRequest token)."""
    from kubernetes import client

    token = kube.core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=hours * 3600)
        ),
    ).status.token
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    ctx_name = admin.get("current-context") or admin["contexts"][0]["name"]
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"])
    user = f"system:serviceaccount:{namespace}:{name}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": cluster}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
                "current-context": "e2e",
            }
        )
    )
    path.chmod(0o600)
    return path


_DECISIONS = re.compile(r"^fleetscale_decisions_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def decisions(operator: Operator, namespace: str, pool: str) -> int:
    """Ticks of one InferencePool that ended in a decision: fleetscale_decisions_total summed
    over reasons (and over operator replicas, of which only the active one decides)."""
    wanted = {f'namespace="{namespace}"', f'pool="{pool}"'}
    total = 0.0
    for line in operator.metrics().splitlines():
        match = _DECISIONS.match(line)
        if match and wanted <= set(match["labels"].split(",")):
            total += float(match["value"])
    return int(total)


class Operator(Protocol):
    """What the scenarios need from the operator, wherever it runs.

    ``start`` is idempotent: it returns once the operator runs and is healthy.
    """

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def metrics(self) -> str: ...
    def logs(self) -> str: ...


class OperatorProcess:
    """`python -m fleetscale run` as a local process (the binary-runtime cluster).

    It watches the given namespaces only, so every test has an operator of its
    own, and authenticates with ``kubeconfig`` (the chart's ServiceAccount).
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        prometheus_url: str,
        namespaces: list[str],
        log_path: Path,
        python: str = sys.executable,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.prometheus_url = prometheus_url
        self.namespaces = namespaces
        self.log_path = log_path
        self.python = python
        self.extra_env = extra_env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start it, unless it runs; wait until /healthz answers."""
        if self.running():
            return
        self.port = free_port()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} port {self.port}\n".encode())
            self.proc = self._spawn(log)
        proc = self.proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"operator exited with {proc.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                return http("GET", f"{self.url}/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        deadline = time.monotonic() + 60
        while not healthy():
            if time.monotonic() > deadline:
                pytest.fail(f"operator not healthy after 60s:\n{self.logs()[-3000:]}")
            time.sleep(0.3)

    def operator_env(self) -> dict[str, str]:
        """The operator's settings, as the chart's Deployment gives them."""
        return {
            "FLEETSCALE_PROMETHEUS_URL": self.prometheus_url,
            "FLEETSCALE_NAMESPACES": ",".join(self.namespaces),
            "FLEETSCALE_LOG_FORMAT": "json",
            "FLEETSCALE_HTTP_PORT": str(self.port),
            **self.extra_env,
        }

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONPATH": str(REPO_ROOT / "operator"),
            **self.operator_env(),
        }
        return subprocess.Popen(
            [self.python, "-m", "fleetscale", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _signal(self, sig: int, timeout: float) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"operator did not exit within {timeout:.0f}s of signal {sig}")

    def stop(self) -> None:
        self._signal(signal.SIGTERM, 30)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        code, body = http("GET", f"{self.url}/metrics")
        assert code == 200, f"operator /metrics: {code}"
        return body.decode()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------- the image


@dataclass(frozen=True)
class LocalImage:
    """The operator image that e2e/image-local.sh built here, and that script, which runs it."""

    ref: str
    tool: str

    @classmethod
    def from_env(cls) -> LocalImage:
        ref = os.environ.get("FLEETSCALE_E2E_LOCAL_IMAGE")
        if not ref:
            pytest.exit(
                "FLEETSCALE_E2E_LOCAL_IMAGE is not set: build the operator image with"
                ' `make image-local` or `eval "$(e2e/image-local.sh env)"` (e2e/run.sh does it)',
                returncode=3,
            )
        tool = os.environ.get("FLEETSCALE_E2E_LOCAL_IMAGE_TOOL") or str(E2E_DIR / "image-local.sh")
        return cls(ref=ref, tool=tool)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "FLEETSCALE_E2E_LOCAL_IMAGE": self.ref}

    def run(
        self,
        *options: str,
        args: Sequence[str] = (),
        stdin: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """`podman run` of the image, hardened as the chart runs it (e2e/image-local.sh run)."""
        return subprocess.run(
            [self.tool, "run", *options, "--", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
            check=False,
        )

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.tool, "podman", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def inspect(self) -> dict[str, Any]:
        """`podman image inspect` of the image."""
        found: list[dict[str, Any]] = json.loads(self.podman("image", "inspect", self.ref).stdout)
        return found[0]

    def user(self) -> tuple[int, int]:
        """The image's numeric USER (uid, gid)."""
        uid, _, gid = str(self.inspect()["Config"]["User"]).partition(":")
        return int(uid), int(gid or uid)


class OperatorImage(OperatorProcess):
    """The operator from the image, run by podman as the chart runs the pod.

    `e2e/image-local.sh run` gives the container a read-only root, a 64 MiB tmpfs at /tmp
    (the chart's emptyDir), the image's own non-root user, no capabilities and no privilege
    escalation; it shares the host's network, so the API server and Prometheus on 127.0.0.1
    are reachable. The command is the image's entrypoint (`python -m fleetscale run`), the
    settings the same environment variables as the chart's, and the kubeconfig is mounted
    read-only, readable by the image's user only, as a Secret volume would be.

    podman relays SIGTERM to the container, so `stop` is the operator's clean shutdown;
    `kill` is `podman kill --signal KILL`. Every container carries ``label``, by which
    `e2e/cluster.sh down` removes any left behind.
    """

    SECRET_DIR = "/var/run/secrets/fleetscale-e2e"

    def __init__(
        self,
        image: LocalImage,
        kubeconfig: Path | str,
        prometheus_url: str,
        namespaces: list[str],
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(kubeconfig, prometheus_url, namespaces, log_path, extra_env=extra_env)
        self.image = image
        state = os.environ.get("FLEETSCALE_E2E_STATE", "none")
        self.label = label or f"fleetscale.io/e2e-state={state}"
        self.container = ""
        self._serial = 0
        self._secrets = Path(tempfile.mkdtemp(prefix="fleetscale-e2e-operator-"))

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        secret = self._secrets / "kubeconfig"
        secret.unlink(missing_ok=True)
        shutil.copyfile(self.kubeconfig, secret)
        if os.geteuid() == 0:
            os.chown(secret, *self.image.user())
            secret.chmod(0o400)
        else:
            secret.chmod(0o444)
        self._secrets.chmod(0o755)
        self._serial += 1
        self.container = f"fleetscale-e2e-operator-{os.getpid()}-{self._serial}"
        options = [
            f"--name={self.container}",
            f"--label={self.label}",
            f"--volume={self._secrets}:{self.SECRET_DIR}:ro",
            f"--env=KUBECONFIG={self.SECRET_DIR}/kubeconfig",
        ]
        options += [f"--env={k}={v}" for k, v in self.operator_env().items()]
        return subprocess.Popen(
            [self.image.tool, "run", *options],
            env={**os.environ, "FLEETSCALE_E2E_LOCAL_IMAGE": self.image.ref},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _end(self, how: Callable[[subprocess.Popen[bytes]], None], what: str) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        how(proc)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            self.image.podman("kill", "--signal", "KILL", self.container)
            proc.wait(30)
            pytest.fail(f"the operator's container did not exit within 30s of {what}")

    def stop(self) -> None:
        self._end(lambda proc: proc.send_signal(signal.SIGTERM), "SIGTERM")

    def kill(self) -> None:
        self._end(
            lambda _: self.image.podman("kill", "--signal", "KILL", self.container), "SIGKILL"
        )

    def container_inspect(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(
            self.image.podman("container", "inspect", self.container).stdout
        )
        return found[0]

    def close(self) -> None:
        """Stop it, make sure its container is gone, forget the kubeconfig copy."""
        self.stop()
        if self.container:
            self.image.podman("rm", "--force", "--ignore", self.container)
        shutil.rmtree(self._secrets, ignore_errors=True)


class OperatorInCluster:
    """The chart's Deployment (kind): the operator is already running, cluster-wide."""

    selector = "app.kubernetes.io/name=fleetscale"

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def _deployment(self) -> str:
        deps = self.kube.apps.list_namespaced_deployment(
            self.namespace, label_selector=self.selector
        ).items
        assert len(deps) == 1, f"expected one operator Deployment in {self.namespace}"
        name: str = deps[0].metadata.name
        return name

    def _rollout(self) -> None:
        self.kube.kubectl(
            "-n",
            self.namespace,
            "rollout",
            "status",
            f"deployment/{self._deployment()}",
            "--timeout=180s",
        )

    def start(self) -> None:
        self._rollout()

    def stop(self) -> None:
        """Nothing to stop: the Deployment keeps it running."""

    def kill(self) -> None:
        self.kube.kubectl(
            "-n",
            self.namespace,
            "delete",
            "pod",
            "-l",
            self.selector,
            "--grace-period=0",
            "--force",
            "--wait=false",
        )

    def restart(self) -> None:
        self.kube.kubectl(
            "-n", self.namespace, "rollout", "restart", f"deployment/{self._deployment()}"
        )
        self._rollout()

    def metrics(self) -> str:
        """Every running replica's /metrics, one after the other (the Service would pick one
        replica at random, often the standby)."""
        pods = self.kube.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector
        ).items
        texts = []
        for pod in pods:
            if pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
                continue
            port = pod.spec.containers[0].ports[0].container_port
            path = f"/api/v1/namespaces/{self.namespace}/pods/{pod.metadata.name}:{port}/proxy"
            texts.append(self.kube.kubectl("get", "--raw", f"{path}/metrics").stdout)
        return "\n".join(texts)

    def logs(self) -> str:
        proc = self.kube.kubectl(
            "-n", self.namespace, "logs", "-l", self.selector, "--tail=-1", "--prefix", check=False
        )
        return proc.stdout + proc.stderr


def delete_pools(kube: Kube, namespace: str, timeout: float) -> list[str]:
    """Delete every InferencePool in ``namespace`` and wait ``timeout`` s for them to go.

    Returns the names still there then, after removing their finalizers so that the
    namespace can be deleted.
    """
    from kubernetes.client.exceptions import ApiException

    group, version, plural = "fleetscale.io", "v1alpha1", "inferencepools"

    def names() -> list[str]:
        items = kube.custom.list_namespaced_custom_object(group, version, namespace, plural)
        return [i["metadata"]["name"] for i in items.get("items", [])]

    for name in names():
        try:
            kube.custom.delete_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as e:
            if e.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while (left := names()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name in left:
        try:
            kube.custom.patch_namespaced_custom_object(
                group, version, namespace, plural, name, {"metadata": {"finalizers": None}}
            )
        except ApiException as e:
            if e.status != 404:
                raise
    return left


def replica_env(identity: str) -> dict[str, str]:
    """The environment the chart gives one operator replica: leader election on the chart's
    Lease in the release namespace, held under the pod's name (``identity`` here)."""
    return {
        "FLEETSCALE_LEADER_ELECTION": "true",
        "FLEETSCALE_LEASE_NAME": "fleetscale",
        "FLEETSCALE_LEASE_NAMESPACE": os.environ.get(
            "FLEETSCALE_E2E_OPERATOR_NAMESPACE", "fleetscale-system"
        ),
        "FLEETSCALE_IDENTITY": identity,
    }


@dataclass(frozen=True)
class AuditedWrite:
    """One write the API server audited."""

    at: float  # epoch seconds, the API server's clock (this machine's)
    verb: str
    uri: str
    user_agent: str
    code: int | None
    # The object written (objectRef.name): a create's URI names only the collection.
    name: str = ""


class AuditLog:
    """The API server's audit log of writes (e2e/cluster.sh's policy logs every write)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def size(self) -> int:
        """The current end of the log: read from here on with ``writes(since=...)``."""
        return self.path.stat().st_size if self.path.exists() else 0

    def writes(self, since: int = 0, by: str | None = None) -> list[AuditedWrite]:
        """Writes logged after byte offset ``since``; ``by``: the operator replica whose
        identity its User-Agent names (``fleetscale/<version> (<identity>)``)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        found = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            agent = str(event.get("userAgent") or "")
            if by is not None and f"({by})" not in agent:
                continue
            stamp = str(event.get("stageTimestamp") or event.get("requestReceivedTimestamp"))
            found.append(
                AuditedWrite(
                    at=_rfc3339(stamp),
                    verb=str(event.get("verb")),
                    uri=str(event.get("requestURI")),
                    user_agent=agent,
                    code=(event.get("responseStatus") or {}).get("code"),
                    name=str((event.get("objectRef") or {}).get("name") or ""),
                )
            )
        return found


def _rfc3339(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
