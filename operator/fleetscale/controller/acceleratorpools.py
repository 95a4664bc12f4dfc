"""One tick of one AcceleratorPool: observe nodes and demand -> plan nodes -> act -> report.

Role: the control loop that sizes a pool of accelerator nodes jointly for every InferencePool
that references it (``spec.acceleratorPoolRef``). It observes the pool's Nodes (by
``nodeLabels``) and what runs on them, gathers each InferencePool's demand from its status
(the signals' latest recommendation, before behavior, clamped to its replica bounds), runs the
pure ``planner.capacity.plan_capacity``, executes the plan through the node-pool provider
(prefer removal of the released nodes, then set the size), and writes the AcceleratorPool
status: node counts, the allocation of every InferencePool (its replica cap and why), the
planner's memory, conditions (Ready, ScalingLimited, ProviderError) and Events (NodesRequested,
NodesReleased, ProvisioningFailed, ProviderConflict, ProviderError).

The hook the other way: ``AcceleratorPoolCapacity.limit_for`` reads an InferencePool's
allocation from the AcceleratorPool status and hands it to the replica planner as
``Observation.capacity``, which caps replicas and raises ScalingLimited / shedding.

Callers: ``controller.handlers`` (a kopf daemon per AcceleratorPool), ``controller.reconcile``
(through ``Dependencies.capacity``), tests (with ``InMemoryCluster`` and ``FakeNodePool``).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import kubernetes.client
from pydantic import ValidationError

from fleetscale.actuators.base import (
    ActuatorError,
    EventSink,
    InvolvedObject,
    ScaleActuator,
    ScaleTargetRef,
    TargetNotFound,
)
from fleetscale.actuators.workloads import pod_accelerators
from fleetscale.api.acceleratorpool import (
    KIND,
    PLURAL,
    AcceleratorPoolSpec,
    AcceleratorPoolStatus,
    EmptyNode,
    PoolAllocation,
)
from fleetscale.api.base import API_VERSION, GROUP, VERSION
from fleetscale.api.inferencepool import PLURAL as IPOOL_PLURAL
from fleetscale.api.inferencepool import InferencePoolSpec, InferencePoolStatus
from fleetscale.controller import status as st
from fleetscale.logs import get_logger
from fleetscale.nodepools import build_provider
from fleetscale.nodepools.base import NodePoolProvider, NodeRef, ProviderError
from fleetscale.nodepools.placeholder import is_placeholder
from fleetscale.planner.capacity import (
    CAPACITY_AVAILABLE,
    CapacityObservation,
    CapacityPlan,
    CapacityState,
    NodeView,
    PoolDemand,
    plan_capacity,
)
from fleetscale.planner.types import CapacityLimit

PROVIDER_ERROR = "ProviderError"
PROVIDER_OK = "ProviderReachable"
SCALING_LIMITED = "ScalingLimited"
READY = "Ready"
DEFAULT_INTERVAL_SECONDS = 15.0

_STATUS_FIELDS = frozenset(
    info.alias or name for name, info in AcceleratorPoolStatus.model_fields.items()
)


class ClusterReader(Protocol):
    """What the AcceleratorPool loop reads from the API server (as plain JSON)."""

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        """Nodes carrying every label in ``labels``."""
        ...

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        """Non-terminated pods scheduled on any of ``node_names``."""
        ...

    async def inference_pools(self) -> list[Mapping[str, Any]]:
        """Every InferencePool in the cluster."""
        ...

    async def accelerator_pool(self, name: str) -> Mapping[str, Any] | None:
        """One AcceleratorPool, None if it does not exist."""
        ...


class KubernetesClusterReader:
    """ClusterReader through the official client (synchronous, run in a thread)."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)

    @staticmethod
    async def _json(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = await asyncio.to_thread(function, *args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        listing = await self._json(self._core.list_node, label_selector=selector)
        return [n for n in listing.get("items") or [] if _labels_match(n, labels)]

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        if not node_names:
            return []
        listing = await self._json(
            self._core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        )
        wanted = set(node_names)
        return [
            pod
            for pod in listing.get("items") or []
            if (pod.get("spec") or {}).get("nodeName") in wanted
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    async def inference_pools(self) -> list[Mapping[str, Any]]:
        listing = await self._json(
            self._custom.list_cluster_custom_object, GROUP, VERSION, IPOOL_PLURAL
        )
        items: list[Mapping[str, Any]] = listing.get("items") or []
        return items

    async def accelerator_pool(self, name: str) -> Mapping[str, Any] | None:
        try:
            found: Mapping[str, Any] = await self._json(
                self._custom.get_cluster_custom_object, GROUP, VERSION, PLURAL, name
            )
        except kubernetes.client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found


@dataclass
class InMemoryCluster:
    """ClusterReader over objects held in memory (tests, the simulator)."""

    node_objects: list[dict[str, Any]] = field(default_factory=list)
    pod_objects: list[dict[str, Any]] = field(default_factory=list)
    inference_pool_objects: list[dict[str, Any]] = field(default_factory=list)
    accelerator_pool_objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def nodes(self, labels: Mapping[str, str]) -> list[Mapping[str, Any]]:
        return [n for n in self.node_objects if _labels_match(n, labels)]

    async def pods_on(self, node_names: Collection[str]) -> list[Mapping[str, Any]]:
        return [p for p in self.pod_objects if (p.get("spec") or {}).get("nodeName") in node_names]

    async def inference_pools(self) -> list[Mapping[str, Any]]:
        return list(self.inference_pool_objects)

    async def accelerator_pool(self, name: str) -> Mapping[str, Any] | None:
        return self.accelerator_pool_objects.get(name)


def _labels_match(obj: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


class CapacityReader(Protocol):
    """Hands an InferencePool the cap its AcceleratorPool allocated to it."""

    async def limit_for(self, pool_name: str, namespace: str, name: str) -> CapacityLimit | None:
        """The cap: the pool's allocation (None, no cap, when all its demand fits);
        AllocationPending (hold the current size) before the pool has planned for it;
        AcceleratorPoolNotFound (hold) when the pool does not exist; None (no cap) when the
        pool cannot be read (logged). Never raises."""
        ...


class AcceleratorPoolCapacity:
    """CapacityReader from the AcceleratorPool's ``status.allocations``."""

    def __init__(self, cluster: ClusterReader) -> None:
        self._cluster = cluster

    async def limit_for(self, pool_name: str, namespace: str, name: str) -> CapacityLimit | None:
        try:
            pool = await self._cluster.accelerator_pool(pool_name)
        except Exception as error:  # never fail the InferencePool's tick: plan without a cap
            get_logger("fleetscale.acceleratorpool", pool=pool_name).warning(
                "capacity_unreadable", reason="CapacityUnreadable", detail=str(error)
            )
            return None
        if pool is None:
            return CapacityLimit(
                max_replicas=0,
                reason="AcceleratorPoolNotFound",
                message=f"AcceleratorPool {pool_name} does not exist: no accelerators to run on",
            )
        for raw in (pool.get("status") or {}).get("allocations") or []:
            if raw.get("namespace") == namespace and raw.get("name") == name:
                allocation = PoolAllocation.model_validate(raw)
                if allocation.reason == CAPACITY_AVAILABLE:
                    # All of this pool's demand fits: no cap. Its maxReplicas is only the demand
                    # it was planned for; passed on it would read as a limit (in status and in
                    # `fleetscale explain`) and hold the next scale-up back.
                    return None
                return CapacityLimit(
                    max_replicas=allocation.max_replicas,
                    reason=allocation.reason,
                    message=allocation.message,
                    seconds_until_more=allocation.seconds_until_more,
                )
        # Not planned for yet (a new InferencePool, or the pool's first tick): hold the current
        # size for one pool tick rather than grow onto nodes nobody asked for.
        return CapacityLimit(
            max_replicas=0,
            reason="AllocationPending",
            message=f"AcceleratorPool {pool_name} has not planned for this pool yet",
            seconds_until_more=DEFAULT_INTERVAL_SECONDS,
        )


@dataclass
class PoolDependencies:
    """What one AcceleratorPool tick needs from the outside world."""

    cluster: ClusterReader
    provider_for: Callable[[str, AcceleratorPoolSpec], NodePoolProvider]
    events: EventSink
    scaler: ScaleActuator  # reads a target's accelerators per replica when the spec omits it
    providers: dict[str, NodePoolProvider] = field(default_factory=dict)

    def provider(self, name: str, spec: AcceleratorPoolSpec) -> NodePoolProvider:
        """One provider per pool and provider spec, built once (clients are reused)."""
        key = f"{name}:{spec.provider.model_dump_json()}"
        if key not in self.providers:
            self.providers[key] = self.provider_for(name, spec)
        return self.providers[key]


@dataclass(frozen=True)
class PoolTickResult:
    """What one AcceleratorPool tick produced."""

    status: dict[str, Any]
    patch: dict[str, Any]
    reason: str
    plan: CapacityPlan | None = None


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    return st.to_epoch(datetime.fromisoformat(str(value)))


def node_views(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    resource_name: str,
    now: float,
) -> tuple[list[NodeView], dict[str, str]]:
    """The planner's view of each Node, and each Node's providerID."""
    in_use: dict[str, int] = {}
    workload: dict[str, int] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        if (
            not node_name
            or is_placeholder(pod)
            or any(o.get("kind") == "DaemonSet" for o in owners)
        ):
            continue
        workload[node_name] = workload.get(node_name, 0) + 1
        in_use[node_name] = in_use.get(node_name, 0) + pod_accelerators(
            pod.get("spec") or {}, (resource_name,)
        )
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
                ready=ready and not (node.get("spec") or {}).get("unschedulable", False),
                # The API server always sets it; without it, nothing says the node is old.
                created_at=_epoch(meta.get("creationTimestamp")) or now,
                accelerators_allocatable=int(allocatable) if allocatable.isdigit() else 0,
                accelerators_in_use=in_use.get(name, 0),
                workload_pods=workload.get(name, 0),
                ready_since=_epoch(ready_condition.get("lastTransitionTime"))
                if ready and ready_condition
                else None,
            )
        )
        provider_ids[name] = str((node.get("spec") or {}).get("providerID") or "")
    return views, provider_ids


async def pool_demands(pool_name: str, deps: PoolDependencies, log: Any) -> list[PoolDemand]:
    """The demand of every InferencePool that references ``pool_name``."""
    demands: list[PoolDemand] = []
    for raw in await deps.cluster.inference_pools():
        meta = raw.get("metadata") or {}
        raw_spec = raw.get("spec") or {}
        if ((raw_spec.get("acceleratorPoolRef") or {}).get("name")) != pool_name:
            continue
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        try:
            spec = InferencePoolSpec.model_validate(raw_spec)
            status, _ = st.parse_status(raw.get("status"))
        except ValidationError:
            log.warning(
                "inference_pool_skipped", reason="InvalidSpec", namespace=namespace, name=name
            )
            continue
        per_replica = spec.accelerators_per_replica
        if per_replica is None:
            per_replica = await _accelerators_from_target(namespace, spec, deps, log)
        desired = _desired(spec, status)
        shedding = status.shed_load is not None and status.shed_load.active
        demands.append(
            PoolDemand(
                namespace=namespace,
                name=name,
                priority=spec.priority,
                accelerators_per_replica=per_replica,
                current_replicas=status.replicas or 0,
                desired_replicas=desired,
                ready_replicas=status.ready_replicas or 0,
                # Shedding and still able to grow: its demand is a lower bound (PoolDemand).
                demand_is_lower_bound=shedding and desired < spec.replicas.max,
            )
        )
    return demands


def _desired(spec: InferencePoolSpec, status: InferencePoolStatus) -> int:
    """What the signals last asked for (before behavior and capacity), within bounds."""
    current = status.replicas or 0
    if spec.mode == "Paused":
        return current
    if status.demand_replicas is not None:
        wanted = status.demand_replicas
    elif status.recommendations:
        wanted = status.recommendations[-1].replicas
    elif status.desired_replicas is not None:
        wanted = status.desired_replicas
    else:
        wanted = max(current, spec.replicas.min)
    return min(max(wanted, spec.replicas.min), spec.replicas.max)


async def _accelerators_from_target(
    namespace: str, spec: InferencePoolSpec, deps: PoolDependencies, log: Any
) -> int:
    target = ScaleTargetRef.of(namespace, spec.target_ref)
    try:
        scale = await deps.scaler.read(target)
    except (TargetNotFound, ActuatorError) as error:
        log.warning(
            "accelerators_unknown", reason="TargetNotFound", target=str(target), detail=str(error)
        )
        return 0
    return scale.accelerators_per_replica or 0


def state_from_status(status: AcceleratorPoolStatus) -> CapacityState:
    return CapacityState(
        empty_since={n.name: st.to_epoch(n.since) for n in status.empty_nodes},
        failed_nodes=frozenset(status.failed_node_names),
        scale_up_requested_at=(
            st.to_epoch(status.scale_up_requested_at) if status.scale_up_requested_at else None
        ),
        last_scale_time=st.to_epoch(status.last_scale_time) if status.last_scale_time else None,
        releasing={n.name: st.to_epoch(n.since) for n in status.releasing_nodes},
    )


def _parse_status(raw: Mapping[str, Any] | None) -> AcceleratorPoolStatus:
    ours = {k: v for k, v in (raw or {}).items() if k in _STATUS_FIELDS}
    try:
        return AcceleratorPoolStatus.model_validate(ours)
    except ValidationError:
        return AcceleratorPoolStatus()


async def reconcile_accelerator_pool(
    name: str,
    uid: str | None,
    generation: int | None,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any] | None,
    deps: PoolDependencies,
    now: float,
) -> PoolTickResult:
    """Run one tick for one AcceleratorPool. Never raises: failures become conditions."""
    log = get_logger("fleetscale.acceleratorpool", pool=name)
    involved = InvolvedObject(API_VERSION, KIND, None, name, uid)
    stored = _parse_status(raw_status)
    try:
        spec = AcceleratorPoolSpec.model_validate(raw_spec)
    except ValidationError as error:
        message = f"The spec is invalid and the pool is skipped: {st.plain_validation_error(error)}"
        return await _report_only(
            involved, raw_status, stored, now, generation, "InvalidSpec", message, deps
        )

    # Observe.
    nodes = await deps.cluster.nodes(spec.node_labels)
    names = [str((n.get("metadata") or {}).get("name", "")) for n in nodes]
    pods = await deps.cluster.pods_on(names)
    views, provider_ids = node_views(nodes, pods, spec.resource_name, now)
    demands = await pool_demands(name, deps, log)
    provider: NodePoolProvider | None = None
    provider_problem: ProviderError | None = None
    requested: int | None = None
    try:
        provider = deps.provider(name, spec)  # e.g. ProviderUnavailable: the extra is missing
        requested = (await provider.current()).desired
    except ProviderError as error:
        provider_problem = error
    if requested is None:  # the backend cannot say: what we last asked for, else what exists
        requested = stored.desired_nodes if stored.desired_nodes is not None else len(views)

    # Plan.
    state = state_from_status(stored)
    plan, new_state = plan_capacity(
        spec, demands, CapacityObservation(views, requested), state, now
    )

    # Act.
    acted = False
    if provider is not None and provider_problem is None:
        try:
            if plan.release_nodes:
                await provider.prefer_removal(
                    [NodeRef(n, provider_ids.get(n, "")) for n in plan.release_nodes]
                )
            if plan.desired_nodes != requested:
                await provider.set_desired(plan.desired_nodes)
            acted = True
        except ProviderError as error:
            provider_problem = error
    if not acted:
        # Nothing changed on the backend: do not remember a request or release that did not
        # happen (the next tick decides again from what is there).
        new_state = replace(
            new_state,
            scale_up_requested_at=state.scale_up_requested_at,
            last_scale_time=state.last_scale_time,
            empty_since={
                **new_state.empty_since,
                **{n: state.empty_since[n] for n in plan.release_nodes if n in state.empty_since},
            },
            releasing={n: t for n, t in new_state.releasing.items() if n not in plan.release_nodes},
        )

    # Report.
    conditions = st.set_condition(
        stored.conditions,
        READY,
        plan.ready.status,
        plan.ready.reason,
        plan.ready.message,
        now,
        generation,
    )
    conditions = st.set_condition(
        conditions,
        SCALING_LIMITED,
        plan.scaling_limited.status,
        plan.scaling_limited.reason,
        plan.scaling_limited.message,
        now,
        generation,
    )
    if provider_problem is not None:
        conditions = st.set_condition(
            conditions,
            PROVIDER_ERROR,
            True,
            provider_problem.reason,
            provider_problem.message,
            now,
            generation,
        )
    else:
        conditions = st.set_condition(
            conditions,
            PROVIDER_ERROR,
            False,
            PROVIDER_OK,
            f"{spec.provider.kind} provider answers",
            now,
            generation,
        )
    effective_desired = plan.desired_nodes if acted else requested
    rendered = AcceleratorPoolStatus(
        observed_generation=generation,
        provider=spec.provider.kind,
        nodes=requested if not acted else plan.desired_nodes,
        ready_nodes=plan.ready_nodes,
        provisioning_nodes=plan.provisioning_nodes,
        failed_nodes=len(plan.failed_nodes) + plan.unregistered_failed,
        desired_nodes=effective_desired,
        accelerators=sum(v.accelerators_allocatable for v in views if v.ready),
        accelerators_in_use=sum(v.accelerators_in_use for v in views if v.ready),
        allocations=tuple(
            PoolAllocation(
                namespace=a.namespace,
                name=a.name,
                priority=a.priority,
                accelerators_per_replica=a.accelerators_per_replica,
                desired_replicas=a.desired_replicas,
                granted_replicas=a.granted_replicas,
                max_replicas=a.limit.max_replicas,
                accelerators=a.accelerators,
                reason=a.limit.reason,
                message=a.limit.message,
                seconds_until_more=(
                    math.ceil(a.limit.seconds_until_more)
                    if a.limit.seconds_until_more is not None
                    else None
                ),
            )
            for a in plan.allocations
        ),
        empty_nodes=tuple(
            EmptyNode(name=n, since=st.whole_seconds(t))
            for n, t in sorted(new_state.empty_since.items())
        ),
        failed_node_names=tuple(sorted(new_state.failed_nodes)),
        releasing_nodes=tuple(
            EmptyNode(name=n, since=st.whole_seconds(t))
            for n, t in sorted(new_state.releasing.items())
        ),
        scale_up_requested_at=(
            st.whole_seconds(new_state.scale_up_requested_at)
            if new_state.scale_up_requested_at is not None
            else None
        ),
        last_scale_time=(
            st.whole_seconds(new_state.last_scale_time)
            if new_state.last_scale_time is not None
            else None
        ),
        last_decision_reason=plan.reason if provider_problem is None else provider_problem.reason,
        last_decision_message=plan.message
        if provider_problem is None
        else provider_problem.message,
        conditions=conditions,
    )
    await _post_events(involved, stored, plan, requested, acted, provider_problem, deps)
    log.info(
        "planned",
        reason=plan.reason,
        desired_nodes=plan.desired_nodes,
        requested_nodes=requested,
        ready_nodes=plan.ready_nodes,
        release=list(plan.release_nodes),
        provider_error=provider_problem.reason if provider_problem else None,
        detail=plan.message,
    )
    wire = rendered.to_wire()
    return PoolTickResult(
        status=wire,
        patch=_merge_patch(raw_status, wire),
        reason=rendered.last_decision_reason or plan.reason,
        plan=plan,
    )


def _merge_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    ours = {k: v for k, v in (current or {}).items() if k in _STATUS_FIELDS}
    return st._diff(ours, desired)


async def _post_events(
    involved: InvolvedObject,
    stored: AcceleratorPoolStatus,
    plan: CapacityPlan,
    requested: int,
    acted: bool,
    problem: ProviderError | None,
    deps: PoolDependencies,
) -> None:
    if acted and plan.desired_nodes > requested - len(plan.release_nodes):
        await deps.events.post(involved, "Normal", "NodesRequested", plan.message)
    if acted and plan.release_nodes:
        await deps.events.post(
            involved,
            "Normal",
            "NodesReleased",
            f"Released empty node(s): {', '.join(plan.release_nodes)}",
        )
    for node in plan.newly_failed:
        await deps.events.post(
            involved,
            "Warning",
            "ProvisioningFailed",
            f"Node {node} did not become Ready within provisioningTimeoutSeconds; it is not "
            "counted as coming capacity and is released",
        )
    previous = st.find_condition(stored.conditions, PROVIDER_ERROR)
    if problem is not None and (
        previous is None or previous.status != "True" or previous.reason != problem.reason
    ):
        await deps.events.post(involved, "Warning", problem.reason, problem.message)


async def _report_only(
    involved: InvolvedObject,
    raw_status: Mapping[str, Any] | None,
    stored: AcceleratorPoolStatus,
    now: float,
    generation: int | None,
    reason: str,
    message: str,
    deps: PoolDependencies,
) -> PoolTickResult:
    previous = st.find_condition(stored.conditions, READY)
    conditions = st.set_condition(stored.conditions, READY, False, reason, message, now, generation)
    if previous is None or (previous.reason, previous.message) != (reason, message):
        await deps.events.post(involved, "Warning", reason, message)
    rendered = stored.model_copy(
        update={"conditions": conditions, "observed_generation": generation}
    )
    wire = rendered.to_wire()
    return PoolTickResult(status=wire, patch=_merge_patch(raw_status, wire), reason=reason)


class AcceleratorPoolStatusWriter:
    """Writes an AcceleratorPool's status subresource (JSON merge patch)."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = kubernetes.client.CustomObjectsApi(api_client)

    async def patch_status(self, name: str, patch: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self._api.patch_cluster_custom_object_status,
            GROUP,
            VERSION,
            PLURAL,
            name,
            {"status": dict(patch)},
        )


def kubernetes_pool_dependencies(
    api_client: kubernetes.client.ApiClient, events: EventSink, scaler: ScaleActuator
) -> PoolDependencies:
    """PoolDependencies talking to the cluster ``api_client`` points at."""
    return PoolDependencies(
        cluster=KubernetesClusterReader(api_client),
        provider_for=lambda name, spec: build_provider(name, spec, api_client),
        events=events,
        scaler=scaler,
    )


class StatusPatcher(Protocol):
    async def patch_status(self, name: str, patch: Mapping[str, Any]) -> None: ...


async def run_accelerator_pool_loop(
    name: str,
    body: Mapping[str, Any],
    stopped: Any,
    dependencies: Callable[[], tuple[PoolDependencies, StatusPatcher] | None],
    clock: Callable[[], float],
) -> None:
    """Reconcile one AcceleratorPool every ``spec.pollIntervalSeconds`` until kopf stops it.

    Ticks are aligned to wall-clock multiples of the interval, like the InferencePool daemons,
    so a pool plans right after the InferencePools on it have reported their demand.
    """
    log = get_logger("fleetscale.acceleratorpool", pool=name)
    written: Mapping[str, Any] | None = None
    version_before_write: str | None = None
    while not stopped:
        wired = dependencies()
        if wired is None:  # the operator's startup has not finished
            await stopped.wait(0.1)
            continue
        deps, writer = wired
        metadata = body.get("metadata") or {}
        raw_status = body.get("status")
        if written is not None and metadata.get("resourceVersion") == version_before_write:
            raw_status = written  # the watch has not delivered our last write yet
        try:
            result = await reconcile_accelerator_pool(
                name,
                metadata.get("uid"),
                metadata.get("generation"),
                body.get("spec") or {},
                raw_status,
                deps,
                clock(),
            )
            if result.patch:
                await writer.patch_status(name, result.patch)
                written, version_before_write = result.status, metadata.get("resourceVersion")
        except Exception as error:  # one bad tick must not stop the loop
            log.warning("acceleratorpool_tick_failed", reason="ReconcileError", detail=str(error))
        interval_seconds = _interval_seconds(body.get("spec"))
        now = clock()
        next_tick = (math.floor(now / interval_seconds) + 1) * interval_seconds
        await stopped.wait(max(0.0, next_tick - now))


def _interval_seconds(raw_spec: Mapping[str, Any] | None) -> float:
    """The live spec's interval (a spec change applies at the next tick); default if invalid."""
    value = (raw_spec or {}).get("pollIntervalSeconds", DEFAULT_INTERVAL_SECONDS)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 3600:
        return float(value)
    return DEFAULT_INTERVAL_SECONDS
