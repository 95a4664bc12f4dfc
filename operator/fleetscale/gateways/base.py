"""The contract of a gateway writer, and the values that cross it.

Role: a gateway writer turns the shed decision of one InferencePool (the flag, the share of
requests to refuse, Retry-After, the message of a refused request) into the gateway's own
policy object, and withdraws it when the pool stops shedding. Backends live in the sibling
modules, one per gateway (``envoy_gateway``); an in-memory fake in ``fake``. Caller: the
InferencePool tick's execute step.

Ownership: a writer writes only objects in the pool's namespace that it created and marked
(label ``app.kubernetes.io/managed-by: fleetscale`` and an ownerReference to the pool). An
object of that name without both marks belongs to someone else: ``GatewayConflict``, and
nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetscale.api.base import is_dns_label, is_dns_subdomain

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "fleetscale"
POOL_LABEL = "fleetscale.io/inferencepool"


@dataclass(frozen=True)
class Owner:
    """The InferencePool that owns a policy (its ownerReference)."""

    api_version: str
    kind: str
    name: str
    uid: str | None


@dataclass(frozen=True)
class RouteTarget:
    """The Gateway API route (or one of its rules) whose requests are shed."""

    group: str
    kind: str
    name: str
    section_name: str | None = None

    def __str__(self) -> str:
        rule = f" rule {self.section_name}" if self.section_name else ""
        return f"{self.kind} {self.name}{rule}"


@dataclass(frozen=True)
class GatewayTarget:
    """Where one pool's decision is written: the policy object and what it applies to."""

    writer: str  # the backend's kind, e.g. "EnvoyGateway"
    namespace: str
    policy_name: str
    route: RouteTarget | None  # None: only known by name (to withdraw what status recorded)

    @property
    def key(self) -> str:
        """``<writer>/<policy name>``, as status records where the decision was written."""
        return f"{self.writer}/{self.policy_name}"

    @classmethod
    def recorded(cls, namespace: str, key: str) -> GatewayTarget | None:
        """The target a status' ``<writer>/<policy name>`` names; None when it names none."""
        writer, _, name = key.partition("/")
        return cls(writer, namespace, name, None) if writer and name else None


@dataclass(frozen=True)
class ShedOrder:
    """The shed decision as a gateway enforces it."""

    fraction: float  # share of requests to answer 429, 0 < fraction <= 1
    retry_after_seconds: int  # the Retry-After header
    message: str  # the JSON body's error message
    reason: str  # why (CamelCase), written as an annotation


class GatewayError(Exception):
    """The gateway object could not be written or withdrawn (API failure after retries, or an
    invalid name)."""


class GatewayConflict(GatewayError):  # noqa: N818  (reads as what happened)
    """An object of that name exists and fleetscale did not create it for this pool."""


class GatewayWriter(Protocol):
    """Writes one pool's shed decision into a gateway's own policy object."""

    @property
    def kind(self) -> str:
        """The backend, as ``GatewayTarget.writer`` names it."""
        ...

    async def write(self, owner: Owner, target: GatewayTarget, order: ShedOrder) -> None:
        """Create or update the policy so the gateway refuses ``order.fraction`` of the
        target's requests with 429, Retry-After and the message. Raises GatewayConflict for an
        object fleetscale does not own, GatewayError otherwise."""
        ...

    async def withdraw(self, owner: Owner, target: GatewayTarget) -> None:
        """Remove the policy this pool wrote (nothing to do when it is gone). Raises
        GatewayConflict (and leaves it) for an object fleetscale does not own, GatewayError
        otherwise."""
        ...


def check_name(what: str, name: str, *, label: bool = False) -> str:
    """``name`` when it is a valid DNS-1123 subdomain (label); GatewayError otherwise. Every
    name a writer puts in a request or a map is checked again, whatever the model checked."""
    if not (is_dns_label(name) if label else is_dns_subdomain(name)):
        kind = "label" if label else "subdomain"
        raise GatewayError(f"{what} {name!r} is not a valid DNS-1123 {kind}")
    return name
