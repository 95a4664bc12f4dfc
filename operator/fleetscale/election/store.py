"""Where a Lease is read and written: the ``coordination.k8s.io/v1`` API, or memory.

Role: the port of the elector (``LeaseStore``): read the Lease, create it, update it with the
``resourceVersion`` that was read (optimistic concurrency: a replica that lost the race gets
``LeaseConflict``). ``KubernetesLeaseStore`` speaks to the API server through its own,
unfenced client (the elector must write while the operator's fence is down);
``FakeLeaseStore`` keeps one record in memory, can be shared by several electors in a test,
and injects failures. ``MembersStore`` (with its Kubernetes implementation and fake) does the
same for the members Lease of a sharded operator: one annotation listing every replica with
its heartbeat. Callers: ``elector``, ``controller.handlers``, tests.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from kubernetes.client import ApiClient

from fleetscale.election.lease import LeaseRecord
from fleetscale.kubeapi import KubeJson, RetryPolicy, status_of

GROUP_VERSION = "coordination.k8s.io/v1"

R = TypeVar("R", LeaseRecord, "MembersRecord")  # the record one Lease object holds


class LeaseConflict(Exception):  # noqa: N818  (the name is the contract)
    """Another replica wrote the Lease first (HTTP 409), or created it first."""


class LeaseStore(Protocol):
    """Reads and writes one Lease."""

    async def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist. Raises on API failure."""
        ...

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create it; LeaseConflict if it exists already. Returns what was stored."""
        ...

    async def update(self, record: LeaseRecord) -> LeaseRecord:
        """Replace it if its resourceVersion is still ``record.resource_version``;
        LeaseConflict otherwise. Returns what was stored."""
        ...


def _micro_time(epoch: float | None) -> str | None:
    """metav1.MicroTime: RFC3339 with microseconds."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    """A Lease object from the API server as a record."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_epoch(spec.get("acquireTime")),
        renew_time=_epoch(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def lease_body(namespace: str, name: str, record: LeaseRecord) -> dict[str, Any]:
    """A record as the Lease object the API server takes."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version is not None:
        metadata["resourceVersion"] = record.resource_version
    spec = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": _micro_time(record.acquire_time),
        "renewTime": _micro_time(record.renew_time),
        "leaseTransitions": record.transitions,
    }
    return {"apiVersion": GROUP_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


class _KubernetesLeaseObject(Generic[R]):
    """One Lease object over the API server, decoded and encoded by the subclass's functions.

    One attempt per call, bounded by ``request_timeout_seconds``: the elector retries on its
    own schedule, and a renewal that waits in retries past the deadline is worth nothing.
    """

    def __init__(
        self, api_client: ApiClient, namespace: str, name: str, request_timeout_seconds: float
    ) -> None:
        retry = RetryPolicy(attempts=1, request_timeout_seconds=request_timeout_seconds)
        self._api = KubeJson(api_client, retry)
        self.namespace, self.name = namespace, name
        self._collection = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/leases"

    def _decode(self, lease: Mapping[str, Any]) -> R:
        raise NotImplementedError

    def _encode(self, record: R) -> dict[str, Any]:
        raise NotImplementedError

    async def get(self) -> R | None:
        try:
            return self._decode(await self._api.request("GET", f"{self._collection}/{self.name}"))
        except Exception as error:
            if status_of(error) == 404:
                return None
            raise

    async def create(self, record: R) -> R:
        body = self._encode(replace(record, resource_version=None))
        return await self._write("POST", self._collection, body)

    async def update(self, record: R) -> R:
        return await self._write("PUT", f"{self._collection}/{self.name}", self._encode(record))

    async def _write(self, method: str, path: str, body: Mapping[str, Any]) -> R:
        try:
            return self._decode(await self._api.request(method, path, body=body))
        except Exception as error:
            if status_of(error) == 409:
                raise LeaseConflict(
                    f"Lease {self.namespace}/{self.name} was written first"
                ) from error
            raise


class KubernetesLeaseStore(_KubernetesLeaseObject[LeaseRecord]):
    """``LeaseStore`` over the API server."""

    def _decode(self, lease: Mapping[str, Any]) -> LeaseRecord:
        return record_of(lease)

    def _encode(self, record: LeaseRecord) -> dict[str, Any]:
        return lease_body(self.namespace, self.name, record)


@dataclass
class FakeLeaseStore:
    """``LeaseStore`` in memory; share one between electors to test who wins."""

    record: LeaseRecord | None = None
    fail_next: int = 0  # the next this many calls raise ConnectionError (an unreachable API)
    writes: list[tuple[str, LeaseRecord]] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the API server cannot be reached")

    async def get(self) -> LeaseRecord | None:
        self._maybe_fail()
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        self._maybe_fail()
        if self.record is not None:
            raise LeaseConflict("exists")
        return self._store("create", record)

    async def update(self, record: LeaseRecord) -> LeaseRecord:
        self._maybe_fail()
        if self.record is None or self.record.resource_version != record.resource_version:
            raise LeaseConflict("stale resourceVersion")
        return self._store("update", record)

    def _store(self, verb: str, record: LeaseRecord) -> LeaseRecord:
        self.record = replace(record, resource_version=str(next(self._versions)))
        self.writes.append((verb, self.record))
        return self.record


# ----------------------------------------------------------------- members (shards > 1)
MEMBERS_ANNOTATION = "fleetscale.io/members"


@dataclass(frozen=True)
class MembersRecord:
    """The replicas that share the shards, each with its heartbeat (a counter it advances
    every retry period) and the shard count it runs with, as held in one Lease's annotation:
    ``{"<identity>": [<heartbeat>, <shards>], ...}``."""

    beats: Mapping[str, int]
    shards: Mapping[str, int] = field(default_factory=dict)  # by identity
    resource_version: str | None = None  # None: not created yet


class MembersStore(Protocol):
    """Reads and writes the members Lease (optimistic concurrency, like ``LeaseStore``)."""

    async def get(self) -> MembersRecord | None:
        """The record, or None when the Lease does not exist. Raises on API failure."""
        ...

    async def create(self, record: MembersRecord) -> MembersRecord:
        """Create it; LeaseConflict if it exists already."""
        ...

    async def update(self, record: MembersRecord) -> MembersRecord:
        """Replace it if its resourceVersion is still ``record.resource_version``;
        LeaseConflict otherwise."""
        ...


def members_of(lease: Mapping[str, Any]) -> MembersRecord:
    """A members Lease from the API server as a record (a garbled annotation: no members)."""
    metadata = lease.get("metadata") or {}
    beats: dict[str, int] = {}
    shards: dict[str, int] = {}
    try:
        raw = json.loads((metadata.get("annotations") or {}).get(MEMBERS_ANNOTATION) or "{}")
        for member, (beat, count) in (raw if isinstance(raw, dict) else {}).items():
            beats[str(member)], shards[str(member)] = int(beat), int(count)
    except (ValueError, TypeError):
        beats, shards = {}, {}
    return MembersRecord(beats, shards, metadata.get("resourceVersion"))


def members_body(namespace: str, name: str, record: MembersRecord) -> dict[str, Any]:
    """A members record as the Lease object the API server takes (no holder: nobody holds
    it, every replica writes its own heartbeat into it)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "annotations": {
            MEMBERS_ANNOTATION: json.dumps(
                {m: [b, record.shards.get(m, 1)] for m, b in sorted(record.beats.items())}
            )
        },
    }
    if record.resource_version is not None:
        metadata["resourceVersion"] = record.resource_version
    return {"apiVersion": GROUP_VERSION, "kind": "Lease", "metadata": metadata, "spec": {}}


