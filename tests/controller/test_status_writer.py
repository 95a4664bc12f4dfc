"""KubernetesStatusWriter against kmock's emulator: merge patches of /status, retries, gone.

Both kinds write through it: namespaced InferencePools and cluster-scoped AcceleratorPools.
"""

from __future__ import annotations

import kmock
import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from fleetscale.controller.kube import KubernetesStatusWriter
from fleetscale.controller.loop import ObjectGone
from fleetscale.kubeapi import RetryPolicy
from support.kube_emulator import declare

NS = "serving"
RESOURCE = "fleetscale.io/v1alpha1/inferencepools"
APOOLS = "fleetscale.io/v1alpha1/acceleratorpools"
FAST_RETRY = RetryPolicy(attempts=3, first_backoff_seconds=0.01, request_timeout_seconds=5)


@pytest.fixture
def emulator(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    declare(kmock, RESOURCE, "InferencePool", subresources=["status"])
    kmock.objects[RESOURCE, NS, "llama"] = {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": NS},
        "spec": {},
        "status": {"replicas": 2},
    }
    declare(kmock, APOOLS, "AcceleratorPool", namespaced=False, subresources=["status"])
    kmock.objects[APOOLS, None, "h100"] = {
        "apiVersion": "fleetscale.io/v1alpha1",
        "kind": "AcceleratorPool",
        "metadata": {"name": "h100"},
        "spec": {},
        "status": {"nodes": 1},
    }
    return kmock


@pytest.fixture
def writer(api_client: ApiClient) -> KubernetesStatusWriter:
    return KubernetesStatusWriter(api_client, "inferencepools", FAST_RETRY)


async def test_a_throttled_write_is_retried(
    emulator: kmock.KubernetesEmulator, writer: KubernetesStatusWriter
) -> None:
    # Thousands of pools starting at once meet the API server's fairness limits (429).
    throttled = kmock.KubernetesError(status=429, reason="TooManyRequests", message="later")
    emulator[kmock.method.PATCH][:2] << throttled
    await writer.patch_status(NS, "llama", {"desiredReplicas": 4})
    assert len(emulator[kmock.method.PATCH]) == 3
    assert emulator.objects[RESOURCE, NS, "llama"]["status"]["desiredReplicas"] == 4


async def test_a_refused_write_is_raised_at_once(
    emulator: kmock.KubernetesEmulator, writer: KubernetesStatusWriter
) -> None:
    emulator[kmock.method.PATCH] << kmock.KubernetesError(
        status=422, reason="Invalid", message="status.replicas: must be >= 0"
    )
    with pytest.raises(ApiException):
        await writer.patch_status(NS, "llama", {"replicas": -1})
    assert len(emulator[kmock.method.PATCH]) == 1


async def test_a_deleted_pool_is_reported_as_gone(writer: KubernetesStatusWriter) -> None:
    with pytest.raises(ObjectGone, match="serving/nope no longer exists"):
        await writer.patch_status(NS, "nope", {"replicas": 1})


async def test_an_accelerator_pools_throttled_write_is_retried(
    emulator: kmock.KubernetesEmulator, api_client: ApiClient
) -> None:
    writer = KubernetesStatusWriter(api_client, "acceleratorpools", FAST_RETRY)
    throttled = kmock.KubernetesError(status=429, reason="TooManyRequests", message="later")
    emulator[kmock.method.PATCH][:1] << throttled
    await writer.patch_status(None, "h100", {"desiredNodes": 3})
    assert len(emulator[kmock.method.PATCH]) == 2
    assert emulator.objects[APOOLS, None, "h100"]["status"]["desiredNodes"] == 3
