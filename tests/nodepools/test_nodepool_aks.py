"""The AKS provider: the real azure-mgmt-containerservice client over recorded ARM answers.

A ``requests`` transport adapter answers the Azure Resource Manager calls from a small state
machine (what ARM returns for an agent pool), so the SDK's own serialization, URL building,
authentication policy and long-running-operation handling all run.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import requests.adapters
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.containerservice import ContainerServiceClient

from fleetscale.api.acceleratorpool import AksProvider
from fleetscale.nodepools.aks import AksNodePool
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    SHRINK_REFUSED,
    NodeRef,
    ProviderConflict,
    ProviderError,
)

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
POOL_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ml/providers/Microsoft.ContainerService"
    "/managedClusters/prod/agentPools/gpu"
)


class StaticToken:
    """A TokenCredential that hands out one token (no identity provider involved)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


@dataclass
class RecordedArm(requests.adapters.HTTPAdapter):
    """Answers ARM's agent pool endpoints and records every request."""

    count: int = 2
    machines: list[str] = field(
        default_factory=lambda: ["aks-gpu-12345-vmss000000", "aks-gpu-12345-vmss000001"]
    )
    autoscaling: bool = False
    exists: bool = True
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def _pool(self) -> dict[str, Any]:
        return {
            "id": POOL_PATH,
            "name": "gpu",
            "properties": {
                "count": self.count,
                "enableAutoScaling": self.autoscaling,
                "vmSize": "Standard_NC40ads_H100_v5",
                "provisioningState": "Succeeded",
            },
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = urlsplit(request.url or "").path
        body = json.loads(request.body) if request.body else None
        self.calls.append((request.method or "", path, body))
        status, payload = 404, {"error": {"code": "NotFound", "message": "not found"}}
        if path == POOL_PATH and self.exists:
            if request.method == "GET":
                status, payload = 200, self._pool()
            elif request.method == "PUT":
                self.count = body["properties"]["count"]
                status, payload = 200, self._pool()
        elif path == f"{POOL_PATH}/machines" and request.method == "GET":
            status, payload = (
                200,
                {
                    "value": [
                        {"id": f"{POOL_PATH}/machines/{m}", "name": m, "properties": {}}
                        for m in self.machines
                    ]
                },
            )
        elif path == f"{POOL_PATH}/deleteMachines" and request.method == "POST":
            self.count -= len(body["machineNames"])
            self.machines = [m for m in self.machines if m not in body["machineNames"]]
            status, payload = 202, None
        content = json.dumps(payload).encode() if payload is not None else b""
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(content),
            status=status,
            headers={"Content-Type": "application/json", "Content-Length": str(len(content))},
            preload_content=False,
        )
        return self.build_response(request, raw)


@pytest.fixture
def arm() -> RecordedArm:
    return RecordedArm()


@pytest.fixture
def provider(arm: RecordedArm) -> AksNodePool:
    session = requests.Session()
    session.mount("https://", arm)
    client = ContainerServiceClient(
        StaticToken(), SUBSCRIPTION, transport=RequestsTransport(session=session)
    )
    config = AksProvider(
        subscription_id=SUBSCRIPTION, resource_group="ml", cluster_name="prod", agent_pool="gpu"
    )
    return AksNodePool(config, client=client)


async def test_reads_and_sets_the_count(provider: AksNodePool, arm: RecordedArm) -> None:
    assert (await provider.current()).desired == 2
    await provider.set_desired(4)
    puts = [c for c in arm.calls if c[0] == "PUT"]
    assert len(puts) == 1
    assert puts[0][2]["properties"]["count"] == 4
    assert puts[0][2]["properties"]["vmSize"] == "Standard_NC40ads_H100_v5"  # the rest kept
    await provider.set_desired(4)
    assert len([c for c in arm.calls if c[0] == "PUT"]) == 1


async def test_release_deletes_exactly_those_machines(
    provider: AksNodePool, arm: RecordedArm
) -> None:
    released = await provider.release(
        [NodeRef("aks-gpu-12345-vmss000001"), NodeRef("aks-cpu-99999-vmss000000")]
    )
    assert released == ("aks-gpu-12345-vmss000001",)
    deletes = [c for c in arm.calls if c[1].endswith("/deleteMachines")]
    assert [c[2] for c in deletes] == [{"machineNames": ["aks-gpu-12345-vmss000001"]}]
    assert arm.count == 1


async def test_a_smaller_count_is_refused(provider: AksNodePool, arm: RecordedArm) -> None:
    """Writing a lower count lets AKS pick the machines to delete, busy or not."""
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(1)
    assert raised.value.reason == SHRINK_REFUSED
    assert [c for c in arm.calls if c[0] != "GET"] == []
    assert arm.count == 2


async def test_autoscaling_pool_is_a_conflict(provider: AksNodePool, arm: RecordedArm) -> None:
    arm.autoscaling = True
    with pytest.raises(ProviderConflict):
        await provider.set_desired(3)
    assert [c for c in arm.calls if c[0] != "GET"] == []


async def test_missing_agent_pool(provider: AksNodePool, arm: RecordedArm) -> None:
    arm.exists = False
    with pytest.raises(ProviderError) as raised:
        await provider.current()
    assert raised.value.reason == GROUP_NOT_FOUND