class KubernetesMembersStore(_KubernetesLeaseObject[MembersRecord]):
    """``MembersStore`` over the API server (one attempt per call, as ``KubernetesLeaseStore``)."""

    def _decode(self, lease: Mapping[str, Any]) -> MembersRecord:
        return members_of(lease)

    def _encode(self, record: MembersRecord) -> dict[str, Any]:
        return members_body(self.namespace, self.name, record)


@dataclass
class FakeMembersStore:
    """``MembersStore`` in memory; share one between shard managers."""

    record: MembersRecord | None = None
    fail_next: int = 0
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("the API server cannot be reached")

    async def get(self) -> MembersRecord | None:
        self._maybe_fail()
        return self.record

    async def create(self, record: MembersRecord) -> MembersRecord:
        self._maybe_fail()
        if self.record is not None:
            raise LeaseConflict("exists")
        return self._store(record)

    async def update(self, record: MembersRecord) -> MembersRecord:
        self._maybe_fail()
        if self.record is None or self.record.resource_version != record.resource_version:
            raise LeaseConflict("stale resourceVersion")
        return self._store(record)

    def _store(self, record: MembersRecord) -> MembersRecord:
        self.record = replace(
            record,
            beats=dict(record.beats),
            shards=dict(record.shards),
            resource_version=str(next(self._versions)),
        )
        return self.record
