"""The chart's RBAC grants exactly what the operator calls: no wildcard, nothing extra.

``GRANTS`` is the specification: every permission the operator needs, each with evidence, a
piece of the code (fleetscale's or kopf's) that makes the call. The tests check that (1) the
evidence is still in the code, so a grant whose caller is removed fails here, (2) the rendered
RBAC equals the grants for the features a values case turns on, no more and no less, and
(3) no rule has a wildcard or an escalation verb. docs/rbac.md is the reader's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest
from chartkit import MATRIX, RELEASE_NAMESPACE, REPO, by_kind, render, walk

OPERATOR_SOURCE = REPO / "operator" / "fleetscale"
RBAC_DOC = REPO / "docs" / "rbac.md"
KOPF_SOURCE = Path(kopf.__file__).parent


@dataclass(frozen=True)
class Evidence:
    """A snippet of source that makes the call a grant permits."""

    root: str  # "fleetscale" or "kopf"
    path: str  # relative to the package; a glob matches any of several files
    snippet: str

    def found(self) -> bool:
        base = OPERATOR_SOURCE if self.root == "fleetscale" else KOPF_SOURCE
        return any(
            self.snippet in file.read_text(encoding="utf-8") for file in base.glob(self.path)
        )


@dataclass(frozen=True)
class Grant:
    """One permission. ``where``: "watched" (namespaced resources in the watched namespaces),
    "cluster", "cluster-events" (Events of cluster-scoped objects, in namespace default),
    or "placeholder" (the placeholder provider's namespace)."""

    where: str
    group: str
    resource: str
    verbs: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    feature: str | None = None  # None: always; else the values switch that enables it


def fs(path: str, snippet: str) -> Evidence:
    return Evidence("fleetscale", path, snippet)


def kf(path: str, snippet: str) -> Evidence:
    return Evidence("kopf", path, snippet)


KOPF_WATCHES = kf("_core/reactor/queueing.py", "watching.infinite_watch(")
KOPF_LISTS = kf("_cogs/clients/watching.py", "fetching.")
KOPF_PATCHES = kf("_core/actions/application.py", "patching.patch_obj(")
# kopf patches an object only to remove the finalizer earlier releases put on it (fleetscale's
# handlers need none any more).
KOPF_REMOVES_FINALIZER = kf("_core/reactor/processing.py", "finalizers.allow_deletion")
KOPF_EVENTS = kf("_cogs/clients/events.py", "await api.post(")
SCALE = "actuators/kubernetes_scale.py"
EVENTS = "actuators/events.py"
CONFIGMAP = "actuators/configmap.py"
CAPI = "nodepools/clusterapi.py"
APOOLS = "controller/acceleratorpools/cluster.py"
HANDLERS = "controller/handlers.py"
WIRING = "controller/wiring.py"
PLACEHOLDER = "nodepools/placeholder.py"
ENVOY = "gateways/envoy_gateway.py"
CACHES = "controller/caches.py"
# The caches list a collection page by page, then watch it (caches/http.py).
WATCH_LISTS = fs("caches/http.py", 'params = {"limit": str(page_size)}')
WATCH_WATCHES = fs("caches/http.py", '"watch": "true",')

GRANTS: tuple[Grant, ...] = (
    Grant(
        "watched", "fleetscale.io", "inferencepools", ("list", "watch", "patch"),
        (KOPF_LISTS, KOPF_WATCHES, KOPF_PATCHES, KOPF_REMOVES_FINALIZER,
         fs(HANDLERS, "@kopf.on.event(GROUP, VERSION, PLURAL"),
         fs(WIRING, 'INFERENCE_POOLS = Resource(f"{GROUP}/{VERSION}", PLURAL)'),
         WATCH_LISTS, WATCH_WATCHES),
    ),
    Grant(
        "watched", "fleetscale.io", "inferencepools/status", ("patch",),
        (fs("controller/kube.py", '"PATCH", path, body={"status"'),),
    ),
    Grant(
        "watched", "autoscaling", "horizontalpodautoscalers", ("list", "watch"),
        (fs(WIRING, 'Resource("autoscaling/v2", "horizontalpodautoscalers")'),
         WATCH_LISTS, WATCH_WATCHES),
    ),
    Grant(
        "watched", "apps", "deployments", ("get", "list", "watch"),
        (fs(SCALE, '"GET", resource.object_path(target, subresource)'),
         fs(CACHES, '("apps/v1", "Deployment"): "deployments"'), WATCH_LISTS, WATCH_WATCHES),
    ),
    Grant(
        "watched", "apps", "statefulsets", ("get", "list", "watch"),
        (fs(SCALE, "workload = await self._get"),
         fs(CACHES, '("apps/v1", "StatefulSet"): "statefulsets"'), WATCH_LISTS, WATCH_WATCHES),
    ),
    Grant(
        "watched", "apps", "deployments/scale", ("get", "update"),
        (fs(SCALE, 'self._get(target, resource, "scale")'), fs(SCALE, '"PUT", scale_path')),
    ),
    Grant(
        "watched", "apps", "statefulsets/scale", ("get", "update"),
        (fs(SCALE, 'self._get(target, resource, "scale")'), fs(SCALE, '"PUT", scale_path')),
    ),
    Grant(
        "watched", "", "pods", ("list",),
        (fs(SCALE, 'resource_path("v1", "pods", namespace=target.namespace)'),),
    ),
    Grant(
        "watched", "", "events", ("create", "patch"),
        (fs(EVENTS, 'events = resource_path("v1", "events", namespace=namespace)'),
         fs(EVENTS, '"POST", events, body=body'), fs(EVENTS, '"PATCH", path, body=patch'),
         KOPF_EVENTS),
    ),
    Grant(
        "watched", "", "configmaps", ("get", "create", "patch"),
        (fs(CONFIGMAP, 'resource_path("v1", "configmaps", namespace=namespace'),
         fs(CONFIGMAP, '"GET", path'), fs(CONFIGMAP, '"PATCH", path'),
         fs(CONFIGMAP, '"POST", collection, body=body')),
    ),
    Grant(
        "watched", "gateway.envoyproxy.io", "backendtrafficpolicies",
        ("get", "create", "patch", "delete"),
        (fs(ENVOY, 'self._api.request("GET", path)'),
         fs(ENVOY, 'self._api.request("POST", self._path(target), body=desired)'),
         fs(ENVOY, '"PATCH", path, body=patch, content_type=MERGE_PATCH'),
         fs(ENVOY, 'self._api.request("DELETE", path, body=options)')),
        feature="envoyGateway",
    ),
    Grant(
        "cluster", "apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"),
        (kf("_core/reactor/observation.py", "references.CRDS"),),
    ),
    Grant(
        "cluster", "fleetscale.io", "acceleratorpools", ("list", "watch", "patch"),
        (KOPF_LISTS, KOPF_WATCHES, KOPF_PATCHES, KOPF_REMOVES_FINALIZER,
         fs(HANDLERS, "@kopf.on.event(GROUP, VERSION, apool.PLURAL"),
         fs(WIRING, 'Resource(f"{GROUP}/{VERSION}", apool.PLURAL, namespaced=False)'),
         WATCH_LISTS, WATCH_WATCHES),
    ),
    Grant(
        "cluster", "fleetscale.io", "acceleratorpools/status", ("patch",),
        (fs("controller/kube.py", '"PATCH", path, body={"status"'),
         fs("controller/runtime.py", "KubernetesStatusWriter(self.api_client, apool.PLURAL)")),
    ),
    Grant(
        "cluster", "", "nodes", ("list", "watch", "patch"),
        (fs(APOOLS, '"GET", "/api/v1/nodes"'), fs(PLACEHOLDER, "self._core.list_node"),
         fs(CACHES, 'Collection("/api/v1/nodes")'), WATCH_LISTS, WATCH_WATCHES,
         fs(APOOLS, 'request("PATCH", path, body=patch, content_type=MERGE_PATCH)')),
    ),
    Grant(
        "cluster", "", "pods", ("list",),
        (fs(APOOLS, '"GET", "/api/v1/pods", query={"fieldSelector": selector}'),
         fs(PLACEHOLDER, "self._core.list_pod_for_all_namespaces")),
    ),
    Grant(
        "cluster", "", "namespaces", ("list", "watch"),
        (fs(WIRING, 'NAMESPACES = Resource("v1", "namespaces", namespaced=False)'),
         WATCH_LISTS, WATCH_WATCHES, KOPF_LISTS, KOPF_WATCHES,
         kf("_core/reactor/observation.py", "resource=resource,\n                namespace=None")),
    ),
    Grant(
        "cluster-events", "", "events", ("create", "patch"),
        (fs(EVENTS, '_CLUSTER_SCOPED_EVENTS_NAMESPACE = "default"'),),
        feature="namespaced",
    ),
    Grant(
        "cluster", "", "nodes", ("list", "create", "delete"),
        (fs("nodepools/kwok.py", "self._core.list_node"),
         fs("nodepools/kwok.py", "self._core.create_node"),
         fs("nodepools/kwok.py", "self._core.delete_node")),
        feature="kwok",
    ),
    Grant(
        "capi", "cluster.x-k8s.io", "machinedeployments", ("get",),
        (fs(CAPI, "self._api.get_namespaced_custom_object"),),
        feature="clusterAPI",
    ),
    Grant(
        "capi", "cluster.x-k8s.io", "machinedeployments/scale", ("patch",),
        (fs(CAPI, "self._api.patch_namespaced_custom_object_scale"),),
        feature="clusterAPI",
    ),
    Grant(
        "capi", "cluster.x-k8s.io", "machines", ("list", "patch"),
        (fs(CAPI, "self._api.list_namespaced_custom_object"),
         fs(CAPI, "self._api.patch_namespaced_custom_object,")),
        feature="clusterAPI",
    ),
    Grant(
        "cluster", "scheduling.k8s.io", "priorityclasses", ("get", "create"),
        (fs(PLACEHOLDER, "self._scheduling.read_priority_class"),
         fs(PLACEHOLDER, "self._scheduling.create_priority_class")),
        feature="placeholder",
    ),
    Grant(
        "placeholder", "apps", "deployments", ("get", "create"),
        (fs(PLACEHOLDER, "self._apps.read_namespaced_deployment"),
         fs(PLACEHOLDER, "self._apps.create_namespaced_deployment")),
        feature="placeholder",
    ),
    Grant(
        "placeholder", "apps", "deployments/scale", ("patch",),
        (fs(PLACEHOLDER, "self._apps.patch_namespaced_deployment_scale"),),
        feature="placeholder",
    ),
    Grant(
        "placeholder", "", "pods", ("list", "patch", "delete"),
        (fs(PLACEHOLDER, "self._core.list_namespaced_pod"),
         fs(PLACEHOLDER, "self._core.patch_namespaced_pod"),
         fs(PLACEHOLDER, "self._core.delete_namespaced_pod")),
        feature="placeholder",
    ),
)  # fmt: skip

