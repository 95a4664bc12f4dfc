"""The contract every node-pool provider implements, and the values that cross it.

Role: one narrow interface between the AcceleratorPool controller, which decides (through the
pure ``planner.capacity``), and the backends that add and remove nodes. The controller hands a
provider plain commands: read the size, grow it, release these named empty nodes.
Callers: ``controller.acceleratorpools``; implemented by ``kwok``, ``clusterapi``,
``placeholder``, ``eks``, ``gke``, ``aks`` and the in-memory ``fake``.

The contract, for every provider:

- ``current()`` reads the backend's own view of the group's size. Never changes anything.
- ``set_desired(n)`` grows the group to ``n`` nodes. Idempotent: the size it already holds
  changes nothing and sends no write. It returns once the backend accepted the request, not once
  nodes exist: nodes appear (and turn Ready) later, and the controller observes them as Node
  objects. A size below the group's raises ``ProviderError(ShrinkRefused)`` and writes nothing:
  a resize down lets the backend pick which nodes go, and it may pick a busy one.
- ``release(nodes)`` is the only way a group shrinks: it removes exactly the named nodes and
  lowers the group's size by as many, through the backend's instance-level call (kwok deletes
  those Node objects; Cluster API marks those Machines and scales down by their count; EKS
  terminates those instances with a decrement; GKE deletes those instances from their managed
  instance group; AKS deletes those machines; the placeholder provider frees the placeholders
  on those nodes and leaves their removal to the cluster's autoscaler). It answers the names it
  removed; a node it cannot name in the group (not a member, no cloud identity) is left alone
  and not in the answer, and no other node is ever removed in its place. The caller has
  cordoned each node and checked it is empty right before: a provider does not check pods.
- Every failure raises ``ProviderError`` (or its subclass ``ProviderConflict``) with a CamelCase
  reason and a message a human can act on. Nothing is retried silently forever: transient errors
  are retried a few times inside the call, then raised; the controller reports the error in the
  ProviderError condition and tries again on its next tick.
- ``ProviderConflict`` means another autoscaler owns the group (Cluster Autoscaler's node-group
  annotations, a cloud's own autoscaling switched on). fleetscale then refuses to act at all:
  two controllers writing one size fight, and nodes flap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# Reasons (CamelCase) carried by ProviderError.
PROVIDER_CONFLICT = "ProviderConflict"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"  # the extra (SDK) is not installed
PROVIDER_FAILED = "ProviderFailed"  # the backend refused or kept failing
GROUP_NOT_FOUND = "NodeGroupNotFound"
OUT_OF_BOUNDS = "OutsideNodeGroupBounds"  # the backend's own min/max does not allow the size
SHRINK_REFUSED = "ShrinkRefused"  # set_desired below the size: only ``release`` shrinks

# Labels and annotations fleetscale puts on objects it creates or marks.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "fleetscale"
POOL_LABEL = "fleetscale.io/accelerator-pool"


class ProviderError(Exception):
    """A provider could not do what it was asked; ``reason`` is CamelCase."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProviderConflict(ProviderError):  # noqa: N818  (the name is the condition reason)
    """Another autoscaler owns the node group; fleetscale refuses to touch it."""

    def __init__(self, message: str) -> None:
        super().__init__(PROVIDER_CONFLICT, message)


@dataclass(frozen=True)
class NodeGroupSize:
    """The size of a node group as its backend reports it."""

    desired: int | None  # what the backend was asked to hold; None when it cannot say
    current: int | None = None  # nodes/instances that exist now, when the backend knows


@dataclass(frozen=True)
class NodeRef:
    """A Node as providers need to name it: the Node name and its cloud identity."""

    name: str
    provider_id: str = ""  # Node.spec.providerID: aws:///zone/i-..., azure:///..., gce://...


class NodePoolProvider(Protocol):
    """Reads and grows one group of accelerator nodes, and releases named nodes from it
    (see the module contract)."""

    @property
    def kind(self) -> str:
        """The spec.provider key: kwok, clusterAPI, placeholder, eks, gke or aks."""
        ...

    async def current(self) -> NodeGroupSize:
        """The group's size. Raises ProviderError."""
        ...

    async def set_desired(self, nodes: int) -> None:
        """Grow the group to ``nodes`` nodes (idempotent; never shrinks). Raises
        ProviderError (ShrinkRefused below the group's size)."""
        ...

    async def release(self, nodes: Sequence[NodeRef]) -> tuple[str, ...]:
        """Remove exactly these nodes, lowering the size by as many; the names removed.
        Raises ProviderError."""
        ...


def shrink_refused(group: object, size: int, asked: int) -> ProviderError:
    """The error of a ``set_desired`` below the group's size."""
    return ProviderError(
        SHRINK_REFUSED,
        f"{group} holds {size} node(s) and was asked for {asked}: a group shrinks only by "
        "releasing named empty nodes, never by a resize that lets the backend pick",
    )


def selector_string(labels: Mapping[str, str]) -> str:
    """A label selector (``k=v,k2=v2``) that matches every label in ``labels``."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def labels_match(labels: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    """True when ``labels`` carries every key/value of ``wanted``."""
    have = labels or {}
    return all(have.get(key) == value for key, value in wanted.items())
