"""Helpers around kmock's KubernetesEmulator for the official ``kubernetes`` client.

Role: point an ``ApiClient`` at a running emulator, declare resources for discovery, and serve
what the emulator does not: the ``/scale`` subresource. kmock 0.8 stores objects and serves
get/list/watch/create/merge-patch/delete, but ignores subresources (a GET of ``.../scale``
returns the whole object, a PATCH of it merges into the object) and does not answer PUT at all;
it also never sets or checks ``metadata.resourceVersion``. ``ScaleSubresource`` answers GET and
PUT of ``/scale`` for one resource with kmock reactions, the way the API server does: a Scale
built from the stored object, writes checked against and bumping ``resourceVersion`` (409
Conflict on a stale one). Callers: tests/actuators, tests/integration.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kmock
import pytest
from kmock._internal import parsing
from kubernetes.client import ApiClient, Configuration


def api_client_for(emulator: kmock.KubernetesEmulator) -> ApiClient:
    """An official-client ApiClient that talks to the emulator over plain HTTP."""
    configuration = Configuration(host=str(emulator.url).rstrip("/"))
    return ApiClient(configuration)


def announce(
    emulator: kmock.KubernetesEmulator,
    resource: str,
    namespace: str | None,
    name: str,
    event_type: str = "MODIFIED",
) -> None:
    """Tell the emulator's watchers about an object changed in its store directly.

    kmock streams watch events only for changes made through its HTTP API; a test's own
    changes to ``emulator.objects`` (a controller stand-in, a subresource served here) would
    otherwise never reach a watch-fed cache. Must run in the emulator's event loop.
    """
    key = kmock.resource(resource)
    raw = copy.deepcopy(emulator.objects[key, namespace, name].raw)
    # kmock keeps one watch bus per resource and has no public way to publish on it.
    bus = emulator._buses[key]
    asyncio.get_running_loop().create_task(bus.put({"type": event_type, "object": raw}))


def declare(
    emulator: kmock.KubernetesEmulator,
    resource: str,
    kind: str,
    *,
    namespaced: bool = True,
    subresources: Sequence[str] = (),
) -> None:
    """Make ``resource`` (e.g. "apps/v1/deployments") discoverable with its kind."""
    emulator.resources[resource] = kmock.ResourceInfo(
        kind=kind,
        namespaced=namespaced,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources=set(subresources),
    )


def serve_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the emulator serve Namespaces themselves: ``/api/v1/namespaces`` (list, watch) and
    ``/api/v1/namespaces/{name}`` (get, patch).

    kmock 0.8 reads those paths as the namespace prefix of a namespaced resource and fails on
    them (a 500 for the list), so the operator's index of Namespaces never finishes its first
    list and every AcceleratorPool with a namespace selector holds. This parses them as the
    cluster-scoped resource they are.
    """
    original = parsing.parse_path

    def parse_path(path: str) -> Any:
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
            name = parts[3] if len(parts) == 4 else None
            return parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name)
        return original(path)

    monkeypatch.setattr(parsing, "parse_path", parse_path)


