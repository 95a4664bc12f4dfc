"""The Envoy Gateway writer against kmock's emulated API server."""

from __future__ import annotations

import json
from typing import Any

import kmock
import kubernetes.client
import pytest
from pydantic import ValidationError

from fleetscale.api import InferencePoolSpec
from fleetscale.gateways import target_of
from fleetscale.gateways.base import (
    GatewayConflict,
    GatewayError,
    GatewayTarget,
    GatewayWriter,
    Owner,
    RouteTarget,
    ShedOrder,
)
from fleetscale.gateways.envoy_gateway import EnvoyGatewayWriter, policy_body
from fleetscale.gateways.fake import FakeGatewayWriter
from fleetscale.kubeapi import RetryPolicy
from support.kube_emulator import declare
from support.protocols import protocol_mismatches

BTP = "gateway.envoyproxy.io/v1alpha1/backendtrafficpolicies"
NS = "serving"
OWNER = Owner("fleetscale.io/v1alpha1", "InferencePool", "llama", "uid-llama")
ROUTE = RouteTarget("gateway.networking.k8s.io", "HTTPRoute", "llama-route")
TARGET = GatewayTarget("EnvoyGateway", NS, "llama-shed", ROUTE)
ORDER = ShedOrder(fraction=0.35, retry_after_seconds=7, message="busy", reason="MaxReplicas")
FAST = RetryPolicy(attempts=2, first_backoff_seconds=0.01)


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    declare(kmock, BTP, "BackendTrafficPolicy")
    return kmock


@pytest.fixture
def writer(api_client: kubernetes.client.ApiClient) -> EnvoyGatewayWriter:
    return EnvoyGatewayWriter(api_client, retry=FAST)


def stored(emulator: kmock.KubernetesEmulator, name: str = "llama-shed") -> dict[str, Any] | None:
    """The policy the emulator holds now (None: none, or deleted)."""
    for key in list(emulator.objects):
        resource, namespace, found = key
        obj = emulator.objects[key]
        if (namespace, found) == (NS, name) and str(resource) == str(emulator.resource(BTP)):
            return None if obj.deleted else dict(obj.raw)
    return None


def foreign_policy(**labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": "llama-shed", "namespace": NS, "labels": labels},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "x"}]
        },
    }


def test_the_policy_aborts_the_fraction_with_429_retry_after_and_json() -> None:
    body = policy_body(OWNER, TARGET, ORDER)
    spec = body["spec"]
    assert spec["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llama-route"}
    ]
    assert spec["faultInjection"] == {"abort": {"httpStatus": 429, "percentage": 35.0}}
    override = spec["responseOverride"][0]
    assert override["match"] == {"statusCodes": [{"type": "Value", "value": 429}]}
    assert override["source"] == "Local"
    response = override["response"]
    assert response["header"] == {"set": [{"name": "Retry-After", "value": "7"}]}
    assert json.loads(response["body"]["inline"]) == {
        "error": {"message": "busy", "type": "fleetscale_shed", "code": 429}
    }
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "fleetscale",
        "fleetscale.io/inferencepool": "llama",
    }
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "fleetscale.io/v1alpha1",
            "kind": "InferencePool",
            "name": "llama",
            "uid": "uid-llama",
            "controller": True,
        }
    ]


def test_a_route_rule_is_targeted_by_its_section_name() -> None:
    rule = GatewayTarget("EnvoyGateway", NS, "p", RouteTarget(ROUTE.group, ROUTE.kind, "r", "chat"))
    assert policy_body(OWNER, rule, ORDER)["spec"]["targetRefs"][0]["sectionName"] == "chat"


