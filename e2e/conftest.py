"""Fixtures of the e2e suite: a real cluster, a real Prometheus, the fleet exporter.

The suite is cluster-agnostic: it uses whatever the environment points at.

    KUBECONFIG                          the cluster (local binaries or kind)
    FLEETSCALE_E2E_PROMETHEUS_URL       Prometheus that scrapes the fleet exporter
    FLEETSCALE_E2E_EXPORTER_URL         the fleet exporter (its /load control endpoint)
    FLEETSCALE_E2E_PROMETHEUS_STOP      shell command that stops that Prometheus
    FLEETSCALE_E2E_PROMETHEUS_START     shell command that starts it again (same URL)

`e2e/cluster.sh up` starts all of it and `e2e/cluster.sh env` prints these lines.
When one is missing the run stops with a message that says which, never skips.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e_support import (
    E2E_DIR,
    REQUIRED_ENV,
    E2EEnv,
    Exporter,
    Kube,
    LocalImage,
    Operator,
    OperatorImage,
    OperatorInCluster,
    OperatorProcess,
    Prometheus,
    delete_pools,
    dns_label,
    http,
    replica_env,
    vllm_deployment,
    wait_until,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_env() -> E2EEnv:
    missing = [f"  {k}: {v}" for k, v in REQUIRED_ENV.items() if not os.environ.get(k)]
    if missing:
        pytest.exit(
            "the e2e suite needs a running environment; these variables are not set:\n"
            + "\n".join(missing)
            + '\nStart one with `e2e/cluster.sh up` and `eval "$(e2e/cluster.sh env)"`'
            " (or e2e/kind/run.sh where Docker exists).",
            returncode=3,
        )
    if not Path(os.environ["KUBECONFIG"]).is_file():
        pytest.exit(f"KUBECONFIG={os.environ['KUBECONFIG']} does not exist", returncode=3)
    return E2EEnv(
        kubeconfig=os.environ["KUBECONFIG"],
        prometheus_url=os.environ["FLEETSCALE_E2E_PROMETHEUS_URL"].rstrip("/"),
        exporter_url=os.environ["FLEETSCALE_E2E_EXPORTER_URL"].rstrip("/"),
        prometheus_stop=os.environ["FLEETSCALE_E2E_PROMETHEUS_STOP"],
        prometheus_start=os.environ["FLEETSCALE_E2E_PROMETHEUS_START"],
        prometheus_targets_dir=os.environ.get("FLEETSCALE_E2E_PROMETHEUS_TARGETS_DIR"),
        kubectl=os.environ.get("FLEETSCALE_E2E_KUBECTL", "kubectl"),
        helm=os.environ.get("FLEETSCALE_E2E_HELM", "helm"),
        audit_log=os.environ.get("FLEETSCALE_E2E_AUDIT_LOG"),
    )


@pytest.fixture(scope="session")
def kube(e2e_env: E2EEnv) -> Kube:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=e2e_env.kubeconfig)
    k = Kube(
        api=api,
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        custom=client.CustomObjectsApi(api),
        apiext=client.ApiextensionsV1Api(api),
        rbac=client.RbacAuthorizationV1Api(api),
        kubeconfig=e2e_env.kubeconfig,
        kubectl_bin=e2e_env.kubectl,
    )
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as e:
        pytest.exit(f"the cluster in KUBECONFIG={e2e_env.kubeconfig} does not answer: {e}", 3)
    return k


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    from kubernetes import client

    name = f"e2e-{dns_label(request.node.name, 40)}-{secrets.token_hex(3)}"
    kube.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"fleetscale.io/e2e": "true"})
        )
    )
    wait_until(
        lambda: (
            kube.core.list_namespaced_service_account(
                name, field_selector="metadata.name=default"
            ).items
        ),
        30,
        f"the default ServiceAccount in {name}",
    )
    yield name
    # Pools left with a finalizer (no operator any more) would keep the namespace.
    delete_pools(kube, name, timeout=0)
    # Wait until it is gone, so that the next test starts with all GPUs free.
    kube.core.delete_namespace(name, propagation_policy="Foreground")
    wait_until(
        lambda: not kube.core.list_namespace(field_selector=f"metadata.name={name}").items,
        120,
        f"namespace {name} to be deleted",
    )


@pytest.fixture
def deploy_vllm(kube: Kube, namespace: str) -> Callable[..., dict[str, Any]]:
    """Create a vLLM-like Deployment in the test's namespace."""

    def create(name: str = "vllm", replicas: int = 1, gpus: int = 2, **kw: Any) -> dict[str, Any]:
        doc = vllm_deployment(name, replicas=replicas, gpus=gpus, **kw)
        kube.apps.create_namespaced_deployment(namespace, doc)
        return doc

    return create


@pytest.fixture(scope="session")
def exporter(e2e_env: E2EEnv) -> Exporter:
    code, _ = http("GET", f"{e2e_env.exporter_url}/healthz")
    if code != 200:
        pytest.exit(f"fleet exporter at {e2e_env.exporter_url} does not answer ({code})", 3)
    return Exporter(e2e_env.exporter_url)


@pytest.fixture
def fleet_load(exporter: Exporter) -> Iterator[Exporter]:
    """The exporter, with every pool the test loaded forgotten afterwards."""
    before = set(exporter.state())
    yield exporter
    for key in set(exporter.state()) - before:
        ns, name = key.split("/", 1)
        exporter.remove(ns, name)


@pytest.fixture(scope="session")
def prometheus(e2e_env: E2EEnv) -> Prometheus:
    prom = Prometheus(e2e_env)
    if not prom.ready():
        pytest.exit(f"Prometheus at {prom.url} is not ready", 3)
    return prom