def _dig(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


@dataclass
class ScaleSubresource:
    """Serves GET/PUT ``.../{name}/scale`` of one resource from the emulator's stored objects.

    Paths mirror a CRD's ``subresources.scale``: where spec and status replicas live, and
    where the label selector string is (else it is built from ``spec.selector.matchLabels``,
    as for Deployments and StatefulSets).
    """

    emulator: kmock.KubernetesEmulator
    resource: str  # "apps/v1/deployments"
    spec_replicas_path: Sequence[str] = ("spec", "replicas")
    status_replicas_path: Sequence[str] = ("status", "replicas")
    label_selector_path: Sequence[str] | None = None
    writes: list[dict[str, Any]] = field(default_factory=list)  # the Scale bodies PUT
    _concurrent_writes_pending: int = 0

    def __post_init__(self) -> None:
        scale = self.emulator[kmock.resource(self.resource), kmock.subresource("scale")]
        # Below the default priority: a test's own reactions (injected errors) answer first.
        scale[kmock.method.GET] ** -1 << self._get
        scale[kmock.method.PUT] ** -1 << self._put

    def interfere(self, times: int = 1) -> None:
        """Someone else writes the object just before each of the next ``times`` PUTs."""
        self._concurrent_writes_pending += times

    def _stored(self, request: kmock.Request) -> kmock.Object:
        key = (kmock.resource(self.resource), request.namespace, request.name)
        if key not in self.emulator.objects or self.emulator.objects[key].deleted:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'"{request.name}" not found'
            )
        return self.emulator.objects[key]

    def _scale_of(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        metadata = raw.get("metadata", {})
        if self.label_selector_path is not None:
            selector = _dig(raw, self.label_selector_path)
        else:
            labels = _dig(raw, ("spec", "selector", "matchLabels")) or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None
        status: dict[str, Any] = {"replicas": _dig(raw, self.status_replicas_path) or 0}
        if selector:
            status["selector"] = selector
        spec: dict[str, Any] = {}
        if _dig(raw, self.spec_replicas_path):  # omitempty, as the API server renders it
            spec["replicas"] = _dig(raw, self.spec_replicas_path)
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "resourceVersion": metadata.get("resourceVersion", "1"),
                "uid": metadata.get("uid", ""),
            },
            "spec": spec,
            "status": status,
        }

    def _get(self, request: kmock.Request) -> dict[str, Any]:
        return self._scale_of(self._stored(request).raw)

    def _put(self, request: kmock.Request) -> dict[str, Any]:
        stored = self._stored(request)
        body = request.data or {}
        self.writes.append(body)
        if self._concurrent_writes_pending:
            self._concurrent_writes_pending -= 1
            stored.patch({"metadata": {"resourceVersion": _next_version(stored.raw)}})
        sent_version = (body.get("metadata") or {}).get("resourceVersion")
        current_version = stored.raw.get("metadata", {}).get("resourceVersion", "1")
        if sent_version and sent_version != current_version:
            plural = kmock.resource(self.resource).plural
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=(
                    f'Operation cannot be fulfilled on {plural} "{request.name}": the object '
                    "has been modified; please apply your changes to the latest version "
                    "and try again"
                ),
            )
        replicas = (body.get("spec") or {}).get("replicas", 0)
        change: dict[str, Any] = {"metadata": {"resourceVersion": _next_version(stored.raw)}}
        cursor = change
        for key in self.spec_replicas_path[:-1]:
            cursor = cursor.setdefault(key, {})
        cursor[self.spec_replicas_path[-1]] = replicas
        stored.patch(change)
        announce(self.emulator, self.resource, request.namespace, request.name or "")
        return self._scale_of(stored.raw)


def _next_version(raw: Mapping[str, Any]) -> str:
    return str(int(raw.get("metadata", {}).get("resourceVersion", "1")) + 1)


LEASES = "coordination.k8s.io/v1/leases"


@dataclass
class LeaseEmulation:
    """Serves ``coordination.k8s.io/v1`` Leases as the API server does for leader election:
    create fails when the Lease exists (409), an update must carry the resourceVersion it
    read (409 otherwise), every write gets a new resourceVersion. kmock's own object store
    assigns no versions and serves no PUT, so two electors would both win there."""

    emulator: kmock.KubernetesEmulator
    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (verb, body)
    _version: int = 0

    def __post_init__(self) -> None:
        leases = self.emulator[kmock.resource(LEASES)]
        leases[kmock.method.GET] ** 1 << self._get
        leases[kmock.method.POST] ** 1 << self._create
        leases[kmock.method.PUT] ** 1 << self._update

    def holder(self, namespace: str, name: str) -> str | None:
        lease = self.leases.get((namespace, name))
        return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")

    def _stored(self, key: tuple[str, str]) -> dict[str, Any]:
        if key not in self.leases:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'leases "{key[1]}" not found'
            )
        return self.leases[key]

    def _get(self, request: kmock.Request) -> dict[str, Any]:
        return self._stored((request.namespace or "", request.name or ""))

    def _store(self, verb: str, key: tuple[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
        self._version += 1
        stored = {**body, "metadata": {**(body.get("metadata") or {}),
                                       "resourceVersion": str(self._version)}}  # fmt: skip
        self.leases[key] = stored
        self.writes.append((verb, stored))
        return stored

    def _create(self, request: kmock.Request) -> dict[str, Any]:
        body = request.data or {}
        key = (request.namespace or "", (body.get("metadata") or {}).get("name", ""))
        if key in self.leases:
            raise kmock.KubernetesError(
                status=409, reason="AlreadyExists", message=f'leases "{key[1]}" already exists'
            )
        return self._store("create", key, body)

    def _update(self, request: kmock.Request) -> dict[str, Any]:
        key = (request.namespace or "", request.name or "")
        stored = self._stored(key)
        body = request.data or {}
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent != stored["metadata"]["resourceVersion"]:
            raise kmock.KubernetesError(
                status=409,
                reason="Conflict",
                message=f'Operation cannot be fulfilled on leases "{key[1]}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        return self._store("update", key, body)
