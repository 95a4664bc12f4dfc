"""The GKE provider: size a Google Kubernetes Engine node pool (extra ``gke``).

Role: a GKE node pool is one managed instance group (MIG) per zone. The provider reads the
pool with the Container API (``ClusterManagerClient.get_node_pool``), reads each MIG's
``targetSize`` with the Compute API (``InstanceGroupManagersClient.get``) to know the pool's
size, grows it with ``set_node_pool_size``, and releases chosen empty nodes with the MIG's
``deleteInstances`` (``InstanceGroupManagersClient.delete_instances``, which also lowers its
target size), as Cluster Autoscaler does on GKE, so a shrink never picks a busy node. The SDK
calls are synchronous and run in a worker thread, with Application Default Credentials (Workload
Identity in a cluster). Caller: the AcceleratorPool controller.

Contract (see ``base``): a node pool with GKE's own autoscaling enabled raises
``ProviderConflict``. GKE sizes a pool per zone: ``set_desired(n)`` asks each zone for
``ceil(n / zones)`` nodes, and never for fewer than a zone already holds (so a multi-zone pool
holds a multiple of its zone count, and a resize never shrinks a zone); a size below the pool's
is refused. ``release`` needs the Node's providerID (``gce://<project>/<zone>/<instance>``) and
deletes each instance from its zone's MIG without skipping validation, so an instance that is
not a member fails the call instead of being ignored; Nodes without a providerID, or in a zone
the pool does not use, are left alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fleetscale.api.acceleratorpool import GkeProvider
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

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def gce_instance(provider_id: str) -> tuple[str, str] | None:
    """``gce://proj/us-central1-a/gke-x-1`` -> ``("us-central1-a", "gke-x-1")``."""
    if not provider_id.startswith("gce://"):
        return None
    parts = provider_id[len("gce://") :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[1], parts[2]


def mig_parts(instance_group_url: str) -> tuple[str, str, str] | None:
    """``.../projects/<p>/zones/<z>/instanceGroupManagers/<name>`` -> ``(p, z, name)``."""
    parts = instance_group_url.rstrip("/").split("/")
    try:
        at = parts.index("projects")
    except ValueError:
        return None
    tail = parts[at:]
    if len(tail) != 6 or tail[2] != "zones" or tail[4] != "instanceGroupManagers":
        return None
    return tail[1], tail[3], tail[5]


class GkeNodePool:
    """Scales one GKE node pool."""

    kind = "gke"

    def __init__(
        self, config: GkeProvider, client: Any = None, instance_groups: Any = None
    ) -> None:
        """``client``: a ``container_v1.ClusterManagerClient``; ``instance_groups``: a
        ``compute_v1.InstanceGroupManagersClient``. Both default to Application Default
        Credentials."""
        if client is None or instance_groups is None:
            try:
                import google.auth
                from google.cloud import compute_v1, container_v1
            except ImportError as error:
                raise ProviderError(
                    PROVIDER_UNAVAILABLE, "the gke provider needs `pip install fleetscale[gke]`"
                ) from error
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            client = client or container_v1.ClusterManagerClient(credentials=credentials)
            instance_groups = instance_groups or compute_v1.InstanceGroupManagersClient(
                credentials=credentials
            )
        self._client = client
        self._migs = instance_groups
        self._name = (
            f"projects/{config.project}/locations/{config.location}/clusters/{config.cluster}"
            f"/nodePools/{config.node_pool}"
        )

    def __str__(self) -> str:
        return f"GKE node pool {self._name}"

    async def _call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ProviderError:
            raise
        except Exception as error:
            status = getattr(error, "code", None) or getattr(
                getattr(error, "response", None), "status_code", None
            )
            reason = GROUP_NOT_FOUND if status == 404 else PROVIDER_FAILED
            raise ProviderError(reason, f"{what}: {error}") from error

    async def _node_pool(self) -> Any:
        pool = await self._call(f"read {self}", self._client.get_node_pool, name=self._name)
        autoscaling = getattr(pool, "autoscaling", None)
        if autoscaling is not None and autoscaling.enabled:
            raise ProviderConflict(
                f"{self} has GKE autoscaling enabled, so GKE's cluster autoscaler sizes it; "
                "disable it, or use the placeholder provider"
            )
        return pool

    def _migs_by_zone(self, pool: Any) -> dict[str, tuple[str, str, str]]:
        """The pool's MIGs, by zone, as (project, zone, name)."""
        found = (mig_parts(url) for url in pool.instance_group_urls)
        return {mig[1]: mig for mig in found if mig is not None}

    async def _target_sizes(self, pool: Any) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for project, zone, name in self._migs_by_zone(pool).values():
            group = await self._call(
                f"read instance group {project}/{zone}/{name}",
                self._migs.get,
                project=project,
                zone=zone,
                instance_group_manager=name,
            )
            sizes[zone] = int(group.target_size or 0)
        return sizes

    async def current(self) -> NodeGroupSize:
        pool = await self._node_pool()
        return NodeGroupSize(desired=sum((await self._target_sizes(pool)).values()))

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        pool = await self._node_pool()
        sizes = await self._target_sizes(pool)
        if nodes < sum(sizes.values()):
            raise shrink_refused(self, sum(sizes.values()), nodes)
        zones = max(1, len(pool.instance_group_urls))
        # The size is set per zone: never below what a zone holds, or GKE picks who goes.
        per_zone = max(math.ceil(nodes / zones), *sizes.values(), 0)
        if sizes and all(size == per_zone for size in sizes.values()):
            return
        await self._call(
            f"resize {self} to {per_zone} node(s) per zone",
            self._client.set_node_pool_size,
            request={"name": self._name, "node_count": per_zone},
        )

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        targets = {ref.name: t for ref in nodes if (t := gce_instance(ref.provider_id))}
        if not targets:
            return ()
        migs = self._migs_by_zone(await self._node_pool())
        removed: list[str] = []
        for node_name, (zone, instance) in targets.items():
            mig = migs.get(zone)
            if mig is None:
                continue  # a zone this pool does not use: not one of its instances
            project, _, name = mig
            await self._call(
                f"delete instance {zone}/{instance} of {self}",
                self._migs.delete_instances,
                project=project,
                zone=zone,
                instance_group_manager=name,
                instance_group_managers_delete_instances_request_resource={
                    "instances": [f"zones/{zone}/instances/{instance}"],
                    "skip_instances_on_validation_error": False,
                },
            )
            removed.append(node_name)
        return tuple(removed)
