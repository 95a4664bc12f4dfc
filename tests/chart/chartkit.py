"""Render the Helm chart and check the result against the Kubernetes API schemas.

Role: the shared machinery of the chart tests. ``helm()`` finds the helm binary that
e2e/build-binaries.sh builds (or ``FLEETSCALE_HELM``) and fails, never skips, when it is
missing. ``render()`` runs ``helm template`` with a values dict. ``KubeSchemas`` validates
rendered objects against the OpenAPI (swagger 2.0) spec that ships in the ``k8s.io/kubernetes``
Go module of the pinned Kubernetes version, taken from the Go module cache: no network, and the
same version the e2e control plane runs. Callers: the test modules beside this one.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "fleetscale"
RELEASE = "fs"
RELEASE_NAMESPACE = "fleetscale-system"


def _versions() -> dict[str, str]:
    pairs = {}
    for line in (REPO / "e2e" / "versions.env").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            pairs[key] = value
    return pairs


VERSIONS = _versions()
KUBE_VERSION = VERSIONS["KUBE_VERSION"]
HELM_VERSION = VERSIONS["HELM_VERSION"]


@functools.cache
def helm() -> str:
    """Path of the helm binary: $FLEETSCALE_HELM, else the e2e build cache."""
    explicit = os.environ.get("FLEETSCALE_HELM")
    cache = Path(os.environ.get("FLEETSCALE_BIN_CACHE", Path.home() / ".cache/fleetscale/bin"))
    candidate = Path(explicit) if explicit else cache / f"helm-{HELM_VERSION}" / "helm"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        pytest.fail(
            f"helm not found at {candidate}: run e2e/build-binaries.sh (builds helm "
            f"{HELM_VERSION} from its Go module) or set FLEETSCALE_HELM to a helm binary",
            pytrace=False,
        )
    return str(candidate)


def run_helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """Run helm on the chart, without any cluster or repository configuration."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KUBECONFIG": os.devnull,
        "HELM_CACHE_HOME": "/tmp/fleetscale-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/fleetscale-helm/config",
        "HELM_DATA_HOME": "/tmp/fleetscale-helm/data",
    }
    return subprocess.run(
        [helm(), *args, str(chart)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def values_file(values: Mapping[str, Any], directory: Path) -> Path:
    path = directory / "values.json"  # JSON is YAML, and needs no quoting rules
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


@functools.cache
def _render_cached(values_json: str) -> tuple[dict[str, Any], ...]:
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"fleetscale-chart-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    values = values_file(json.loads(values_json), directory)
    result = template_result(values)
    if result.returncode != 0:
        pytest.fail(f"helm template failed:\n{result.stderr}", pytrace=False)
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return tuple(docs)


def template_result(values: Path) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with one values file, for the pinned Kubernetes version."""
    return run_helm(
        "template",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(values),
    )


def render(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects `helm template` renders for these values (deep copies: tests may mutate)."""
    return copy.deepcopy(list(_render_cached(json.dumps(values, sort_keys=True))))


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


# ----------------------------------------------------------------------------------------------
# Kubernetes schemas


def _go() -> str | None:
    return shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )


@functools.cache
def kubernetes_swagger_path() -> Path:
    """swagger.json of k8s.io/kubernetes at the pinned version, from the Go module cache.

    $FLEETSCALE_K8S_SWAGGER overrides it. If the module is not cached yet and Go is installed,
    `go mod download` fetches it from the Go module proxy (the e2e build does the same).
    """
    explicit = os.environ.get("FLEETSCALE_K8S_SWAGGER")
    if explicit:
        return Path(explicit)
    go = _go()
    if go is None:
        pytest.fail(
            "Go is needed to locate the Kubernetes OpenAPI spec (k8s.io/kubernetes module), "
            "or set FLEETSCALE_K8S_SWAGGER to a swagger.json",
            pytrace=False,
        )
    module = f"k8s.io/kubernetes@{KUBE_VERSION}"
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd="/",
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        pytest.fail(f"go mod download {module} failed: {result.stderr or info}", pytrace=False)
    path = Path(info["Dir"]) / "api" / "openapi-spec" / "swagger.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the module", pytrace=False)
    return path