@pytest.fixture
def prometheus_restarted(prometheus: Prometheus) -> Iterator[Prometheus]:
    """Prometheus, started again after the test if the test stopped it."""
    yield prometheus
    if not prometheus.ready():
        prometheus.start()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def operator_session(
    kube: Kube, e2e_env: E2EEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator under test, running cluster-wide as the chart installs it.

    FLEETSCALE_E2E_OPERATOR=process (default): `python -m fleetscale run` started
    here, authenticated with FLEETSCALE_E2E_OPERATOR_KUBECONFIG (the chart's
    ServiceAccount; `e2e/cluster.sh up` writes it), else with KUBECONFIG, electing
    itself leader on the chart's Lease in the release namespace, as a pod would.
    FLEETSCALE_E2E_OPERATOR=image: the same, from the operator image that
    e2e/image-local.sh built (FLEETSCALE_E2E_LOCAL_IMAGE), in a container that podman runs
    as the chart runs the pod (read-only root, non-root user, no capabilities).
    FLEETSCALE_E2E_OPERATOR=helm: the chart's Deployment that is already running
    in FLEETSCALE_E2E_OPERATOR_NAMESPACE (kind).
    """
    mode = os.environ.get("FLEETSCALE_E2E_OPERATOR", "process")
    op: Operator
    if mode in ("process", "image"):
        log_dir = Path(os.environ.get("FLEETSCALE_E2E_ARTIFACTS") or tmp_path_factory.mktemp("op"))
        log_dir.mkdir(parents=True, exist_ok=True)
        if mode == "image":
            op = image_operator_process(LocalImage.from_env(), e2e_env, log_dir / "operator.log")
        else:
            op = OperatorProcess(**operator_process_settings(e2e_env, log_dir / "operator.log"))
    elif mode == "helm":
        op = OperatorInCluster(
            kube, os.environ.get("FLEETSCALE_E2E_OPERATOR_NAMESPACE", "fleetscale-system")
        )
    else:
        pytest.exit(f"FLEETSCALE_E2E_OPERATOR must be process, image or helm, not {mode!r}", 3)
    op.start()
    yield op
    if isinstance(op, OperatorImage):
        op.close()
    else:
        op.stop()


def operator_process_settings(e2e_env: E2EEnv, log_path: Path) -> dict[str, Any]:
    """How the session's operator runs: cluster-wide, as the chart's ServiceAccount, leader
    on the chart's Lease."""
    return {
        "kubeconfig": os.environ.get("FLEETSCALE_E2E_OPERATOR_KUBECONFIG") or e2e_env.kubeconfig,
        "prometheus_url": e2e_env.prometheus_url,
        "namespaces": [],
        "log_path": log_path,
        "extra_env": replica_env("e2e-session"),
    }


def image_operator_process(image: LocalImage, e2e_env: E2EEnv, log_path: Path) -> OperatorImage:
    """The session's operator, with the same settings, from the image."""
    return OperatorImage(image, **operator_process_settings(e2e_env, log_path))


@pytest.fixture
def operator(
    request: pytest.FixtureRequest, kube: Kube, namespace: str, operator_session: Operator
) -> Iterator[Operator]:
    """The running operator, for a test that puts InferencePools in its namespace.

    Afterwards the test's pools are deleted while the operator runs, so it releases
    its finalizers (a pool it cannot let go of fails the test), and on failure the
    operator's log since the test started is printed.
    """
    with operator_for_test(operator_session, request, kube, namespace) as op:
        yield op


@contextmanager
def operator_for_test(
    op: Operator, request: pytest.FixtureRequest, kube: Kube, namespace: str
) -> Iterator[Operator]:
    """``op`` running for one test; see the `operator` fixture."""
    op.start()  # a no-op when running; brings it back if a test stopped it
    offset = len(op.logs())
    yield op
    op.start()
    stuck = delete_pools(kube, namespace, timeout=30)
    failed = any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed or stuck:
        text = op.logs()
        lines = (text[offset:] if len(text) >= offset else text).splitlines()
        print(f"--- operator log during {request.node.name} (last 200 lines)")
        print("\n".join(lines[-200:]))
    if stuck:
        pytest.fail(f"the operator did not let go of deleted InferencePools: {stuck}")


@pytest.fixture
def image_operator(
    request: pytest.FixtureRequest,
    kube: Kube,
    namespace: str,
    operator_session: Operator,
    e2e_env: E2EEnv,
    tmp_path: Path,
) -> Iterator[OperatorImage]:
    """The operator from the image built here, for one test, as the `operator` fixture.

    With FLEETSCALE_E2E_OPERATOR=image that is the session's operator. Otherwise the
    session's operator steps aside (a clean stop: it releases its Lease at once)
    and one from the image, with the same settings, takes over until the test ends;
    the next test's `operator` brings the session's back.
    """
    if isinstance(operator_session, OperatorImage):
        with operator_for_test(operator_session, request, kube, namespace):
            yield operator_session
        return
    if isinstance(operator_session, OperatorInCluster):
        pytest.fail(
            "the operator already runs in the cluster (FLEETSCALE_E2E_OPERATOR=helm) from the"
            " image that e2e/kind/run.sh built; the locally built image is not for that cluster"
        )
    operator_session.stop()
    op = image_operator_process(LocalImage.from_env(), e2e_env, tmp_path / "operator.log")
    try:
        with operator_for_test(op, request, kube, namespace):
            yield op
    finally:
        op.close()
