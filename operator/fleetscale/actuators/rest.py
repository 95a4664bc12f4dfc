"""JSON over the Kubernetes REST API for the actuators: ``fleetscale.kubeapi`` re-exported.

Role: the names the actuator modules use to touch ``kubernetes.client`` (``KubeJson``, the
retry policy, error wording, and ``resource_path``, the one way a path is built from names),
kept in one module so the actuators import one place.
Callers: ``kubernetes_scale``, ``events``, ``configmap``, ``secrets``.
"""

from __future__ import annotations

from fleetscale.kubeapi import (
    JSON,
    MERGE_PATCH,
    InvalidName,
    KubeJson,
    RetryPolicy,
    api_root,
    check_names,
    describe,
    is_transient,
    resource_path,
    status_of,
    with_retries,
)

__all__ = [
    "JSON",
    "MERGE_PATCH",
    "InvalidName",
    "KubeJson",
    "RetryPolicy",
    "api_root",
    "check_names",
    "describe",
    "is_transient",
    "resource_path",
    "status_of",
    "with_retries",
]
