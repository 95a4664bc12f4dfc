"""Shared building blocks of the fleetscale custom resources.

Role: the base model every CRD model inherits (camelCase wire names, strict unknown-field
handling, descriptions kept for ``kubectl explain``) and the small types that several resources
reuse (object references, conditions). Callers: the resource modules beside this one, the CRD
generator, the controller (to parse and render), the planner (to read specs).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "fleetscale.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# The names the API server accepts, as it checks them (k8s.io/apimachinery validation). Every
# field that names a Kubernetes object uses the form its kind requires, so a name that could be
# read as a path ("../other-namespace/...", "a/b", "%2e%2e") or that only looks like a name
# (unicode look-alikes) is rejected by the CRD schema and by the models alike. The patterns are
# anchored and ASCII-only; they mean the same to pydantic, to Python's ``re.fullmatch`` and to
# the API server's Go regular expressions.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL_PATTERN = rf"^{_LABEL}$"
"""RFC 1123 label: namespaces, most resource names (max 63)."""
DNS_SUBDOMAIN_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
"""RFC 1123 subdomain: Deployments, StatefulSets, ConfigMaps, Secrets, custom objects (max 253)."""
DATA_KEY_PATTERN = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$"
"""A key of a ConfigMap's or Secret's data: letters, digits, '-', '_' and '.', never "." nor
starting with ".." (max 253)."""
API_VERSION_PATTERN = rf"^({_LABEL}(\.{_LABEL})*/)?{_LABEL}$"
"""An apiVersion: "v1", or a group (a subdomain) and a version, "apps/v1"."""
KIND_PATTERN = r"^[A-Za-z][A-Za-z0-9]*$"
"""A kind: "Deployment", "LeaderWorkerSet"."""

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253

DnsLabelName = Annotated[
    str, Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)
]
"""The name of an object whose kind requires a DNS-1123 label (a Namespace)."""
DnsSubdomainName = Annotated[
    str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
]
"""The name of an object whose kind requires a DNS-1123 subdomain."""
DataKey = Annotated[
    str,
    Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DATA_KEY_PATTERN),
]
"""A key of a ConfigMap's or Secret's data."""


def is_dns_label(value: str) -> bool:
    """Whether ``value`` is a valid DNS-1123 label (a namespace name)."""
    return len(value) <= DNS_LABEL_MAX and re.fullmatch(DNS_LABEL_PATTERN, value) is not None


def is_dns_subdomain(value: str) -> bool:
    """Whether ``value`` is a valid DNS-1123 subdomain (most object names)."""
    return (
        len(value) <= DNS_SUBDOMAIN_MAX and re.fullmatch(DNS_SUBDOMAIN_PATTERN, value) is not None
    )


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

    name: DnsSubdomainName
    """Name of the Secret (a DNS-1123 subdomain)."""
    key: DataKey
    """Key inside the Secret's data (letters, digits, '-', '_' and '.')."""


class LocalObjectRef(ApiModel):
    """A reference to a cluster-scoped or same-namespace object by name."""

    name: DnsSubdomainName
    """Name of the referenced object (a DNS-1123 subdomain)."""


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
