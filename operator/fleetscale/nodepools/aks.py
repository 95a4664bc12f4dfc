"""The AKS provider: size an Azure Kubernetes Service agent pool (extra ``aks``).

Role: read the agent pool's ``count`` (``AgentPools.get``), set it by writing the pool back
with the new count (``begin_create_or_update``; the long-running operation is started, not
waited for), and remove chosen empty nodes with ``begin_delete_machines``, which deletes those
very machines and lowers the count, so a shrink never picks a busy node. The SDK is
synchronous: calls run in a worker thread. Credentials: ``DefaultAzureCredential`` (workload
identity in a cluster). Caller: the AcceleratorPool controller.

Contract (see ``base``): an agent pool with ``enableAutoScaling`` raises ``ProviderConflict``
(AKS's own cluster autoscaler owns it). On AKS a Node's name is its machine name, so
``prefer_removal`` passes Node names as machine names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fleetscale.api.acceleratorpool import AksProvider
from fleetscale.nodepools.base import (
    GROUP_NOT_FOUND,
    PROVIDER_FAILED,
    PROVIDER_UNAVAILABLE,
    NodeGroupSize,
    NodeRef,
    ProviderConflict,
    ProviderError,
)

T = TypeVar("T")


class AksNodePool:
    """Scales one AKS agent pool."""

    kind = "aks"

    def __init__(self, config: AksProvider, client: Any = None) -> None:
        """``client``: an ``azure.mgmt.containerservice.ContainerServiceClient`` (default: one
        with ``DefaultAzureCredential`` for ``config.subscription_id``)."""
        if client is None:
            try:
                from azure.identity import DefaultAzureCredential
                from azure.mgmt.containerservice import ContainerServiceClient
            except ImportError as error:
                raise ProviderError(
                    PROVIDER_UNAVAILABLE, "the aks provider needs `pip install fleetscale[aks]`"
                ) from error
            client = ContainerServiceClient(DefaultAzureCredential(), config.subscription_id)
        self._pools = client.agent_pools
        self._config = config

    def __str__(self) -> str:
        c = self._config
        return f"AKS agent pool {c.resource_group}/{c.cluster_name}/{c.agent_pool}"

    async def _call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as error:
            status = getattr(error, "status_code", None)
            reason = GROUP_NOT_FOUND if status == 404 else PROVIDER_FAILED
            message = getattr(error, "message", None) or str(error)
            raise ProviderError(reason, f"{what}: {message}") from error

    async def _agent_pool(self) -> Any:
        c = self._config
        pool = await self._call(
            f"read {self}", self._pools.get, c.resource_group, c.cluster_name, c.agent_pool
        )
        if getattr(pool, "enable_auto_scaling", False):
            raise ProviderConflict(
                f"{self} has enableAutoScaling, so AKS's cluster autoscaler sizes it; disable "
                "it, or use the placeholder provider"
            )
        return pool

    async def current(self) -> NodeGroupSize:
        pool = await self._agent_pool()
        return NodeGroupSize(desired=int(pool.count or 0))

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        pool = await self._agent_pool()
        if int(pool.count or 0) == nodes:
            return
        pool.count = nodes
        c = self._config
        await self._call(
            f"resize {self} to {nodes}",
            self._pools.begin_create_or_update,
            c.resource_group,
            c.cluster_name,
            c.agent_pool,
            pool,
            polling=False,  # accepted is enough: Nodes are observed as they register
        )

    async def prefer_removal(self, nodes: Sequence[NodeRef]) -> None:
        if not nodes:
            return
        await self._agent_pool()
        c = self._config
        await self._call(
            f"delete machines {', '.join(n.name for n in nodes)} of {self}",
            self._pools.begin_delete_machines,
            c.resource_group,
            c.cluster_name,
            c.agent_pool,
            {"machineNames": [n.name for n in nodes]},
            polling=False,
        )