# Grants that only exist with some values, and how they render.
SECRETS_EVIDENCE = (
    fs("actuators/secrets.py", 'resource_path("v1", "secrets", namespace=namespace, name=name)'),
    fs("actuators/secrets.py", 'self._api.request("GET", path)'),
)
EXTRA_SCALE_EVIDENCE = (fs(SCALE, '"PUT", scale_path'),)
# Leader election (on by default): one Lease in the release namespace, read, created, renewed.
LEASE_NAME = "fleetscale"
LEASE_EVIDENCE = (
    fs("election/store.py", 'self._api.request("GET", f"{self._collection}/{self.name}")'),
    fs("election/store.py", 'self._write("POST", self._collection, body)'),
    fs(
        "election/store.py",
        'self._write("PUT", f"{self._collection}/{self.name}", self._encode(record))',
    ),
    # One Lease per shard, the members Lease (written with shards), the leader Lease watched.
    fs("election/shards.py", 'return [f"{lease_name}-shard-{index}" for index in range(shards)]'),
    fs("election/shards.py", 'return f"{lease_name}{MEMBERS_SUFFIX}"'),
    fs("election/shard_manager.py", "await self._leader.try_once(may_acquire=False)"),
    fs("election/shard_manager.py", "if self.shards > 1:  # one shard: read only"),
)


