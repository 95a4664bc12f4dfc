"""What one AcceleratorPool tick needs from the outside world, and the identity of the pool.

Role: the ports of the AcceleratorPool controller: the cluster's Nodes and the pods on them
(``ClusterReader``), cordoning a Node before it is released (``NodeCordoner``), the demand of
the InferencePools that draw on the pool (``DemandSource``), the Namespaces' labels that
``spec.tenancy`` selects by (``NamespaceLabels``), the node-pool provider (built per pool from
its spec) and Events, gathered in ``AcceleratorPoolDependencies``. Real
implementations: ``cluster.KubernetesClusterReader``, ``cluster.KubernetesNodeCordoner``,
``demand.IndexedDemands`` (the operator's watch-fed index), ``nodepools.build_provider``; fakes:
``cluster.InMemoryCluster`` (reader and cordoner), ``demand.InMemoryDemands``,
``nodepools.fake.FakeNodePool``.
Callers: ``tick``, ``controller.handlers``, ``controller.wiring``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetscale.actuators.base import EventSink, InvolvedObject
from fleetscale.api.acceleratorpool import KIND, AcceleratorPoolSpec
from fleetscale.api.base import API_VERSION
from fleetscale.controller.acceleratorpools.tenancy import NamespaceLabels
from fleetscale.nodepools.base import NodePoolProvider
from fleetscale.planner.demand import InferencePoolDemand


@dataclass(frozen=True)
class AcceleratorPoolRef:
    """Identity of one AcceleratorPool object (cluster-scoped), as kopf hands it over."""

    name: str
    uid: str | None = None
    generation: int | None = None

    @property
    def involved(self) -> InvolvedObject:
        return InvolvedObject(API_VERSION, KIND, None, self.name, self.uid)


class ClusterReader(Protocol):
    """What the AcceleratorPool tick reads from the API server (as plain JSON)."""

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        """Nodes carrying every label in ``labels``."""
        ...

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        """Non-terminated pods scheduled on any of ``node_names`` (and no others)."""
        ...


class NodeCordoner(Protocol):
    """Marks a Node unschedulable while it is checked and released, and lifts that again."""

    async def cordon(self, node_name: str) -> None:
        """No new pod lands on the Node (spec.unschedulable, marked as fleetscale's)."""
        ...

    async def uncordon(self, node_name: str) -> None:
        """Lift fleetscale's cordon: the Node schedules pods again."""
        ...


class DemandSource(Protocol):
    """The demand of every InferencePool that draws on an AcceleratorPool."""

    async def demands_for(self, accelerator_pool: str) -> list[InferencePoolDemand]:
        """The demands of the InferencePools whose ``acceleratorPoolRef`` names the pool.
        Raises ``CacheStale`` when it cannot vouch for every one of them (the tick holds)."""
        ...


@dataclass
class AcceleratorPoolDependencies:
    """Everything an AcceleratorPool tick needs; fakes in tests, real adapters under kopf."""

    cluster: ClusterReader
    cordoner: NodeCordoner
    demands: DemandSource
    provider_for: Callable[[str, AcceleratorPoolSpec], NodePoolProvider]
    events: EventSink
    providers: dict[str, NodePoolProvider] = field(default_factory=dict)
    # The Namespaces' labels, for spec.tenancy.namespaceSelector (None: none known).
    namespaces: NamespaceLabels | None = None
    # The namespaces the operator watches (empty: all); claims from others are refused.
    watched_namespaces: tuple[str, ...] = ()

    def provider(self, name: str, spec: AcceleratorPoolSpec) -> NodePoolProvider:
        """One provider per pool and provider spec, built once (clients are reused)."""
        key = f"{name}:{spec.provider.model_dump_json()}"
        if key not in self.providers:
            self.providers[key] = self.provider_for(name, spec)
        return self.providers[key]
