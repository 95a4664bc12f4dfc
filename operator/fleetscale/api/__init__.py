"""Typed models of fleetscale's custom resources and the CRD generator built from them.

Plain data only: no Kubernetes client, no I/O. Everything else in the operator reads specs
through these models, so the API server's schema and the operator's validation agree.
"""

from fleetscale.api.base import API_VERSION, GROUP, VERSION, ApiModel, Condition
from fleetscale.api.inferencepool import InferencePool, InferencePoolSpec, InferencePoolStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApiModel",
    "Condition",
    "InferencePool",
    "InferencePoolSpec",
    "InferencePoolStatus",
]