def _features(values: dict[str, Any]) -> set[str]:
    namespaced = bool(values.get("operator", {}).get("watchNamespaces"))
    features = {"namespaced" if namespaced else "clusterwide"}
    for switches in ("providers", "gateways"):
        for name, settings in values.get(switches, {}).items():
            if settings.get("enabled"):
                features.add(name)
    return features


Permission = tuple[str, str, str, str, tuple[str, ...]]  # where, group, resource, verb, names


def expected(values: dict[str, Any]) -> set[Permission]:
    """The permissions the chart must render for these values, from ``GRANTS``."""
    features = _features(values)
    namespaces = values.get("operator", {}).get("watchNamespaces") or []
    watched = [f"ns:{n}" for n in namespaces] if namespaces else ["cluster"]
    providers = values.get("providers", {})
    capi_namespaces = providers.get("clusterAPI", {}).get("namespaces") or []
    placeholder_namespace = providers.get("placeholder", {}).get("namespace") or RELEASE_NAMESPACE
    placements = {
        "watched": watched,
        "cluster": ["cluster"],
        "cluster-events": [] if "default" in namespaces or not namespaces else ["ns:default"],
        "capi": [f"ns:{n}" for n in capi_namespaces] or ["cluster"],
        "placeholder": [f"ns:{placeholder_namespace}"],
    }
    result: set[Permission] = set()
    for grant in GRANTS:
        if grant.feature is not None and grant.feature not in features:
            continue
        for where in placements[grant.where]:
            for verb in grant.verbs:
                result.add((where, grant.group, grant.resource, verb, ()))
    targets = values.get("rbac", {}).get(
        "extraScaleTargets",
        [{"apiGroup": "leaderworkerset.x-k8s.io", "resource": "leaderworkersets"}],
    )
    for target in targets:
        for where in watched:
            result.add((where, target["apiGroup"], target["resource"], "get", ()))
            for verb in ("get", "update"):
                result.add((where, target["apiGroup"], f"{target['resource']}/scale", verb, ()))
    election = values.get("operator", {}).get("leaderElection", {})
    if election.get("enabled", True):
        lease = election.get("leaseName", LEASE_NAME)
        shards = values.get("shards", 1)
        release = f"ns:{RELEASE_NAMESPACE}"
        result.add((release, "coordination.k8s.io", "leases", "create", ()))
        if shards == 1:  # the leader Lease; the members Lease only read
            written: tuple[str, ...] = (lease,)
            result.add((release, "coordination.k8s.io", "leases", "get", (f"{lease}-members",)))
        else:  # every shard's Lease and the members Lease; the leader Lease only read
            written = (*(f"{lease}-shard-{i}" for i in range(shards)), f"{lease}-members")
            result.add((release, "coordination.k8s.io", "leases", "get", (lease,)))
        for verb in ("get", "update"):
            result.add((release, "coordination.k8s.io", "leases", verb, written))
    secret_names = tuple(values.get("prometheus", {}).get("secretNames") or ())
    if secret_names:
        for where in watched:
            result.add((where, "", "secrets", "get", secret_names))
    return result


