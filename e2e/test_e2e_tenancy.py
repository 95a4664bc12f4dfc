"""A tenant with `create` on InferencePools in its own namespace, against a real API server.

What such a tenant tried (#11), and what stops it here:

- names that climb out of the namespace (`../../<other>/deployments/victim`), encoded, with
  slashes, dots, look-alike letters or too long: the API server rejects every one of them
  (the CRD schema); and a pool stored before the schema had those rules is refused by the
  operator (InvalidSpec), which writes nothing outside the pool's namespace;
- a ConfigMap the pool did not create: left untouched, the pool says so (ConfigMapNotOwned);
- an AcceleratorPool that does not admit its namespace: no node for it, the claim listed as
  refused, the pool told (ClaimRefused), until the platform labels the namespace;
- a pool whose workload is gone keeps no node.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from e2e_support import AuditLog, E2EEnv, Kube, Operator, wait_until
from pools import GROUP, VERSION, condition, condition_is, create_pool, get_pool, inference_pool
from test_e2e_acceleratorpool import (
    APOOLS,
    CRDS,
    POOL_LABEL,
    deploy_on_pool,
    get_apool,
    pool_name,
    pool_nodes,
    pool_on,
)

pytestmark = pytest.mark.timeout(300)

CRD = f"inferencepools.{GROUP}"
MODEL = "llama"
NAME_FIELDS = {
    "targetRef.name": ("targetRef", "name"),
    "shedLoad.configMapName": ("shedLoad", "configMapName"),
    "bearerTokenSecretRef.name": ("metrics", "prometheus", "bearerTokenSecretRef", "name"),
    "caSecretRef.name": ("metrics", "prometheus", "caSecretRef", "name"),
    "acceleratorPoolRef.name": ("acceleratorPoolRef", "name"),
}
HOSTILE_NAMES = {
    "traversal": "../../kube-system/deployments/coredns",
    "dot-dot": "..",
    "encoded-dot-dot": "%2e%2e",
    "encoded-slash": "..%2f..%2fkube-system",
    "slash": "vllm/scale",
    "query": "vllm?dryRun=All",
    "trailing-dot": "vllm.",
    "upper-case": "Vllm",
    "newline": "vllm\n",
    "roman-numeral-l": "v\u217clm",
    "cyrillic": "vll\u043c",
    "zero-width-space": "vllm\u200b",
    "over-long": "a" * 254,
    "empty": "",
}


@pytest.fixture(scope="module")
def checkout_crds(e2e_env: E2EEnv) -> None:
    """The CRDs of this checkout (a cluster started earlier may hold older schemas)."""
    for name in ("acceleratorpools.fleetscale.io.yaml", "inferencepools.fleetscale.io.yaml"):
        subprocess.run(
            [e2e_env.kubectl, "apply", "--server-side", "--force-conflicts", "-f", CRDS / name],
            check=True,
            capture_output=True,
            env={"KUBECONFIG": e2e_env.kubeconfig},
        )


def with_value(doc: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    spec = doc["spec"]
    spec.setdefault("metrics", {}).setdefault(
        "prometheus",
        {
            "bearerTokenSecretRef": {"name": "prom-token", "key": "token"},
            "caSecretRef": {"name": "prom-ca", "key": "ca.crt"},
        },
    )
    spec.setdefault("acceleratorPoolRef", {"name": "h100"})
    spec["shedLoad"]["configMapName"] = "llama-shed"
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("field", list(NAME_FIELDS))
def test_the_api_server_rejects_every_hostile_name(
    kube: Kube, namespace: str, checkout_crds: None, field: str
) -> None:
    base = inference_pool("hostile", namespace, "vllm", MODEL)
    accepted = with_value(base, NAME_FIELDS[field], "vllm-llama.v2")
    create_pool(kube, accepted)  # the legitimate form of the field is accepted
    rejected = {}
    for case, value in HOSTILE_NAMES.items():
        doc = with_value(base, NAME_FIELDS[field], value)
        doc["metadata"]["name"] = f"hostile-{case}"
        try:
            create_pool(kube, doc)
        except ApiException as error:
            rejected[case] = error.status
        else:
            rejected[case] = 201
    assert rejected == dict.fromkeys(HOSTILE_NAMES, 422)


@pytest.fixture
def loosened_crd(kube: Kube) -> Iterator[Callable[[], None]]:
    """The InferencePool CRD as it was before names had a form (no ``pattern`` anywhere)
    until ``restore()`` puts the current schema back (also after the test)."""
    original = json.loads(kube.kubectl("get", "crd", CRD, "-o", "json").stdout)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("pattern", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    def put(crd: dict[str, Any]) -> None:
        body = copy.deepcopy(crd)
        # No resourceVersion: replace what is there now; keep the chart's labels and annotations.
        body["metadata"] = {
            key: value
            for key, value in crd["metadata"].items()
            if key in ("name", "labels", "annotations")
        }
        kube.kubectl("replace", "-f", "-", stdin=json.dumps(body))

    loose = copy.deepcopy(original)
    strip(loose["spec"])
    assert loose != original, "the installed CRD has no name patterns to loosen"
    put(loose)
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            put(original)
            restored = True

    yield restore
    restore()


def victim_namespace(kube: Kube) -> str:
    """Another team's namespace, with a Deployment, a ConfigMap and a Secret named victim."""
    from kubernetes import client

    name = f"e2e-victim-{secrets.token_hex(3)}"
    kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "victim"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "victim"}},
            "template": {
                "metadata": {"labels": {"app": "victim"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }
    kube.apps.create_namespaced_deployment(name, deployment)
    kube.core.create_namespaced_config_map(
        name, {"metadata": {"name": "victim"}, "data": {"keep": "me"}}
    )
    kube.core.create_namespaced_secret(
        name, {"metadata": {"name": "victim"}, "stringData": {"token": "another-teams-token"}}
    )
    return name


def victim_versions(kube: Kube, namespace: str) -> dict[str, str]:
    """What any write by someone else would change: the Deployment's generation (its spec and
    its /scale; its controller keeps writing status) and the other objects' resourceVersion."""
    deployment = kube.apps.read_namespaced_deployment("victim", namespace)
    return {
        "deployment": f"{deployment.metadata.generation}/{deployment.spec.replicas}",
        "configmap": kube.core.read_namespaced_config_map(
            "victim", namespace
        ).metadata.resource_version,
        "secret": kube.core.read_namespaced_secret("victim", namespace).metadata.resource_version,
    }


def test_a_pool_stored_before_the_schema_had_name_rules_reaches_nothing(
    kube: Kube,
    namespace: str,
    checkout_crds: None,
    loosened_crd: Callable[[], None],
    operator: Operator,
    e2e_env: E2EEnv,
) -> None:
    victim = victim_namespace(kube)
    audit = AuditLog(e2e_env.audit_log) if e2e_env.audit_log else None
    since = audit.size() if audit is not None else 0
    try:
        before = victim_versions(kube, victim)
        base = inference_pool("probe", namespace, "vllm", MODEL, poll=1)
        hostile = {
            "scale": with_value(base, ("targetRef", "name"), f"../../{victim}/deployments/victim"),
            "flag": with_value(
                base, ("shedLoad", "configMapName"), f"../../{victim}/configmaps/victim"
            ),
            "token": with_value(
                base,
                ("metrics", "prometheus", "bearerTokenSecretRef", "name"),
                f"../../{victim}/secrets/victim",
            ),
        }
        for pool, doc in hostile.items():
            doc["metadata"]["name"] = pool
            doc["spec"].pop("acceleratorPoolRef")
            # The API server applies the loosened schema within moments of the patch.
            wait_until(lambda doc=doc: _created(kube, doc), 30, f"pool {pool} stored")
        loosened_crd()  # the schema tightens again; the objects stay as they were stored

        for pool in hostile:
            found = wait_until(
                lambda pool=pool: (
                    (p := get_pool(kube, namespace, pool))
                    and condition_is(p, "Ready", "False", "InvalidSpec")
                    and p
                ),
                60,
                f"{pool}: Ready=False InvalidSpec",
            )
            message = (condition(found, "Ready") or {}).get("message", "")
            assert "pattern" in message or "should match" in message, message

        assert victim_versions(kube, victim) == before  # nothing written over there
        if audit is not None:  # and no write of the operator's went there at all
            ours = [w for w in audit.writes(since) if w.user_agent.startswith("fleetscale/")]
            assert ours, "the audit log shows none of the operator's writes"
            assert [w.uri for w in ours if f"/namespaces/{victim}/" in w.uri] == []
        assert kube.apps.read_namespaced_deployment("victim", victim).spec.replicas == 0
        config_map = kube.core.read_namespaced_config_map("victim", victim)
        assert config_map.metadata.owner_references is None
    finally:
        kube.core.delete_namespace(victim)


def _created(kube: Kube, doc: dict[str, Any]) -> bool:
    try:
        create_pool(kube, doc)
    except ApiException as error:
        if error.status == 409:
            return True
        if error.status == 422:
            return False  # the old schema is not in effect yet
        raise
    return True


# ----- ConfigMaps the pool did not create -----


def test_a_config_map_the_pool_did_not_create_is_left_untouched(
    kube: Kube, namespace: str, deploy_vllm: Any, operator: Operator
) -> None:
    for workload in ("vllm-a", "vllm-b", "vllm-c"):  # one per pool: pools never share one
        deploy_vllm(workload, replicas=1, gpus=1)
    kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "gateway"}, "data": {"routes": "a,b"}}
    )
    before = kube.core.read_namespaced_config_map("gateway", namespace).metadata.resource_version
    create_pool(
        kube, inference_pool("llama", namespace, "vllm-a", MODEL, poll=1, shed_config_map="gateway")
    )
    # A second pool names the ConfigMap the first one does not own either, and a third one
    # names one that does not exist yet: it is created, marked as that pool's.
    create_pool(
        kube,
        inference_pool("mine", namespace, "vllm-b", MODEL, poll=1, shed_config_map="mine-shed"),
    )
    marked = wait_until(lambda: _config_map(kube, namespace, "mine-shed"), 60, "mine-shed created")
    assert marked.metadata.labels == {"app.kubernetes.io/managed-by": "fleetscale"}
    assert [ref.name for ref in marked.metadata.owner_references] == ["mine"]
    create_pool(
        kube,
        inference_pool("thief", namespace, "vllm-c", MODEL, poll=1, shed_config_map="mine-shed"),
    )

    for pool, config_map in (("llama", "gateway"), ("thief", "mine-shed")):
        found = wait_until(
            lambda pool=pool: (
                (p := get_pool(kube, namespace, pool))
                and condition_is(p, "Ready", "False", "ConfigMapNotOwned")
                and p
            ),
            60,
            f"{pool}: Ready=False ConfigMapNotOwned",
        )
        message = (condition(found, "Ready") or {}).get("message", "")
        assert f"ConfigMap {namespace}/{config_map} is not this pool's" in message
        reasons = _event_reasons(kube, namespace, pool)
        assert reasons.count("ConfigMapNotOwned") == 1, reasons

    gateway = kube.core.read_namespaced_config_map("gateway", namespace)
    assert gateway.metadata.resource_version == before
    assert gateway.metadata.owner_references is None
    assert gateway.data == {"routes": "a,b"}
    mine = kube.core.read_namespaced_config_map("mine-shed", namespace)
    assert [ref.name for ref in mine.metadata.owner_references] == ["mine"]


