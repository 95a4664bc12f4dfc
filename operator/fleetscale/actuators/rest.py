"""JSON over the Kubernetes REST API for the actuators: ``fleetscale.kubeapi`` re-exported.

Role: the names the actuator modules use to touch ``kubernetes.client`` (``KubeJson``, the
retry policy, error wording), kept in one module so the actuators import one place.
Callers: ``kubernetes_scale``, ``events``, ``configmap``, ``secrets``.
"""

from __future__ import annotations

from fleetscale.kubeapi import (
    JSON,
    MERGE_PATCH,
    KubeJson,
    RetryPolicy,
    api_root,
    describe,
    is_transient,
    status_of,
    with_retries,
)

__all__ = [
    "JSON",
    "MERGE_PATCH",
    "KubeJson",
    "RetryPolicy",
    "api_root",
    "describe",
    "is_transient",
    "status_of",
    "with_retries",
]
