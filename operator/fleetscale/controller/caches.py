"""The operator's watch-fed caches: the pools' scale targets, the GPU nodes, and the indexes.

Role: ``ClusterCaches`` holds one reflector (``caches.Reflector``) per cached collection,
started the first time a tick needs it: apps/v1 Deployments and StatefulSets (every
namespace, or one reflector per watched namespace), each reduced at once to the
``ScaleStatus`` a tick reads (``target_status``: what their ``/scale`` mirrors, readiness and
the pod template's accelerators; ``actuators.workloads`` derives them), and Nodes, reduced to
the fields the AcceleratorPool tick reads (``node_view``). ``CachedScaleActuator`` answers
``ScaleActuator.read`` from the cache for those kinds and through the API (``/scale``) for
any other kind; writes always go through the API (``/scale`` with optimistic concurrency).

It also keeps the indexes the two kinds meet through (``indexes``): for each indexed
``Resource`` (InferencePools, HorizontalPodAutoscalers, AcceleratorPools, Namespaces), one
reflector per scope whose view of an object is what each index function registered for it
(``index``, before the first read) makes of it, kept by key (``WatchedIndex``). A lookup
waits for the first complete list of every scope, so no tick ever reads a part of one.

A cache that cannot vouch for its contents raises ``CacheStale``, on which a tick holds.
Callers: ``controller.runtime`` (builds it), ``controller.wiring``, the AcceleratorPool
cluster reader.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fleetscale.actuators import workloads
from fleetscale.actuators.base import ScaleActuator, ScaleStatus, ScaleTargetRef
from fleetscale.caches import CacheStale, CacheTiming, Collection, Reflector, WatchClient

# Kinds read from a cache, by (apiVersion, kind): their collection's plural.
CACHED_KINDS: Mapping[tuple[str, str], str] = {
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
}
Json = Mapping[str, Any]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
# What one object contributes to one index, by key (kopf's index handlers' shape); None or
# empty: nothing.
IndexFunction = Callable[[Json], Mapping[K, V] | None]
# An object's entries in every index of its resource, by index name.
Entries = dict[str, Mapping[Hashable, Any]]


@dataclass(frozen=True)
class Resource:
    """A collection the operator indexes: ``v1`` or ``group/version``, its plural, and
    whether it is namespaced (then watched in the watched namespaces only)."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str = "") -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{root}{f'/namespaces/{namespace}' if namespace else ''}/{self.plural}"


@dataclass
class _Indexed:
    """One indexed resource: its index functions, and its reflectors once started."""

    functions: dict[str, IndexFunction[Any, Any]] = field(default_factory=dict)
    reflectors: list[Reflector[Entries]] | None = None

    def entries(self, obj: Json) -> Entries | None:
        found: Entries = {
            name: dict(function(obj) or {}) for name, function in self.functions.items()
        }
        return found if any(found.values()) else None  # an object in no index is not kept


def target_status(workload: Json) -> ScaleStatus:
    """What a read of an apps/v1 workload's ``/scale`` and the object itself would give."""
    scale = workloads.scale_of_apps_workload(workload)
    return ScaleStatus(
        spec_replicas=int(scale["spec"]["replicas"] or 0),
        status_replicas=int(scale["status"]["replicas"] or 0),
        # apps/v1 kinds omit readyReplicas at zero (never None for them).
        ready_replicas=workloads.ready_replicas_from_status(workload) or 0,
        selector=scale["status"]["selector"] or None,
        accelerators_per_replica=workloads.accelerators_per_replica(workload),
    )