def _config_map(kube: Kube, namespace: str, name: str) -> Any:
    try:
        return kube.core.read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _event_reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    events = kube.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=InferencePool"
    ).items
    return [e.reason for e in events for _ in range(e.count or 1)]


# ----- GPUs: only admitted pools, with a workload, get nodes -----


@pytest.fixture
def gpu_pool(
    kube: Kube, namespace: str, checkout_crds: None, operator: Operator
) -> Iterator[Callable[..., str]]:
    """The test's own AcceleratorPool (kwok nodes with a label and taint of their own);
    afterwards its pods, the pool and its nodes are removed while the operator runs."""
    name = pool_name(namespace)

    def create(max_nodes: int = 2, **tenancy: Any) -> str:
        spec: dict[str, Any] = {
            "provider": {
                "kwok": {"taints": [{"key": POOL_LABEL, "value": name, "effect": "NoSchedule"}]}
            },
            "nodeLabels": {POOL_LABEL: name},
            "acceleratorsPerNode": 8,
            "nodes": {"min": 0, "max": max_nodes},
            "scaleDownDelaySeconds": 5,
            "pollIntervalSeconds": 2,
        }
        if tenancy:
            spec["tenancy"] = tenancy
        kube.custom.create_cluster_custom_object(
            GROUP,
            VERSION,
            APOOLS,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "AcceleratorPool",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
        return name

    yield create
    for deployment in kube.apps.list_namespaced_deployment(namespace).items:
        kube.apps.delete_namespaced_deployment(deployment.metadata.name, namespace)
    wait_until(lambda: not kube.core.list_namespaced_pod(namespace).items, 60, "pods gone")
    try:
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, APOOLS, name)
    except ApiException as error:
        if error.status != 404:
            raise
    wait_until(lambda: _apool_gone(kube, name), 30, f"AcceleratorPool {name} deleted")
    for node in kube.core.list_node(label_selector=f"{POOL_LABEL}={name}").items:
        kube.core.delete_node(node.metadata.name)


