"""The Helm chart on a real API server: installed, and its RBAC enforced on the operator.

`e2e/cluster.sh up` installs the chart and writes a kubeconfig that authenticates as the
chart's ServiceAccount (FLEETSCALE_E2E_OPERATOR_KUBECONFIG); the operator of the scenarios runs
with it. Here the same identity makes every call the operator makes (allowed) and calls just
outside them (denied with 403 by the real authorizer): the chart grants what the code needs and
nothing next to it.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e_support import E2EEnv, Kube

REPO = Path(__file__).resolve().parents[1]
CHART_NAMESPACE = os.environ.get("FLEETSCALE_E2E_OPERATOR_NAMESPACE", "fleetscale-system")
RELEASE = "fleetscale"


@pytest.fixture(scope="module")
def operator_api(kube: Kube) -> Iterator[Any]:
    """An API client that authenticates as the chart's ServiceAccount."""
    from kubernetes import config

    path = os.environ.get("FLEETSCALE_E2E_OPERATOR_KUBECONFIG")
    if not path or not Path(path).is_file():
        pytest.fail(
            "FLEETSCALE_E2E_OPERATOR_KUBECONFIG is not set or missing: `e2e/cluster.sh chart` "
            "installs the chart and writes the ServiceAccount's kubeconfig",
            pytrace=False,
        )
    api = config.new_client_from_config(config_file=path)
    yield api
    api.close()


def status_of(call: Callable[[], Any]) -> int:
    """HTTP status of one API call: 200 when it succeeded, else the API error's status."""
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as error:
        return int(error.status)
    return 200


def test_chart_release_is_deployed_with_its_crds(kube: Kube, e2e_env: E2EEnv) -> None:
    result = subprocess.run(
        [e2e_env.helm, "--kubeconfig", kube.kubeconfig, "status", RELEASE,
         "-n", CHART_NAMESPACE, "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["info"]["status"] == "deployed"
    served = {crd.metadata.name for crd in kube.apiext.list_custom_resource_definition().items}
    shipped = {
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in (REPO / "charts" / "fleetscale" / "crds").glob("*.yaml")
    }
    assert shipped <= served


def test_operator_identity_can_make_every_call_the_operator_makes(
    kube: Kube, operator_api: Any, namespace: str, deploy_vllm: Any
) -> None:
    from kubernetes import client

    deploy_vllm("vllm", replicas=1)
    apps = client.AppsV1Api(operator_api)
    core = client.CoreV1Api(operator_api)
    custom = client.CustomObjectsApi(operator_api)
    for _ in range(5):  # read-modify-write with the resourceVersion read, as the HPA
        scale = apps.read_namespaced_deployment_scale("vllm", namespace)
        scale.spec.replicas = 2
        written = status_of(
            functools.partial(apps.replace_namespaced_deployment_scale, "vllm", namespace, scale)
        )
        if written != 409:  # conflict: the deployment controller wrote in between
            break
    assert written == 200
    assert apps.read_namespaced_deployment("vllm", namespace).spec.replicas == 2
    core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/instance=vllm")
    # The watch-fed caches: targets (every namespace) and Nodes, listed and then watched.
    for list_call in (
        apps.list_deployment_for_all_namespaces,
        apps.list_stateful_set_for_all_namespaces,
        core.list_node,
    ):
        list_call(limit=1)
        stream = list_call(watch=True, timeout_seconds=1, _preload_content=False)
        stream.read()  # the API server ends the watch after its timeout
        stream.release_conn()
    event = core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": f"vllm.{secrets.token_hex(6)}"},
            "involvedObject": {"kind": "Deployment", "name": "vllm", "namespace": namespace},
            "reason": "RbacCheck",
            "message": "the operator's identity may post Events",
            "type": "Normal",
        },
    )
    core.patch_namespaced_event(event.metadata.name, namespace, {"count": 2})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "shed"}, "data": {}})
    core.patch_namespaced_config_map("shed", namespace, {"data": {"active": "false"}})
    core.read_namespaced_config_map("shed", namespace)
    custom.list_namespaced_custom_object("fleetscale.io", "v1alpha1", namespace, "inferencepools")
    core.list_namespace(limit=1)  # the Namespaces' labels (AcceleratorPool spec.tenancy)
    # Leader election: the chart's Lease in the release namespace, created (when no replica
    # has yet), read and renewed.
    coordination = client.CoordinationV1Api(operator_api)
    if status_of(lambda: coordination.read_namespaced_lease("fleetscale", CHART_NAMESPACE)) == 404:
        coordination.create_namespaced_lease(
            CHART_NAMESPACE, {"metadata": {"name": "fleetscale"}, "spec": {}}
        )
    lease = coordination.read_namespaced_lease("fleetscale", CHART_NAMESPACE)
    coordination.replace_namespaced_lease("fleetscale", CHART_NAMESPACE, lease)
    # The members Lease (heartbeats of sharded replicas), read to wait out another
    # configuration: allowed (404 while no sharded replica ever ran), never 403.
    members = functools.partial(
        coordination.read_namespaced_lease, "fleetscale-members", CHART_NAMESPACE
    )
    assert status_of(members) in (200, 404)


DENIED = [
    pytest.param(lambda core, apps, rbac, ns: core.list_namespaced_secret(ns), id="list-secrets"),
    pytest.param(
        lambda core, apps, rbac, ns: core.read_namespaced_secret("not-referenced", ns),
        id="read-an-unlisted-secret",
    ),
    pytest.param(
        lambda core, apps, rbac, ns: apps.delete_namespaced_deployment("vllm", ns),
        id="delete-the-workload",
    ),
    pytest.param(
        lambda core, apps, rbac, ns: apps.patch_namespaced_deployment(
            "vllm", ns, {"spec": {"template": {"spec": {"hostNetwork": True}}}}
        ),
        id="change-the-pod-template",
    ),
    pytest.param(
        lambda core, apps, rbac, ns: core.create_namespaced_pod(
            ns, {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}}
        ),
        id="create-a-pod",
    ),
    pytest.param(
        lambda core, apps, rbac, ns: core.delete_namespaced_config_map("shed", ns),
        id="delete-a-configmap",
    ),
    pytest.param(
        lambda core, apps, rbac, ns: rbac.create_cluster_role_binding(
            {
                "metadata": {"name": f"escalate-{ns}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "Group", "name": "system:authenticated"}],
            }
        ),
        id="escalate-to-cluster-admin",
    ),
    pytest.param(lambda core, apps, rbac, ns: core.delete_namespace(ns), id="delete-a-namespace"),
]


@pytest.mark.parametrize("action", DENIED)
def test_operator_identity_is_denied_outside_its_rbac(
    kube: Kube, operator_api: Any, namespace: str, deploy_vllm: Any, action: Any
) -> None:
    from kubernetes import client

    deploy_vllm("vllm", replicas=1)
    kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "not-referenced"}, "stringData": {"token": "x"}}
    )
    kube.core.create_namespaced_config_map(namespace, {"metadata": {"name": "shed"}})
    core = client.CoreV1Api(operator_api)
    apps = client.AppsV1Api(operator_api)
    rbac = client.RbacAuthorizationV1Api(operator_api)
    assert status_of(lambda: action(core, apps, rbac, namespace)) == 403
    # Nothing was changed behind the 403.
    pod_spec = kube.apps.read_namespaced_deployment("vllm", namespace).spec.template.spec
    assert not pod_spec.host_network
