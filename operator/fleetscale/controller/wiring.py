"""Build the controllers' dependencies from the real adapters.

Role: the one place that names the production implementations behind the controllers' ports:
Prometheus through prometheus-api-client, the /scale subresource, Events, the shed-flag
ConfigMap, Envoy Gateway BackendTrafficPolicies and Secrets through the official kubernetes
client (one ``ApiClient`` shared by all of them), the node-pool providers, the watch-fed
indexes and caches (targets of the cached kinds and Nodes are read from memory; the indexes
the two kinds meet through are registered here, on the collections below), and the pure
planner.
Callers: ``fleetscale run`` and the integration tests (both hand these factories to
``controller.handlers``).
"""

from __future__ import annotations

import kubernetes.client

from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.actuators.events import KubernetesEventSink
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.secrets import KubernetesSecretReader
from fleetscale.api import acceleratorpool as apool
from fleetscale.api.base import GROUP, VERSION
from fleetscale.api.inferencepool import PLURAL
from fleetscale.controller.acceleratorpools import AcceleratorPoolDependencies
from fleetscale.controller.acceleratorpools.cluster import (
    CachedClusterReader,
    KubernetesNodeCordoner,
)
from fleetscale.controller.acceleratorpools.demand import IndexedDemands, demand_index_entry
from fleetscale.controller.acceleratorpools.tenancy import IndexedNamespaces, namespace_index_entry
from fleetscale.controller.allocations import IndexedAllocations, allocations_by_name
from fleetscale.controller.caches import CachedScaleActuator, ClusterCaches, Resource
from fleetscale.controller.indexes import (
    ALLOCATIONS_INDEX,
    DEMAND_INDEX,
    HPAS_BY_TARGET_INDEX,
    NAMESPACE_LABELS_INDEX,
    POOLS_BY_TARGET_INDEX,
)
from fleetscale.controller.inferencepools import InferencePoolDependencies
from fleetscale.controller.inferencepools.conflicts import (
    IndexedControllers,
    hpa_entry,
    pool_entry,
)
from fleetscale.controller.kube import KubernetesStatusWriter
from fleetscale.gateways.envoy_gateway import EnvoyGatewayWriter
from fleetscale.metrics import OperatorMetrics
from fleetscale.nodepools import build_provider
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.prometheus import PrometheusSignalSource

# The collections the indexes are kept from (namespaced ones in the watched namespaces only).
INFERENCE_POOLS = Resource(f"{GROUP}/{VERSION}", PLURAL)
ACCELERATOR_POOLS = Resource(f"{GROUP}/{VERSION}", apool.PLURAL, namespaced=False)
HORIZONTAL_POD_AUTOSCALERS = Resource("autoscaling/v2", "horizontalpodautoscalers")
NAMESPACES = Resource("v1", "namespaces", namespaced=False)


def kubernetes_dependencies(
    api_client: kubernetes.client.ApiClient,
    settings: Settings,
    metrics: OperatorMetrics,
    caches: ClusterCaches,
) -> InferencePoolDependencies:
    """InferencePool dependencies talking to the cluster and to real Prometheus; targets of
    the cached kinds, the AcceleratorPools' allocations and the other controllers of each
    workload are read from the watch-fed caches."""
    scaler = KubernetesScaleActuator(api_client)
    allocations = caches.index(ACCELERATOR_POOLS, ALLOCATIONS_INDEX, allocations_by_name)
    pools = caches.index(INFERENCE_POOLS, POOLS_BY_TARGET_INDEX, pool_entry)
    hpas = caches.index(HORIZONTAL_POD_AUTOSCALERS, HPAS_BY_TARGET_INDEX, hpa_entry)
    return InferencePoolDependencies(
        signals=PrometheusSignalSource(),
        scaler=CachedScaleActuator(scaler, caches),
        events=KubernetesEventSink(api_client),
        shed_publisher=ConfigMapShedFlagPublisher(api_client),
        secrets=KubernetesSecretReader(api_client),
        settings=settings,
        metrics=metrics,
        plan=plan,
        allocations=IndexedAllocations(allocations),
        status_writer=KubernetesStatusWriter(api_client, PLURAL),
        controllers=IndexedControllers(pools, hpas),
        gateway=EnvoyGatewayWriter(api_client),
    )


def kubernetes_accelerator_pool_dependencies(
    api_client: kubernetes.client.ApiClient,
    inference_pools: InferencePoolDependencies,
    caches: ClusterCaches,
) -> AcceleratorPoolDependencies:
    """AcceleratorPool dependencies: the cluster's Nodes (from the node cache) and pods,
    cordons, the demand index, the Namespaces' labels and the watched namespaces
    (spec.tenancy), the providers, and the same Event sink as the InferencePools."""
    demands = caches.index(INFERENCE_POOLS, DEMAND_INDEX, demand_index_entry)
    namespaces = caches.index(NAMESPACES, NAMESPACE_LABELS_INDEX, namespace_index_entry)
    return AcceleratorPoolDependencies(
        cluster=CachedClusterReader(api_client, caches),
        cordoner=KubernetesNodeCordoner(api_client),
        demands=IndexedDemands(demands),
        provider_for=lambda name, spec: build_provider(name, spec, api_client),
        events=inference_pools.events,
        namespaces=IndexedNamespaces(namespaces),
        watched_namespaces=inference_pools.settings.namespaces,
    )
