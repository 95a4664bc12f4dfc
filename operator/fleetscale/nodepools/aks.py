"""The AKS provider: size an Azure Kubernetes Service agent pool (extra ``aks``).

Role: read the agent pool's ``count`` (``AgentPools.get``), grow it by writing the pool back
with the new count (``begin_create_or_update``; the long-running operation is started, not
waited for), and release chosen empty nodes with ``begin_delete_machines``, which deletes those
very machines and lowers the count, so a shrink never picks a busy node. The SDK is
synchronous: calls run in a worker thread. Credentials: ``DefaultAzureCredential`` (workload
identity in a cluster). Caller: the AcceleratorPool controller.

Contract (see ``base``): an agent pool with ``enableAutoScaling`` raises ``ProviderConflict``
(AKS's own cluster autoscaler owns it); a count below the pool's is refused. On AKS a Node's
name is its machine name: ``release`` deletes the named Nodes that are machines of the agent
pool (``Machines.list``) and leaves any other Node alone.
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
    shrink_refused,
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
        self._machines = client.machines
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
        size = int(pool.count or 0)
        if size == nodes:
            return
        if nodes < size:
            raise shrink_refused(self, size, nodes)
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

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        if not nodes:
            return ()
        await self._agent_pool()
        c = self._config
        machines = await self._call(
            f"list machines of {self}",
            lambda: {
                m.name for m in self._machines.list(c.resource_group, c.cluster_name, c.agent_pool)
            },
        )
        names = [n.name for n in nodes if n.name in machines]
        if not names:
            return ()
        await self._call(
            f"delete machines {', '.join(names)} of {self}",
            self._pools.begin_delete_machines,
            c.resource_group,
            c.cluster_name,
            c.agent_pool,
            {"machineNames": names},
            polling=False,
        )
        return tuple(names)