def node_view(node: Json) -> dict[str, Any]:
    """A Node with only what the AcceleratorPool tick reads (its labels and annotations, its
    cordon and provider ID, its accelerators and Ready condition): a Node's image list and
    heartbeat fields are most of its size."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    return {
        "metadata": {
            key: metadata[key]
            for key in ("name", "labels", "annotations", "creationTimestamp")
            if key in metadata
        },
        "spec": {key: spec[key] for key in ("unschedulable", "providerID") if key in spec},
        "status": {
            "allocatable": dict(status.get("allocatable") or {}),
            "conditions": [c for c in status.get("conditions") or [] if c.get("type") == "Ready"],
        },
    }


class ClusterCaches:
    """The reflectors of the cached collections, each started on first use."""

    def __init__(
        self,
        client: WatchClient,
        namespaces: tuple[str, ...] = (),
        *,
        timing: CacheTiming | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.timing = timing or CacheTiming()
        self._monotonic = monotonic
        self._targets: dict[tuple[str, str], Reflector[ScaleStatus]] = {}
        self._nodes: Reflector[dict[str, Any]] | None = None
        self._indexed: dict[Resource, _Indexed] = {}

    def target_cache(
        self, namespace: str, api_version: str, kind: str
    ) -> Reflector[ScaleStatus] | None:
        """The cache holding this kind in this namespace; None when it is not cached (read
        it through the API)."""
        plural = CACHED_KINDS.get((api_version, kind))
        if plural is None or (self.namespaces and namespace not in self.namespaces):
            return None
        scope = namespace if self.namespaces else ""
        key = (scope, plural)
        cache = self._targets.get(key)
        if cache is None:
            where = f"/namespaces/{scope}" if scope else ""
            collection = Collection(f"/apis/{api_version}{where}/{plural}")
            cache = self._targets[key] = self._start(collection, target_status)
        return cache

    def node_cache(self) -> Reflector[dict[str, Any]]:
        """Every Node of the cluster, as ``node_view``."""
        if self._nodes is None:
            self._nodes = self._start(Collection("/api/v1/nodes"), node_view)
        return self._nodes

    def index(
        self, resource: Resource, name: str, function: IndexFunction[K, V]
    ) -> WatchedIndex[K, V]:
        """Keep the index ``name`` of ``resource``: what ``function`` makes of each object,
        by key. Every index of a resource is registered before the first read of any."""
        indexed = self._indexed.setdefault(resource, _Indexed())
        if indexed.reflectors is not None:
            raise RuntimeError(f"{resource.path()} is watched already: index {name} comes late")
        indexed.functions[name] = function
        return WatchedIndex(self, resource, name)

    def indexed(self, resource: Resource) -> list[Reflector[Entries]]:
        """The reflectors of an indexed resource, one per scope, started on first use."""
        indexed = self._indexed[resource]
        if indexed.reflectors is None:
            scopes = self.namespaces if resource.namespaced and self.namespaces else ("",)
            indexers = {name: _keys_of(name) for name in indexed.functions}
            indexed.reflectors = [
                self._start(Collection(resource.path(scope)), indexed.entries, indexers)
                for scope in scopes
            ]
        return indexed.reflectors

    def _start(
        self,
        collection: Collection,
        transform: Callable[[Json], Any],
        indexers: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> Reflector[Any]:
        reflector: Reflector[Any] = Reflector(
            self.client,
            collection,
            transform,
            timing=self.timing,
            monotonic=self._monotonic,
            indexers=indexers,
        )
        reflector.start()
        return reflector

    def reflectors(self) -> list[Reflector[Any]]:
        indexed = [r for i in self._indexed.values() for r in i.reflectors or ()]
        return [
            *self._targets.values(),
            *([self._nodes] if self._nodes is not None else []),
            *indexed,
        ]

    async def stop(self) -> None:
        for reflector in self.reflectors():
            await reflector.stop()
        await self.client.close()


async def synced(cache: Reflector[Any], timing: CacheTiming) -> None:
    """Wait for a cache's first list (the operator just started); CacheStale if it does not
    come within the cache's bound."""
    if not await cache.wait_synced(timing.stale_after_seconds):
        problem = cache.problem() or f"the watch of {cache.collection} has not listed it yet"
        raise CacheStale(problem, cache.detail())


def _keys_of(name: str) -> Callable[[Entries], Any]:
    def keys(entries: Entries) -> Any:
        return entries.get(name, {}).keys()

    return keys


class WatchedIndex(Generic[K, V]):
    """One index of a resource (``ClusterCaches.index``): ``lookup`` waits for the first
    complete list of every scope (bounded: then ``CacheStale``), and raises ``CacheStale``
    while any scope cannot vouch for its contents."""

    def __init__(self, caches: ClusterCaches, resource: Resource, name: str) -> None:
        self._caches = caches
        self.resource = resource
        self.name = name

    async def lookup(self, key: K) -> list[V]:
        reflectors = self._caches.indexed(self.resource)
        for reflector in reflectors:
            await synced(reflector, self._caches.timing)
        return [
            entries[self.name][key]
            for reflector in reflectors
            for entries in reflector.by_index(self.name, key)
        ]


class CachedScaleActuator:
    """``ScaleActuator`` reading cached kinds from ``ClusterCaches``, the rest through
    ``inner`` (the ``/scale`` subresource); every write goes through ``inner``."""

    def __init__(self, inner: ScaleActuator, caches: ClusterCaches) -> None:
        self._inner = inner
        self._caches = caches

    async def read(self, target: ScaleTargetRef) -> ScaleStatus:
        cache = self._caches.target_cache(target.namespace, target.api_version, target.kind)
        if cache is None:
            return await self._inner.read(target)
        await synced(cache, self._caches.timing)
        cached = cache.get((target.namespace, target.name))
        if cached is None:
            # Not (yet) in the cache: created a moment ago, or gone. The API server knows.
            return await self._inner.read(target)
        return cached

    async def set_replicas(self, target: ScaleTargetRef, replicas: int) -> ScaleStatus:
        return await self._inner.set_replicas(target, replicas)
