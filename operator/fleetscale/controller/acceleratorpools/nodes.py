"""The node planner's view of an AcceleratorPool's Nodes, from Node and Pod objects.

Role: pure translation of what the API server shows (Nodes with their Ready condition and
allocatable accelerators; the pods scheduled on them) into ``planner.capacity.NodeView``: Ready
(and schedulable) or not, since when, accelerators allocatable and in use, and how many workload
pods run there. DaemonSet pods and the placeholder provider's own pods are not workload: a node
that hosts only those is empty. A node cordoned by the execute step while it releases nodes
carries ``CORDONED_FOR_RELEASE``; that cordon does not make it unready (it is ours, and is
lifted if the node is kept), and ``cordons`` tells it apart from a cordon someone else set.
Callers: ``tick``, ``execute``, ``cluster``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetscale.actuators.workloads import pod_accelerators
from fleetscale.controller.conditions import to_epoch
from fleetscale.nodepools.placeholder import is_placeholder
from fleetscale.planner.capacity import NodeView

# Set with spec.unschedulable by the execute step on a node it is about to release.
CORDONED_FOR_RELEASE = "fleetscale.io/cordoned-for-release"


@dataclass(frozen=True)
class Cordons:
    """Which of the pool's Nodes are cordoned, and by whom."""

    ours: frozenset[str] = frozenset()  # left by a release that stopped midway
    others: frozenset[str] = frozenset()  # cordoned by an administrator or another tool


def _unschedulable(node: Mapping[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable", False))


def _cordoned_by_us(node: Mapping[str, Any]) -> bool:
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    return _unschedulable(node) and CORDONED_FOR_RELEASE in annotations


def cordons(nodes: Sequence[Mapping[str, Any]]) -> Cordons:
    """The pool's cordoned Nodes, ours apart from everyone else's."""
    cordoned = [n for n in nodes if _unschedulable(n)]
    return Cordons(
        ours=frozenset(_name(n) for n in cordoned if _cordoned_by_us(n)),
        others=frozenset(_name(n) for n in cordoned if not _cordoned_by_us(n)),
    )


def _name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    return to_epoch(datetime.fromisoformat(str(value)))


def is_workload(pod: Mapping[str, Any]) -> bool:
    """A pod that keeps its node busy: not a DaemonSet's, not a placeholder."""
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    return not is_placeholder(pod) and not any(o.get("kind") == "DaemonSet" for o in owners)


def _usage(
    pods: Sequence[Mapping[str, Any]], resource_name: str
) -> tuple[dict[str, int], dict[str, int]]:
    """Accelerators in use and workload pods, by node name."""
    in_use: dict[str, int] = {}
    workload: dict[str, int] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or not is_workload(pod):
            continue
        workload[node_name] = workload.get(node_name, 0) + 1
        in_use[node_name] = in_use.get(node_name, 0) + pod_accelerators(
            pod.get("spec") or {}, (resource_name,)
        )
    return in_use, workload


def node_views(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    resource_name: str,
    now: float,
) -> tuple[list[NodeView], dict[str, str]]:
    """The planner's view of each Node, and each Node's providerID."""
    in_use, workload = _usage(pods, resource_name)
    views: list[NodeView] = []
    provider_ids: dict[str, str] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        name = str(meta.get("name", ""))
        status = node.get("status") or {}
        ready_condition = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        ready = ready_condition is not None and ready_condition.get("status") == "True"
        allocatable = str((status.get("allocatable") or {}).get(resource_name, "0"))
        views.append(
            NodeView(
                name=name,
                ready=ready and (not _unschedulable(node) or _cordoned_by_us(node)),
                # The API server always sets it; without it, nothing says the node is old.
                created_at=_epoch(meta.get("creationTimestamp")) or now,
                accelerators_allocatable=int(allocatable) if allocatable.isdigit() else 0,
                accelerators_in_use=in_use.get(name, 0),
                workload_pods=workload.get(name, 0),
                ready_since=(
                    _epoch(ready_condition.get("lastTransitionTime"))
                    if ready and ready_condition
                    else None
                ),
            )
        )
        provider_ids[name] = str((node.get("spec") or {}).get("providerID") or "")
    return views, provider_ids