def _strict(definitions: dict[str, Any]) -> dict[str, Any]:
    """Make the spec as strict as the API server's decoder in strict mode (kubectl's default).

    Swagger objects allow unknown fields; the API server drops them with a warning, which hides
    typos. Every object with declared properties is closed here. Two types are encoded for
    protobuf rather than JSON (IntOrString, Quantity) and get their JSON forms back.
    """
    strict = copy.deepcopy(definitions)
    strict["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "oneOf": [{"type": "string"}, {"type": "integer"}]
    }
    strict["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    }

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(strict)
    return strict


@dataclass(frozen=True, eq=False)  # identity hash: cached validators key on it
class KubeSchemas:
    """Validators of built-in kinds by (apiVersion, kind)."""

    definitions: dict[str, Any]
    names_by_gvk: dict[tuple[str, str], str]

    @classmethod
    @functools.cache
    def load(cls) -> KubeSchemas:
        swagger = json.loads(kubernetes_swagger_path().read_text(encoding="utf-8"))
        definitions = _strict(swagger["definitions"])
        names: dict[tuple[str, str], str] = {}
        for name, definition in swagger["definitions"].items():
            for gvk in definition.get("x-kubernetes-group-version-kind", ()):
                group, version = gvk["group"], gvk["version"]
                api_version = f"{group}/{version}" if group else version
                names[(api_version, gvk["kind"])] = name
        return cls(definitions, names)

    def knows(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.names_by_gvk

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        """Validation errors of one object, as `path: message` lines; empty when valid."""
        name = self.names_by_gvk[(obj["apiVersion"], obj["kind"])]
        validator = _validator(self, name)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in validator.iter_errors(obj)
        ]


@functools.cache
def _validator(schemas: KubeSchemas, name: str) -> jsonschema.Draft4Validator:
    root = {"definitions": schemas.definitions, "allOf": [{"$ref": f"#/definitions/{name}"}]}
    return jsonschema.Draft4Validator(root)


def crd_schema_errors(crd: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """Errors of a custom object against its CRD's openAPIV3Schema (structure and types)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    body = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    body["metadata"] = {}  # metadata is validated by the API server's own rules
    validator = jsonschema.Draft4Validator(schema)
    return [error.message for error in validator.iter_errors(body)]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a nested structure of dicts and lists."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


# ----------------------------------------------------------------------------------------------
# The values matrix: each case is a way platform teams install the chart.

# The example values file for clusters shared by several teams, as documented.
MULTI_TENANT_EXAMPLE: dict[str, Any] = yaml.safe_load(
    (CHART / "examples" / "multi-tenant.yaml").read_text(encoding="utf-8")
)

MATRIX = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {
            "operator": {"watchNamespaces": ["team-a", "team-b"]},
            "prometheus": {"secretNames": ["prometheus-token"]},
        },
        id="namespaced",
    ),
    pytest.param(
        {
            "prometheus": {
                "url": "https://prometheus.monitoring.svc:9091",
                "bearerTokenSecret": {"name": "fleetscale-prometheus", "key": "token"},
                "caSecret": {"name": "prometheus-ca", "key": "ca.crt"},
                "secretNames": ["prometheus-token", "prometheus-ca"],
            },
            "operator": {"logFormat": "console", "logLevel": "DEBUG", "httpPort": 9102},
        },
        id="prometheus-auth",
    ),
    pytest.param(
        {
            "providers": {
                "kwok": {"enabled": True},
                "clusterAPI": {"enabled": True},
                "placeholder": {"enabled": True, "namespace": "gpu-placeholders"},
            },
            "gateways": {"envoyGateway": {"enabled": True}},
            "rbac": {
                "extraScaleTargets": [
                    {"apiGroup": "leaderworkerset.x-k8s.io", "resource": "leaderworkersets"},
                    {"apiGroup": "serving.kserve.io", "resource": "inferenceservices"},
                ]
            },
        },
        id="all-providers",
    ),
    pytest.param(
        {
            "operator": {"watchNamespaces": ["team-a", "default"]},
            "providers": {
                "clusterAPI": {"enabled": True, "namespaces": ["capi-system"]},
                "placeholder": {"enabled": True},
            },
            "gateways": {"envoyGateway": {"enabled": True}},
            "rbac": {"extraScaleTargets": []},
        },
        id="namespaced-providers",
    ),
    pytest.param(
        {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "networkPolicy": {
                "enabled": True,
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                "apiServerCidrs": ["172.18.0.2/32", "10.96.0.1/32"],
                "prometheusPeers": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
            },
            "grafanaDashboard": {"enabled": True},
        },
        id="observability",
    ),
    pytest.param(
        {"replicaCount": 1, "operator": {"leaderElection": {"enabled": False}}},
        id="single-without-election",
    ),
    pytest.param(
        {"replicaCount": 3, "shards": 4, "operator": {"leaderElection": {"leaseName": "gpu"}}},
        id="shards",
    ),
    pytest.param(MULTI_TENANT_EXAMPLE, id="multi-tenant-example"),
    pytest.param(
        {
            "image": {
                "repository": "registry.example.com/platform/fleetscale",
                "digest": "sha256:" + "ab" * 32,
            },
            "imagePullSecrets": [{"name": "registry"}],
            "serviceAccount": {"create": False, "name": "platform-operator"},
            "priorityClassName": "system-cluster-critical",
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "fullnameOverride": "gpu-scaler",
        },
        id="platform-overrides",
    ),
]
