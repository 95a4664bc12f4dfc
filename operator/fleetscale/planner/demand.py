"""What one InferencePool asks of its AcceleratorPool: the one definition of "demand".

Role: turn what is known of an InferencePool (its spec, its size, what its signals last asked
for, whether it sheds) into the ``InferencePoolDemand`` the joint node planner packs onto nodes.
Pure. Callers: the AcceleratorPool controller (from each InferencePool's status, as the watch
delivers it) and the simulator (from the replica planner's decision), so both hand
``plan_capacity`` the same numbers for the same pool.

Demand is the replica planner's ask before behavior, capacity and bounds
(``Decision.unconstrained_replicas``, kept in ``status.demandReplicas``), clamped to
``replicas.min``/``replicas.max``. A Paused pool, and one whose target was scaled to zero
while ``replicas.min`` is at least one (scaling disabled, as the HPA), asks for exactly what it
runs. A pool that sheds below its ``replicas.max`` asks for a lower bound only: its queue is
capped by the gateways, so it may ask for more next tick (``censor``), and the node planner
keeps room for that.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetscale.api.inferencepool import InferencePoolSpec


@dataclass(frozen=True)
class InferencePoolDemand:
    """What one InferencePool asks of the accelerator pool this tick.

    ``desired_replicas`` is the replica planner's unconstrained demand clamped to the
    InferencePool's replica bounds. The pool plans for ``max(desired_replicas,
    current_replicas)``: replicas go before nodes, so running replicas keep their place until
    the replica planner itself removes them (its scale-down stabilization is never bypassed by
    a capacity cap, except when nodes.max forces it).
    """

    namespace: str
    name: str
    priority: int
    accelerators_per_replica: int
    current_replicas: int  # the target's spec.replicas
    desired_replicas: int
    ready_replicas: int = 0  # reported in messages only
    # The pool sheds below its replicas.max: its queue reading, and so desired_replicas, is
    # only a lower bound on what it needs (``censor``), and it may ask for more next tick.
    demand_is_lower_bound: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def planned_replicas(self) -> int:
        """The replicas the pool makes room for."""
        return max(self.desired_replicas, self.current_replicas)


def inference_pool_demand(
    namespace: str,
    name: str,
    spec: InferencePoolSpec,
    *,
    current_replicas: int,
    ready_replicas: int,
    asked_replicas: int | None,
    shedding: bool,
    observed_accelerators_per_replica: int | None,
) -> InferencePoolDemand:
    """The demand of one InferencePool.

    ``asked_replicas`` is what its signals last asked for (None before its first usable
    reading: it then asks for what it runs, at least ``replicas.min``).
    ``observed_accelerators_per_replica`` is read from the target's pod template and used when
    the spec does not say; unknown counts as 0 (the pool takes no accelerators until known).
    """
    bounds = spec.replicas
    if spec.mode == "Paused" or (current_replicas == 0 and bounds.min >= 1):
        # Nobody changes its size (Paused, or scaling disabled by a target at zero, as the
        # HPA): it keeps exactly what it runs.
        desired = current_replicas
    else:
        wanted = max(current_replicas, bounds.min) if asked_replicas is None else asked_replicas
        desired = min(max(wanted, bounds.min), bounds.max)
    per_replica = spec.accelerators_per_replica
    if per_replica is None:
        per_replica = observed_accelerators_per_replica or 0
    return InferencePoolDemand(
        namespace=namespace,
        name=name,
        priority=spec.priority,
        accelerators_per_replica=per_replica,
        current_replicas=current_replicas,
        desired_replicas=desired,
        ready_replicas=ready_replicas,
        demand_is_lower_bound=shedding and desired < bounds.max,
    )