async def test_written_owned_then_patched_then_deleted(
    emulator: kmock.KubernetesEmulator, writer: EnvoyGatewayWriter
) -> None:
    await writer.write(OWNER, TARGET, ORDER)
    policy = stored(emulator)
    assert policy is not None
    assert policy["spec"]["faultInjection"]["abort"]["percentage"] == 35.0
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-llama"

    await writer.write(OWNER, TARGET, ORDER)  # the same order: read, nothing written
    assert len(emulator[kmock.method.PATCH]) == 0

    await writer.write(OWNER, TARGET, ShedOrder(0.6, 12, "busy", "MaxReplicas"))
    policy = stored(emulator)
    assert policy is not None
    assert policy["spec"]["faultInjection"]["abort"]["percentage"] == 60.0
    header = policy["spec"]["responseOverride"][0]["response"]["header"]["set"][0]
    assert header == {"name": "Retry-After", "value": "12"}
    assert len(emulator[kmock.method.POST]) == 1

    await writer.withdraw(OWNER, TARGET)
    assert stored(emulator) is None
    await writer.withdraw(OWNER, TARGET)  # already gone: nothing to do
    assert len(emulator[kmock.method.DELETE]) == 1


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({}, id="no-label-at-all"),
        pytest.param({"app.kubernetes.io/managed-by": "fleetscale"}, id="label-but-not-owned"),
    ],
)
async def test_a_policy_fleetscale_did_not_create_is_never_overwritten_nor_deleted(
    emulator: kmock.KubernetesEmulator, writer: EnvoyGatewayWriter, labels: dict[str, str]
) -> None:
    emulator.objects[BTP, NS, "llama-shed"] = foreign_policy(**labels)
    with pytest.raises(GatewayConflict, match="was not created by fleetscale"):
        await writer.write(OWNER, TARGET, ORDER)
    with pytest.raises(GatewayConflict):
        await writer.withdraw(OWNER, TARGET)
    assert stored(emulator) == foreign_policy(**labels)
    assert len(emulator[kmock.method.PATCH]) + len(emulator[kmock.method.DELETE]) == 0


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(GatewayTarget("EnvoyGateway", NS, "../kube-system/x", ROUTE), id="dot-dot"),
        pytest.param(GatewayTarget("EnvoyGateway", NS, "a/b", ROUTE), id="slash-in-policy"),
        pytest.param(GatewayTarget("EnvoyGateway", "../other", "p", ROUTE), id="bad-namespace"),
        pytest.param(
            GatewayTarget("EnvoyGateway", NS, "p", RouteTarget(ROUTE.group, ROUTE.kind, "../r")),
            id="dot-dot-route",
        ),
    ],
)
async def test_names_that_could_leave_the_namespace_are_refused_before_any_request(
    emulator: kmock.KubernetesEmulator, writer: EnvoyGatewayWriter, target: GatewayTarget
) -> None:
    with pytest.raises(GatewayError, match="is not a valid"):
        await writer.write(OWNER, target, ORDER)
    assert len(list(emulator)) == 0


async def test_api_errors_become_gateway_errors(
    emulator: kmock.KubernetesEmulator, writer: EnvoyGatewayWriter
) -> None:
    (
        emulator[
            f"get /apis/{BTP.rsplit('/', 1)[0]}/namespaces/{NS}/backendtrafficpolicies/llama-shed"
        ]
        << 403
    )
    with pytest.raises(GatewayError, match="HTTP 403"):
        await writer.write(OWNER, TARGET, ORDER)


def _spec(gateway: dict[str, Any]) -> dict[str, Any]:
    return {
        "targetRef": {"name": "vllm"},
        "replicas": {"max": 4},
        "metrics": {"queueDepth": {"query": "q"}},
        "shedLoad": {"gateway": gateway},
    }


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        pytest.param(
            {"envoyGateway": {"routeRef": {"name": "../other"}}},
            "should match pattern",
            id="dot-dot-route-name",
        ),
        pytest.param(
            {"envoyGateway": {"routeRef": {"name": "r", "namespace": "other"}}},
            "Extra inputs are not permitted",
            id="route-in-another-namespace",
        ),
        pytest.param(
            {"envoyGateway": {"routeRef": {"name": "r"}, "policyName": "Upper"}},
            "should match pattern",
            id="policy-name-not-dns",
        ),
        pytest.param(
            {"envoyGateway": {"routeRef": {"name": "r", "kind": "Service"}}},
            "'HTTPRoute' or 'GRPCRoute'",
            id="not-a-route",
        ),
    ],
)
def test_the_model_refuses_routes_outside_the_rules(gateway: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InferencePoolSpec.model_validate(_spec(gateway))


def test_target_of_names_the_policy_after_the_pool() -> None:
    spec = InferencePoolSpec.model_validate(
        _spec({"envoyGateway": {"routeRef": {"name": "llama-route", "sectionName": "chat"}}})
    )
    target = target_of(NS, "llama", spec.shed_load)
    assert target == GatewayTarget(
        "EnvoyGateway",
        NS,
        "llama-shed",
        RouteTarget("gateway.networking.k8s.io", "HTTPRoute", "llama-route", "chat"),
    )
    assert target_of(NS, "llama", InferencePoolSpec.model_validate(_spec({})).shed_load) is None


@pytest.mark.parametrize(
    "writer_class",
    [
        pytest.param(FakeGatewayWriter, id="fake"),
        pytest.param(EnvoyGatewayWriter, id="envoy-gateway"),
    ],
)
def test_every_writer_implements_the_protocol(writer_class: type) -> None:
    assert protocol_mismatches(writer_class, GatewayWriter) == []


async def test_the_fake_refuses_what_the_real_writer_refuses() -> None:
    fake = FakeGatewayWriter()
    fake.foreign(NS, "llama-shed")
    with pytest.raises(GatewayConflict):
        await fake.write(OWNER, TARGET, ORDER)
    with pytest.raises(GatewayError, match="DNS-1123"):
        await fake.write(OWNER, GatewayTarget("EnvoyGateway", NS, "../x", ROUTE), ORDER)
    await fake.withdraw(OWNER, GatewayTarget("EnvoyGateway", NS, "gone", None))
    assert [call.verb for call in fake.calls] == ["write", "write", "withdraw"]
