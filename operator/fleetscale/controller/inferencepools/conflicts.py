"""Other controllers that size the same workload: a pool never fights them.

Role: the operator keeps, from its watches, every InferencePool and every autoscaling/v2
HorizontalPodAutoscaler (KEDA's ScaledObjects create one) by the workload they size
(``IndexedControllers``; ``InMemoryControllers`` for tests). ``conflicting`` (pure) says which
one a pool must yield to: any HPA (two controllers writing one ``/scale`` flap it, and the
operator cannot switch an HPA off), or an older acting InferencePool (the first one keeps the
workload; ties by name). Only Active pools claim a workload; a DryRun pool writes nothing, so
it may shadow an HPA to compare decisions. The tick then refuses to act (Ready=False,
ConflictingAutoscaler) and names the other object; while the indexes cannot vouch for every
controller (not listed yet, or a silent watch) it holds (``CacheStale``). Callers: ``tick``,
``controller.wiring`` (the indexes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from fleetscale.api.inferencepool import InferencePoolSpec
from fleetscale.controller.indexes import Index

# (namespace, API group, kind, name) of a workload; the group without its version, so an HPA
# written for apps/v1 and a pool for apps/v1beta2 of the same Deployment still meet.
TargetKey = tuple[str, str, str, str]

HPA = "HorizontalPodAutoscaler"
INFERENCE_POOL = "InferencePool"
CONFLICTING_AUTOSCALER = "ConflictingAutoscaler"


def target_key(namespace: str, api_version: str, kind: str, name: str) -> TargetKey:
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return (namespace, group, kind, name)


@dataclass(frozen=True)
class Controller:
    """One object that sizes a workload."""

    kind: str  # InferencePool or HorizontalPodAutoscaler
    namespace: str
    name: str
    created: float | None = None  # epoch seconds; None: unknown

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class ControllerSource(Protocol):
    """Every controller known to size a workload."""

    async def controllers_of(self, key: TargetKey) -> list[Controller]:
        """Raises ``CacheStale`` when it cannot vouch for every one (the tick holds)."""
        ...


class InMemoryControllers:
    """``ControllerSource`` over a dict (tests)."""

    def __init__(self, controllers: Mapping[TargetKey, Iterable[Controller]]) -> None:
        self._controllers = controllers

    async def controllers_of(self, key: TargetKey) -> list[Controller]:
        return list(self._controllers.get(key, ()))


class IndexedControllers:
    """``ControllerSource`` over the operator's watch-fed indexes of InferencePools and HPAs by
    the workload they size (``pool_entry``, ``hpa_entry``)."""

    def __init__(self, *indexes: Index[TargetKey, Controller]) -> None:
        self._indexes = indexes

    async def controllers_of(self, key: TargetKey) -> list[Controller]:
        return [found for index in self._indexes for found in await index.lookup(key)]


def conflicting(namespace: str, name: str, controllers: Iterable[Controller]) -> Controller | None:
    """The controller the pool ``namespace/name`` must yield to, or None."""
    me: Controller | None = None
    others: list[Controller] = []
    for controller in controllers:
        if (controller.kind, controller.namespace, controller.name) == (
            INFERENCE_POOL,
            namespace,
            name,
        ):
            me = controller
        else:
            others.append(controller)
    for other in others:
        if other.kind != INFERENCE_POOL:
            return other
    mine = _age_key(me, name)
    older = [other for other in others if _age_key(other, other.name) < mine]
    return min(older, key=lambda other: _age_key(other, other.name), default=None)


def _age_key(controller: Controller | None, name: str) -> tuple[float, str]:
    created = controller.created if controller is not None else None
    # Unknown age sorts last: a pool whose age is unknown yields to every other.
    return (created if created is not None else float("inf"), name)


def _epoch(value: Any) -> float | None:
    from datetime import datetime

    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def pool_entry(body: Mapping[str, Any]) -> dict[TargetKey, Controller] | None:
    """What the index keeps of an InferencePool that acts (Active, valid): the workload it
    names, and itself. A Paused, DryRun or invalid pool writes nothing, so it claims nothing."""
    meta = body.get("metadata") or {}
    try:
        spec = InferencePoolSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None
    if spec.mode != "Active":
        return None
    namespace = str(meta.get("namespace", ""))
    target = spec.target_ref
    key = target_key(namespace, target.api_version, target.kind, target.name)
    created = _epoch(meta.get("creationTimestamp"))
    return {key: Controller(INFERENCE_POOL, namespace, str(meta.get("name", "")), created)}


def hpa_entry(body: Mapping[str, Any]) -> dict[TargetKey, Controller] | None:
    """What the index keeps of an HPA: the workload its scaleTargetRef names, and itself."""
    meta, target = body.get("metadata") or {}, (body.get("spec") or {}).get("scaleTargetRef") or {}
    if not isinstance(target.get("name"), str) or not isinstance(target.get("kind"), str):
        return None
    namespace = str(meta.get("namespace", ""))
    key = target_key(namespace, str(target.get("apiVersion", "")), target["kind"], target["name"])
    created = _epoch(meta.get("creationTimestamp"))
    return {key: Controller(HPA, namespace, str(meta.get("name", "")), created)}
