"""The Kubernetes Lease store against an emulated API server that keeps resourceVersions:
two electors over the same Lease, through the real client code."""

from __future__ import annotations

import kmock
import pytest
from kubernetes.client import ApiClient

from fleetscale.election import LeaderElector, Timing
from fleetscale.election.lease import LeaseRecord
from fleetscale.election.store import KubernetesLeaseStore, LeaseConflict
from support.kube_emulator import LeaseEmulation

NS, NAME = "fleetscale-system", "fleetscale"
TIMING = Timing(15, 10, 2)


@pytest.fixture
def leases(kmock: kmock.KubernetesEmulator) -> LeaseEmulation:
    return LeaseEmulation(kmock)


def store(api_client: ApiClient) -> KubernetesLeaseStore:
    return KubernetesLeaseStore(api_client, NS, NAME, request_timeout_seconds=2)


async def test_create_get_update_and_conflicts(
    leases: LeaseEmulation, api_client: ApiClient
) -> None:
    lease = store(api_client)
    assert await lease.get() is None
    created = await lease.create(LeaseRecord("a", 15, 1.0, 1.0))
    assert created.holder == "a"
    assert created.resource_version is not None
    with pytest.raises(LeaseConflict):
        await lease.create(LeaseRecord("b", 15, 1.0, 1.0))
    renewed = await lease.update(LeaseRecord("a", 15, 1.0, 3.0, 0, created.resource_version))
    assert renewed.renew_time == 3.0
    with pytest.raises(LeaseConflict):  # written with what was read before the renewal
        await lease.update(LeaseRecord("b", 15, 1.0, 4.0, 1, created.resource_version))
    assert leases.holder(NS, NAME) == "a"


async def test_two_electors_over_the_api_elect_one(
    leases: LeaseEmulation, api_client: ApiClient
) -> None:
    a = LeaderElector(store(api_client), "a", TIMING)
    b = LeaderElector(store(api_client), "b", TIMING)
    assert [await a.try_once(), await b.try_once(), await a.try_once(), await b.try_once()] == [
        True,
        False,
        True,
        False,
    ]
    assert leases.holder(NS, NAME) == "a"
    await a.release()
    assert leases.holder(NS, NAME) is None
    assert await b.try_once()
    assert leases.holder(NS, NAME) == "b"
