"""The contracts of the Kubernetes-side adapters, and the values that cross them.

Role: read and set the size of any workload with a ``/scale`` subresource (``ScaleActuator``),
post Events (``EventSink``), publish the shed-load flag as a ConfigMap
(``ShedFlagPublisher``) and read Secret keys (``SecretReader``). Real implementations live in
the sibling modules, one concern each, built on the official ``kubernetes`` client; in-memory
fakes live in ``actuators.fake``. Caller: the controller's reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from fleetscale.api.inferencepool import TargetRef

EventType = Literal["Normal", "Warning"]

# Extended resource names that count as accelerators in a pod template's limits or requests.
ACCELERATOR_RESOURCE_NAMES: tuple[str, ...] = (
    "nvidia.com/gpu",
    "amd.com/gpu",
    "google.com/tpu",
    "aws.amazon.com/neuron",
    "aws.amazon.com/neurondevice",
    "aws.amazon.com/neuroncore",
    "gpu.intel.com/i915",
    "gpu.intel.com/xe",
    "habana.ai/gaudi",
)


@dataclass(frozen=True)
class ScaleTargetRef:
    """A namespaced workload that serves the ``/scale`` subresource."""

    namespace: str
    api_version: str  # "apps/v1", "leaderworkerset.x-k8s.io/v1", ...
    kind: str
    name: str

    @classmethod
    def of(cls, namespace: str, target: TargetRef) -> ScaleTargetRef:
        """The workload an InferencePool in ``namespace`` names in ``spec.targetRef``."""
        return cls(
            namespace=namespace,
            api_version=target.api_version,
            kind=target.kind,
            name=target.name,
        )

    def __str__(self) -> str:
        return f"{self.kind}.{self.api_version} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class ScaleStatus:
    """The size of a workload as its ``/scale`` subresource and its pods report it."""

    spec_replicas: int  # desired, as last set
    status_replicas: int  # existing, as the workload's controller counts them
    ready_replicas: int  # status.readyReplicas, else Ready pods matching the selector
    selector: str | None  # the label selector of the /scale status, when the kind has one
    accelerators_per_replica: int | None  # from the pod template's limits/requests, if known


class TargetNotFound(Exception):  # noqa: N818  (the name is the contract, like kopf's errors)
    """The target's kind is not served by the API server, or the object does not exist."""


class ActuatorError(Exception):
    """Any other API failure that persisted after retries."""


class ConfigMapNotOwned(ActuatorError):  # noqa: N818  (the name is the contract)
    """The ConfigMap exists and is not the publishing pool's: fleetscale did not create it for
    that pool (no ``app.kubernetes.io/managed-by=fleetscale`` label, or no controller owner
    reference to the pool). Nothing was written to it."""


class ScaleActuator(Protocol):
    """Reads and writes replica counts through the ``/scale`` subresource."""

    async def read(self, target: ScaleTargetRef) -> ScaleStatus:
        """The target's current size. Raises TargetNotFound or ActuatorError."""
        ...

    async def set_replicas(self, target: ScaleTargetRef, replicas: int) -> ScaleStatus:
        """Set spec.replicas (optimistic concurrency; conflicts retried) and return the result.

        Raises TargetNotFound or ActuatorError.
        """
        ...


@dataclass(frozen=True)
class InvolvedObject:
    """The object an Event is about, or that owns a published ConfigMap."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    uid: str | None


class EventSink(Protocol):
    """Posts Kubernetes Events; aggregates repeats like kubectl's event recorder."""

    async def post(
        self, involved: InvolvedObject, type: EventType, reason: str, message: str
    ) -> None:
        """Post one Event. Never raises: a failed Event is logged, never fatal."""
        ...


@dataclass(frozen=True)
class ShedFlag:
    """The shed-load flag as gateways read it."""

    active: bool
    reason: str
    since: datetime | None
    retry_after_seconds: int | None
    fraction: float = 0.0  # share of requests to refuse while active, lower priority first
    message: str | None = None  # the body text of a refused request, if the spec names one
    low_priority_header: tuple[str, str] | None = None  # (header, value) of requests shed first


class ShedFlagPublisher(Protocol):
    """Publishes the shed-load flag where gateways can read it (a ConfigMap)."""

    async def publish(self, owner: InvolvedObject, config_map_name: str, flag: ShedFlag) -> None:
        """Create the ConfigMap in the owner's namespace, marked as ``owner``'s, or patch it if
        it is marked so; never write one that is not.

        Keys: ``active`` ("true"/"false"), ``fraction``, ``retryAfterSeconds``, ``reason``,
        ``since``, ``message``, ``lowPriorityHeader``, ``lowPriorityValue``.
        Raises ConfigMapNotOwned for an existing ConfigMap that is not ``owner``'s, and
        ActuatorError when the API keeps failing.
        """
        ...


class SecretNotFound(Exception):  # noqa: N818  (the name is the contract)
    """The Secret, or the key inside it, does not exist."""


class SecretReader(Protocol):
    """Reads one key of a Secret, decoded as UTF-8 text."""

    async def read_key(self, namespace: str, name: str, key: str) -> str:
        """The key's value. Raises SecretNotFound (which Secret or key) or ActuatorError."""
        ...
