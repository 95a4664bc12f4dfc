"""The Helm chart lints strictly and renders valid, locked-down manifests for every values case.

Rendered objects are validated against the OpenAPI spec of the pinned Kubernetes version
(closed objects: an unknown field is an error, as with `kubectl apply --validate=strict`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import (
    CHART,
    KUBE_VERSION,
    MATRIX,
    MULTI_TENANT_EXAMPLE,
    RELEASE,
    RELEASE_NAMESPACE,
    REPO,
    KubeSchemas,
    by_kind,
    crd_schema_errors,
    one,
    operator_container,
    render,
    run_helm,
    template_result,
    values_file,
)

RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


@pytest.mark.parametrize("values", MATRIX)
def test_helm_lint_strict_passes(values: dict[str, Any], tmp_path: Path) -> None:
    result = run_helm(
        "lint", "--strict", "--kube-version", KUBE_VERSION, "--values",
        str(values_file(values, tmp_path)),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("values", MATRIX)
def test_rendered_objects_are_valid_kubernetes_objects(values: dict[str, Any]) -> None:
    schemas = KubeSchemas.load()
    crds = {
        doc["spec"]["names"]["kind"]: doc
        for path in sorted((CHART / "crds").glob("*.yaml"))
        for doc in [yaml.safe_load(path.read_text(encoding="utf-8"))]
    }
    problems: dict[str, list[str]] = {}
    for obj in render(values):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if schemas.knows(obj["apiVersion"], obj["kind"]):
            errors = schemas.errors(obj)
        elif obj["kind"] in crds:
            errors = crd_schema_errors(crds[obj["kind"]], obj)
        elif obj["kind"] == "ServiceMonitor":
            continue  # prometheus-operator's CRD is not ours to ship; checked field by field below
        else:
            errors = [f"no schema for {obj['apiVersion']} {obj['kind']}"]
        if errors:
            problems[name] = errors
    assert not problems, json.dumps(problems, indent=2)


@pytest.mark.parametrize("values", MATRIX)
def test_every_object_carries_the_recommended_labels(values: dict[str, Any]) -> None:
    for obj in render(values):
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in RECOMMENDED_LABELS if label not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "fleetscale"


@pytest.mark.parametrize("values", MATRIX)
def test_operator_pod_is_locked_down(values: dict[str, Any]) -> None:
    objects = render(values)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod.get("hostNetwork") is not True
    assert pod.get("hostPID") is not True
    # Writable only where Python needs it, and bounded; Secrets are mounted read-only.
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert set(volume) in ({"name", "emptyDir"}, {"name", "secret"}), volume
        assert "subPath" not in mount  # subPath mounts never see a rotated Secret
        if "emptyDir" in volume:
            assert volume["emptyDir"]["sizeLimit"]
        else:
            assert mount["readOnly"] is True
            assert volume["secret"]["defaultMode"] & 0o222 == 0  # no write bit
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("values", MATRIX)
def test_probes_hit_the_health_endpoints_on_the_metrics_port(values: dict[str, Any]) -> None:
    objects = render(values)
    container = operator_container(objects)
    port = container["ports"][0]
    assert port["name"] == "http"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FLEETSCALE_HTTP_PORT"] == str(port["containerPort"])
    service = one(objects, "Service")
    assert (
        service["spec"]["selector"].items()
        <= one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_operator_settings_come_from_values() -> None:
    objects = render(
        {
            "prometheus": {"url": "http://prom.monitoring:9090"},
            "operator": {
                "watchNamespaces": ["a", "b"],
                "logFormat": "console",
                "logLevel": "WARNING",
                "httpPort": 9000,
                "leaderElection": {
                    "leaseName": "gpu-fleet",
                    "leaseDurationSeconds": 30,
                    "renewDeadlineSeconds": 20,
                    "retryPeriodSeconds": 4,
                },
            },
        }
    )
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["FLEETSCALE_PROMETHEUS_URL"] == "http://prom.monitoring:9090"
    assert env["FLEETSCALE_NAMESPACES"] == "a,b"
    assert env["FLEETSCALE_LOG_FORMAT"] == "console"
    assert env["FLEETSCALE_LOG_LEVEL"] == "WARNING"
    assert env["FLEETSCALE_HTTP_PORT"] == "9000"
    assert env["FLEETSCALE_LEADER_ELECTION"] == "true"
    assert env["FLEETSCALE_LEASE_NAME"] == "gpu-fleet"
    assert (
        env["FLEETSCALE_LEASE_DURATION_SECONDS"],
        env["FLEETSCALE_RENEW_DEADLINE_SECONDS"],
        env["FLEETSCALE_RETRY_PERIOD_SECONDS"],
    ) == ("30", "20", "4")


def test_the_env_the_chart_sets_is_what_the_operator_reads() -> None:
    from fleetscale import settings

    env = {e["name"]: e for e in operator_container(render({}))["env"]}
    # The downward API fills these in a pod; here, values a pod would get.
    pod_fields = {"metadata.name": "fleetscale-7d9c6-x2k4q", "metadata.namespace": "fleetscale"}
    fleetscale_env = {
        name: e["value"] if "value" in e else pod_fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for name, e in env.items()
        if name.startswith("FLEETSCALE_")
    }
    read = {variable for variable, _flag in settings._SOURCES.values()}
    assert set(fleetscale_env) <= read, f"the operator ignores {set(fleetscale_env) - read}"
    # And the defaults the chart writes are values the operator accepts.
    settings.load_settings(fleetscale_env)


PROMETHEUS_AUTH = {
    "prometheus": {
        "url": "https://prometheus.monitoring.svc:9091",
        "bearerTokenSecret": {"name": "fleetscale-prometheus", "key": "bearer"},
        "caSecret": {"name": "prometheus-ca", "key": "ca.pem"},
    }
}


def test_default_prometheus_credentials_are_mounted_secrets_named_in_the_env() -> None:
    objects = render(PROMETHEUS_AUTH)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    env = {e["name"]: e.get("value") for e in container["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for variable, secret, key in (
        ("FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE", "fleetscale-prometheus", "bearer"),
        ("FLEETSCALE_PROMETHEUS_CA_FILE", "prometheus-ca", "ca.pem"),
    ):
        [volume] = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == secret]
        assert volume["secret"]["items"] == [{"key": key, "path": key}]
        mount = mounts[volume["name"]]
        assert mount["readOnly"] is True
        # The file the operator is told to read is the Secret's key inside that mount.
        assert env[variable] == f"{mount['mountPath']}/{key}"
    # The operator reads these variables, and nothing else comes from the Secrets.
    from fleetscale import settings

    read = {variable for variable, _flag in settings._SOURCES.values()}
    assert {name for name in env if name.startswith("FLEETSCALE_")} <= read
    # Nothing comes from the Secrets through the environment: only the pod's own name and
    # namespace (the Lease holder and its namespace) come from the downward API.
    from_fields = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert from_fields == {"FLEETSCALE_IDENTITY", "FLEETSCALE_LEASE_NAMESPACE"}
    assert all("fieldRef" in e["valueFrom"] for e in container["env"] if "valueFrom" in e)


def test_without_credential_secrets_nothing_is_mounted_or_set() -> None:
    objects = render({"prometheus": {"url": "http://prom:9090"}})
    container = operator_container(objects)
    env = {e["name"] for e in container["env"]}
    assert not {"FLEETSCALE_PROMETHEUS_BEARER_TOKEN_FILE", "FLEETSCALE_PROMETHEUS_CA_FILE"} & env
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_defaults_run_two_replicas_that_elect_one_leader_on_a_lease() -> None:
    objects = render({})
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    env = {e["name"]: e for e in operator_container(objects)["env"]}
    assert env["FLEETSCALE_LEADER_ELECTION"]["value"] == "true"
    assert env["FLEETSCALE_LEASE_NAME"]["value"] == "fleetscale"
    # Each replica holds the Lease under its own pod name, in its own namespace.
    assert env["FLEETSCALE_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    namespace_ref = env["FLEETSCALE_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert namespace_ref == "metadata.namespace"
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    # No kopf peering any more: nothing of kopf.dev is rendered.
    assert not [obj for obj in objects if obj["apiVersion"].startswith("kopf.dev")]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="clusterwide"),
        pytest.param({"operator": {"watchNamespaces": ["team-a", "team-b"]}}, id="namespaced"),
    ],
)
def test_the_lease_is_granted_in_the_release_namespace_only(values: dict[str, Any]) -> None:
    objects = render(values)
    role = next(
        r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("leader-election")
    )
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert {
        (tuple(rule["verbs"]), tuple(rule.get("resourceNames", ()))) for rule in role["rules"]
    } == {
        (("create",), ()),
        (("get", "update"), ("fleetscale",)),
        (("get",), ("fleetscale-members",)),
    }


def test_shards_are_set_and_each_shard_lease_is_granted_by_name() -> None:
    objects = render({"replicaCount": 3, "shards": 3})
    assert one(objects, "Deployment")["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["FLEETSCALE_SHARDS"] == "3"
    role = next(
        r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("leader-election")
    )
    assert {
        (tuple(rule["verbs"]), tuple(rule.get("resourceNames", ()))) for rule in role["rules"]
    } == {
        (("create",), ()),
        (
            ("get", "update"),
            (
                "fleetscale-shard-0",
                "fleetscale-shard-1",
                "fleetscale-shard-2",
                "fleetscale-members",
            ),
        ),
        (("get",), ("fleetscale",)),
    }


def test_one_shard_is_the_default() -> None:
    env = {e["name"]: e.get("value") for e in operator_container(render({}))["env"]}
    assert env["FLEETSCALE_SHARDS"] == "1"


def test_single_replica_has_no_disruption_budget_that_would_block_drains() -> None:
    objects = render({"replicaCount": 1})
    assert not by_kind(objects, "PodDisruptionBudget")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"replicaCount": 2, "operator": {"leaderElection": {"enabled": False}}},
            "every replica would act on the same pools",
            id="no-election-two-replicas",
        ),
        pytest.param(
            {"operator": {"leaderElection": {"leaseDurationSeconds": 10}}},
            "leaseDurationSeconds > renewDeadlineSeconds > retryPeriodSeconds",
            id="standby-could-take-over-while-the-leader-acts",
        ),
    ],
)
def test_values_that_let_two_replicas_act_are_refused(
    values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    result = run_helm(
        "template",
        RELEASE,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(values_file(values, tmp_path)),
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_optional_objects_are_off_by_default() -> None:
    kinds = {obj["kind"] for obj in render({})}
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
    }


def test_service_monitor_scrapes_the_metrics_port_of_the_service() -> None:
    objects = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


NETWORK_POLICY = {
    "enabled": True,
    "apiServerCidrs": ["172.18.0.2/32", "10.96.0.1/32"],
    "prometheusPeers": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
        {"ipBlock": {"cidr": "10.20.0.5/32"}},
    ],
}


def test_network_policy_admits_scrapes_and_sends_only_to_dns_api_server_and_prometheus() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    objects = render({"networkPolicy": {**NETWORK_POLICY, "metricsFrom": [peer]}})
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}], "from": [peer]}]
    dns, api_server, prometheus = policy["egress"]
    # A pool names the URL the operator reads: a rule without `to` would reach any address.
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert api_server["to"] == [
        {"ipBlock": {"cidr": "172.18.0.2/32"}},
        {"ipBlock": {"cidr": "10.96.0.1/32"}},
    ]
    assert [p["port"] for p in api_server["ports"]] == [443, 6443]
    assert prometheus["to"] == NETWORK_POLICY["prometheusPeers"]
    assert [p["port"] for p in prometheus["ports"]] == [9090]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        pytest.param("apiServerCidrs", "networkPolicy.apiServerCidrs is empty", id="api-server"),
        pytest.param("prometheusPeers", "networkPolicy.prometheusPeers is empty", id="prometheus"),
    ],
)
def test_network_policy_refuses_to_render_without_destinations(
    missing: str, message: str, tmp_path: Path
) -> None:
    values = {"networkPolicy": {k: v for k, v in NETWORK_POLICY.items() if k != missing}}
    result = template_result(values_file(values, tmp_path))
    assert result.returncode != 0
    assert message in result.stderr


def test_prometheus_isolation_settings_come_from_values() -> None:
    from fleetscale import settings

    objects = render(
        {
            "prometheus": {
                "url": "http://prom.monitoring:9090",
                "allowedUrls": ["http://team-a-prom.team-a:9090", "https://thanos.example"],
                "enforceNamespace": True,
                "namespaceLabel": "exported_namespace",
            }
        }
    )
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["FLEETSCALE_PROMETHEUS_ALLOWED_URLS"] == (
        "http://team-a-prom.team-a:9090,https://thanos.example"
    )
    assert env["FLEETSCALE_ENFORCE_NAMESPACE"] == "true"
    assert env["FLEETSCALE_NAMESPACE_LABEL"] == "exported_namespace"
    loaded = settings.load_settings({k: v for k, v in env.items() if k.startswith("FLEETSCALE_")})
    assert loaded.allowed_prometheus_urls == {
        "http://prom.monitoring:9090",
        "http://team-a-prom.team-a:9090",
        "https://thanos.example",
    }
    assert (loaded.enforce_namespace, loaded.namespace_label) == (True, "exported_namespace")


def test_by_default_pools_may_use_only_the_default_prometheus_unscoped() -> None:
    from fleetscale import settings

    objects = render({"prometheus": {"url": "http://prom.monitoring:9090"}})
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    loaded = settings.load_settings({k: v for k, v in env.items() if k.startswith("FLEETSCALE_")})
    assert loaded.allowed_prometheus_urls == {"http://prom.monitoring:9090"}
    assert not loaded.enforce_namespace
    assert not by_kind(objects, "NetworkPolicy")


def test_the_multi_tenant_example_scopes_queries_and_limits_egress() -> None:
    from fleetscale import settings

    objects = render(MULTI_TENANT_EXAMPLE)
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    loaded = settings.load_settings({k: v for k, v in env.items() if k.startswith("FLEETSCALE_")})
    assert loaded.enforce_namespace
    assert loaded.allowed_prometheus_urls == {loaded.prometheus_url}
    policy = one(objects, "NetworkPolicy")["spec"]
    assert all(rule.get("to") for rule in policy["egress"])
    assert all(rule.get("from") for rule in policy["ingress"])


def test_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "0f" * 32
    container = operator_container(render({"image": {"repository": "r/fs", "digest": digest}}))
    assert container["image"] == f"r/fs@{digest}"
    assert operator_container(render({}))["image"] == "fleetscale:0.1.0"


def test_chart_crds_are_byte_identical_to_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(shipped) == sorted(generated), "run `make crds` and commit both folders"
    differing = [name for name in generated if generated[name] != shipped[name]]
    assert not differing, f"run `make crds`: chart copy differs for {differing}"
    assert sorted(shipped) == [
        "acceleratorpools.fleetscale.io.yaml",
        "inferencepools.fleetscale.io.yaml",
    ]


def test_chart_version_and_app_version_follow_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    from fleetscale import __version__

    assert chart["appVersion"] == __version__


def test_notes_tell_the_next_commands(tmp_path: Path) -> None:
    # `helm template` drops NOTES.txt and `helm install --dry-run` wants a cluster, so render
    # NOTES through the same engine from a copy of the chart that wraps them in a ConfigMap.
    chart = tmp_path / "fleetscale"
    _copy_chart(CHART, chart)
    notes_text = (chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes_text + "{{- end }}\n", encoding="utf-8"
    )
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "test.notes" . | toJson }}}\n',
        encoding="utf-8",
    )
    values = values_file({"operator": {"watchNamespaces": ["team-a"]}}, tmp_path)
    result = run_helm(
        "template", RELEASE, "-n", RELEASE_NAMESPACE, "--kube-version", KUBE_VERSION,
        "-f", str(values), "--show-only", "templates/notes.yaml", chart=chart,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    assert f"rollout status deployment/{RELEASE}-fleetscale" in notes
    assert "kubectl explain inferencepools.spec --api-version fleetscale.io/v1alpha1" in notes
    assert "kubectl describe inferencepools.fleetscale.io" in notes
    assert "It watches InferencePools in: team-a." in notes
    assert "No default Prometheus is set" in notes
    assert "no pool can read metrics yet" in notes


def _copy_chart(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda d: d["spec"].__setitem__("replicas", "two"),
            "spec/replicas: 'two' is not of type 'integer'",
            id="wrong-type",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "readOnlyRootFs", True
            ),
            "'readOnlyRootFs' was unexpected",
            id="unknown-field",
        ),
        pytest.param(
            lambda d: d["spec"].pop("selector"),
            "'selector' is a required property",
            id="missing-required",
        ),
    ],
)
def test_schema_validation_catches_what_the_api_server_would_reject(
    mutate: Any, expected: str
) -> None:
    deployment = one(render({}), "Deployment")
    mutate(deployment)
    errors = KubeSchemas.load().errors(deployment)
    assert any(expected in error for error in errors), errors