def rendered_permissions(objects: list[dict[str, Any]]) -> set[Permission]:
    """What the rendered RBAC grants to the operator's ServiceAccount, flattened."""
    roles = {
        (obj["kind"], obj["metadata"].get("namespace")): {}
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
    }
    rules_by_role = {
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj["rules"]
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
    }
    assert roles  # the chart renders RBAC at all
    result: set[Permission] = set()
    for binding in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding"):
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role_namespace = None if ref["kind"] == "ClusterRole" else namespace
        rules = rules_by_role[(ref["kind"], role_namespace, ref["name"])]
        where = "cluster" if binding["kind"] == "ClusterRoleBinding" else f"ns:{namespace}"
        for rule in rules:
            names = tuple(rule.get("resourceNames", ()))
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        result.add((where, group, resource, verb, names))
    return result


@pytest.mark.parametrize(
    "grant", [pytest.param(g, id=f"{g.resource}-{'-'.join(g.verbs)}") for g in GRANTS]
)
def test_every_grant_is_backed_by_a_call_in_the_code(grant: Grant) -> None:
    missing = [e for e in grant.evidence if not e.found()]
    assert not missing, f"no call for {grant.resource} {grant.verbs} any more: {missing}"


def test_optional_grants_are_backed_too() -> None:
    for evidence in (*SECRETS_EVIDENCE, *EXTRA_SCALE_EVIDENCE, *LEASE_EVIDENCE):
        assert evidence.found(), evidence


@pytest.mark.parametrize("values", MATRIX)
def test_rendered_rbac_is_exactly_what_the_operator_calls(values: dict[str, Any]) -> None:
    rendered = rendered_permissions(render(values))
    wanted = expected(values)
    assert sorted(rendered - wanted) == [], "granted but never called"
    assert sorted(wanted - rendered) == [], "called but not granted"


