"""JSON over the Kubernetes REST API for the actuators: ``fleetscale.kubeapi`` re-exported.

Role: the names the actuator modules use to touch ``kubernetes.client`` (``KubeJson``, the
retry policy, error wording, ``resource_path``, the one way a path is built from names, and
``controller_reference``),
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
    controller_reference,
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
    "controller_reference",
    "describe",
    "is_transient",
    "resource_path",
    "status_of",
    "with_retries",
]
