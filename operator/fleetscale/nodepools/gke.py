"""The GKE provider: size a Google Kubernetes Engine node pool (extra ``gke``).

Role: a GKE node pool is one managed instance group (MIG) per zone. The provider reads the
pool with the Container API (``ClusterManagerClient.get_node_pool``), reads each MIG's
``targetSize`` through the Compute API to know the pool's size, resizes with
``set_node_pool_size``, and removes chosen empty nodes with the MIG's ``deleteInstances`` (which
also lowers its target size), as Cluster Autoscaler does on GKE, so a shrink never picks a busy
node. All calls are synchronous SDK/HTTP calls run in a worker thread, with Application Default
Credentials (Workload Identity in a cluster). Caller: the AcceleratorPool controller.

Contract (see ``base``): a node pool with GKE's own autoscaling enabled raises
``ProviderConflict``. GKE sizes a pool per zone: ``set_desired(n)`` asks for ``ceil(n / zones)``
nodes in each zone, so a multi-zone pool holds a multiple of its zone count (the planner sees
the real count as Nodes register). ``prefer_removal`` needs the Node's providerID
(``gce://<project>/<zone>/<instance>``); Nodes without one, or in a zone the pool does not
use, are skipped.
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


def mig_zone(instance_group_url: str) -> str:
    """The zone of a MIG URL (``.../zones/<zone>/instanceGroupManagers/<name>``)."""
    parts = instance_group_url.rstrip("/").split("/")
    return parts[parts.index("zones") + 1] if "zones" in parts else ""


class GkeNodePool:
    """Scales one GKE node pool."""

    kind = "gke"

    def __init__(self, config: GkeProvider, client: Any = None, session: Any = None) -> None:
        """``client``: a ``container_v1.ClusterManagerClient``; ``session``: an authorized
        ``requests`` session for the Compute API. Both default to Application Default
        Credentials."""
        if client is None or session is None:
            try:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession
                from google.cloud import container_v1
            except ImportError as error:
                raise ProviderError(
                    PROVIDER_UNAVAILABLE, "the gke provider needs `pip install fleetscale[gke]`"
                ) from error
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            client = client or container_v1.ClusterManagerClient(credentials=credentials)
            session = session or AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        self._client = client
        self._session = session
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

    def _get_json(self, url: str) -> Any:
        response = self._session.get(url, timeout=10)
        response.raise_for_status()
        return response.json()

    def _post_json(self, url: str, body: Any) -> Any:
        response = self._session.post(url, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    async def _target_sizes(self, pool: Any) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for url in pool.instance_group_urls:
            group = await self._call(f"read instance group {url}", self._get_json, url)
            sizes[url] = int(group.get("targetSize", 0))
        return sizes

    async def current(self) -> NodeGroupSize:
        pool = await self._node_pool()
        return NodeGroupSize(desired=sum((await self._target_sizes(pool)).values()))

    async def set_desired(self, nodes: int) -> None:
        if nodes < 0:
            raise ProviderError("InvalidSize", f"cannot hold {nodes} nodes")
        pool = await self._node_pool()
        zones = max(1, len(pool.instance_group_urls))
        per_zone = math.ceil(nodes / zones)
        sizes = await self._target_sizes(pool)
        if sizes and all(size == per_zone for size in sizes.values()):
            return
        await self._call(
            f"resize {self} to {per_zone} node(s) per zone",
            self._client.set_node_pool_size,
            request={"name": self._name, "node_count": per_zone},
        )

    async def prefer_removal(self, nodes: Sequence[NodeRef]) -> None:
        targets = [t for t in (gce_instance(ref.provider_id) for ref in nodes) if t]
        if not targets:
            return
        pool = await self._node_pool()
        by_zone = {mig_zone(url): url for url in pool.instance_group_urls}
        for zone in sorted({zone for zone, _ in targets}):
            url = by_zone.get(zone)
            if url is None:
                continue
            instances = [f"zones/{zone}/instances/{name}" for z, name in targets if z == zone]
            await self._call(
                f"delete instances {', '.join(instances)} of {url}",
                self._post_json,
                f"{url}/deleteInstances",
                {"instances": instances, "skipInstancesOnValidationError": True},
            )
