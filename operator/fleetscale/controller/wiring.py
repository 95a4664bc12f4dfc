"""Build the controllers' dependencies from the real adapters.

Role: the one place that names the production implementations behind the controllers' ports:
Prometheus through prometheus-api-client, the /scale subresource, Events, the shed-flag
ConfigMap, Envoy Gateway BackendTrafficPolicies and Secrets through the official kubernetes
client (one ``ApiClient`` shared by all of them), the node-pool providers, the watch-fed
indexes and caches (targets of the cached kinds and Nodes are read from memory), and the pure
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
from fleetscale.api.inferencepool import PLURAL
from fleetscale.controller.acceleratorpools import AcceleratorPoolDependencies
from fleetscale.controller.acceleratorpools.cluster import (
    CachedClusterReader,
    KubernetesClusterReader,
    KubernetesNodeCordoner,
)
from fleetscale.controller.acceleratorpools.demand import IndexedDemands
from fleetscale.controller.acceleratorpools.tenancy import IndexedNamespaces
from fleetscale.controller.allocations import IndexedAllocations
from fleetscale.controller.caches import CachedScaleActuator
from fleetscale.controller.indexes import Indexes
from fleetscale.controller.inferencepools import InferencePoolDependencies
from fleetscale.controller.inferencepools.conflicts import IndexedControllers
from fleetscale.controller.kube import KubernetesStatusWriter
from fleetscale.gateways.envoy_gateway import EnvoyGatewayWriter
from fleetscale.metrics import OperatorMetrics
from fleetscale.nodepools import build_provider
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.prometheus import PrometheusSignalSource


def kubernetes_dependencies(
    api_client: kubernetes.client.ApiClient,
    settings: Settings,
    metrics: OperatorMetrics,
    indexes: Indexes,
) -> InferencePoolDependencies:
    """InferencePool dependencies talking to the cluster and to real Prometheus; targets of
    the cached kinds are read from the watch-fed caches when the runtime keeps them."""
    scaler = KubernetesScaleActuator(api_client)
    return InferencePoolDependencies(
        signals=PrometheusSignalSource(),
        scaler=scaler if indexes.caches is None else CachedScaleActuator(scaler, indexes.caches),
        events=KubernetesEventSink(api_client),
        shed_publisher=ConfigMapShedFlagPublisher(api_client),
        secrets=KubernetesSecretReader(api_client),
        settings=settings,
        metrics=metrics,
        plan=plan,
        allocations=IndexedAllocations(indexes.allocations),
        status_writer=KubernetesStatusWriter(api_client, PLURAL),
        controllers=IndexedControllers(indexes.pools_by_target, indexes.hpas_by_target),
        gateway=EnvoyGatewayWriter(api_client),
    )


def kubernetes_accelerator_pool_dependencies(
    api_client: kubernetes.client.ApiClient,
    inference_pools: InferencePoolDependencies,
    indexes: Indexes,
) -> AcceleratorPoolDependencies:
    """AcceleratorPool dependencies: the cluster's Nodes (from the node cache when the runtime
    keeps one) and pods, cordons, the demand index, the Namespaces' labels and the watched
    namespaces (spec.tenancy), the providers, and the same Event sink as the InferencePools."""
    caches = indexes.caches
    return AcceleratorPoolDependencies(
        cluster=(
            KubernetesClusterReader(api_client)
            if caches is None
            else CachedClusterReader(api_client, caches)
        ),
        cordoner=KubernetesNodeCordoner(api_client),
        demands=IndexedDemands(indexes.demands),
        provider_for=lambda name, spec: build_provider(name, spec, api_client),
        events=inference_pools.events,
        namespaces=IndexedNamespaces(indexes.namespaces),
        watched_namespaces=inference_pools.settings.namespaces,
    )