@pytest.mark.parametrize("values", MATRIX)
def test_rbac_has_no_wildcard_and_no_escalation(values: dict[str, Any]) -> None:
    for obj in render(values):
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        assert "aggregationRule" not in obj
        assert no_wildcards(obj["rules"]) == [], obj["metadata"]["name"]
        for rule in obj["rules"]:
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
            assert "rbac.authorization.k8s.io" not in rule["apiGroups"]


@pytest.mark.parametrize("values", MATRIX)
def test_secrets_are_readable_only_by_name(values: dict[str, Any]) -> None:
    for where, _group, resource, verb, names in rendered_permissions(render(values)):
        if resource == "secrets":
            assert verb == "get", f"{verb} on secrets in {where}"
            assert names, f"every Secret readable in {where}"


def test_namespaced_mode_writes_nothing_namespaced_cluster_wide() -> None:
    values = {"operator": {"watchNamespaces": ["team-a"]}}
    granted = rendered_permissions(render(values))
    namespaced_kinds = {"inferencepools", "deployments", "configmaps", "events", "pods"}
    cluster_wide = {(p[2], p[3]) for p in granted if p[0] == "cluster" and p[2] in namespaced_kinds}
    # AcceleratorPools are cluster-scoped: they read the pods on their nodes, in any namespace
    # (RBAC cannot narrow a list by field selector); their InferencePools' demand comes from
    # the watch of the watched namespaces, so no InferencePool is read cluster-wide.
    assert cluster_wide == {("pods", "list")}
    assert ("ns:team-a", "fleetscale.io", "inferencepools/status", "patch", ()) in granted


def documented_grants(section: str) -> set[tuple[str, str, str, str]]:
    """(where, group, resource, verb) of each row of a table of docs/rbac.md whose API group
    is written literally."""
    text = RBAC_DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    places = {"watched namespaces": "watched", "cluster": "cluster"}
    found = set()
    for line in body.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 5 or cells[0] not in places:
            continue
        where, group, resources, verbs = cells[:4]
        if group != '""' and not re.fullmatch(r"[a-z0-9.-]+", group):
            continue  # "each rbac.extraScaleTargets group": checked by the rendering tests
        for resource in resources.split(", "):
            for verb in verbs.split(", "):
                found.add((places[where], "" if group == '""' else group, resource, verb))
    return found


def test_the_documented_grants_are_exactly_the_grants() -> None:
    """docs/rbac.md's "Always" table says what the chart grants in every install."""
    granted = {
        (grant.where, grant.group, grant.resource, verb)
        for grant in GRANTS
        if grant.feature is None
        for verb in grant.verbs
    }
    assert documented_grants("Always") == granted


def test_rbac_can_be_left_to_the_platform() -> None:
    kinds = {obj["kind"] for obj in render({"rbac": {"create": False}})}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def test_bindings_name_the_operator_service_account() -> None:
    objects = render({"operator": {"watchNamespaces": ["team-a"]}})
    account = by_kind(objects, "ServiceAccount")[0]["metadata"]["name"]
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    for binding in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": RELEASE_NAMESPACE}
        ]


def no_wildcards(rules: Iterable[dict[str, Any]]) -> list[str]:
    """Paths of every "*" in a list of PolicyRules."""
    return [path for path, value in walk(list(rules)) if isinstance(value, str) and "*" in value]


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}], id="group"),
        pytest.param([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}], id="resource"),
        pytest.param([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}], id="verb"),
        pytest.param([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}], id="sub"),
    ],
)
def test_the_wildcard_check_finds_wildcards(rules: list[dict[str, Any]]) -> None:
    assert no_wildcards(rules)


def test_default_prometheus_credentials_add_no_permission() -> None:
    """The token and CA are volume mounts (the kubelet reads the Secrets), not API reads."""
    base = {"prometheus": {"url": "https://prometheus.monitoring.svc:9091"}}
    with_auth = {
        "prometheus": {
            **base["prometheus"],
            "bearerTokenSecret": {"name": "fleetscale-prometheus", "key": "token"},
            "caSecret": {"name": "prometheus-ca", "key": "ca.crt"},
        }
    }
    assert rendered_permissions(render(with_auth)) == rendered_permissions(render(base))
    assert not any(p[2] == "secrets" for p in rendered_permissions(render(with_auth)))
