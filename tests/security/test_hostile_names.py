"""A name a tenant writes into a pool never reaches beyond the pool's namespace (#11).

Every spec field that names a Kubernetes object was once pasted into a REST path, and urllib3
resolves ``..`` before it sends a request: ``targetRef.name: ../../kube-system/deployments/
coredns`` scaled coredns, a Secret reference read another team's token, a ``configMapName``
patched an unrelated ConfigMap. Each layer refuses such a name on its own:

1. the models, and so the CRD schema the API server enforces (``pattern``, ``maxLength``);
2. the operator's validate step, for an object stored before the schema had those rules
   (Ready=False, InvalidSpec): nothing is read or written for it;
3. the one path builder (``kubeapi.resource_path``) and every adapter built on it: a value
   that is not a valid name is never sent.

e2e/test_e2e_tenancy.py sends the same corpus to a real API server.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes.client import ApiClient
from pydantic import ValidationError

from fleetscale.actuators.base import ActuatorError, InvolvedObject, ScaleTargetRef, ShedFlag
from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.actuators.fake import (
    FakeEventSink,
    FakeScaleActuator,
    FakeSecretReader,
    FakeShedFlagPublisher,
)
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.rest import RetryPolicy
from fleetscale.actuators.secrets import KubernetesSecretReader
from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.controller.inferencepools import (
    InferencePoolDependencies,
    InferencePoolRef,
    reconcile,
)
from fleetscale.kubeapi import InvalidName, api_root, resource_path
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.fake import FakeSignalSource
from support.kube_emulator import ScaleSubresource

NS = "team-a"
FAST_RETRY = RetryPolicy(attempts=1, request_timeout_seconds=5)
CRD = Path(__file__).resolve().parents[2] / "crds" / "inferencepools.fleetscale.io.yaml"

# Names that are not Kubernetes names, each a way to climb out of a path segment or to look
# like a name that is not one.
HOSTILE_NAMES = [
    pytest.param("../../kube-system/deployments/coredns", id="traversal"),
    pytest.param("../../../kube-system/secrets/prometheus-token", id="deep-traversal"),
    pytest.param("..", id="dot-dot"),
    pytest.param(".", id="dot"),
    pytest.param("%2e%2e", id="encoded-dot-dot"),
    pytest.param("..%2f..%2fkube-system", id="encoded-slash"),
    pytest.param("%252e%252e", id="double-encoded"),
    pytest.param("vllm/scale", id="slash"),
    pytest.param("vllm?dryRun=All", id="query"),
    pytest.param("vllm#x", id="fragment"),
    pytest.param("vllm\\..\\x", id="backslash"),
    pytest.param(".vllm", id="leading-dot"),
    pytest.param("vllm.", id="trailing-dot"),
    pytest.param("vllm..x", id="empty-label"),
    pytest.param("-vllm", id="leading-dash"),
    pytest.param("Vllm", id="upper-case"),
    pytest.param("vllm\n", id="newline"),
    pytest.param(" vllm", id="space"),
    pytest.param("vllm\x00x", id="nul"),
    pytest.param("v\u217clm", id="roman-numeral-l"),  # U+217C looks like an l
    pytest.param("vll\u043c", id="cyrillic"),
    pytest.param("vllm\u200b", id="zero-width-space"),
    pytest.param("\uff56llm", id="fullwidth-v"),
    pytest.param("a" * 254, id="over-long"),
    pytest.param("", id="empty"),
]
HOSTILE_KEYS = [
    pytest.param("../token", id="traversal"),
    pytest.param("a/b", id="slash"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dot-dot"),
    pytest.param("..data", id="dot-dot-prefix"),
    pytest.param("tok\u0435n", id="cyrillic"),
    pytest.param("token\n", id="newline"),
    pytest.param("k" * 254, id="over-long"),
]
HOSTILE_API_VERSIONS = [
    pytest.param("apps/v1/namespaces/kube-system", id="extra-segments"),
    pytest.param("../api/v1", id="traversal"),
    pytest.param("apps/../../api/v1", id="inner-traversal"),
    pytest.param("apps/v1?x=", id="query"),
    pytest.param("Apps/v1", id="upper-case"),
    pytest.param("", id="empty"),
]


def base_spec() -> dict[str, Any]:
    return {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
        "replicas": {"min": 1, "max": 4},
        "metrics": {
            "prometheus": {
                "bearerTokenSecretRef": {"name": "prom-token", "key": "token"},
                "caSecretRef": {"name": "prom-ca", "key": "ca.crt"},
            },
            "queueDepth": {"query": "sum(q)"},
        },
        "shedLoad": {"enabled": True, "configMapName": "llama-shed"},
        "acceleratorPoolRef": {"name": "h100"},
    }


# Each field that names an object: its path in the spec, as the CRD schema nests it.
NAME_FIELDS = [
    pytest.param(("targetRef", "name"), id="targetRef.name"),
    pytest.param(("shedLoad", "configMapName"), id="shedLoad.configMapName"),
    pytest.param(
        ("metrics", "prometheus", "bearerTokenSecretRef", "name"), id="bearerTokenSecretRef.name"
    ),
    pytest.param(("metrics", "prometheus", "caSecretRef", "name"), id="caSecretRef.name"),
    pytest.param(("acceleratorPoolRef", "name"), id="acceleratorPoolRef.name"),
]
KEY_FIELDS = [
    pytest.param(
        ("metrics", "prometheus", "bearerTokenSecretRef", "key"), id="bearerTokenSecretRef.key"
    ),
    pytest.param(("metrics", "prometheus", "caSecretRef", "key"), id="caSecretRef.key"),
]


def with_value(path: tuple[str, ...], value: str) -> dict[str, Any]:
    spec = base_spec()
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


def schema_node(path: tuple[str, ...]) -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path:
        node = node["properties"][key]
    found: dict[str, Any] = node
    return found


def schema_admits(node: dict[str, Any], value: str) -> bool:
    """What the API server's structural schema checks for a string: a Go regexp search, whose
    ``$`` (no multi-line flag) is Python's ``\\Z``, not ``$`` (which also matches before a final
    newline)."""
    pattern = node["pattern"]
    assert pattern.startswith("^"), pattern
    assert pattern.endswith("$"), pattern
    return (
        node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value))
        and re.search(pattern[:-1] + r"\Z", value) is not None
    )


# ----- 1. the models and the CRD schema -----


def test_the_legitimate_spec_is_accepted() -> None:
    InferencePoolSpec.model_validate(base_spec())


@pytest.mark.parametrize("path", NAME_FIELDS)
@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_the_model_refuses_a_hostile_name(path: tuple[str, ...], value: str) -> None:
    with pytest.raises(ValidationError):
        InferencePoolSpec.model_validate(with_value(path, value))


@pytest.mark.parametrize("path", KEY_FIELDS)
@pytest.mark.parametrize("value", HOSTILE_KEYS)
def test_the_model_refuses_a_hostile_secret_key(path: tuple[str, ...], value: str) -> None:
    with pytest.raises(ValidationError):
        InferencePoolSpec.model_validate(with_value(path, value))


@pytest.mark.parametrize("value", HOSTILE_API_VERSIONS)
def test_the_model_refuses_a_hostile_api_version(value: str) -> None:
    with pytest.raises(ValidationError):
        InferencePoolSpec.model_validate(with_value(("targetRef", "apiVersion"), value))


@pytest.mark.parametrize("path", NAME_FIELDS)
@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_the_crd_schema_refuses_a_hostile_name(path: tuple[str, ...], value: str) -> None:
    node = schema_node(path)
    assert node["maxLength"] == 253
    assert not schema_admits(node, value)
    assert schema_admits(node, "vllm-llama.v2")


@pytest.mark.parametrize("path", KEY_FIELDS)
@pytest.mark.parametrize("value", HOSTILE_KEYS)
def test_the_crd_schema_refuses_a_hostile_secret_key(path: tuple[str, ...], value: str) -> None:
    node = schema_node(path)
    assert not schema_admits(node, value)
    assert schema_admits(node, "ca.crt")
    assert schema_admits(node, ".token_2")


# ----- 2. the operator, for an object stored before the schema had the rules -----


TARGET = ScaleTargetRef(NS, "apps/v1", "Deployment", "vllm")
POOL = InferencePoolRef(NS, "llama", "uid-llama", 2)


class Tenant:
    """Fakes behind one pool, and a victim in another namespace each field could reach."""

    def __init__(self) -> None:
        self.scaler = FakeScaleActuator(follow_immediately=True)
        self.scaler.add(TARGET, 1, accelerators_per_replica=1)
        self.secrets = FakeSecretReader()
        self.secrets.set_secret(NS, "prom-token", {"token": "team-a-token"})
        self.secrets.set_secret(NS, "prom-ca", {"ca.crt": "PEM"})
        self.publisher = FakeShedFlagPublisher()
        self.events = FakeEventSink()
        self.signals = FakeSignalSource()
        self.deps = InferencePoolDependencies(
            signals=self.signals,
            scaler=self.scaler,
            events=self.events,
            shed_publisher=self.publisher,
            secrets=self.secrets,
            settings=Settings(prometheus_url="http://prom:9090"),
            metrics=OperatorMetrics(),
            plan=plan,
        )


@pytest.mark.parametrize("path", NAME_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("../../kube-system/deployments/coredns", id="traversal"),
        pytest.param("%2e%2e", id="encoded-dot-dot"),
        pytest.param("v\u217clm", id="look-alike"),
    ],
)
async def test_a_stored_pool_with_a_hostile_name_is_refused_before_anything_is_sent(
    path: tuple[str, ...], value: str
) -> None:
    tenant = Tenant()
    result = await reconcile(POOL, with_value(path, value), None, tenant.deps, 1.8e9)

    assert result.reason == "InvalidSpec"
    status = json.loads(json.dumps(result.status))
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ".".join(path[-2:]) in ready["message"] or path[-1] in ready["message"]
    assert [e.reason for e in tenant.events.events] == ["InvalidSpec"]
    # Nothing was read or written, here or anywhere else.
    assert tenant.scaler.read_calls == []
    assert tenant.scaler.set_calls == []
    assert tenant.secrets.reads == []
    assert tenant.publisher.published == []
    assert tenant.signals.calls == []


# ----- 3. the path builder and every adapter on it -----


@pytest.mark.parametrize("value", HOSTILE_NAMES)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda v: resource_path("v1", "configmaps", namespace=NS, name=v), id="name"),
        pytest.param(lambda v: resource_path("v1", "configmaps", namespace=v), id="namespace"),
        pytest.param(lambda v: resource_path("v1", v, namespace=NS), id="resource"),
        pytest.param(
            lambda v: resource_path(
                "apps/v1", "deployments", namespace=NS, name="x", subresource=v
            ),
            id="subresource",
        ),
    ],
)
def test_the_path_builder_refuses_what_is_not_a_name(
    value: str, build: Callable[[str], str]
) -> None:
    with pytest.raises(InvalidName, match="refused, not sent"):
        build(value)


@pytest.mark.parametrize("value", HOSTILE_API_VERSIONS)
def test_the_path_builder_refuses_what_is_not_an_api_version(value: str) -> None:
    with pytest.raises(InvalidName):
        api_root(value)


def test_the_path_builder_builds_the_paths_the_api_server_serves() -> None:
    assert resource_path("v1", "configmaps", namespace=NS, name="a.b") == (
        "/api/v1/namespaces/team-a/configmaps/a.b"
    )
    assert resource_path("apps/v1", "deployments", namespace=NS, name="v", subresource="scale") == (
        "/apis/apps/v1/namespaces/team-a/deployments/v/scale"
    )
    assert resource_path("fleetscale.io/v1alpha1", "acceleratorpools", name="h100") == (
        "/apis/fleetscale.io/v1alpha1/acceleratorpools/h100"
    )
    assert resource_path("v1", "events", namespace=NS) == "/api/v1/namespaces/team-a/events"


TRAVERSALS = [
    pytest.param("../../kube-system/{plural}/victim", id="traversal"),
    pytest.param("%2e%2e/%2e%2e/kube-system/{plural}/victim", id="encoded"),
    pytest.param("..", id="dot-dot"),
]


def victim(emulator: kmock.KubernetesEmulator, resource: str, body: dict[str, Any]) -> None:
    """An object in kube-system that a traversal from team-a would reach."""
    emulator.objects[resource, "kube-system", "victim"] = {
        "metadata": {"name": "victim", "namespace": "kube-system", "resourceVersion": "1"},
        **body,
    }


def sent(emulator: kmock.KubernetesEmulator) -> list[str]:
    return [f"{request.method} {request.url}" for request in emulator]


@pytest.mark.parametrize("name", TRAVERSALS)
async def test_the_scale_actuator_never_addresses_another_namespace(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, name: str
) -> None:
    ScaleSubresource(emulator, "apps/v1/deployments")
    victim(
        emulator,
        "apps/v1/deployments",
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}},
    )
    scaler = KubernetesScaleActuator(api_client, retry=FAST_RETRY)
    target = ScaleTargetRef(NS, "apps/v1", "Deployment", name.format(plural="deployments"))

    with pytest.raises(ActuatorError, match="not a valid Kubernetes name"):
        await scaler.read(target)
    with pytest.raises(ActuatorError, match="not a valid Kubernetes name"):
        await scaler.set_replicas(target, 0)

    assert sent(emulator) == []
    assert emulator.objects["apps/v1/deployments", "kube-system", "victim"]["spec"] == {
        "replicas": 2
    }


@pytest.mark.parametrize("name", TRAVERSALS)
async def test_the_secret_reader_never_reads_another_namespaces_secret(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, name: str
) -> None:
    token = base64.b64encode(b"another-teams-token").decode()
    victim(emulator, "v1/secrets", {"apiVersion": "v1", "kind": "Secret", "data": {"t": token}})
    reader = KubernetesSecretReader(api_client, retry=FAST_RETRY)

    with pytest.raises(ActuatorError, match="not a valid Kubernetes name"):
        await reader.read_key(NS, name.format(plural="secrets"), "t")
    assert sent(emulator) == []


@pytest.mark.parametrize("name", TRAVERSALS)
async def test_the_shed_flag_never_patches_another_namespaces_config_map(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient, name: str
) -> None:
    victim(emulator, "v1/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}})
    publisher = ConfigMapShedFlagPublisher(api_client, retry=FAST_RETRY)
    owner = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "llama", "uid-llama")

    with pytest.raises(ActuatorError, match="not a valid Kubernetes name"):
        await publisher.publish(
            owner, name.format(plural="configmaps"), ShedFlag(True, "MaxReplicas", None, 5)
        )
    assert sent(emulator) == []
    stored = emulator.objects["v1/configmaps", "kube-system", "victim"]
    assert "ownerReferences" not in stored["metadata"]
    assert dict(stored["data"]) == {"a": "1"}
