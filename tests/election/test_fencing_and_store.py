"""Every write of every adapter passes the fence; the Lease's wire format round-trips."""

from __future__ import annotations

import kmock
import pytest
from kubernetes.client import ApiClient, CoreV1Api

from fleetscale.actuators.base import ActuatorError, InvolvedObject, ShedFlag
from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.election.lease import LeaseRecord
from fleetscale.election.store import lease_body, record_of
from fleetscale.kubeapi import FencedApiClient, KubeJson, NotLeader, RetryPolicy
from support.kube_emulator import declare

NS = "serving"
OWNER = InvolvedObject("fleetscale.io/v1alpha1", "InferencePool", NS, "llama", "uid-1")


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    declare(kmock, "v1/configmaps", "ConfigMap")
    declare(kmock, "v1/nodes", "Node", namespaced=False)
    return kmock


class Leadership:
    def __init__(self) -> None:
        self.leading = True

    def __call__(self) -> bool:
        return self.leading


@pytest.fixture
def leadership() -> Leadership:
    return Leadership()


@pytest.fixture
def fenced(api_client: ApiClient, leadership: Leadership) -> FencedApiClient:
    return FencedApiClient(api_client.configuration, may_write=leadership)


async def test_a_replica_that_does_not_lead_sends_no_write(
    emulator: kmock.KubernetesEmulator, fenced: FencedApiClient, leadership: Leadership
) -> None:
    api = KubeJson(fenced, RetryPolicy(attempts=1))
    leadership.leading = False
    with pytest.raises(NotLeader, match="POST /api/v1/namespaces/serving/configmaps refused"):
        await api.request(
            "POST", f"/api/v1/namespaces/{NS}/configmaps", body={"metadata": {"name": "x"}}
        )
    # The generated per-kind APIs (the node-pool providers use them) go through the same door.
    with pytest.raises(NotLeader):
        CoreV1Api(fenced).create_node({"metadata": {"name": "gpu-0"}})
    # Reads are never fenced: a standby keeps its view warm.
    await api.request("GET", f"/api/v1/namespaces/{NS}/configmaps")
    assert [str(r.method).upper().rsplit(".", 1)[-1] for r in emulator] == ["GET"]


async def test_an_adapter_write_fails_cleanly_while_fenced_and_works_when_leading(
    emulator: kmock.KubernetesEmulator, fenced: FencedApiClient, leadership: Leadership
) -> None:
    publisher = ConfigMapShedFlagPublisher(fenced)
    flag = ShedFlag(active=True, reason="MaxNodes", since=None, retry_after_seconds=30)
    leadership.leading = False
    with pytest.raises((ActuatorError, NotLeader)):
        await publisher.publish(OWNER, "llama-shed", flag)
    assert [key for key in list(emulator.objects) if key[0] == "v1/configmaps"] == []
    leadership.leading = True
    await publisher.publish(OWNER, "llama-shed", flag)
    assert emulator.objects["v1/configmaps", NS, "llama-shed"]["data"]["active"] == "true"


def test_a_lease_round_trips_through_its_wire_form() -> None:
    record = LeaseRecord("fleetscale-7d9-abc", 15, 1_800_000_000.25, 1_800_000_012.5, 3, "42")
    body = lease_body("fleetscale-system", "fleetscale", record)
    assert body["spec"]["renewTime"] == "2027-01-15T08:00:12.500000Z"
    assert body["metadata"]["resourceVersion"] == "42"
    assert record_of(body) == record
    released = LeaseRecord(None, 1, None, None, 3, "43")
    assert record_of(lease_body("ns", "fleetscale", released)) == released
