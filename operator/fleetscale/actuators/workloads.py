"""Read what a workload object says about its pods: accelerators per replica, readiness.

Role: pure functions over the JSON of a scaled workload (Deployment, StatefulSet, ReplicaSet,
LeaderWorkerSet, or any custom kind with a ``spec.template`` pod template) and of pods.
No I/O. Callers: ``kubernetes_scale`` (to fill ``ScaleStatus``), tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleetscale.actuators.base import ACCELERATOR_RESOURCE_NAMES

Json = Mapping[str, Any]

# Kinds whose status omits readyReplicas when it is zero (Go's omitempty), so absence means 0.
_READY_OMITTED_WHEN_ZERO = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "ReplicaSet"),
        ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
    }
)


def pod_templates(workload: Json) -> list[tuple[Json, int]]:
    """Each pod spec of one replica with how many pods of it a replica has.

    A LeaderWorkerSet replica is a group: one leader and ``size - 1`` workers (the leader
    uses the worker template when it has none of its own).
    """
    spec = workload.get("spec") or {}
    group = spec.get("leaderWorkerTemplate")
    if isinstance(group, Mapping):
        size = _as_int(group.get("size", 1)) or 1
        worker = group.get("workerTemplate") or {}
        leader = group.get("leaderTemplate") or worker
        templates = [(leader.get("spec") or {}, 1)]
        if size > 1:
            templates.append((worker.get("spec") or {}, size - 1))
        return templates
    template = spec.get("template")
    if isinstance(template, Mapping):
        return [(template.get("spec") or {}, 1)]
    return []


def container_accelerators(container: Json, names: Sequence[str]) -> int:
    """Accelerators one container asks for: its limits, else its requests (they must match)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    return sum(_as_int(limits.get(name, requests.get(name, 0))) or 0 for name in names)


def pod_accelerators(pod_spec: Json, names: Sequence[str] = ACCELERATOR_RESOURCE_NAMES) -> int:
    """Accelerators one pod holds while it runs, with Kubernetes's effective-request rule.

    App containers and sidecars (init containers with restartPolicy Always) run together and
    add up; each ordinary init container runs alone, so only the largest one counts, and only
    if it asks for more than the rest.
    """
    containers = list(pod_spec.get("containers") or [])
    init_containers = list(pod_spec.get("initContainers") or [])
    sidecars = [c for c in init_containers if c.get("restartPolicy") == "Always"]
    one_shot = [c for c in init_containers if c.get("restartPolicy") != "Always"]
    running = sum(container_accelerators(c, names) for c in [*containers, *sidecars])
    largest_init = max((container_accelerators(c, names) for c in one_shot), default=0)
    return max(running, largest_init)


def accelerators_per_replica(
    workload: Json, names: Sequence[str] = ACCELERATOR_RESOURCE_NAMES
) -> int | None:
    """Accelerators one replica needs, from its pod templates; None when it asks for none.

    None (not 0) means "unknown here": the spec's acceleratorsPerReplica must say it.
    """
    templates = pod_templates(workload)
    total = sum(pod_accelerators(spec, names) * pods for spec, pods in templates)
    return total or None


def ready_replicas_from_status(workload: Json) -> int | None:
    """``status.readyReplicas``, or None when the kind does not report it."""
    status = workload.get("status") or {}
    ready = _as_int(status.get("readyReplicas"))
    if ready is not None:
        return ready
    group = str(workload.get("apiVersion", "")).rpartition("/")[0]
    if (group, workload.get("kind")) in _READY_OMITTED_WHEN_ZERO:
        return 0
    return None


def scale_of_apps_workload(workload: Json) -> Json:
    """The Scale the API server would serve for an apps/v1 Deployment, StatefulSet or ReplicaSet."""
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    return {
        "metadata": workload.get("metadata") or {},
        # The API server defaults spec.replicas to 1; only a hand-made object lacks it.
        "spec": {"replicas": _as_int(spec.get("replicas")) if "replicas" in spec else 1},
        "status": {
            "replicas": _as_int(status.get("replicas")) or 0,
            "selector": label_selector_string(spec.get("selector") or {}),
        },
    }


def label_selector_string(selector: Json) -> str:
    """A LabelSelector as the API's selector string: ``app=vllm,tier in (a,b),!canary``.

    Requirements are sorted by key, as the API server writes them in a Scale's
    ``status.selector``.
    """
    requirements: list[tuple[str, str]] = [
        (key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        key = str(expression.get("key", ""))
        operator = expression.get("operator")
        values = ",".join(sorted(str(value) for value in expression.get("values") or []))
        if operator == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif operator == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
    return ",".join(text for _, text in sorted(requirements))


def count_ready_pods(pods: Iterable[Json]) -> int:
    """Pods that are Ready and not being deleted."""
    return sum(
        1
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
    )


def _as_int(value: Any) -> int | None:
    """An integer count from JSON (extended resources are whole numbers: 4 or "4")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