def _apool_gone(kube: Kube, name: str) -> bool:
    try:
        get_apool(kube, name)
    except ApiException as error:
        return error.status == 404
    return False


def _apool_status(kube: Kube, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get_apool(kube, name).get("status") or {}
    return status


def test_a_namespace_the_accelerator_pool_does_not_select_gets_no_node(
    kube: Kube, namespace: str, gpu_pool: Callable[..., str]
) -> None:
    admitted_label = "fleetscale.io/e2e-gpu"
    name = gpu_pool(max_nodes=2, namespaceSelector={"matchLabels": {admitted_label: "yes"}})
    deploy_on_pool(kube, namespace, "chat", name, replicas=1, gpus=4, model="chat")
    create_pool(kube, pool_on("chat", namespace, "chat", max_replicas=4))

    def refused() -> bool:
        claims = _apool_status(kube, name).get("refusedClaims") or []
        pool = get_pool(kube, namespace, "chat")
        return [(c["namespace"], c["name"], c["reason"]) for c in claims] == [
            (namespace, "chat", "NamespaceNotAllowed")
        ] and condition_is(pool, "ScalingLimited", "True", "ClaimRefused")

    wait_until(refused, 60, "the claim refused, and the pool told")
    assert pool_nodes(kube, name) == {}
    assert _apool_status(kube, name).get("allocations", []) == []
    assert "ClaimRefused" in _event_reasons(kube, namespace, "chat")
    apool_events = kube.core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.kind=AcceleratorPool,involvedObject.name={name}"
    ).items
    assert "ClaimRefused" in [e.reason for e in apool_events]

    # The platform admits the team: its pool gets its node.
    kube.core.patch_namespace(namespace, {"metadata": {"labels": {admitted_label: "yes"}}})
    wait_until(lambda: len(pool_nodes(kube, name)) == 1, 90, "a node for the admitted pool")
    wait_until(
        lambda: not _apool_status(kube, name).get("refusedClaims"), 30, "no refused claim left"
    )


def test_a_pool_whose_workload_is_gone_keeps_no_node(
    kube: Kube, namespace: str, gpu_pool: Callable[..., str]
) -> None:
    name = gpu_pool(max_nodes=2)
    deploy_on_pool(kube, namespace, "chat", name, replicas=1, gpus=4, model="chat")
    create_pool(kube, pool_on("chat", namespace, "chat", max_replicas=4, min_replicas=1))
    wait_until(lambda: len(pool_nodes(kube, name)) == 1, 90, "a node for the pool")

    kube.apps.delete_namespaced_deployment("chat", namespace)
    wait_until(
        lambda: condition_is(get_pool(kube, namespace, "chat"), "Ready", "False", "TargetNotFound"),
        60,
        "Ready=False TargetNotFound",
    )
    wait_until(lambda: _apool_status(kube, name).get("allocations") == [], 60, "no allocation")
    wait_until(lambda: pool_nodes(kube, name) == {}, 90, "its node released")
