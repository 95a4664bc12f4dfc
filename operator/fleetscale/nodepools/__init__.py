"""Node-pool providers: read and set the size of a group of accelerator nodes.

One provider per module behind one narrow protocol (``base.NodePoolProvider``), each with its
contract written in its module docstring, and an in-memory fake (``fake.FakeNodePool``).
Cloud providers import their SDK lazily, so only the extra a cluster uses must be installed.
Caller: the controller's AcceleratorPool reconcile (``build_provider``).
"""

from __future__ import annotations

from typing import Any

from fleetscale.api.acceleratorpool import AcceleratorPoolSpec
from fleetscale.nodepools.base import NodePoolProvider


def build_provider(pool_name: str, spec: AcceleratorPoolSpec, api_client: Any) -> NodePoolProvider:
    """The provider ``spec.provider`` names; ``api_client`` is a ``kubernetes.client.ApiClient``
    (used by kwok, clusterAPI and placeholder). Raises ProviderError(ProviderUnavailable) when
    a cloud provider's extra is not installed."""
    provider = spec.provider
    if provider.kwok is not None:
        from fleetscale.nodepools.kwok import KwokNodePool

        return KwokNodePool(api_client, pool_name, spec)
    if provider.cluster_api is not None:
        from fleetscale.nodepools.clusterapi import ClusterApiNodePool

        return ClusterApiNodePool(api_client, provider.cluster_api)
    if provider.placeholder is not None:
        from fleetscale.nodepools.placeholder import PlaceholderNodePool

        return PlaceholderNodePool(api_client, pool_name, spec)
    if provider.eks is not None:
        from fleetscale.nodepools.eks import EksNodePool

        return EksNodePool(provider.eks)
    if provider.gke is not None:
        from fleetscale.nodepools.gke import GkeNodePool

        return GkeNodePool(provider.gke)
    if provider.aks is not None:
        from fleetscale.nodepools.aks import AksNodePool

        return AksNodePool(provider.aks)
    raise AssertionError("unreachable: the spec validates that exactly one provider is set")
