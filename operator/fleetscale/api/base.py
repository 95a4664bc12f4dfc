"""Shared building blocks of the fleetscale custom resources.

Role: the base model every CRD model inherits (camelCase wire names, strict unknown-field
handling, descriptions kept for ``kubectl explain``) and the small types that several resources
reuse (object references, conditions). Callers: the resource modules beside this one, the CRD
generator, the controller (to parse and render), the planner (to read specs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "fleetscale.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python.

    Unknown fields are rejected so a typo in a manifest is an error, not a silent default.
    The API server prunes unknown fields anyway; this guards objects built by hand or by tests.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    # CEL rules (x-kubernetes-validations) for this object; read by the CRD generator.
    cel_rules: ClassVar[tuple[tuple[str, str], ...]] = ()

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, JSON types, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeyRef(ApiModel):
    """A key of a Secret in the InferencePool's own namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253)
    """Key inside the Secret's data."""


class LocalObjectRef(ApiModel):
    """A reference to a cluster-scoped or same-namespace object by name."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the referenced object."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316)
    """Condition type, e.g. Ready, MetricsAvailable, ScalingLimited, ShedLoad."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(min_length=1, max_length=1024)
    """CamelCase reason, the same word used in Events and logs."""
    message: str = Field(default="", max_length=32768)
    """Human-readable explanation: what changed, from what, to what, why."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation this condition was computed from."""
