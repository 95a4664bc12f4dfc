"""Build the controller's dependencies from the real adapters.

Role: the one place that names the production implementations behind reconcile's ports:
Prometheus through prometheus-api-client, the /scale subresource, Events, the shed-flag
ConfigMap and Secrets through the official kubernetes client (one ``ApiClient`` shared by
all of them), and the pure planner. Callers: ``fleetscale run`` and the integration tests
(both hand ``kubernetes_dependencies`` to ``controller.handlers``).
"""

from __future__ import annotations

import kubernetes.client

from fleetscale.actuators.configmap import ConfigMapShedFlagPublisher
from fleetscale.actuators.events import KubernetesEventSink
from fleetscale.actuators.kubernetes_scale import KubernetesScaleActuator
from fleetscale.actuators.secrets import KubernetesSecretReader
from fleetscale.controller.acceleratorpools import (
    AcceleratorPoolCapacity,
    KubernetesClusterReader,
)
from fleetscale.controller.reconcile import Dependencies
from fleetscale.metrics import OperatorMetrics
from fleetscale.planner import plan
from fleetscale.settings import Settings
from fleetscale.signals.prometheus import PrometheusSignalSource


def kubernetes_dependencies(
    api_client: kubernetes.client.ApiClient, settings: Settings, metrics: OperatorMetrics
) -> Dependencies:
    """Dependencies talking to the cluster ``api_client`` points at and to real Prometheus."""
    return Dependencies(
        signals=PrometheusSignalSource(),
        scaler=KubernetesScaleActuator(api_client),
        events=KubernetesEventSink(api_client),
        shed_publisher=ConfigMapShedFlagPublisher(api_client),
        secrets=KubernetesSecretReader(api_client),
        settings=settings,
        metrics=metrics,
        plan=plan,
        capacity=AcceleratorPoolCapacity(KubernetesClusterReader(api_client)),
    )
