"""In-memory actuators for tests: they record every call and can be told to fail.

Role: stand-ins with the same behaviour as the real adapters where the controller relies on
it: ``FakeScaleActuator`` raises ``TargetNotFound`` for unknown targets, writes nothing when
the size is already right, retries injected conflicts up to the same limit as the real one,
and (like a Deployment) leaves ready replicas behind until told the pods became ready;
``FakeEventSink`` never raises; ``FakeShedFlagPublisher`` keeps the last flag per ConfigMap
and refuses ConfigMaps that are not the pool's;
``FakeSecretReader`` raises ``SecretNotFound`` with the real messages.
Callers: controller unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fleetscale.actuators.base import (
    ActuatorError,
    ConfigMapNotOwned,
    EventType,
    InvolvedObject,
    ScaleStatus,
    ScaleTargetRef,
    SecretNotFound,
    ShedFlag,
    TargetNotFound,
)

_ANY = None  # the key under which failures for every target are injected


@dataclass(frozen=True)
class SetReplicasCall:
    target: ScaleTargetRef
    replicas: int


@dataclass
class FakeScaleActuator:
    """Targets held in memory; see the module docstring.

    ``follow_immediately``: status and ready replicas jump to the new size on every write
    (a fleet whose pods start instantly); otherwise call ``settle``.
    """

    follow_immediately: bool = False
    conflict_attempts: int = 5
    targets: dict[ScaleTargetRef, ScaleStatus] = field(default_factory=dict)
    set_calls: list[SetReplicasCall] = field(default_factory=list)
    read_calls: list[ScaleTargetRef] = field(default_factory=list)
    writes: list[SetReplicasCall] = field(default_factory=list)  # the ones that changed a size
    _fail_next: dict[ScaleTargetRef | None, list[Exception]] = field(default_factory=dict)
    _fail_always: dict[ScaleTargetRef | None, Exception] = field(default_factory=dict)
    _conflicts: dict[ScaleTargetRef, int] = field(default_factory=dict)

    def add(
        self,
        target: ScaleTargetRef,
        replicas: int,
        *,
        ready: int | None = None,
        accelerators_per_replica: int | None = None,
        selector: str | None = None,
    ) -> None:
        """Create (or replace) a target at ``replicas``, all ready unless ``ready`` says less."""
        self.targets[target] = ScaleStatus(
            spec_replicas=replicas,
            status_replicas=replicas,
            ready_replicas=replicas if ready is None else ready,
            selector=selector,
            accelerators_per_replica=accelerators_per_replica,
        )

    def remove(self, target: ScaleTargetRef) -> None:
        self.targets.pop(target, None)

    def settle(self, target: ScaleTargetRef, ready: int | None = None) -> None:
        """The workload controller caught up: status at the spec, ``ready`` (default all) ready."""
        status = self.targets[target]
        self.targets[target] = replace(
            status,
            status_replicas=status.spec_replicas,
            ready_replicas=status.spec_replicas if ready is None else ready,
        )

    def fail_next(self, exc: Exception, target: ScaleTargetRef | None = None) -> None:
        """The next read or write (of ``target``, or of any target) raises ``exc``."""
        self._fail_next.setdefault(target, []).append(exc)

    def fail_always(self, exc: Exception, target: ScaleTargetRef | None = None) -> None:
        """Every read and write (of ``target``, or of any target) raises ``exc`` until recover."""
        self._fail_always[target] = exc

    def recover(self, target: ScaleTargetRef | None = None) -> None:
        self._fail_always.pop(target, None)
        self._fail_next.pop(target, None)

    def conflict_next(self, target: ScaleTargetRef, times: int = 1) -> None:
        """The next ``times`` writes of ``target`` meet a concurrent change (409 Conflict)."""
        self._conflicts[target] = self._conflicts.get(target, 0) + times

    async def read(self, target: ScaleTargetRef) -> ScaleStatus:
        self.read_calls.append(target)
        return self._current(target)

    async def set_replicas(self, target: ScaleTargetRef, replicas: int) -> ScaleStatus:
        if replicas < 0:
            raise ValueError(f"replicas must not be negative, got {replicas}")
        self.set_calls.append(SetReplicasCall(target, replicas))
        status = self._current(target)
        if status.spec_replicas == replicas:
            return status
        for _ in range(self.conflict_attempts):
            if self._conflicts.get(target, 0) > 0:
                self._conflicts[target] -= 1
                continue
            break
        else:
            raise ActuatorError(
                f"could not set the replicas of {target}: it kept changing under us "
                f"({self.conflict_attempts} conflicting writes in a row)"
            )
        status = replace(status, spec_replicas=replicas)
        if self.follow_immediately:
            status = replace(status, status_replicas=replicas, ready_replicas=replicas)
        self.targets[target] = status
        self.writes.append(SetReplicasCall(target, replicas))
        return status

    def _current(self, target: ScaleTargetRef) -> ScaleStatus:
        for key in (target, _ANY):
            pending = self._fail_next.get(key)
            if pending:
                raise pending.pop(0)
            if key in self._fail_always:
                raise self._fail_always[key]
        status = self.targets.get(target)
        if status is None:
            raise TargetNotFound(f"{target} not found")
        return status


@dataclass(frozen=True)
class RecordedEvent:
    involved: InvolvedObject
    type: EventType
    reason: str
    message: str


@dataclass
class FakeEventSink:
    """Records Events in order; ``failing`` drops them (as a failed post would) and counts."""

    events: list[RecordedEvent] = field(default_factory=list)
    failing: bool = False
    dropped: list[RecordedEvent] = field(default_factory=list)

    async def post(
        self, involved: InvolvedObject, type: EventType, reason: str, message: str
    ) -> None:
        event = RecordedEvent(involved, type, reason, message)
        (self.dropped if self.failing else self.events).append(event)

    def reasons(self, involved: InvolvedObject | None = None) -> list[str]:
        """Reasons of the recorded Events (about ``involved`` only, if given), in order."""
        return [e.reason for e in self.events if involved is None or e.involved == involved]


@dataclass(frozen=True)
class PublishedFlag:
    owner: InvolvedObject
    config_map_name: str
    flag: ShedFlag


@dataclass
class FakeShedFlagPublisher:
    """Records every publish and keeps the current flag per (namespace, ConfigMap name).

    Ownership as the real publisher: the first publish creates the ConfigMap for its pool
    (``owners`` keeps the pool's uid); a ConfigMap that exists for another pool, or that
    fleetscale did not create (``add_foreign``), raises ConfigMapNotOwned and is not written.
    """

    published: list[PublishedFlag] = field(default_factory=list)
    current: dict[tuple[str, str], ShedFlag] = field(default_factory=dict)
    owners: dict[tuple[str, str], str | None] = field(default_factory=dict)  # by pool uid
    foreign: set[tuple[str, str]] = field(default_factory=set)  # not created by fleetscale
    refused: list[PublishedFlag] = field(default_factory=list)
    _fail_next: list[Exception] = field(default_factory=list)

    def fail_next(self, exc: Exception | None = None) -> None:
        self._fail_next.append(exc or ActuatorError("injected failure"))

    def add_foreign(self, namespace: str, name: str) -> None:
        """A ConfigMap that exists and that fleetscale did not create."""
        self.foreign.add((namespace, name))

    async def publish(self, owner: InvolvedObject, config_map_name: str, flag: ShedFlag) -> None:
        if owner.namespace is None:
            raise ValueError(f"{owner.kind} {owner.name} is not namespaced")
        if self._fail_next:
            raise self._fail_next.pop(0)
        key = (owner.namespace, config_map_name)
        foreign = key in self.foreign
        if foreign or (key in self.owners and self.owners[key] != owner.uid):
            self.refused.append(PublishedFlag(owner, config_map_name, flag))
            whose = "it was not created by fleetscale" if foreign else "it belongs to another pool"
            raise ConfigMapNotOwned(
                f"ConfigMap {owner.namespace}/{config_map_name} is not this pool's, so it is "
                f"left untouched: {whose}"
            )
        self.owners[key] = owner.uid
        self.published.append(PublishedFlag(owner, config_map_name, flag))
        self.current[key] = flag


@dataclass
class FakeSecretReader:
    """Secrets held in memory as decoded text; records (namespace, name, key) reads."""

    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    reads: list[tuple[str, str, str]] = field(default_factory=list)

    def set_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)

    async def read_key(self, namespace: str, name: str, key: str) -> str:
        self.reads.append((namespace, name, key))
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretNotFound(f"Secret {namespace}/{name} not found")
        if key not in data:
            present = ", ".join(sorted(data)) or "none"
            raise SecretNotFound(
                f"Secret {namespace}/{name} has no key {key!r} (its keys: {present})"
            )
        return data[key]
