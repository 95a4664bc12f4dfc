"""The in-memory provider's contract, and the factory that picks a provider from the spec."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from fleetscale.nodepools import build_provider
from fleetscale.nodepools.aks import AksNodePool
from fleetscale.nodepools.base import (
    OUT_OF_BOUNDS,
    PROVIDER_FAILED,
    SHRINK_REFUSED,
    NodePoolProvider,
    NodeRef,
    ProviderConflict,
    ProviderError,
    labels_match,
    selector_string,
)
from fleetscale.nodepools.clusterapi import ClusterApiNodePool
from fleetscale.nodepools.eks import EksNodePool
from fleetscale.nodepools.fake import FakeNodePool
from fleetscale.nodepools.gke import GkeNodePool
from fleetscale.nodepools.kwok import KwokNodePool
from fleetscale.nodepools.placeholder import PlaceholderNodePool
from support.protocols import protocol_mismatches

from .conftest import pool_spec


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(FakeNodePool, id="fake"),
        pytest.param(KwokNodePool, id="kwok"),
        pytest.param(ClusterApiNodePool, id="capi"),
        pytest.param(PlaceholderNodePool, id="placeholder"),
        pytest.param(EksNodePool, id="eks"),
        pytest.param(GkeNodePool, id="gke"),
        pytest.param(AksNodePool, id="aks"),
    ],
)
def test_every_provider_implements_the_protocol(provider: type) -> None:
    assert protocol_mismatches(provider, NodePoolProvider) == []


async def test_fake_records_calls_and_writes_only_changes() -> None:
    pool = FakeNodePool(desired=3, strangers={"x"})
    assert await pool.release([NodeRef("a"), NodeRef("x")]) == ("a",)
    await pool.set_desired(2)
    await pool.set_desired(4)
    assert (await pool.current()).desired == 4
    assert pool.calls == [
        ("release", ("a", "x")),
        ("set_desired", 2),
        ("set_desired", 4),
        ("current",),
    ]
    assert pool.writes == 2
    assert pool.released == ["a"]


async def test_fake_refuses_to_shrink_by_size() -> None:
    pool = FakeNodePool(desired=3)
    with pytest.raises(ProviderError) as raised:
        await pool.set_desired(2)
    assert raised.value.reason == SHRINK_REFUSED
    assert (pool.desired, pool.writes) == (3, 0)


async def test_fake_injects_failures_and_conflicts() -> None:
    pool = FakeNodePool(desired=1, max_size=3)
    pool.fail_with("throttled", times=1)
    with pytest.raises(ProviderError) as raised:
        await pool.set_desired(2)
    assert raised.value.reason == PROVIDER_FAILED
    await pool.set_desired(2)
    with pytest.raises(ProviderError) as raised:
        await pool.set_desired(4)
    assert raised.value.reason == OUT_OF_BOUNDS
    pool.conflict = "Cluster Autoscaler owns it"
    with pytest.raises(ProviderConflict):
        await pool.current()
    assert pool.desired == 2


@pytest.mark.parametrize(
    ("provider", "kind"),
    [
        pytest.param({"kwok": {}}, "kwok", id="kwok"),
        pytest.param(
            {"clusterAPI": {"machineDeployment": "md", "namespace": "capi"}},
            "clusterAPI",
            id="capi",
        ),
        pytest.param({"placeholder": {}}, "placeholder", id="placeholder"),
        pytest.param(
            {"eks": {"clusterName": "c", "nodegroupName": "g", "region": "us-east-1"}},
            "eks",
            id="eks",
        ),
        pytest.param(
            {
                "aks": {
                    "subscriptionId": "s",
                    "resourceGroup": "r",
                    "clusterName": "c",
                    "agentPool": "p",
                }
            },
            "aks",
            id="aks",
        ),
    ],
)
def test_factory_builds_the_named_provider(provider: dict[str, Any], kind: str) -> None:
    built = build_provider("h100", pool_spec(provider), kubernetes.client.ApiClient())
    assert built.kind == kind
    assert pool_spec(provider).provider.kind == kind


def test_selectors() -> None:
    assert selector_string({"b": "2", "a": "1"}) == "a=1,b=2"
    assert labels_match({"a": "1", "b": "2"}, {"a": "1"})
    assert not labels_match({"a": "1"}, {"a": "1", "b": "2"})
    assert not labels_match(None, {"a": "1"})
