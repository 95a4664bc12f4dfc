"""The kwok provider against kmock's emulated API server."""

from __future__ import annotations

import kmock
import kubernetes.client
import pytest

from fleetscale.nodepools.base import PROVIDER_FAILED, SHRINK_REFUSED, NodeRef, ProviderError
from fleetscale.nodepools.kwok import KwokNodePool

from .conftest import live, pool_spec


@pytest.fixture
def provider(
    api_client: kubernetes.client.ApiClient, kmock: kmock.KubernetesEmulator
) -> KwokNodePool:
    kmock.resources["v1/nodes"].kind = "Node"
    spec = pool_spec({"kwok": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}})
    return KwokNodePool(api_client, "h100", spec)


async def test_grows_with_fake_gpu_nodes(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(2)
    nodes = live(kmock, "v1/nodes")
    assert sorted(nodes) == ["h100-0", "h100-1"]
    node = nodes["h100-0"]
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["example.com/gpu"] == "h100"
    assert node["metadata"]["labels"]["fleetscale.io/accelerator-pool"] == "h100"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert [t["key"] for t in node["spec"]["taints"]] == ["kwok.x-k8s.io/node", "gpu"]
    size = await provider.current()
    assert (size.desired, size.current) == (2, 2)


async def test_same_size_writes_nothing(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(2)
    writes = len(kmock["post"]) + len(kmock["delete"])
    await provider.set_desired(2)
    assert len(kmock["post"]) + len(kmock["delete"]) == writes


async def test_release_deletes_exactly_the_named_nodes(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    await provider.set_desired(3)
    released = await provider.release([NodeRef("h100-1"), NodeRef("not-ours")])
    assert released == ("h100-1",)
    assert sorted(live(kmock, "v1/nodes")) == ["h100-0", "h100-2"]
    assert [str(r.url.path) for r in kmock["delete"]] == ["/api/v1/nodes/h100-1"]
    assert (await provider.current()).desired == 2
    # The freed name is reused first when growing again.
    await provider.set_desired(3)
    assert sorted(live(kmock, "v1/nodes")) == ["h100-0", "h100-1", "h100-2"]


async def test_a_smaller_size_is_refused_and_deletes_nothing(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    """Resizing down would pick the victims (the newest Nodes), busy or not."""
    await provider.set_desired(3)
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(1)
    assert raised.value.reason == SHRINK_REFUSED
    assert sorted(live(kmock, "v1/nodes")) == ["h100-0", "h100-1", "h100-2"]
    assert len(kmock["delete"]) == 0


async def test_other_nodes_are_not_counted(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock.objects["v1/nodes", None, "cpu-0"] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "cpu-0", "labels": {"kubernetes.io/os": "linux"}},
    }
    await provider.set_desired(1)
    assert (await provider.current()).desired == 1
    assert await provider.release([NodeRef("h100-0"), NodeRef("cpu-0")]) == ("h100-0",)
    assert sorted(live(kmock, "v1/nodes")) == ["cpu-0"]
    assert kmock["get"][0].params["labelSelector"] == (
        "app.kubernetes.io/managed-by=fleetscale,fleetscale.io/accelerator-pool=h100"
    )


async def test_api_failure_is_a_provider_error(
    provider: KwokNodePool, kmock: kmock.KubernetesEmulator
) -> None:
    kmock["post /api/v1/nodes"] << 403
    with pytest.raises(ProviderError) as raised:
        await provider.set_desired(1)
    assert raised.value.reason == PROVIDER_FAILED
    assert "create Node h100-0: HTTP 403" in raised.value.message
